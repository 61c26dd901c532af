"""WriteTables: `<output>/<table>/*.json` NDJSON, or BigQuery tables created from schemas/."""
import glob
import json
import os

import apache_beam as beam
import pytest
from apache_beam.io.gcp.bigquery import WriteToBigQuery
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.pipeline import PipelineVisitor
from apache_beam.testing.test_pipeline import TestPipeline

import schemas
from transforms.sinks import (
    WriteTables, bigquery_table, bigquery_write_config, is_bigquery_dataset, table_glob)

JOB = 'game_analytics'
SCHEMAS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'schemas')


def schema_file(relpath):
  with open(os.path.join(SCHEMAS, relpath), encoding='utf-8') as fh:
    return {'fields': json.load(fh)}


# --- BigQuery configuration ----------------------------------------------------------------

def test_bigquery_write_config_for_a_batch_table():
  config = bigquery_write_config('my-proj:analytics', JOB, 'events', streaming=False)
  assert config['table'] == 'my-proj:analytics.events'
  assert config['schema'] == schemas.bigquery_schema(JOB, 'events')
  assert config['schema'] == schema_file('game_analytics/events.json')
  assert config['create_disposition'] == 'CREATE_IF_NEEDED'
  assert config['write_disposition'] == 'WRITE_APPEND'
  assert config['method'] == 'FILE_LOADS'
  assert config['additional_bq_parameters'] == {
      'timePartitioning': {'type': 'DAY', 'field': 'event_time'}}


def test_bigquery_write_config_streaming_uses_streaming_inserts():
  config = bigquery_write_config('my-proj:analytics', JOB, 'heatmap', streaming=True)
  assert config['method'] == 'STREAMING_INSERTS'
  assert config['table'] == 'my-proj:analytics.heatmap'
  assert config['additional_bq_parameters'] == {
      'timePartitioning': {'type': 'DAY', 'field': 'window_start'}}


def test_bigquery_write_config_loads_into_an_emulator_from_a_local_folder():
  """An emulator has no GCS to stage load files on: they go to a local folder, and Beam's
  temp-bucket validation (which would ask the real GCS) is off."""
  config = bigquery_write_config('my-proj:analytics', JOB, 'events', False, load_dir='/tmp/l')
  assert (config['method'], config['custom_gcs_temp_location'], config['validate']) == (
      'FILE_LOADS', '/tmp/l', False)
  streaming = bigquery_write_config('my-proj:analytics', JOB, 'events', True, load_dir='/tmp/l')
  assert 'custom_gcs_temp_location' not in streaming and 'validate' not in streaming
  assert 'validate' not in bigquery_write_config('my-proj:analytics', JOB, 'events', False)


def test_bigquery_write_config_applies_the_table_prefix():
  config = bigquery_write_config('my-proj:shared', JOB, 'sessions', False, table_prefix='ga_')
  assert config['table'] == 'my-proj:shared.ga_sessions'
  assert config['schema'] == schema_file('game_analytics/sessions.json')
  assert config['additional_bq_parameters'] == {
      'timePartitioning': {'type': 'DAY', 'field': 'start_time'}}


def test_bigquery_errors_table_uses_the_shared_schema_partitioned_on_processing_time():
  config = bigquery_write_config('my-proj:analytics', JOB, 'errors', streaming=False)
  assert config['table'] == 'my-proj:analytics.errors'
  assert config['schema'] == schema_file('errors.json')
  assert config['additional_bq_parameters'] == {
      'timePartitioning': {'type': 'DAY', 'field': 'processing_time'}}


def test_bigquery_table_with_a_domain_scoped_project():
  assert bigquery_table('example.com:p:ds', 'events') == 'example.com:p:ds.events'
  with pytest.raises(ValueError):
    bigquery_table('out/dir', 'events')


@pytest.mark.parametrize('output,expected', [
    ('p:ds', True),
    ('my-proj:analytics', True),
    ('example.com:p:ds', True),
    ('gs://b/o', False),
    ('out/dir', False),
    ('output', False),
    ('p:ds.table', False),
    ('', False),
    (None, False),
])
def test_is_bigquery_dataset(output, expected):
  assert is_bigquery_dataset(output) is expected


def test_table_glob_is_per_table():
  assert table_glob('/out/ga', 'events') == '/out/ga/events/*.json'
  assert table_glob('gs://b/out', 'errors') == 'gs://b/out/errors/*.json'


class _CollectBigQueryWrites(PipelineVisitor):

  def __init__(self):
    self.writes = []

  def _collect(self, node):
    if isinstance(node.transform, WriteToBigQuery):
      self.writes.append(node.transform)

  def enter_composite_transform(self, node):
    self._collect(node)

  def visit_transform(self, node):
    self._collect(node)


def test_write_tables_to_a_dataset_builds_one_configured_bigquery_write_per_table():
  pipeline = TestPipeline()
  tables = {
      'events': pipeline | 'Events' >> beam.Create([{'event_name': 'a'}]),
      'errors': pipeline | 'Errors' >> beam.Create([{'job': JOB}]),
  }
  tables | WriteTables('my-proj:analytics', JOB, streaming=False, table_prefix='ga_')
  visitor = _CollectBigQueryWrites()
  pipeline.visit(visitor)  # graph only: nothing runs, nothing is contacted

  writes = {w.table_reference.tableId: w for w in visitor.writes}
  assert sorted(writes) == ['ga_errors', 'ga_events']
  for table, write in writes.items():
    name = table[len('ga_'):]
    assert (write.table_reference.projectId, write.table_reference.datasetId) == (
        'my-proj', 'analytics')
    assert write.schema == schemas.bigquery_schema(JOB, name)
    assert write.create_disposition == 'CREATE_IF_NEEDED'
    assert write.write_disposition == 'WRITE_APPEND'
    assert write.method == 'FILE_LOADS'
  assert writes['ga_events'].additional_bq_parameters == {
      'timePartitioning': {'type': 'DAY', 'field': 'event_time'}}
  assert writes['ga_errors'].additional_bq_parameters == {
      'timePartitioning': {'type': 'DAY', 'field': 'processing_time'}}


def test_write_tables_streaming_to_a_dataset_uses_streaming_inserts():
  pipeline = TestPipeline()
  {'events': pipeline | beam.Create([{'event_name': 'a'}])} | WriteTables(
      'my-proj:analytics', JOB, streaming=True)
  visitor = _CollectBigQueryWrites()
  pipeline.visit(visitor)
  assert [(w.table_reference.tableId, w.method) for w in visitor.writes] == [
      ('events', 'STREAMING_INSERTS')]


def test_streaming_rows_reach_bigquery_stamped_with_their_arrival():
  """Rows of a late pane carry their window's old end, and WriteToBigQuery's streaming path
  lost them: the local-cloud demo's windowed tables stayed empty (the integration test
  tests/test_integration_log_analytics.py checks that they land now)."""
  pipeline = TestPipeline()
  {'events': pipeline | beam.Create([{'event_name': 'a'}])} | WriteTables(
      'my-proj:analytics', JOB, streaming=True)
  visitor = _CollectBigQueryWrites()
  pipeline.visit(visitor)
  (write,) = visitor.writes
  labels = []

  class _Inputs(PipelineVisitor):
    def enter_composite_transform(self, node):
      if node.transform is write:
        labels.append(node.inputs[0].producer.full_label)
  pipeline.visit(_Inputs())
  assert labels == ['WriteTables/StampArrival_events/Global']


@pytest.mark.parametrize('to_bigquery', [True, False])
def test_an_unknown_table_fails_at_construction(to_bigquery, tmp_path):
  output = 'my-proj:analytics' if to_bigquery else str(tmp_path / 'out')
  pipeline = TestPipeline()
  tables = {
      'events': pipeline | 'Events' >> beam.Create([{'event_name': 'a'}]),
      'scores': pipeline | 'Scores' >> beam.Create([{'score': 1}]),
  }
  with pytest.raises(KeyError, match='scores'):
    tables | WriteTables(output, JOB)


# --- NDJSON directory ----------------------------------------------------------------------

def test_write_tables_to_a_directory_writes_one_ndjson_glob_per_table(tmp_path):
  events = [
      {'event_time': '2018-10-10T08:00:00.000000Z', 'event_name': 'START_SESSION',
       'session_id': 's1', 'user_id': 'u1', 'country': 'Côte d\'Ivoire'},
      {'event_time': '2018-10-10T08:00:01.500000Z', 'event_name': 'MOVE', 'session_id': 's1',
       'x': 1.5, 'z': -2.0},
      {'event_time': '2018-10-10T08:00:02.000000Z', 'event_name': 'END_SESSION',
       'session_id': 's1', 'score': 40},
  ]
  errors = [{'processing_time': '2018-10-10T08:00:03.000000Z', 'job': JOB,
             'stage': 'parse_json', 'error': 'invalid JSON: x', 'payload': '{"a":',
             'payload_encoding': 'text', 'attributes': None, 'source': 'in.json:4'}]
  out = str(tmp_path / 'out')

  p = TestPipeline()
  {'events': p | 'Events' >> beam.Create(events),
   'errors': p | 'Errors' >> beam.Create(errors)} | WriteTables(out, JOB)
  result = p.run()
  result.wait_until_finish()

  def rows(table):
    files = glob.glob(table_glob(out, table))
    assert files
    assert all(os.path.dirname(f) == os.path.join(out, table) for f in files)
    lines = [line for f in files for line in open(f, encoding='utf-8').read().splitlines()]
    return sorted((json.loads(line) for line in lines), key=lambda r: json.dumps(r))

  assert sorted(os.listdir(out)) == ['errors', 'events']
  assert rows('events') == sorted(events, key=lambda r: json.dumps(r))
  assert rows('errors') == errors
  for table in ('events', 'errors'):  # no temp files or other tables under the glob's dir
    assert all(name.endswith('.json') and os.path.isfile(os.path.join(out, table, name))
               for name in os.listdir(os.path.join(out, table)))

  def count(name):
    found = result.metrics().query(MetricsFilter().with_namespace(JOB).with_name(name))
    return sum(c.committed for c in found['counters'])

  assert count('rows_events') == 3
  assert count('rows_errors') == 1


def test_direct_row_holds_one_set_cell_per_cell_with_millisecond_timestamps():
  from transforms.sinks import direct_row
  row = {'row_key': 'greenhouse#th-1#9221576353244775807', 'cells': [
      {'family': 'm', 'column': 'temperature', 'value': '21.5',
       'timestamp': '2026-11-26T09:00:10.123000Z'},
      {'family': 'm', 'column': 'battery.voltage', 'value': '3.3',
       'timestamp': '2026-11-26T09:00:10.123000Z'}]}
  mutation = direct_row(row)
  assert mutation.row_key == b'greenhouse#th-1#9221576353244775807'
  cells = [(m.family, m.qualifier, m.new_value, m.timestamp_micros)
           for m in mutation._get_mutations()]
  assert cells == [('m', b'temperature', b'21.5', 1795683610123000),
                   ('m', b'battery.voltage', b'3.3', 1795683610123000)]


@pytest.mark.parametrize('spec, expected', [
    ('my-proj:iot-instance:telemetry', ('my-proj', 'iot-instance', 'telemetry')),
    ('example.com:proj:instance-1:t_1', ('example.com:proj', 'instance-1', 't_1')),
])
def test_parse_bigtable(spec, expected):
  from transforms.sinks import parse_bigtable
  assert parse_bigtable(spec) == expected


@pytest.mark.parametrize('spec', ['proj:instance', 'proj:Inst:t', 'proj:abc:t', 'p:inst-1:',
                                  'projects/p/instances/i/tables/t'])
def test_parse_bigtable_refuses_malformed_specs(spec):
  from transforms.sinks import parse_bigtable
  with pytest.raises(ValueError, match='PROJECT:INSTANCE:TABLE'):
    parse_bigtable(spec)


def test_publish_json_with_attributes_sends_pubsub_messages():
  from apache_beam.io.gcp.pubsub import WriteToPubSub
  from transforms.sinks import PublishJson, to_pubsub_message
  pipeline = TestPipeline()
  rows = pipeline | beam.Create([{'device_id': 'th-1', 'state': 'FIRING'}])
  rows | PublishJson('projects/my-proj/topics/commands',
                     attributes=lambda row: {'deviceId': row['device_id']})
  writes = []

  class Visitor(PipelineVisitor):

    def enter_composite_transform(self, node):
      if isinstance(node.transform, WriteToPubSub):
        writes.append((node.transform._sink.full_topic, node.transform.with_attributes))

  pipeline.visit(Visitor())
  assert writes == [('projects/my-proj/topics/commands', True)]
  message = to_pubsub_message({'state': 'FIRING', 'device_id': 'th-1'},
                              lambda row: {'deviceId': row['device_id']})
  assert message.data == b'{"device_id": "th-1", "state": "FIRING"}'
  assert message.attributes == {'deviceId': 'th-1'}
