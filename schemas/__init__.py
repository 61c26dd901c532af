"""Table schemas: the one source of truth for every output table.

Each `<job>/<table>.json` is a plain BigQuery JSON schema (a list of fields), usable as is
with `bq mk --schema` / `bq load --schema`. `errors.json` is shared by every job. The first
TIMESTAMP field of a table is its day-partitioning column.
"""
import datetime
import functools
import json
import math
import os
from typing import Any, Dict, List, Optional

ERRORS_TABLE = 'errors'
INT64_LIMIT = 2**63  # BigQuery INTEGER is INT64: -2**63 <= n < 2**63
_HERE = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def _load(relpath: str) -> tuple:
  with open(os.path.join(_HERE, relpath), encoding='utf-8') as fh:
    return tuple(json.load(fh))


def fields(job: str, table: str) -> List[Dict[str, Any]]:
  """The table's BigQuery fields (a fresh copy; callers may mutate it)."""
  relpath = 'errors.json' if table == ERRORS_TABLE else os.path.join(job, table + '.json')
  if not os.path.exists(os.path.join(_HERE, relpath)):
    raise KeyError('No schema for table %r of job %r (looked for schemas/%s)' % (
        table, job, relpath))
  return [dict(f) for f in _load(relpath)]


def tables(job: str) -> List[str]:
  """The job's output tables, `errors` last."""
  job_dir = os.path.join(_HERE, job)
  if not os.path.isdir(job_dir):
    raise KeyError('No schemas for job %r' % job)
  names = sorted(n[:-5] for n in os.listdir(job_dir) if n.endswith('.json'))
  return names + [ERRORS_TABLE]


def bigquery_schema(job: str, table: str) -> Dict[str, Any]:
  """The schema in the dict form WriteToBigQuery accepts."""
  return {'fields': fields(job, table)}


def partition_field(job: str, table: str) -> Optional[str]:
  return next((f['name'] for f in fields(job, table) if f['type'] == 'TIMESTAMP'), None)


_CHECKS = {
    'STRING': lambda v: isinstance(v, str),
    'INTEGER': lambda v: (isinstance(v, int) and not isinstance(v, bool)
                          and -INT64_LIMIT <= v < INT64_LIMIT),
    'FLOAT': lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                        and math.isfinite(v)),  # NaN/Infinity are not JSON
    'BOOLEAN': lambda v: isinstance(v, bool),
    'TIMESTAMP': lambda v: isinstance(v, str) and _is_rfc3339_utc(v),
}


def _is_rfc3339_utc(value: str) -> bool:
  if not value.endswith('Z'):
    return False
  try:
    moment = datetime.datetime.fromisoformat(value[:-1])
  except ValueError:
    return False
  return moment.tzinfo is None  # 'Z' is the only zone: no '+09:00Z'



def row_problems(job: str, table: str, row: Dict[str, Any]) -> List[str]:
  """Why `row` would not load into the table (empty when it conforms)."""
  return _problems(fields(job, table), row, '')


def _problems(schema_fields: List[Dict[str, Any]], row: Any, prefix: str) -> List[str]:
  if not isinstance(row, dict):
    return ['%s=%r is not a RECORD' % (prefix.rstrip('.') or 'row', row)]
  problems = []
  schema = {f['name']: f for f in schema_fields}
  for name in row:
    if name not in schema:
      problems.append('unknown column %r' % (prefix + name))
  for name, field in schema.items():
    value = row.get(name)
    path = prefix + name
    if field.get('mode') == 'REPEATED':
      if value is None:
        continue  # loads as an empty array
      if not isinstance(value, list):
        problems.append('%s=%r is not REPEATED' % (path, value))
        continue
      for i, item in enumerate(value):
        problems += _value_problems(field, item, '%s[%d]' % (path, i))
    elif value is None:
      if field.get('mode') == 'REQUIRED':
        problems.append('%s is REQUIRED' % path)
    else:
      problems += _value_problems(field, value, path)
  return problems


def _value_problems(field: Dict[str, Any], value: Any, path: str) -> List[str]:
  if field['type'] in ('RECORD', 'STRUCT'):
    return _problems(field['fields'], value, path + '.')
  if value is None or not _CHECKS[field['type']](value):
    return ['%s=%r is not %s' % (path, value, field['type'])]
  return []
