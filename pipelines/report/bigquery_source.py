"""Job outputs in a BigQuery dataset, fetched through google-cloud-bigquery into NDJSON files
that sources.py opens like a local output folder (one path for the report's SQL).

Only the tables the sections read are fetched. A job is found by its own tables (those no
other job writes), under a --table_prefix given per job or found from the table names;
`alerts` is shared by two jobs and used only when its columns are this job's, and `errors`
rows are kept when their `job` column names this job.
"""
import datetime
import json
import os
import tempfile
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import schemas
from pipelines.report import sources


def split_dataset(dataset: str) -> Tuple[str, str]:
  """'PROJECT:DATASET' -> (project, dataset); a domain-scoped project keeps its colon."""
  project, _, name = dataset.rpartition(':')
  return project, name


def make_client(project: str, endpoint: Optional[str]):
  """A client for `project`; against an endpoint (the emulator) with no credentials."""
  from google.cloud import bigquery
  if endpoint:
    from google.auth.credentials import AnonymousCredentials
    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options={'api_endpoint': endpoint.rstrip('/')})
  return bigquery.Client(project=project)


def choose_prefix(job: str, names: Set[str], given: Optional[str]
                  ) -> Tuple[Optional[str], List[str]]:
  """(the job's table prefix, or None when it has no table here; notes on the choice)."""
  own = sources.distinctive_tables(job)
  if given is not None:
    return (given if any(given + t in names for t in own) else None), []
  found = sorted({n[:-len(t)] for n in names for t in own if n.endswith(t)})
  if not found:
    return None, []
  chosen = '' if '' in found else found[0]
  notes = []
  if chosen:
    notes.append('Tables found with the prefix %r.' % chosen)
  others = [p for p in found if p != chosen]
  if others:
    notes.append('Other %s tables have the prefixes %s; pass --table_prefix %s=PREFIX to '
                 'report on one of those.' % (job, ', '.join(repr(p) for p in others), job))
  return chosen, notes


def json_value(value: Any) -> Any:
  """A BigQuery client value as the NDJSON layout has it (TIMESTAMP as RFC 3339 UTC)."""
  if isinstance(value, datetime.datetime):
    if value.tzinfo is not None:
      value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec='microseconds') + 'Z'
  if isinstance(value, dict):
    return {k: json_value(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_value(v) for v in value]
  return value


def write_ndjson(rows: Iterable[Dict[str, Any]], path: str) -> int:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  written = 0
  with open(path, 'w', encoding='utf-8') as fh:
    for row in rows:
      fh.write(json.dumps(json_value(row)) + '\n')
      written += 1
  return written


def _fetch(client, table_ref, job: str, table: str, path: str) -> None:
  rows = (dict(row.items()) for row in client.list_rows(table_ref))
  if table == schemas.ERRORS_TABLE:
    rows = (r for r in rows if r.get('job') == job)
  write_ndjson(rows, path)


def open_dataset(dataset: str, endpoint: Optional[str], prefixes: Dict[str, str],
                 needed: Dict[str, Sequence[str]]):
  """({job: JobTables}, notes, the scratch folder to clean up once the report is built)."""
  from google.cloud.bigquery import DatasetReference
  project, name = split_dataset(dataset)
  client = make_client(project, endpoint)
  dataset_ref = DatasetReference(project, name)
  names = {t.table_id for t in client.list_tables(dataset_ref)}
  scratch = tempfile.TemporaryDirectory(prefix='report-bq-')
  jobs, notes = {}, []
  for job in sources.JOBS:
    prefix, prefix_notes = choose_prefix(job, names, prefixes.get(job))
    if prefix is None:
      continue
    job_dir = os.path.join(scratch.name, job)
    os.makedirs(job_dir)
    present = {t for t in schemas.tables(job) if prefix + t in names}
    for table in list(needed.get(job, ())) + [schemas.ERRORS_TABLE]:
      full = prefix + table
      if full not in names:
        continue
      ref = dataset_ref.table(full)
      columns = {f.name for f in client.get_table(ref).schema}
      if not {f['name'] for f in schemas.fields(job, table)} <= columns:
        prefix_notes.append('Table %s is not %s\'s %s (its columns differ; another job wrote '
                            'it?): not used. Give each job its own --table_prefix.'
                            % (full, job, table))
        present.discard(table)
        continue
      _fetch(client, ref, job, table, os.path.join(job_dir, table, 'rows.json'))
    tables = sources.open_job_dir(job, job_dir)
    tables.origin = '%s.%s* (BigQuery%s)' % (dataset, prefix, ', %s' % endpoint if endpoint
                                             else '')
    tables.counters, tables.files_dir = None, None
    tables.present = frozenset(present)
    tables.notes += prefix_notes
    jobs[job] = tables
  return jobs, notes, scratch
