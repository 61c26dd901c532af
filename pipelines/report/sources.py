"""Job outputs as DuckDB views: one in-memory connection per job, one view per output table,
named as the table, so a section's SQL reads `FROM heatmap` whatever held the rows.

Local output folders are read in place (`<job>/<table>/*.json`, `<job>/_metrics.json`);
bigquery_source.py fetches a dataset's tables into NDJSON files and opens them the same way.
"""
import dataclasses
import glob
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import duckdb

import schemas
from pipelines.launch import METRICS_FILE
from transforms.sinks import table_glob

# The order of the report's sections.
JOBS = ('game_analytics', 'log_analytics', 'iot_telemetry', 'tweet_sentiment', 'face_dataset',
        'image_inference')
_DUCK_TYPES = {'STRING': 'VARCHAR', 'INTEGER': 'BIGINT', 'FLOAT': 'DOUBLE',
               'BOOLEAN': 'BOOLEAN', 'TIMESTAMP': 'TIMESTAMP'}


@dataclasses.dataclass
class JobTables:
  """One job's output, ready to query; `present` names the tables the source holds (the
  others are empty views, so every section's SQL runs)."""
  job: str
  origin: str
  con: Any
  present: frozenset
  counters: Optional[Dict[str, Any]] = None
  files_dir: Optional[str] = None  # the job's local output folder (face crops live there)
  notes: List[str] = dataclasses.field(default_factory=list)

  def rows(self, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
    cursor = self.con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

  def count(self, table: str) -> int:
    return self.con.execute('SELECT count(*) FROM "%s"' % table).fetchone()[0]


def distinctive_tables(job: str) -> List[str]:
  """The job's tables no other job has: what tells its output apart (not alerts, errors)."""
  others = {t for other in JOBS if other != job for t in schemas.tables(other)}
  return [t for t in schemas.tables(job) if t not in others]


def duck_type(field: Dict[str, Any]) -> str:
  """A BigQuery schema field's DuckDB type (RECORD -> STRUCT, REPEATED -> list)."""
  if field['type'] in ('RECORD', 'STRUCT'):
    kind = 'STRUCT(%s)' % ', '.join('"%s" %s' % (f['name'], duck_type(f))
                                    for f in field['fields'])
  else:
    kind = _DUCK_TYPES[field['type']]
  return kind + '[]' if field.get('mode') == 'REPEATED' else kind


def _sql_text(value: str) -> str:
  return "'%s'" % value.replace("'", "''")


def create_view(con, job: str, table: str, files: Sequence[str]) -> None:
  """`table` over NDJSON `files` typed by schemas/ (an empty table when there are none):
  typing from the schema, not from the rows, keeps empty and all-null columns queryable."""
  fields = schemas.fields(job, table)
  if not files:
    con.execute('CREATE TABLE "%s" (%s)' % (
        table, ', '.join('"%s" %s' % (f['name'], duck_type(f)) for f in fields)))
    return
  columns = '{%s}' % ', '.join('%s: %s' % (_sql_text(f['name']), _sql_text(duck_type(f)))
                               for f in fields)
  con.execute('CREATE VIEW "%s" AS SELECT * FROM read_json([%s], format=\'newline_delimited\', '
              'columns=%s)' % (table, ', '.join(_sql_text(f) for f in files), columns))


def connect():
  con = duckdb.connect(':memory:')
  con.execute("SET TimeZone = 'UTC'")
  return con


def table_files(job_dir: str, table: str) -> List[str]:
  """The table's non-empty NDJSON files (the contract's `<output>/<table>/*.json`)."""
  paths = sorted(glob.glob(table_glob(glob.escape(job_dir), table)))
  return [p for p in paths if os.path.getsize(p) > 0]


def read_counters(job_dir: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(job_dir, METRICS_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as fh:
    return dict(json.load(fh).get('counters', {}))


def open_job_dir(job: str, job_dir: str) -> JobTables:
  con = connect()
  present = set()
  for table in schemas.tables(job):
    if os.path.isdir(os.path.join(job_dir, table)):
      present.add(table)
    create_view(con, job, table, table_files(job_dir, table))
  return JobTables(job=job, origin=job_dir, con=con, present=frozenset(present),
                   counters=read_counters(job_dir), files_dir=job_dir)


def job_of_dir(path: str) -> Optional[str]:
  """The job whose output `path` holds: its own name, else its distinctive table folders."""
  name = os.path.basename(os.path.normpath(path))
  if name in JOBS and _looks_like_output(path, name):
    return name
  for job in JOBS:
    if any(os.path.isdir(os.path.join(path, t)) for t in distinctive_tables(job)):
      return job
  return None


def _looks_like_output(path: str, job: str) -> bool:
  return os.path.exists(os.path.join(path, METRICS_FILE)) or any(
      os.path.isdir(os.path.join(path, t)) for t in schemas.tables(job))


def find_job_dirs(output: str) -> Dict[str, str]:
  """{job: folder} under `output`: `output/<job>/` for each job there, or `output` itself
  when it is one job's folder."""
  if not os.path.isdir(output):
    raise FileNotFoundError('%s is not a folder' % output)
  found = {job: os.path.join(output, job) for job in JOBS
           if os.path.isdir(os.path.join(output, job))
           and _looks_like_output(os.path.join(output, job), job)}
  if not found:
    job = job_of_dir(output)
    if job:
      found[job] = output
  return found


def open_output_dir(output: str) -> Dict[str, JobTables]:
  return {job: open_job_dir(job, path) for job, path in find_job_dirs(output).items()}


def latest_panes(table: str, *keys: str, window: str = 'window_start') -> str:
  """A subquery of `table` keeping each window's and key's last pane: streaming jobs
  accumulate, so the last pane holds the whole window (batch rows have one pane, null).
  `keys` must be the whole key the job combines per (one row per key and pane); a table
  written as a whole list per pane needs latest_whole_panes."""
  partition = ', '.join([window] + list(keys))
  return ('(SELECT * FROM "%s" QUALIFY row_number() OVER (PARTITION BY %s '
          'ORDER BY pane_index DESC NULLS LAST) = 1)' % (table, partition))


def latest_whole_panes(table: str, *keys: str, window: str = 'window_start') -> str:
  """A subquery of `table` keeping, for each window (and key), every row of its last pane:
  for tables a pane writes as a whole list (top terms, the funnel's steps), where a row of an
  earlier pane is stale even when no row of the last pane shares its other columns (a term
  that dropped out of the top N). Batch rows have one pane, null: all are kept."""
  partition = ', '.join([window] + list(keys))
  return ('(SELECT * FROM "%s" QUALIFY pane_index IS NOT DISTINCT FROM '
          'max(pane_index) OVER (PARTITION BY %s))' % (table, partition))
