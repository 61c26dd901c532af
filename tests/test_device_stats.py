"""The device_stats accumulator: exact on known values, stable, and merge-order free."""
import math
import random
import statistics

from transforms import device_stats
from transforms.device_stats import add, merge, new_accumulator, summary


def _acc(values, start=0):
  acc = new_accumulator()
  for i, value in enumerate(values):
    add(acc, value, start + i * 1_000_000)
  return acc


def test_known_values_are_exact():
  stats = summary(_acc([20.0, 22.0, 24.0], start=1_795_683_610_000_000))
  assert stats == {'count': 3, 'min': 20.0, 'max': 24.0, 'mean': 22.0, 'stddev': 2.0,
                   'first_time': '2026-11-26T09:00:10.000000Z',
                   'last_time': '2026-11-26T09:00:12.000000Z'}


def test_one_reading_has_no_stddev_and_first_equals_last():
  stats = summary(_acc([3.3]))
  assert (stats['count'], stats['mean'], stats['stddev']) == (1, 3.3, None)
  assert stats['first_time'] == stats['last_time']


def test_matches_the_sample_statistics_and_is_stable_near_a_large_offset():
  rng = random.Random(4)
  values = [1e9 + rng.uniform(-0.5, 0.5) for _ in range(1000)]
  stats = summary(_acc(values))
  assert math.isclose(stats['mean'], statistics.fmean(values), rel_tol=1e-15)
  # A sum-of-squares accumulator loses every digit here; Welford keeps ~7.
  assert math.isclose(stats['stddev'], statistics.stdev(values), rel_tol=1e-6)


def test_merging_partials_in_any_order_gives_the_same_result():
  rng = random.Random(9)
  values = [rng.gauss(21.5, 3) for _ in range(300)]
  whole = summary(_acc(values))
  parts = [_acc(values[i:i + 37], start=i * 1_000_000) for i in range(0, 300, 37)]
  for _ in range(5):
    rng.shuffle(parts)
    merged = summary(merge([new_accumulator()] + parts + [new_accumulator()]))
    assert merged['count'] == 300
    assert (merged['min'], merged['max']) == (min(values), max(values))
    assert (merged['first_time'], merged['last_time']) == (whole['first_time'],
                                                           whole['last_time'])
    assert math.isclose(merged['mean'], whole['mean'], rel_tol=1e-12)
    assert math.isclose(merged['stddev'], whole['stddev'], rel_tol=1e-12)


def test_first_and_last_time_are_by_event_time_not_arrival():
  acc = new_accumulator()
  for value, micros in [(1.0, 30), (2.0, 10), (3.0, 20)]:
    add(acc, value, micros * 1_000_000)
  stats = summary(acc)
  assert stats['first_time'] == '1970-01-01T00:00:10.000000Z'
  assert stats['last_time'] == '1970-01-01T00:00:30.000000Z'


def test_rows_name_device_registry_and_metric():
  [row] = device_stats.stats_rows(('gh', 'th-1', 'temperature'), {'count': 1})
  assert row == {'device_id': 'th-1', 'registry_id': 'gh', 'metric': 'temperature',
                 'count': 1}
