"""schemas/: plain BigQuery JSON schemas, the loader, and the row check jobs and tests use."""
import glob
import json
import os
import re

import pytest

import schemas

JOB = 'game_analytics'
SCHEMA_FILES = sorted(glob.glob(os.path.join(os.path.dirname(schemas.__file__), '**', '*.json'),
                            recursive=True))
TYPES = {'STRING', 'INTEGER', 'FLOAT', 'BOOLEAN', 'TIMESTAMP'}


def test_tables_lists_the_job_tables_sorted_with_errors_last():
  assert schemas.tables(JOB) == ['events', 'funnel', 'heatmap', 'score_by_age', 'sessions',
                                 'errors']


def test_unknown_job_or_table_is_a_key_error():
  with pytest.raises(KeyError):
    schemas.tables('no_such_job')
  with pytest.raises(KeyError):
    schemas.fields(JOB, 'no_such_table')


def test_schema_files_are_found():
  names = [os.path.relpath(f, os.path.dirname(schemas.__file__)) for f in SCHEMA_FILES]
  assert 'errors.json' in names
  assert os.path.join('game_analytics', 'events.json') in names
  assert len(names) >= 6


@pytest.mark.parametrize('path', SCHEMA_FILES, ids=os.path.basename)
def test_every_schema_file_is_a_bigquery_json_schema(path):
  with open(path, encoding='utf-8') as fh:
    fields = json.load(fh)
  assert isinstance(fields, list) and fields
  _check_fields(fields)


def _check_fields(fields):
  names = [f['name'] for f in fields]
  assert len(names) == len(set(names))
  for field in fields:
    assert re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', field['name'])
    assert field['type'] in TYPES | {'RECORD'}
    assert field['mode'] in ('NULLABLE', 'REQUIRED', 'REPEATED')
    assert set(field) <= {'name', 'type', 'mode', 'description', 'fields'}
    assert ('fields' in field) == (field['type'] == 'RECORD')
    if field['type'] == 'RECORD':
      _check_fields(field['fields'])


def test_fields_and_bigquery_schema_are_the_file_contents_and_fresh_copies():
  path = os.path.join(os.path.dirname(schemas.__file__), 'game_analytics', 'sessions.json')
  with open(path, encoding='utf-8') as fh:
    on_disk = json.load(fh)
  assert schemas.bigquery_schema(JOB, 'sessions') == {'fields': on_disk}
  mutated = schemas.fields(JOB, 'sessions')
  mutated[0]['name'] = 'changed'
  mutated.append({'name': 'extra', 'type': 'STRING', 'mode': 'NULLABLE'})
  assert schemas.fields(JOB, 'sessions') == on_disk


def test_errors_schema_is_shared_by_every_job():
  assert schemas.fields(JOB, 'errors') == schemas.fields('any_other_job', 'errors')
  assert [f['name'] for f in schemas.fields(JOB, 'errors')] == [
      'processing_time', 'job', 'stage', 'error', 'payload', 'payload_encoding', 'attributes',
      'source']


def test_partition_field_is_the_first_timestamp_column_of_each_table():
  assert {t: schemas.partition_field(JOB, t) for t in schemas.tables(JOB)} == {
      'events': 'event_time',
      'funnel': 'window_start',
      'heatmap': 'window_start',
      'score_by_age': 'window_start',
      'sessions': 'start_time',
      'errors': 'processing_time',
  }


EVENT = {'event_time': '2018-10-10T08:00:00.123456Z', 'event_name': 'MOVE',
         'session_id': 's1', 'x': 1.5, 'z': 2, 'score': 3, 'user_id': None}


def test_row_problems_accepts_a_conforming_row():
  assert schemas.row_problems(JOB, 'events', EVENT) == []
  assert schemas.row_problems(JOB, 'events', dict(EVENT, event_time='2018-10-10T08:00:00Z')) == []


def test_row_problems_flags_unknown_columns_and_missing_required_ones():
  row = {'event_time': '2018-10-10T08:00:00Z', 'event_name': None, 'colour': 'red'}
  assert schemas.row_problems(JOB, 'events', row) == [
      "unknown column 'colour'", 'event_name is REQUIRED', 'session_id is REQUIRED']


@pytest.mark.parametrize('column,value', [
    ('score', 1.5),
    ('score', '3'),
    ('score', True),
    ('x', '1.5'),
    ('x', False),
    ('user_id', 7),
    ('event_time', 1539158400),
    ('event_time', '2018-10-10 08:00:00'),
    ('event_time', '2018-10-10T08:00:00'),
    ('event_time', '2018-10-10T17:00:00+09:00'),
    ('event_time', 'yesterday'),
])
def test_row_problems_flags_wrong_types(column, value):
  table_type = {f['name']: f['type'] for f in schemas.fields(JOB, 'events')}[column]
  assert schemas.row_problems(JOB, 'events', dict(EVENT, **{column: value})) == [
      '%s=%r is not %s' % (column, value, table_type)]


def test_row_problems_checks_booleans():
  row = {'session_id': 's1', 'completed': 'true'}
  assert schemas.row_problems(JOB, 'sessions', row) == ["completed='true' is not BOOLEAN"]
  assert schemas.row_problems(JOB, 'sessions', dict(row, completed=False)) == []


def test_row_problems_flags_an_offset_followed_by_z():
  row = dict(EVENT, event_time='2018-10-10T17:00:00+09:00Z')
  assert schemas.row_problems(JOB, 'events', row) == [
      "event_time='2018-10-10T17:00:00+09:00Z' is not TIMESTAMP"]


def test_row_problems_flags_integers_beyond_int64():
  row = {'event_time': '2018-10-10T08:00:00.000000Z', 'event_name': 'END_SESSION',
         'session_id': 's', 'score': 2**63}
  assert schemas.row_problems('game_analytics', 'events', row) == [
      'score=9223372036854775808 is not INTEGER']


def test_row_problems_checks_repeated_records_field_by_field():
  cell = {'family': 'm', 'column': 'temperature', 'value': '21.5',
          'timestamp': '2026-11-26T09:00:00.000000Z'}
  row = {'event_time': '2026-11-26T09:00:00.000000Z', 'row_key': 'r#d#1',
         'device_id': 'd', 'cells': [cell]}
  assert schemas.row_problems('iot_telemetry', 'bigtable_rows', row) == []
  assert schemas.row_problems('iot_telemetry', 'bigtable_rows', dict(row, cells=[])) == []
  assert schemas.row_problems('iot_telemetry', 'bigtable_rows', dict(row, cells=cell)) == [
      "cells=%r is not REPEATED" % cell]
  bad = [cell, dict(cell, value=21.5, extra=1), 'x', None]
  assert schemas.row_problems('iot_telemetry', 'bigtable_rows', dict(row, cells=bad)) == [
      "unknown column 'cells[1].extra'", "cells[1].value=21.5 is not STRING",
      "cells[2]='x' is not a RECORD", "cells[3]=None is not a RECORD"]


@pytest.mark.parametrize('value', [float('nan'), float('inf'), float('-inf')])
def test_non_finite_floats_do_not_conform(value):
  row = {'event_time': '2026-11-26T09:00:00.000000Z', 'device_id': 'd', 'metric': 'v',
         'value': value}
  assert schemas.row_problems('iot_telemetry', 'readings', row) == [
      'value=%r is not FLOAT' % value]
