"""Benchmark: game_analytics on the DirectRunner against DuckDB SQL and plain Python.

    python bench/game_analytics.py [--events 200000] [--seed 1] [--workdir DIR] [--keep]

Why: the job is Beam so it can run on Dataflow and in streaming, but most runs are local
batch runs over a day of exports. This measures what the DirectRunner costs on one NDJSON file
(all four encodings, with the generator's faults) next to two baselines computing the same
five tables: DuckDB SQL (what an analyst would otherwise write) and a single-process loop
over the project's own pure functions (the floor for "Python without Beam"). The outputs
are cross-checked on robust aggregates so a fast baseline cannot win by computing something
else. Timings are reported, never asserted; the exit status is 1 only when Beam and plain
Python disagree.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ['PYTHONPATH'] = os.pathsep.join(  # Beam's worker processes import the project too
    p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)

import duckdb  # noqa: E402

from bench.common import (LABELS, finish, print_timings, rows, time_beam,  # noqa: E402
                          timed)
from pipelines import game_analytics as job  # noqa: E402
from pipelines.samples import game_analytics as sample  # noqa: E402
from transforms import game  # noqa: E402
from transforms.firebase import flatten_record  # noqa: E402
from transforms.game_sessions import (  # noqa: E402
    FUNNEL_STEPS, FunnelFn, ScoreFn, SessionEvent, SessionSummaryFn, funnel_depth)
from transforms.game_tables import session_table_row  # noqa: E402

TABLES = ('events', 'sessions', 'heatmap', 'score_by_age', 'funnel')


def generate(path, events, seed):
  """Writes ~`events` events; returns (plays, the exact event count from ground_truth)."""
  per_play = sample.ground_truth(100, seed)['events'] / 100
  plays = math.ceil(events / per_play)
  with open(path, 'w', encoding='utf-8') as fh:
    sample.write_ndjson(fh, plays, seed)
  return plays, sample.ground_truth(plays, seed)


# --- a/b: the Beam job ---------------------------------------------------------------





# --- c: DuckDB -----------------------------------------------------------------------
# One row per event is built from the four encodings, params become (event, key, value)
# rows so keys can be normalised and "first non-null spelling wins" applied, then pivoted.
# A record any of whose events cannot be flattened is dropped whole, as flatten_record does.
KNOWN_GAPS = (  # where the SQL is not the Python rules; the generator produces none of these
    'float and RFC 3339 timestamps count as unparseable records; non-object user_dim/'
    'app_info/geo are not rejected; numbers as sessionid keep their JSON spelling (1.50, not '
    "Python's 1.5); duplicate keys within one JSON object are not resolved as json.loads does")
MACROS = """
CREATE MACRO nn(x) AS CASE WHEN json_type(x) <> 'NULL' THEN x END;
CREATE MACRO txt(x) AS CASE json_type(x) WHEN 'VARCHAR' THEN x->>'$' WHEN 'NULL' THEN NULL
  ELSE CAST(x AS VARCHAR) END;
CREATE MACRO num(x) AS CASE WHEN json_type(x) NOT IN ('BOOLEAN', 'ARRAY', 'OBJECT')
  THEN try_cast(trim(txt(x)) AS DOUBLE) END;
CREATE MACRO badnum(x) AS x IS NOT NULL AND NOT coalesce(isfinite(num(x)), false);
CREATE MACRO int_text(x) AS CASE WHEN json_type(x) IN ('UBIGINT', 'BIGINT') THEN CAST(x AS VARCHAR)
  WHEN regexp_full_match(trim(x->>'$'), '[-+]?[0-9]+') THEN trim(x->>'$') END;
CREATE MACRO scaled(n) AS CASE WHEN abs(n) >= 1e17 THEN n // 1000 WHEN abs(n) >= 1e14 THEN n
  WHEN abs(n) >= 1e11 THEN n * 1000 ELSE n * 1000000 END;  -- timestamps.epoch_micros' bands
CREATE MACRO pick(s, i, d, f) AS coalesce(nn(s),
  CASE WHEN json_type(i) = 'VARCHAR' THEN CAST(int_text(i) AS JSON) ELSE nn(i) END, nn(d), nn(f));
CREATE MACRO int_bad(s, i) AS nn(s) IS NULL AND json_type(i) = 'VARCHAR' AND int_text(i) IS NULL;
CREATE MACRO rfc3339(us) AS strftime(make_timestamp(CAST(us AS BIGINT)), '%Y-%m-%dT%H:%M:%S.%fZ');
CREATE MACRO game_name(n) AS CASE WHEN upper(trim(n)) = 'END_SCENE' THEN 'END_SESSION'
  WHEN upper(trim(n)) IN ('START_SESSION', 'END_SESSION', 'PLAYER_MOVE', 'PLAYER_ATTACK',
  'NPC_CREATE', 'NPC_MOVE', 'NPC_DIE') THEN upper(trim(n)) END;
"""
# Each JSON document is parsed once, by json_extract with a list of paths (one `->` per
# field would re-parse the whole record each time). Field -> its path in each encoding.
KINDS = ('ga4', 'flat', 'legacy', 'functions')
DETECT = ('$.event_dim', '$.eventDim', '$.event_name', '$.params')  # f[1]..f[4]
REC_JSON = {'list': (None, None, '$.event_dim', '$.eventDim'),
            'name': ('$.event_name', '$.event_name', None, None),
            'ts': ('$.event_timestamp', '$.event_timestamp', None, None),
            'params': ('$.event_params', '$.params', None, None)}
REC_TEXT = {'pseudo': ('$.user_pseudo_id', '$.user_pseudo_id',
                       '$.user_dim.app_info.app_instance_id', '$.userDim.appInfo.appInstanceId'),
            'uid': ('$.user_id', '$.user_id', '$.user_dim.user_id', '$.userDim.userId'),
            'platform': ('$.platform', '$.platform', '$.user_dim.app_info.app_platform',
                         '$.userDim.appInfo.appPlatform'),
            'country': ('$.geo.country', '$.country', '$.user_dim.geo_info.country',
                        '$.userDim.geoInfo.country')}
KEYS = ('sessionid', 'pos_x', 'pos_z', 'pos_y', 'damage', 'life', 'score', 'age', 'sex',
        'npc_id', 'type')
LAYERS = ' '.join("WHEN '%s' THEN '%s'" % kv for kv in game.HEATMAP_LAYERS.items())

SQL = MACROS + """
CREATE TABLE lines AS SELECT row_number() OVER () AS rec_id, line FROM read_csv('{path}',
  columns = {{'line': 'VARCHAR'}}, delim = chr(1), quote = '', escape = '', header = false,
  auto_detect = false);
CREATE TABLE recs AS SELECT rec_id, kind, {rec_columns}
FROM (SELECT *, CASE WHEN f[1] IS NOT NULL THEN 'legacy' WHEN f[2] IS NOT NULL THEN 'functions'
        WHEN f[3] IS NOT NULL THEN CASE WHEN f[4] IS NOT NULL THEN 'flat' ELSE 'ga4' END END AS kind
      FROM (SELECT rec_id, json_extract(line, [{rec_json}]) AS f,
              json_extract_string(line, [{rec_text}]) AS t
            FROM lines WHERE json_valid(line) AND json_type(line) = 'OBJECT'));
CREATE TABLE ev AS
SELECT rec_id, 0 AS idx, kind, name, ts, params, pseudo, uid, platform, country, true AS ev_ok
FROM recs WHERE kind IN ('ga4', 'flat')
UNION ALL
SELECT rec_id, idx, kind, x[1], CASE kind WHEN 'legacy' THEN x[2] ELSE x[3] END, x[4], pseudo,
  uid, platform, country, json_type(value) = 'OBJECT'
FROM (SELECT *, json_extract(value, ['$.name', '$.timestamp_micros', '$.timestampMicros',
                                     '$.params']) AS x
      FROM (SELECT rec_id, kind, pseudo, uid, platform, country, unnest(items) AS value,
              unnest(range(len(items))) AS idx
            FROM (SELECT *, json_extract(list, '$[*]') AS items FROM recs
                  WHERE json_type(list) = 'ARRAY')));
CREATE TABLE pv AS SELECT rec_id, idx, ord,
  CASE kind WHEN 'flat' THEN key WHEN 'functions' THEN key ELSE x[1]->>'$' END AS k,
  CASE kind WHEN 'flat' THEN nn(val) WHEN 'functions' THEN pick(x[7], x[8], x[9], x[10])
    ELSE pick(x[3], x[4], x[5], x[6]) END AS v,
  CASE kind WHEN 'flat' THEN false
    WHEN 'functions' THEN json_type(val) NOT IN ('OBJECT', 'NULL') OR int_bad(x[7], x[8])
    ELSE json_type(val) <> 'OBJECT' OR json_type(x[1]) IS DISTINCT FROM 'VARCHAR'
      OR coalesce(json_type(x[2]) NOT IN ('OBJECT', 'NULL'), false) OR int_bad(x[3], x[4])
  END AS bad
FROM (SELECT *, CASE WHEN kind <> 'flat' THEN json_extract(val, ['$.key', '$.value',
          '$.value.string_value', '$.value.int_value', '$.value.double_value',
          '$.value.float_value', '$.stringValue', '$.intValue', '$.doubleValue', '$.floatValue'])
        END AS x
      FROM (SELECT rec_id, idx, kind, unnest(keys) AS key, unnest(vals) AS val,
              unnest(range(len(vals))) AS ord
            FROM (SELECT *, CASE json_type(params) WHEN 'OBJECT' THEN json_keys(params) END AS keys,
                    CASE json_type(params) WHEN 'ARRAY' THEN json_extract(params, '$[*]')
                      WHEN 'OBJECT' THEN json_extract(params, '$.*') END AS vals FROM ev)));
CREATE TABLE bad_recs AS
SELECT rec_id FROM recs WHERE kind IS NULL
  OR (kind IN ('legacy', 'functions') AND json_type(list) IS DISTINCT FROM 'ARRAY')
UNION SELECT rec_id FROM ev WHERE NOT ev_ok OR json_type(name) IS DISTINCT FROM 'VARCHAR'
  OR name->>'$' = '' OR int_text(ts) IS NULL OR coalesce(json_type(params) NOT IN ('NULL',
  CASE WHEN kind IN ('ga4', 'legacy') THEN 'ARRAY' ELSE 'OBJECT' END), false)
UNION SELECT rec_id FROM pv WHERE bad;
CREATE TABLE piv AS SELECT rec_id, idx, {pivot},
  list_sort(list(ck || '=' || coalesce(CAST(v AS VARCHAR), 'null'))) AS ptext
FROM (SELECT rec_id, idx, ck, arg_min(v, ord) AS v FROM (
        SELECT *, CASE lower(trim(k)) WHEN 'pox_z' THEN 'pos_z' WHEN 'pox_x' THEN 'pos_x'
          WHEN 'session_id' THEN 'sessionid' ELSE lower(trim(k)) END AS ck FROM pv)
      GROUP BY ALL) GROUP BY ALL;
CREATE TABLE decoded AS SELECT *, coalesce(session_id, '') = '' OR badnum(p_pos_x)
    OR badnum(p_pos_z) OR (p_pos_z IS NULL AND badnum(p_pos_y)) OR badnum(p_damage)
    OR badnum(p_life) OR badnum(p_score) OR coalesce(num(p_score) <> floor(num(p_score)), false)
    OR coalesce(json_type(p_npc_id) IN ('BOOLEAN', 'OBJECT', 'ARRAY'), false) AS bad
FROM (SELECT ev.rec_id, game_name(name->>'$') AS event_name,
        CAST(scaled(CAST(int_text(ts) AS HUGEINT)) AS BIGINT) AS us,
        CASE WHEN json_type(p_sessionid) NOT IN ('BOOLEAN', 'OBJECT', 'ARRAY')
          THEN trim(txt(p_sessionid)) END AS session_id,
        coalesce(nullif(pseudo, ''), uid) AS user_id, platform, country, piv.*
      FROM ev LEFT JOIN piv USING (rec_id, idx)
      WHERE ev.rec_id NOT IN (SELECT rec_id FROM bad_recs));
CREATE TABLE events AS SELECT DISTINCT ON (session_id, event_name, us, ptext)
  rfc3339(us) AS event_time, event_name, session_id, user_id,
  CASE WHEN json_type(p_npc_id) = 'DOUBLE' AND num(p_npc_id) = floor(num(p_npc_id))
    THEN CAST(CAST(num(p_npc_id) AS BIGINT) AS VARCHAR) ELSE txt(p_npc_id) END AS npc_id,
  txt(p_type) AS npc_type, num(p_pos_x) AS x, coalesce(num(p_pos_z), num(p_pos_y)) AS z,
  num(p_damage) AS damage, num(p_life) AS life, CAST(num(p_score) AS BIGINT) AS score,
  CASE WHEN num(p_age) = floor(num(p_age)) THEN try_cast(num(p_age) AS BIGINT) END AS age,
  CASE WHEN lower(trim(txt(p_sex))) IN ('true', 'male', 'm', 'man') THEN 'male'
    WHEN lower(trim(txt(p_sex))) IN ('false', 'female', 'f', 'woman') THEN 'female' END AS sex,
  platform, country, us
FROM decoded WHERE event_name IS NOT NULL AND NOT bad;
CREATE TABLE sessions AS SELECT session_id, rfc3339(first_us) AS start_time,
  coalesce(nullif(st.user_id, ''), any_user) AS user_id, st.age AS age,
  CASE WHEN st.age BETWEEN 0 AND 120 THEN st.age // 10 * 10 END AS age_group, st.sex AS sex,
  rfc3339(coalesce(end_us, last_us)) AS end_time,
  (coalesce(end_us, last_us) - first_us) / 1e6 AS duration_s, en.score AS score, moves, attacks,
  npc_kills, end_us IS NOT NULL AS completed, start_us IS NOT NULL AS started
FROM (SELECT session_id, min(us) AS first_us, max(us) AS last_us, min(user_id) AS any_user,
        min(us) FILTER (event_name = 'START_SESSION') AS start_us,
        arg_min({{'user_id': user_id, 'age': age, 'sex': sex}}, us)
          FILTER (event_name = 'START_SESSION') AS st,
        min(us) FILTER (event_name = 'END_SESSION') AS end_us,
        arg_min({{'score': score}}, us) FILTER (event_name = 'END_SESSION') AS en,
        count(*) FILTER (event_name = 'PLAYER_MOVE') AS moves,
        count(*) FILTER (event_name = 'PLAYER_ATTACK') AS attacks,
        count(*) FILTER (event_name = 'NPC_DIE') AS npc_kills
      FROM events GROUP BY session_id);
CREATE TABLE heatmap AS SELECT CASE event_name {layers} END AS layer,
  CAST(floor(x / {cell}) AS BIGINT) AS cell_x, CAST(floor(z / {cell}) AS BIGINT) AS cell_z,
  count(*) AS count
FROM events WHERE event_name IN ({names}) AND x IS NOT NULL AND z IS NOT NULL GROUP BY ALL;
CREATE TABLE score_by_age AS SELECT count(*) AS sessions, avg(score) AS avg_score,
  min(score) AS min_score, max(score) AS max_score, age_group
FROM sessions WHERE completed GROUP BY age_group;
CREATE TABLE funnel AS SELECT step, step_index, n AS sessions,
  n / nullif(first_value(n) OVER w, 0) AS rate_from_start,
  n / nullif(coalesce(lag(n) OVER w, n), 0) AS rate_from_previous
FROM (SELECT step, step_index, (SELECT count(*) FROM sessions WHERE CASE WHEN NOT started THEN 0
        WHEN moves = 0 THEN 1 WHEN attacks = 0 THEN 2 WHEN NOT completed THEN 3 ELSE 4 END
        > step_index) AS n
      FROM (VALUES ('started', 0), ('moved', 1), ('attacked', 2), ('completed', 3))
        AS s(step, step_index))
WINDOW w AS (ORDER BY step_index);
"""


def _rec_columns():
  """'CASE kind WHEN 'ga4' THEN f[5] ... END AS name', ... and the path lists f and t index."""
  paths, cols = {'f': list(DETECT), 't': []}, []
  for var, fields in (('f', REC_JSON), ('t', REC_TEXT)):
    for field, per_kind in fields.items():
      whens = []
      for kind, path in zip(KINDS, per_kind, strict=False):
        if path:
          paths[var] += [path] if path not in paths[var] else []
          whens.append("WHEN '%s' THEN %s[%d]" % (kind, var, paths[var].index(path) + 1))
      cols.append('CASE kind %s END AS %s' % (' '.join(whens), field))
  quoted = {var: ', '.join("'%s'" % p for p in ps) for var, ps in paths.items()}
  return ', '.join(cols), quoted['f'], quoted['t']


def duckdb_sql(path, cell=1.0):
  rec_columns, rec_json, rec_text = _rec_columns()
  pivot = ', '.join("any_value(v) FILTER (ck = '%s') AS p_%s" % (k, k) for k in KEYS)
  return SQL.format(path=path.replace("'", "''"), rec_columns=rec_columns, rec_json=rec_json,
                    rec_text=rec_text, pivot=pivot, layers=LAYERS, cell=cell,
                    names=', '.join("'%s'" % e for e in game.HEATMAP_LAYERS))


def run_duckdb(path, out):
  con = duckdb.connect()
  con.execute(duckdb_sql(path))
  for table in TABLES:
    os.makedirs(os.path.join(out, table), exist_ok=True)
    drop = {'events': ' EXCLUDE (us)', 'sessions': ' EXCLUDE (started)'}.get(table, '')
    con.execute("COPY (SELECT *%s FROM %s) TO '%s' (FORMAT json)"
                % (drop, table, os.path.join(out, table, 'part-0.json')))
  return con


def duckdb_notes(con):
  q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
  return {'bad_lines': q("SELECT count(*) FROM lines WHERE NOT json_valid(line) OR "
                         "json_type(line) <> 'OBJECT'"),
          'bad_records': q('SELECT count(*) FROM bad_recs'),
          'decode_errors': q('SELECT count(*) FROM decoded WHERE event_name IS NOT NULL AND bad'),
          'filtered': q('SELECT count(*) FROM decoded WHERE event_name IS NULL')}


# --- d: plain Python -------------------------------------------------------------------

def python_events(path):
  """The deduplicated events rows (with their micros), and what was dropped on the way."""
  counts, events = Counter(), {}
  with open(path, encoding='utf-8') as fh:
    for line in fh:
      try:
        flat = flatten_record(json.loads(line))
      except Exception:  # invalid JSON, or valid JSON that is no record: an error row in Beam
        counts['bad_lines'] += 1
        continue
      for event in flat:
        name = game.game_event_name(event.name)
        if name is None:
          counts['filtered'] += 1
          continue
        try:
          row = game.event_row(event, name)
        except Exception:
          counts['decode_errors'] += 1
          continue
        key = game.duplicate_key(event, name, row['session_id'])
        if key in events:
          counts['duplicates'] += 1
        else:
          events[key] = (row, event.micros)
  return events, counts


def python_tables(events, cell):
  """The five tables from the events, with the job's CombineFns called directly."""
  summary_fn, accs = SessionSummaryFn(), defaultdict(lambda: summary_fn.create_accumulator())
  heat = Counter()
  for row, micros in events.values():
    summary_fn.add_input(accs[row['session_id']], SessionEvent(
        row['event_name'], micros, row['user_id'], row['age'], row['sex'], row['score']))
    cell_key = game.heatmap_cell(row, cell)
    if cell_key:
      heat[cell_key] += 1
  sessions = {sid: summary_fn.extract_output(acc) for sid, acc in accs.items()}
  score_fn, scores = ScoreFn(), defaultdict(lambda: score_fn.create_accumulator())
  funnel_fn = FunnelFn()
  funnel = funnel_fn.create_accumulator()
  for s in sessions.values():
    if s['completed']:
      score_fn.add_input(scores[s['age_group']], s['score'])
    funnel_fn.add_input(funnel, funnel_depth(s))
  return {
      'events': (row for row, _ in events.values()),
      'sessions': (dict(session_table_row(s), session_id=sid) for sid, s in sessions.items()),
      'heatmap': ({'layer': k[0], 'cell_x': k[1], 'cell_z': k[2], 'count': n}
                  for k, n in heat.items()),
      'score_by_age': (dict(score_fn.extract_output(a), age_group=g) for g, a in scores.items()),
      'funnel': funnel_fn.extract_output(funnel)}


def run_python(path, out, cell=1.0):
  events, counts = python_events(path)
  for table, table_rows in python_tables(events, cell).items():
    os.makedirs(os.path.join(out, table), exist_ok=True)
    with open(os.path.join(out, table, 'part-0.json'), 'w', encoding='utf-8') as fh:
      fh.writelines(json.dumps(r) + '\n' for r in table_rows)
  return counts


# --- cross-check ---------------------------------------------------------------------



def summarise(out):
  """The robust aggregates compared across implementations, from the NDJSON tables."""
  heat = [r['count'] for r in rows(out, 'heatmap')]
  summary = {'events rows': sum(1 for _ in rows(out, 'events')),
             'sessions rows': sum(1 for _ in rows(out, 'sessions')),
             'heatmap cells': len(heat), 'heatmap sum(count)': sum(heat)}
  for r in sorted(rows(out, 'funnel'), key=lambda r: r['step_index']):
    summary['funnel %s' % r['step']] = r['sessions']
  for r in sorted(rows(out, 'score_by_age'), key=lambda r: (r['age_group'] is None,
                                                             r['age_group'] or 0)):
    summary['score_by_age[%s] sessions' % r['age_group']] = r['sessions']
  return summary


def cross_check(summaries, truth):
  """Prints one line per aggregate; returns (Beam == plain Python, DuckDB == plain Python)."""
  names, beam_ok, duck_ok = list(summaries), True, True
  metrics = list(dict.fromkeys(m for s in summaries.values() for m in s))
  expected = dict(zip(['sessions rows'] + ['funnel ' + s for s in FUNNEL_STEPS],
                      [truth['plays']] + list(truth['funnel'].values()), strict=False))
  line = '%-28s %7s' + ' %8s' * len(names) + '  %s'
  print('\n' + line % ('aggregate', 'truth', *names, 'status'))
  for m in metrics:
    vals = [summaries[n].get(m) for n in names]
    beam_py = {v for n, v in zip(names, vals, strict=False) if n != 'duckdb'}
    status = 'MATCH' if len(set(vals)) == 1 else (
        'MISMATCH (Beam vs plain Python)' if len(beam_py) > 1 else
        'MISMATCH (DuckDB only)')
    beam_ok &= len(beam_py) == 1
    duck_ok &= summaries['duckdb'].get(m) == summaries['python'].get(m)
    print(line % (m, expected.get(m, ''), *vals, status))
  if not duck_ok:
    print('DuckDB differs from plain Python. Known gaps of its SQL: ' + KNOWN_GAPS)
  print('(truth: what the generator played, not compared: faults it injects afterwards (a lost '
        'sessionid, a record cut by a stray newline) can drop a play below a funnel step.)')
  return beam_ok, duck_ok


# --- main ----------------------------------------------------------------------------





def run_all(path, out):
  """Times the four implementations on the same file. Returns (seconds, details)."""
  times, details = {}, {}
  time_beam(job, path, out, times, details)
  times['duckdb'], details['duckdb'] = timed(run_duckdb, path, out('duckdb'))
  times['python'], details['python'] = timed(run_python, path, out('python'))
  return times, details


def print_bad_input(beam_out, details):
  counters = json.load(open(os.path.join(beam_out, '_metrics.json')))['counters']
  print('\nbad input, per implementation (not compared: Beam reads "[1, 2, 3]" as an array of '
        'three records and rejoins a line cut by a stray newline into one record; the '
        'baselines read strictly line by line):')
  print('  beam   parse %d, flatten %d, decode %d, filtered %d, duplicates %d' % tuple(
      counters.get(k, 0) for k in ('errors_parse_json', 'errors_flatten_record',
                                   'errors_decode_event', 'filtered', 'duplicates')))
  for name, c in (('python', details['python']), ('duckdb', duckdb_notes(details['duckdb']))):
    print('  %-6s %s' % (name, ', '.join('%s %d' % kv for kv in sorted(c.items()))))




def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--events', type=int, default=200_000)
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--workdir', help='default: a new temporary directory')
  parser.add_argument('--keep', action='store_true', help='keep the input and the outputs')
  args = parser.parse_args(argv)
  start = time.perf_counter()
  work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='bench_game_analytics_'))
  os.makedirs(work, exist_ok=True)
  path, out = os.path.join(work, 'events.ndjson'), lambda name: os.path.join(work, 'out_' + name)
  plays, truth = generate(path, args.events, args.seed)
  n, size = truth['events'], os.path.getsize(path)
  print('input: %s\n  %d plays, %d events (ground truth), %.1f MB' % (path, plays, n, size / 1e6))

  times, details = run_all(path, out)
  print('\nBeam DirectRunner (in-process) printed:\n' + details['beam_printed'].rstrip())
  print_bad_input(out('beam'), details)
  summaries = {name: summarise(out(name)) for name in LABELS}
  beam_ok, duck_ok = cross_check(summaries, truth)
  env = print_timings(times, n, 'events', details['beam_mp'])

  report = {'events': n, 'plays': plays, 'seed': args.seed, 'file_bytes': size,
            'seconds': times, 'events_per_s': {k: n / t for k, t in times.items()},
            'speed_vs_beam_in_process': {k: times['beam'] / t for k, t in times.items()},
            'beam_multi_processing': details['beam_mp'], 'environment': env,
            'cross_check': summaries, 'beam_matches_python': beam_ok,
            'duckdb_matches_python': duck_ok}
  finish(work, 'game_analytics', report, path, out, args.keep, start)
  return 0 if beam_ok else 1


if __name__ == '__main__':
  sys.exit(main())
