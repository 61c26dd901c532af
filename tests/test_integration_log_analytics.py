"""log_analytics on the real connectors: a log sink's GCS export files (gs:// on the GCS
emulator) loaded into the BigQuery emulator with FILE_LOADS, and a log sink's Pub/Sub
messages streamed into it with STREAMING_INSERTS, dead letters included; each compared with
a run of the same entries into NDJSON files."""
import glob
import json
import os
import subprocess
import sys

import pytest

import schemas
from localcloud import clients
from pipelines import log_analytics
from tests.emulator_fixtures import cloud  # noqa: F401 (the module fixture)
from tests.tables import read_table

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, 'pipelines', 'samples', 'log_analytics')
METRIC = ['--metric', 'server_errors=httpRequest.status>=500', '--alert', 'server_errors>20']
BAD = b'{"logName": "projects/acme-shop-prod/logs/stdout", "timestamp": '


def _schema(client, dataset, table):
  return [(f.name, f.field_type, f.mode)
          for f in client.get_table('%s.%s' % (dataset, table)).schema]


def _expected_schema(table):
  return [(f['name'], f['type'], f.get('mode', 'NULLABLE'))
          for f in schemas.fields('log_analytics', table)]


_NOT_JSON = object()


def _json(line):
  try:
    return json.loads(line)
  except ValueError:
    return _NOT_JSON


def _timestamp(line):
  entry = _json(line)
  return str(entry.get('timestamp', '')) if isinstance(entry, dict) else ''


def test_log_sink_files_on_gcs_load_into_bigquery(cloud, tmp_path):  # noqa: F811
  log_analytics.run(['--output', str(tmp_path / 'files')] + METRIC)  # the bundled sample
  expected = {table: len(read_table(tmp_path / 'files', table))
              for table in schemas.tables('log_analytics')}
  assert expected['log_entries'] > 2000 and expected['errors'] > 0 and expected['alerts'] > 0

  bucket = clients.storage().create_bucket('log-sink-it')
  for path in glob.glob(os.path.join(SAMPLE, '*')):
    bucket.blob('export/' + os.path.basename(path)).upload_from_filename(path)
  bigquery = clients.bigquery()
  bigquery.create_dataset('logs_batch')
  done = subprocess.run(
      [sys.executable, '-m', 'pipelines', 'log_analytics', '--input', 'gs://log-sink-it/export/*',
       '--output', '%s:logs_batch' % clients.PROJECT, '--temp_location', str(tmp_path / 'tmp')]
      + METRIC, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
      text=True, timeout=300)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

  assert {table: clients.row_count(bigquery, 'logs_batch', table)
          for table in expected} == expected
  for table in expected:
    assert _schema(bigquery, 'logs_batch', table) == _expected_schema(table), table
  # The loads staged their files in the local --temp_location, not on GCS.
  assert os.path.isdir(tmp_path / 'tmp' / 'bq_load')
  alerts = [(a['window_start'].strftime('%Y-%m-%dT%H:%M'), a['metric'], a['value'])
            for a in clients.rows(bigquery, 'logs_batch', 'alerts', 'window_start')]
  assert alerts == [(a['window_start'][:16], a['metric'], a['value'])
                    for a in sorted(read_table(tmp_path / 'files', 'alerts'),
                                    key=lambda a: a['window_start'])]

def test_log_sink_pubsub_streams_into_bigquery_with_dead_letters(cloud, tmp_path):  # noqa: F811
  # A sink publishes one entry per message: the export file's records cut by a newline
  # would be two messages here, so only whole JSON values (some of them not entries).
  lines = [line for line in open(os.path.join(SAMPLE, 'stdout.json'), encoding='utf-8')
           .read().splitlines() if _json(line) is not _NOT_JSON]
  (tmp_path / 'in.json').write_text('\n'.join(lines) + '\n')
  log_analytics.run(['--input', str(tmp_path / 'in.json'), '--output', str(tmp_path / 'files')])
  entries = len(read_table(tmp_path / 'files', 'log_entries'))
  errors = len(read_table(tmp_path / 'files', 'errors'))
  assert entries > 100 and errors == 4  # "OK", 3.5, null, null: JSON, but not entries

  bigquery = clients.bigquery()
  bigquery.create_dataset('logs_stream')
  sink = clients.topic('log-sink', 'log-analytics-job')
  for line in lines:  # as a Cloud Logging sink publishes: the entry's time as an attribute
    sink.publisher.publish(sink.path, line.encode(),
                           **{'logging.googleapis.com/timestamp': _timestamp(line)}).result()
  sink.publisher.publish(sink.path, lines[3].encode()).result()  # redelivered
  sink.publisher.publish(sink.path, BAD, origin='router-7').result()

  metrics = []

  def written():  # the per-record tables complete, and the late panes have stopped coming
    metrics.append(clients.row_count(bigquery, 'logs_stream', 'log_metrics'))
    return (clients.row_count(bigquery, 'logs_stream', 'log_entries') >= entries
            and clients.row_count(bigquery, 'logs_stream', 'errors') >= errors + 1
            and metrics[-1] > 0 and metrics[-3:] == [metrics[-1]] * 3)

  # The entries are from 2026-11-26 and the DirectRunner's watermark is the wall clock: the
  # lateness lets them into the per-minute windows, which then fire late panes.
  run = clients.run_streaming(
      'log_analytics', ['--input', sink.subscription, '--allowed_lateness', '315360000',
                        '--output', '%s:logs_stream' % clients.PROJECT],
      until=written, timeout_s=150, settle_s=5)
  assert run.done, run.output[-3000:]
  assert clients.row_count(bigquery, 'logs_stream', 'log_entries') == entries
  dead = clients.rows(bigquery, 'logs_stream', 'errors')
  assert len(dead) == errors + 1
  (bad,) = [row for row in dead if row['payload'] == BAD.decode()]
  assert (bad['job'], bad['stage']) == ('log_analytics', 'parse_json')
  assert json.loads(bad['attributes']) == {'origin': 'router-7'}
  # Every minute of the batch run's log_metrics is in BigQuery (late panes reach the sink;
  # the last pane of a window holds its batch count).
  batch = {(m['window_start'][:16], m['log_id'], m['severity']): m['entries']
           for m in read_table(tmp_path / 'files', 'log_metrics')}
  streamed = {}
  for m in clients.rows(bigquery, 'logs_stream', 'log_metrics', 'pane_index'):
    streamed[(m['window_start'].strftime('%Y-%m-%dT%H:%M'), m['log_id'], m['severity'])] = (
        m['entries'])
  assert streamed == batch
  for table in ('log_entries', 'errors', 'log_metrics'):
    assert _schema(bigquery, 'logs_stream', table) == _expected_schema(table), table
  # Created day-partitioned on the event time. (Tables a load job creates come back
  # unpartitioned from the emulator, which ignores the load's timePartitioning.)
  partitioning = bigquery.get_table('logs_stream.log_entries').time_partitioning
  assert (partitioning.type_, partitioning.field) == ('DAY', 'timestamp')
