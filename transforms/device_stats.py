"""device_stats: per device and metric, count/min/max/mean/stddev over sliding windows.

The accumulator is Welford's (count, mean, sum of squared deviations), merged with Chan's
formula, so partial results from many workers combine without the cancellation a
sum-of-squares accumulator suffers on large, close values (a thermometer near 21.5 C).
"""
import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
from apache_beam.transforms import window

from transforms import timestamps
from transforms.telemetry import Point
from transforms.windowing import AggregatePerWindow, Windowing

StatsKey = Tuple[Optional[str], str, str]  # registry_id, device_id, metric

# [count, mean, m2, min, max, first micros, last micros]
_COUNT, _MEAN, _M2, _MIN, _MAX, _FIRST, _LAST = range(7)


def new_accumulator() -> List[Any]:
  return [0, 0.0, 0.0, math.inf, -math.inf, None, None]


def add(acc: List[Any], value: float, micros: int) -> List[Any]:
  acc[_COUNT] += 1
  delta = value - acc[_MEAN]
  acc[_MEAN] += delta / acc[_COUNT]
  acc[_M2] += delta * (value - acc[_MEAN])
  acc[_MIN] = min(acc[_MIN], value)
  acc[_MAX] = max(acc[_MAX], value)
  acc[_FIRST] = micros if acc[_FIRST] is None else min(acc[_FIRST], micros)
  acc[_LAST] = micros if acc[_LAST] is None else max(acc[_LAST], micros)
  return acc


def merge(accumulators: Iterable[List[Any]]) -> List[Any]:
  out = new_accumulator()
  for acc in accumulators:
    if not acc[_COUNT]:
      continue
    if not out[_COUNT]:
      out = list(acc)
      continue
    count = out[_COUNT] + acc[_COUNT]
    delta = acc[_MEAN] - out[_MEAN]
    out[_MEAN] += delta * acc[_COUNT] / count
    out[_M2] += acc[_M2] + delta * delta * out[_COUNT] * acc[_COUNT] / count
    out[_COUNT] = count
    out[_MIN] = min(out[_MIN], acc[_MIN])
    out[_MAX] = max(out[_MAX], acc[_MAX])
    out[_FIRST] = min(out[_FIRST], acc[_FIRST])
    out[_LAST] = max(out[_LAST], acc[_LAST])
  return out


def summary(acc: List[Any]) -> Dict[str, Any]:
  """The statistics columns. stddev is the sample standard deviation, as BigQuery's
  STDDEV computes it; null for a single reading."""
  count = acc[_COUNT]
  return {
      'count': count,
      'min': acc[_MIN],
      'max': acc[_MAX],
      'mean': acc[_MEAN],
      'stddev': math.sqrt(max(acc[_M2], 0.0) / (count - 1)) if count > 1 else None,
      'first_time': timestamps.micros_to_rfc3339(acc[_FIRST]),
      'last_time': timestamps.micros_to_rfc3339(acc[_LAST]),
  }


class DeviceStatsFn(beam.CombineFn):
  """(value, event micros) -> the window's statistics."""

  def create_accumulator(self):
    return new_accumulator()

  def add_input(self, acc, value_and_micros):
    return add(acc, value_and_micros[0], value_and_micros[1])

  def merge_accumulators(self, accumulators):
    return merge(accumulators)

  def extract_output(self, acc):
    return summary(acc)


def metric_values(point: Point) -> List[Tuple[StatsKey, Tuple[float, int]]]:
  return [((point.registry_id, point.device_id, metric), (value, point.micros))
          for metric, value in point.metrics]


def stats_rows(key: StatsKey, stats: Dict[str, Any]) -> List[Dict[str, Any]]:
  registry_id, device_id, metric = key
  row = {'device_id': device_id, 'registry_id': registry_id, 'metric': metric}
  row.update(stats)
  return [row]


class DeviceStats(beam.PTransform):
  """Points -> `device_stats` rows, one per device, metric and sliding window."""

  def __init__(self, windowing: Windowing, period_s: float):
    super().__init__()
    self._windowing = windowing
    self._period_s = period_s

  def expand(self, points):
    return (
        points
        | 'MetricValues' >> beam.FlatMap(metric_values)
        | 'PerWindow' >> AggregatePerWindow(
            self._windowing, DeviceStatsFn(), stats_rows,
            window.SlidingWindows(self._windowing.window_s, self._period_s)))
