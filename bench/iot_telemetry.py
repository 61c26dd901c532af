"""Benchmark: iot_telemetry on the DirectRunner against DuckDB SQL and plain Python.

    python bench/iot_telemetry.py [--devices 970] [--minutes 60] [--seed 1] [--workdir DIR]
        [--keep]

Why: iot_telemetry is Beam so the same code can read a Pub/Sub subscription on Dataflow, but
it is also run locally over saved messages. This measures what the DirectRunner costs on one
NDJSON file of telemetry in every form the generator writes (saved Pub/Sub messages with
base64 `data` in camelCase, snake_case and with `@type`, push envelopes, plain payload
lines; JSON payloads and InfluxDB line protocol; with duplicates, heartbeats and errors) next
to two baselines computing the `device_stats` table (per device, metric and sliding window
of 300 s every 60 s: count, min, max, mean, sample stddev, first and last time):

* DuckDB, as an analyst would use it: base64 and line protocol are impractical in SQL, so a
  short Python pre-pass flattens the records to readings with the project's own decoder
  (transforms.telemetry.expand_record/decode_point/dedupe_key) and writes them to Parquet;
  DuckDB SQL then drops the duplicates and does the sliding-window aggregation. Both parts
  are timed; their sum is the DuckDB figure.
* a single-process loop over the same pure functions and the job's own accumulators
  (transforms.device_stats), the floor for "Python without Beam".

The tables are compared row by row so a fast baseline cannot win by computing something
else, and Beam's counters are checked against the generator's ground truth. The baselines
compute device_stats only; the Beam job also writes readings, bigtable_rows, alerts and
errors. Timings are reported, never asserted; the exit status is 1 when an implementation
disagrees with Beam in-process or Beam's counters disagree with the ground truth.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ['PYTHONPATH'] = os.pathsep.join(  # Beam's worker processes import the project too
    p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)

import duckdb  # noqa: E402
import pyarrow  # noqa: E402  (Beam depends on it)
import pyarrow.parquet  # noqa: E402

from bench.common import (LABELS, compare, finish, print_timings, rows,  # noqa: E402
                          time_beam, timed)
from pipelines import iot_telemetry as job  # noqa: E402
from pipelines.samples import iot_telemetry as sample  # noqa: E402
from transforms import device_stats, timestamps  # noqa: E402
from transforms.jsonsplit import split_json_records  # noqa: E402
from transforms.records import Record  # noqa: E402
from transforms.telemetry import decode_point, dedupe_key, expand_record  # noqa: E402

TABLE = 'device_stats'
DEFAULT_DEVICES = 970  # seed 1, 60 minutes: 499,924 readings read (the 500k)
SECOND = 1_000_000
WINDOW_US = job.DEFAULT_WINDOW_S * SECOND
PERIOD_US = job.DEFAULT_PERIOD_S * SECOND
EXACT = ('window_end', 'count', 'first_time', 'last_time')
CLOSE = ('min', 'max', 'mean', 'stddev')
REL_TOL = 1e-9
ABS_TOL = 1e-12  # a stddev of 0 computed as 1e-17 by one side is still a match
COUNTERS = ('records_read', 'readings_read', 'rows_readings', 'duplicates', 'filtered',
            'errors')


def generate(path, devices, seed, minutes):
  """Writes the telemetry of `devices` devices as NDJSON; returns the ground truth."""
  with open(path, 'w', encoding='utf-8') as fh:
    sample.write_ndjson(fh, devices, seed, minutes)
  return sample.ground_truth(devices, seed, minutes)


def window_starts(micros):
  """The starts of the sliding windows holding `micros`, as Beam's SlidingWindows assigns
  them (offset 0): every multiple of the period s with s <= micros < s + window."""
  return range(micros - micros % PERIOD_US, micros - WINDOW_US, -PERIOD_US)


# --- what both baselines decode --------------------------------------------------------

def points(path, counts):
  """The points of every record in the file, decoded as the job decodes them (the reader's
  splitter, then expand_record and decode_point); `counts` gets records, readings_read,
  filtered and errors as the job counts them (a record or point that fails is one reading,
  a point without metrics is one filtered reading)."""
  read_micros = int(time.time() * SECOND)  # the job's clock; the generator never needs it
  # Beam reads bytes and splits on b'\n' only, keeping undecodable bytes as surrogates.
  with open(path, encoding='utf-8', errors='surrogateescape', newline='\n') as fh:
    for chunk in split_json_records(fh):
      counts['records'] += 1
      if chunk.error:  # a record the splitter knows is cut: an error row in Beam
        counts['errors'] += 1
        counts['readings_read'] += 1
        continue
      if chunk.parsed:
        record = Record(chunk.text, path, line=chunk.line, value=chunk.value)
      else:
        record = Record(chunk.text, path, line=chunk.line)
      try:
        expanded = expand_record(record)
      except Exception:  # an error row in Beam
        counts['errors'] += 1
        counts['readings_read'] += 1
        continue
      for part in expanded:
        try:
          point = decode_point(part, read_micros)
        except Exception:
          counts['errors'] += 1
          counts['readings_read'] += 1
          continue
        if not point.metrics:  # a heartbeat
          counts['filtered'] += 1
          counts['readings_read'] += 1
          continue
        counts['readings_read'] += len(point.metrics)
        yield point


# --- c: DuckDB -------------------------------------------------------------------------
# The pre-pass writes one row per reading (deduplication key of its point, registry,
# device, metric, event micros, value); the SQL keeps one row per (key, metric), puts each
# reading into the sliding windows holding it and aggregates.
SQL = r"""
SET TimeZone = 'UTC';
CREATE MACRO rfc3339(us) AS strftime(make_timestamp(us), '%Y-%m-%dT%H:%M:%S.%fZ');
CREATE TABLE readings AS SELECT DISTINCT ON (dedupe_key, metric)
  registry_id, device_id, metric, micros, value
FROM read_parquet('{parquet}');
CREATE TABLE device_stats AS SELECT device_id, registry_id, metric,
  rfc3339(start_us) AS window_start, rfc3339(start_us + {window_us}) AS window_end,
  count, min, max, mean, stddev, rfc3339(first_us) AS first_time,
  rfc3339(last_us) AS last_time, CAST(NULL AS BIGINT) AS pane_index,
  CAST(NULL AS VARCHAR) AS pane_timing
FROM (SELECT registry_id, device_id, metric, start_us, count(*) AS count, min(value) AS min,
        max(value) AS max, avg(value) AS mean, stddev_samp(value) AS stddev,
        min(micros) AS first_us, max(micros) AS last_us
      FROM (SELECT *, unnest(range(micros - ((micros % {period_us}) + {period_us}) % {period_us},
                                   micros - {window_us}, -{period_us})) AS start_us
            FROM readings)
      GROUP BY registry_id, device_id, metric, start_us);
"""


def duckdb_prepass(path, parquet):
  """Python: the file -> one Parquet row per reading. Returns what it counted."""
  counts = Counter()
  keys, registries, devices, metrics, micros, values = [], [], [], [], [], []
  for point in points(path, counts):
    key = dedupe_key(point)
    for metric, value in point.metrics:
      keys.append(key)
      registries.append(point.registry_id)
      devices.append(point.device_id)
      metrics.append(metric)
      micros.append(point.micros)
      values.append(value)
  table = pyarrow.table({
      'dedupe_key': pyarrow.array(keys, pyarrow.string()),
      'registry_id': pyarrow.array(registries, pyarrow.string()),
      'device_id': pyarrow.array(devices, pyarrow.string()),
      'metric': pyarrow.array(metrics, pyarrow.string()),
      'micros': pyarrow.array(micros, pyarrow.int64()),
      'value': pyarrow.array(values, pyarrow.float64())})
  pyarrow.parquet.write_table(table, parquet)
  counts['rows_written'] = len(values)
  return counts


def duckdb_sql(parquet, out):
  """DuckDB: the Parquet readings -> device_stats (NDJSON, like the job's local output)."""
  con = duckdb.connect()
  con.execute(SQL.format(parquet=parquet.replace("'", "''"), window_us=WINDOW_US,
                         period_us=PERIOD_US))
  os.makedirs(os.path.join(out, TABLE), exist_ok=True)
  con.execute("COPY %s TO '%s' (FORMAT json)" % (
      TABLE, os.path.join(out, TABLE, 'part-0.json').replace("'", "''")))
  return con


def run_duckdb(path, out):
  """Times the pre-pass and the SQL; returns (pre-pass s, SQL s, what they counted)."""
  os.makedirs(out, exist_ok=True)
  parquet = os.path.join(out, 'readings.parquet')
  prepass_s, counts = timed(duckdb_prepass, path, parquet)
  sql_s, con = timed(duckdb_sql, parquet, out)
  q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
  counts['readings'] = q('SELECT count(*) FROM readings')
  counts['duplicates'] = counts['rows_written'] - counts['readings']
  con.close()
  return prepass_s, sql_s, counts


# --- d: plain Python -------------------------------------------------------------------

def python_stats(path):
  """(registry, device, metric, window start us) -> the job's accumulator, and counts."""
  counts, seen, accs = Counter(), set(), {}
  add, new = device_stats.add, device_stats.new_accumulator
  for point in points(path, counts):
    key = dedupe_key(point)
    if key in seen:
      counts['duplicates'] += len(point.metrics)  # DropDuplicates weighs a point so
      continue
    seen.add(key)
    counts['readings'] += len(point.metrics)
    when, starts = point.micros, window_starts(point.micros)
    for metric, value in point.metrics:
      for start in starts:
        stats_key = (point.registry_id, point.device_id, metric, start)
        acc = accs.get(stats_key)
        if acc is None:
          acc = accs[stats_key] = new()
        add(acc, value, when)
  return accs, counts


def python_rows(accs):
  for (registry_id, device_id, metric, start), acc in accs.items():
    row = {'device_id': device_id, 'registry_id': registry_id, 'metric': metric,
           'window_start': timestamps.micros_to_rfc3339(start),
           'window_end': timestamps.micros_to_rfc3339(start + WINDOW_US)}
    row.update(device_stats.summary(acc))
    row.update(pane_index=None, pane_timing=None)
    yield row


def run_python(path, out):
  accs, counts = python_stats(path)
  os.makedirs(os.path.join(out, TABLE), exist_ok=True)
  with open(os.path.join(out, TABLE, 'part-0.json'), 'w', encoding='utf-8') as fh:
    fh.writelines(json.dumps(r) + '\n' for r in python_rows(accs))
  return counts


# --- cross-check -----------------------------------------------------------------------

def keyed_rows(out):
  """device_stats rows by (registry_id, device_id, metric, window start micros)."""
  return {(r['registry_id'], r['device_id'], r['metric'],
           timestamps.parse_rfc3339_micros(r['window_start'])): r for r in rows(out, TABLE)}


def cross_check(tables):
  """Prints Beam in-process vs the others; returns ({name: matches}, details)."""
  print('\n%s cross-check, row by row on (registry_id, device_id, metric, window_start): '
        '%s exactly, %s within %g relative' % (TABLE, ', '.join(EXACT), '/'.join(CLOSE),
                                               REL_TOL))
  line = '%-22s %8s %8s %9s %12s %10s  %s'
  print(line % ('vs Beam in-process', 'rows', 'MATCH', 'MISMATCH', 'only in Beam',
                'only here', 'status'))
  ok, details = {}, {}
  for name in ('beam_mp', 'duckdb', 'python'):
    result, examples = compare(tables['beam'], tables[name], EXACT, CLOSE, REL_TOL, ABS_TOL)
    ok[name] = result['match'] == len(tables['beam']) == len(tables[name]) > 0
    details[name] = dict(result)
    print(line % (name, len(tables[name]), result['match'], result['mismatch'],
                  result['only_reference'], result['only_other'],
                  'MATCH' if ok[name] else 'MISMATCH'))
    for column in sorted(k for k in result if k.startswith('column ')):
      print('    %s differs in %d rows' % (column[7:], result[column]))
    for key, diff in examples:
      print('    e.g. %s %s %s %s: %s' % (key[0], key[1], key[2],
                                         timestamps.micros_to_rfc3339(key[3]), diff))
  return ok, details


def truth_check(beam_outs, details, tables, truth):
  """Each implementation's counts against what the generator wrote; returns (Beam's
  counters all match, the table printed)."""
  expected = {'records_read': truth['records'], 'readings_read': truth['readings_read'],
              'rows_readings': truth['readings'], 'duplicates': truth['duplicates'],
              'filtered': truth['filtered'], 'errors': truth['errors']}
  per_window = WINDOW_US // PERIOD_US if WINDOW_US % PERIOD_US == 0 else None
  found = {}
  for name, out in beam_outs.items():
    try:
      with open(os.path.join(out, '_metrics.json'), encoding='utf-8') as fh:
        found[name] = json.load(fh)['counters']
    except OSError:
      found[name] = {}
  baseline = {'records_read': 'records', 'readings_read': 'readings_read',
              'rows_readings': 'readings', 'duplicates': 'duplicates', 'filtered': 'filtered',
              'errors': 'errors'}
  for name in ('duckdb', 'python'):
    found[name] = {k: details[name].get(v) for k, v in baseline.items()}
  print('\nagainst the ground truth (the generator\'s counts; Beam: its counters, the '
        'baselines: what they counted; rows_readings = unique readings):')
  names = list(found)
  line = '%-16s %10s' + ' %10s' * len(names)
  print(line % ('', 'truth', *names))
  for counter in COUNTERS:
    print(line % (counter, expected[counter],
                  *(found[n].get(counter, '-') for n in names)))
  if per_window:
    print(line % ('sum(count)', per_window * truth['readings'],
                  *(sum(r['count'] for r in tables[n].values()) for n in names)))
  print('(sum(count): each reading is in %s windows of %d s every %d s)'
        % (per_window or 'several', job.DEFAULT_WINDOW_S, job.DEFAULT_PERIOD_S))
  beam_ok = all(found['beam'].get(k) == v for k, v in expected.items())
  if not beam_ok:
    print('MISMATCH: Beam in-process counters differ from the ground truth')
  return beam_ok, {'truth': expected, 'found': found}


# --- main ------------------------------------------------------------------------------

def run_all(path, out):
  """Times the four implementations on the same file. Returns (seconds, details)."""
  times, details = {}, {}
  time_beam(job, path, out, times, details)
  prepass_s, sql_s, details['duckdb'] = run_duckdb(path, out('duckdb'))
  times['duckdb_prepass'], times['duckdb_sql'] = prepass_s, sql_s
  times['duckdb'] = prepass_s + sql_s
  times['python'], details['python'] = timed(run_python, path, out('python'))
  return times, details


def print_duckdb_parts(times, n):
  """The two parts of the DuckDB figure, in print_timings' columns."""
  print('DuckDB SQL above = Python pre-pass + SQL (the pre-pass decodes the records):')
  for name, label in (('duckdb_prepass', '  pre-pass (Python -> Parquet)'),
                      ('duckdb_sql', '  SQL (dedupe, windows)')):
    print('%-30s %9.2f %10.0f %12.2fx' % (label, times[name], n / times[name],
                                          times['beam'] / times[name]))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--devices', type=int, default=DEFAULT_DEVICES,
                      help='default %d: about 500,000 readings in 60 minutes'
                      % DEFAULT_DEVICES)
  parser.add_argument('--minutes', type=int, default=60)
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--workdir', help='default: a new temporary directory')
  parser.add_argument('--keep', action='store_true', help='keep the input and the outputs')
  args = parser.parse_args(argv)
  if args.devices < sample.MIN_DEVICES or args.minutes < sample.MIN_MINUTES:
    parser.error('--devices must be at least %d and --minutes at least %d'
                 % (sample.MIN_DEVICES, sample.MIN_MINUTES))
  start = time.perf_counter()
  work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='bench_iot_telemetry_'))
  os.makedirs(work, exist_ok=True)
  path = os.path.join(work, 'telemetry.ndjson')
  out = lambda name: os.path.join(work, 'out_' + name)  # noqa: E731
  gen_s, truth = timed(generate, path, args.devices, args.seed, args.minutes)
  n, size = truth['readings_read'], os.path.getsize(path)
  print('input: %s (generated in %.0f s)\n  %d devices x %d minutes: %d records, %d readings '
        'read (ground truth), %.1f MB; %d unique readings, %d duplicates, %d filtered '
        '(heartbeats), %d errors %s' % (
            path, gen_s, args.devices, args.minutes, truth['records'], n, size / 1e6,
            truth['readings'], truth['duplicates'], truth['filtered'], truth['errors'],
            truth['errors_by_kind']))

  times, details = run_all(path, out)
  print('\nBeam DirectRunner (in-process) printed:\n' + details['beam_printed'].rstrip())
  tables = {name: keyed_rows(out(name)) for name in LABELS}
  ok, compared = cross_check(tables)
  counters_ok, counts = truth_check({'beam': out('beam'), 'beam_mp': out('beam_mp')},
                                    details, tables, truth)
  env = print_timings(times, n, 'readings', details['beam_mp'])
  print_duckdb_parts(times, n)

  all_ok = counters_ok and all(ok.values())
  report = {'readings_read': n, 'readings': truth['readings'], 'devices': args.devices,
            'minutes': args.minutes, 'seed': args.seed, 'records': truth['records'],
            'file_bytes': size, 'generate_seconds': gen_s, 'seconds': times,
            'readings_per_s': {k: n / t for k, t in times.items()},
            'speed_vs_beam_in_process': {k: times['beam'] / t for k, t in times.items()},
            'duckdb_seconds': 'pre-pass (Python: decode, Parquet) + SQL (dedupe, windows)',
            'beam_multi_processing': details['beam_mp'], 'environment': env,
            'ground_truth': {k: truth[k] for k in ('records', 'readings', 'readings_read',
                                                   'duplicates', 'filtered', 'errors',
                                                   'errors_by_kind', 'faults')},
            'counts': counts, 'cross_check_vs_beam': compared, 'matches_beam': ok,
            'beam_counters_match_truth': counters_ok}
  finish(work, 'iot_telemetry', report, path, out, args.keep, start)
  if not all_ok:
    print('FAILED: %s' % ', '.join(
        [name + ' differs from Beam' for name, good in ok.items() if not good]
        + ([] if counters_ok else ["Beam's counters differ from the ground truth"])))
  return 0 if all_ok else 1


if __name__ == '__main__':
  sys.exit(main())
