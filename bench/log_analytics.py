"""Benchmark: log_analytics on the DirectRunner against DuckDB SQL and plain Python.

    python bench/log_analytics.py [--entries 200000] [--seed 1] [--workdir DIR] [--keep]

Why: log_analytics is Beam so the same code can read a Pub/Sub log sink on Dataflow, but it
is also run locally over exported log files. This measures what the DirectRunner costs on
one NDJSON file of Cloud Logging LogEntries (with the generator's faults: duplicates,
malformed lines, wrong-typed fields) next to two baselines computing the `log_metrics`
table (per 60 s window x log_id x severity: entries, errors, HTTP requests, latency
percentiles): DuckDB SQL (what an analyst would otherwise write) and a single-process loop
over the project's own pure functions (the floor for "Python without Beam"). The three
tables are compared row by row so a fast baseline cannot win by computing something else.
The baselines compute log_metrics only; the Beam job also writes log_entries, metric_counts,
alerts and errors. Timings are reported, never asserted; the exit status is 1 only when
Beam and plain Python disagree.
"""
import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ['PYTHONPATH'] = os.pathsep.join(  # Beam's worker processes import the project too
    p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)

import duckdb  # noqa: E402

from bench.common import (LABELS, compare, finish, print_timings, rows,  # noqa: E402
                          time_beam, timed)
from pipelines import log_analytics as job  # noqa: E402
from pipelines.samples import log_analytics as sample  # noqa: E402
from transforms import cloud_logging, timestamps  # noqa: E402
from transforms.log_tables import percentile  # noqa: E402





TABLE = 'log_metrics'
WINDOW_US = job.DEFAULT_WINDOW_S * 1_000_000
COUNTS = ('entries', 'errors', 'http_requests')  # compared exactly
LATENCIES = ('latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms', 'latency_max_ms')
REL_TOL = 1e-6


def generate(path, entries, seed):
  """Writes `entries` LogEntries (plus injected faults) as NDJSON; returns the ground truth."""
  with open(path, 'w', encoding='utf-8') as fh:
    sample.write_ndjson(fh, entries, seed)
  return sample.ground_truth(entries, seed)


def window_start_us(micros):
  return micros - micros % WINDOW_US  # FixedWindows(60) with offset 0


# --- a/b: the Beam job ---------------------------------------------------------------





# --- c: DuckDB -----------------------------------------------------------------------
# Each line is parsed once (json_extract with a list of paths). An entry is dropped when
# transforms.cloud_logging.entry_row would dead-letter it (bad severity or logName,
# non-object resource/httpRequest/labels, wrong-typed status/responseSize/latency, bad or
# missing timestamps), then deduplicated on logName+insertId+timestamp (on its content when
# insertId is empty), then aggregated per 60 s window of its event time.
KNOWN_GAPS = (  # where the SQL is not the Python rules; the generator produces none of these
    'timestamps are parsed by DuckDB, which accepts other spellings than '
    'datetime.fromisoformat; integer strings allow only [+-]digits (Python int() also takes '
    '"1_000" and non-ASCII digits); a logName whose %-escapes are not UTF-8 is dropped, not '
    'decoded with U+FFFD; entries without insertId are deduplicated on their line text, not '
    'on json.dumps(sort_keys=True); non-string logName/insertId/timestamp compare as JSON '
    "text ('true', not Python's 'True'); duplicate keys within one object are not resolved "
    'as json.loads does')
FIELDS = ('severity', 'logName', 'resource', 'httpRequest', 'labels', 'timestamp',
          'receiveTimestamp', 'insertId', 'httpRequest.requestMethod', 'httpRequest.status',
          'httpRequest.latency', 'httpRequest.responseSize')
MACROS = r"""
CREATE MACRO present(x) AS coalesce(json_type(x) <> 'NULL', false);
CREATE MACRO opt_object(x) AS NOT present(x) OR json_type(x) = 'OBJECT';
CREATE MACRO strip(s) AS trim(s, e' \t\n\r\f\v');
CREATE MACRO truthy(x) AS coalesce(CASE json_type(x) WHEN 'VARCHAR' THEN x->>'$' <> ''
  WHEN 'BOOLEAN' THEN CAST(x AS BOOLEAN) WHEN 'OBJECT' THEN CAST(x AS VARCHAR) <> '{}'
  WHEN 'ARRAY' THEN CAST(x AS VARCHAR) <> '[]' WHEN 'NULL' THEN false
  ELSE CAST(x AS DOUBLE) <> 0 END, false);
CREATE MACRO int_text(s) AS CASE WHEN regexp_full_match(s, '\s*[-+]?[0-9]+\s*')
  THEN try_cast(strip(s) AS HUGEINT) END;
-- cloud_logging.integer: a JSON integer, an integral double or an integer string, |n| < 2^63
CREATE MACRO int64_ok(x) AS NOT present(x) OR coalesce(CASE json_type(x)
  WHEN 'BIGINT' THEN abs(CAST(x AS HUGEINT)) < 9223372036854775808
  WHEN 'UBIGINT' THEN CAST(x AS HUGEINT) < 9223372036854775808
  WHEN 'DOUBLE' THEN isfinite(CAST(x AS DOUBLE)) AND CAST(x AS DOUBLE) = floor(CAST(x AS DOUBLE))
    AND abs(CAST(x AS DOUBLE)) < 9223372036854775808.0
  WHEN 'VARCHAR' THEN abs(int_text(x->>'$')) < 9223372036854775808 END, false);
-- Python int() of a Duration's seconds/nanos (absent: 0)
CREATE MACRO py_int(v) AS CASE WHEN v IS NULL THEN 0
  WHEN json_type(v) IN ('BIGINT', 'UBIGINT') THEN CAST(v AS HUGEINT)
  WHEN json_type(v) = 'DOUBLE' THEN trunc(CAST(v AS DOUBLE))
  WHEN json_type(v) = 'BOOLEAN' THEN CAST(CAST(v AS BOOLEAN) AS INTEGER)
  WHEN json_type(v) = 'VARCHAR' THEN int_text(v->>'$') END;
-- cloud_logging.duration_ms: "0.25s" or {"seconds": .., "nanos": ..}; NULL when invalid
CREATE MACRO duration_ms(d) AS CASE json_type(d)
  WHEN 'VARCHAR' THEN try_cast(regexp_extract(d->>'$', '^\s*(-?[0-9]+(\.[0-9]+)?)s\s*$', 1)
    AS DOUBLE) * 1000
  WHEN 'OBJECT' THEN py_int(json_extract(d, '$.seconds')) * 1000
    + py_int(json_extract(d, '$.nanos')) / 1e6 END;
-- cloud_logging._timestamp: absent or "" is missing; else RFC 3339 text, micros truncated
-- (3 to 9 fraction digits: cut to 6 first, as timestamps.parse_rfc3339_micros does)
CREATE MACRO ts_missing(x) AS NOT present(x) OR (json_type(x) = 'VARCHAR' AND x->>'$' = '');
CREATE MACRO ts_us(x) AS CASE WHEN json_type(x) = 'VARCHAR' THEN epoch_us(try_cast(
  regexp_replace(strip(x->>'$'), '\.([0-9]{1,6})[0-9]*', '.\1') AS TIMESTAMPTZ)) END;
CREATE MACRO ts_ok(x) AS ts_missing(x) OR ts_us(x) IS NOT NULL;
CREATE MACRO window_of(us) AS us - ((us % {window_us}) + {window_us}) % {window_us};
CREATE MACRO rfc3339(us) AS strftime(make_timestamp(us), '%Y-%m-%dT%H:%M:%S.%fZ');
"""
SQL = r"""
SET TimeZone = 'UTC';
CREATE TABLE lines AS SELECT line FROM read_csv('{path}', columns = {{'line': 'VARCHAR'}},
  delim = chr(1), quote = '', escape = '', header = false, auto_detect = false);
CREATE TABLE decoded AS SELECT *,
  severity_number IS NULL OR log_id IS NULL
    OR NOT (opt_object({resource}) AND opt_object({httpRequest}) AND opt_object({labels}))
    OR NOT (int64_ok({status}) AND int64_ok({responseSize}))
    OR (present({latency}) AND latency_ms IS NULL)
    OR NOT (ts_ok({timestamp}) AND ts_ok({receiveTimestamp})) OR event_us IS NULL AS bad
FROM (SELECT *, {numbers}[n] AS severity, CASE WHEN {numbers}[n] IS NOT NULL THEN n END
        AS severity_number
      FROM (SELECT line, f,
              CASE WHEN NOT present({severity}) THEN 0
                WHEN json_type({severity}) = 'VARCHAR'
                  AND {names}[upper(strip({severity}->>'$'))] IS NOT NULL
                  THEN {names}[upper(strip({severity}->>'$'))]
                WHEN json_type({severity}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
                  THEN try_cast(trunc(CAST({severity} AS DOUBLE)) AS INTEGER)
                WHEN json_type({severity}) = 'VARCHAR'
                  THEN try_cast(int_text({severity}->>'$') AS INTEGER) END AS n,
              CASE WHEN json_type({logName}) = 'VARCHAR' THEN try(url_decode(nullif(
                regexp_extract({logName}->>'$', '{log_name_re}', 2), '')))
              END AS log_id,
              CASE WHEN ts_missing({timestamp}) THEN ts_us({receiveTimestamp})
                ELSE ts_us({timestamp}) END AS event_us,
              duration_ms({latency}) AS latency_ms,
              present({requestMethod}) OR present({status}) AS http_request
            FROM (SELECT line, json_extract(line, [{paths}]) AS f FROM lines
                  WHERE json_valid(line) AND json_type(line) = 'OBJECT')));
CREATE TABLE entries AS SELECT DISTINCT ON (dedupe_key) window_of(event_us) AS window_us,
  log_id, severity, severity_number, http_request, latency_ms
FROM (SELECT *, CASE WHEN truthy({insertId})
        THEN [{logName}->>'$', {insertId}->>'$', {timestamp}->>'$'] ELSE [line] END AS dedupe_key
      FROM decoded WHERE NOT bad);
CREATE TABLE log_metrics AS SELECT rfc3339(window_us) AS window_start,
  rfc3339(window_us + {window_us}) AS window_end, log_id, severity, entries, errors,
  http_requests, q[1] AS latency_p50_ms, q[2] AS latency_p95_ms, q[3] AS latency_p99_ms,
  latency_max_ms
FROM (SELECT window_us, log_id, severity, count(*) AS entries,
        count(*) FILTER (severity_number >= {error_level}) AS errors,
        count(*) FILTER (http_request) AS http_requests,
        quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q, max(latency_ms) AS latency_max_ms
      FROM entries GROUP BY ALL);
"""


def _sql_map(pairs):
  return 'MAP {%s}' % ', '.join('%r: %r' % kv for kv in pairs)


def duckdb_sql(path):
  """The script; fields are referred to by their last name ({status} is f[10])."""
  fields = {name.split('.')[-1]: 'f[%d]' % (i + 1) for i, name in enumerate(FIELDS)}
  severities = cloud_logging.SEVERITIES
  log_name_re = re.sub(r'\?P<\w+>', '', cloud_logging._LOG_NAME.pattern)  # RE2: plain groups
  return (MACROS.replace('{window_us}', str(WINDOW_US)) + SQL.format(
      path=path.replace("'", "''"), paths=', '.join("'$.%s'" % f for f in FIELDS),
      names=_sql_map(severities.items()),
      numbers=_sql_map((n, name) for name, n in severities.items()),
      error_level=cloud_logging.ERROR_LEVEL, log_name_re=log_name_re, window_us=WINDOW_US,
      **fields))


def run_duckdb(path, out):
  con = duckdb.connect()
  con.execute(duckdb_sql(path))
  os.makedirs(os.path.join(out, TABLE), exist_ok=True)
  con.execute("COPY %s TO '%s' (FORMAT json)" % (TABLE, os.path.join(out, TABLE, 'part-0.json')))
  return con


def duckdb_notes(con):
  q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
  return {'bad_lines': q('SELECT count(*) FROM lines WHERE NOT json_valid(line)'),
          'not_object': q("SELECT count(*) FROM lines WHERE json_valid(line) "
                          "AND json_type(line) <> 'OBJECT'"),
          'decode_errors': q('SELECT count(*) FROM decoded WHERE bad'),
          'duplicates': q('SELECT (SELECT count(*) FROM decoded WHERE NOT bad) '
                          '- (SELECT count(*) FROM entries)')}


# --- d: plain Python -------------------------------------------------------------------

def python_groups(path):
  """(window_us, log_id, severity) -> [entries, errors, http requests, latencies], and what
  was dropped on the way."""
  counts, seen = Counter(), set()
  groups = defaultdict(lambda: [0, 0, 0, []])
  with open(path, encoding='utf-8') as fh:
    for line in fh:
      try:
        entry = json.loads(line)
      except ValueError:
        counts['bad_lines'] += 1
        continue
      try:
        row = cloud_logging.entry_row(entry)
        micros = cloud_logging.entry_micros(entry)
        key = cloud_logging.duplicate_key(entry)
      except Exception:  # an error row in Beam (non-objects included)
        counts['decode_errors'] += 1
        continue
      if key in seen:
        counts['duplicates'] += 1
        continue
      seen.add(key)
      group = groups[(window_start_us(micros), row['log_id'], row['severity'])]
      group[0] += 1
      group[1] += row['severity_number'] >= cloud_logging.ERROR_LEVEL
      group[2] += row['http_method'] is not None or row['http_status'] is not None
      if row['http_latency_ms'] is not None:
        group[3].append(row['http_latency_ms'])
  return groups, counts


def python_rows(groups):
  for (start, log_id, severity), (n, errors, requests, latencies) in groups.items():
    latencies.sort()
    yield {'window_start': timestamps.micros_to_rfc3339(start),
           'window_end': timestamps.micros_to_rfc3339(start + WINDOW_US),
           'log_id': log_id, 'severity': severity,
           'entries': n, 'errors': errors, 'http_requests': requests,
           'latency_p50_ms': percentile(latencies, 0.50),
           'latency_p95_ms': percentile(latencies, 0.95),
           'latency_p99_ms': percentile(latencies, 0.99),
           'latency_max_ms': latencies[-1] if latencies else None}


def run_python(path, out):
  groups, counts = python_groups(path)
  os.makedirs(os.path.join(out, TABLE), exist_ok=True)
  with open(os.path.join(out, TABLE, 'part-0.json'), 'w', encoding='utf-8') as fh:
    fh.writelines(json.dumps(r) + '\n' for r in python_rows(groups))
  return counts


# --- cross-check ---------------------------------------------------------------------

def keyed_rows(out):
  """log_metrics rows by (window start micros, log_id, severity)."""
  return {(timestamps.parse_rfc3339_micros(r['window_start']), r['log_id'], r['severity']): r
          for r in rows(out, TABLE)}


def cross_check(tables):
  """Prints Beam in-process vs the others; returns (both Beam runs == plain Python,
  DuckDB == Beam, details)."""
  print('\n%s cross-check, row by row on (window_start, log_id, severity): %s exactly, '
        'latency p50/p95/p99/max within %g relative' % (TABLE, ', '.join(COUNTS), REL_TOL))
  line = '%-22s %6s %7s %9s %12s %12s  %s'
  print(line % ('vs Beam in-process', 'rows', 'MATCH', 'MISMATCH', 'only in Beam',
                'only here', 'status'))
  ok, details = {}, {}
  for name in ('beam_mp', 'duckdb', 'python'):
    result, examples = compare(tables['beam'], tables[name], COUNTS, LATENCIES, REL_TOL, 1e-12)
    ok[name] = result['match'] == len(tables['beam']) == len(tables[name])
    details[name] = dict(result)
    print(line % (name, len(tables[name]), result['match'], result['mismatch'],
                  result['only_reference'], result['only_other'],
                  'MATCH' if ok[name] else 'MISMATCH'))
    for column in sorted(k for k in result if k.startswith('column ')):
      print('    %s differs in %d rows' % (column[7:], result[column]))
    for key, diff in examples:
      print('    e.g. %s %s %s: %s' % (timestamps.micros_to_rfc3339(key[0]), key[1], key[2],
                                      diff))
  if not ok['duckdb']:
    print('DuckDB differs from Beam. Known gaps of its SQL: ' + KNOWN_GAPS)
  return ok['python'] and ok['beam_mp'], ok['duckdb'], details


def truth_check(tables, truth):
  """Per-minute entry totals and per-severity totals against what the generator wrote."""
  minutes = {timestamps.parse_rfc3339_micros(m): c['entries']
             for m, c in truth['per_minute'].items()}
  print('\nagainst the ground truth (valid, deduplicated entries the generator wrote):')
  out = {}
  for name, table in tables.items():
    per_minute, per_severity = Counter(), Counter()
    for (start, _, severity), r in table.items():
      per_minute[start] += r['entries']
      per_severity[severity] += r['entries']
    windows = sum(per_minute[m] == n for m, n in minutes.items())  # empty minutes: 0
    severities = per_severity == Counter(truth['severities'])
    out[name] = {'windows_matching': windows, 'entries': sum(per_minute.values()),
                 'severity_totals_match': severities}
    print('  %-8s %d entries (truth %d), %d/%d minutes with the true entry count, severity '
          'totals %s' % (name, sum(per_minute.values()), truth['valid_entries'], windows,
                         len(minutes), 'MATCH' if severities else 'MISMATCH'))
  return out


# --- main ----------------------------------------------------------------------------

def run_all(path, out):
  """Times the four implementations on the same file. Returns (seconds, details)."""
  times, details = {}, {}
  time_beam(job, path, out, times, details)
  times['duckdb'], details['duckdb'] = timed(run_duckdb, path, out('duckdb'))
  times['python'], details['python'] = timed(run_python, path, out('python'))
  return times, details


def print_bad_input(beam_out, details, truth):
  counters = json.load(open(os.path.join(beam_out, '_metrics.json')))['counters']
  bad = {'beam': {k: counters.get(k, 0) for k in ('records_read', 'errors_parse_json',
                                                  'errors_decode_entry', 'duplicates')},
         'python': dict(details['python']), 'duckdb': duckdb_notes(details['duckdb'])}
  print('\nbad input, per implementation (not compared: Beam rejoins a record cut by a stray '
        'newline into one invalid record, the baselines see two invalid lines; non-objects '
        'are decode errors in Beam and plain Python):')
  print('  truth  %s, duplicates %d' % (', '.join(
      '%s %d' % kv for kv in truth['malformed'].items()), truth['duplicates']))
  for name, c in bad.items():
    print('  %-6s %s' % (name, ', '.join('%s %d' % kv for kv in sorted(c.items()))))
  return bad






def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--entries', type=int, default=200_000)
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--workdir', help='default: a new temporary directory')
  parser.add_argument('--keep', action='store_true', help='keep the input and the outputs')
  args = parser.parse_args(argv)
  if args.entries < sample.MIN_ENTRIES:
    parser.error('--entries must be at least %d' % sample.MIN_ENTRIES)
  start = time.perf_counter()
  work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='bench_log_analytics_'))
  os.makedirs(work, exist_ok=True)
  path, out = os.path.join(work, 'entries.ndjson'), lambda name: os.path.join(work, 'out_' + name)
  gen_s, truth = timed(generate, path, args.entries, args.seed)
  n, size = truth['entries'], os.path.getsize(path)
  print('input: %s (generated in %.0f s)\n  %d entries (ground truth), %.1f MB; %d valid after '
        'faults, %d duplicates, malformed %s; severities %s' % (
            path, gen_s, n, size / 1e6, truth['valid_entries'], truth['duplicates'],
            truth['malformed'], truth['severities']))

  times, details = run_all(path, out)
  print('\nBeam DirectRunner (in-process) printed:\n' + details['beam_printed'].rstrip())
  bad = print_bad_input(out('beam'), details, truth)
  tables = {name: keyed_rows(out(name)) for name in LABELS}
  beam_ok, duck_ok, compared = cross_check(tables)
  truth_counts = truth_check(tables, truth)
  env = print_timings(times, n, 'entries', details['beam_mp'])

  report = {'entries': n, 'seed': args.seed, 'file_bytes': size, 'generate_seconds': gen_s,
            'seconds': times, 'entries_per_s': {k: n / t for k, t in times.items()},
            'speed_vs_beam_in_process': {k: times['beam'] / t for k, t in times.items()},
            'beam_multi_processing': details['beam_mp'], 'environment': env,
            'ground_truth': {k: truth[k] for k in ('valid_entries', 'duplicates', 'malformed',
                                                   'severities', 'kinds', 'per_log')},
            'bad_input': bad, 'cross_check_vs_beam': compared, 'truth_check': truth_counts,
            'beam_matches_python': beam_ok, 'duckdb_matches_beam': duck_ok}
  finish(work, 'log_analytics', report, path, out, args.keep, start)
  return 0 if beam_ok else 1


if __name__ == '__main__':
  sys.exit(main())
