"""WriteTables: every job's output tables to an NDJSON directory or a BigQuery dataset.

The directory layout is `<output>/<table>/*.json`, one glob per table, rows as
newline-delimited JSON that `bq load --source_format=NEWLINE_DELIMITED_JSON` takes as is.
BigQuery tables are created from `schemas/`, day-partitioned on the table's first TIMESTAMP
column. Rows per table are counted (`rows_<table>`), so the accounting identity can be
checked from metrics alone.
"""
import datetime
import os
import json
import re
import time
from typing import Callable, Dict, Optional, Tuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery
from apache_beam.io.gcp.bigtableio import WriteToBigTable
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import window
from google.cloud.bigtable.row import DirectRow

import schemas
from transforms import timestamps

_BIGQUERY_DATASET = re.compile(r'^(?P<project>[\w.-]+(:[\w-]+)?):(?P<dataset>\w+)$')
STREAMING_FILE_WINDOW_S = 60
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def is_bigquery_dataset(output: Optional[str]) -> bool:
  return bool(output) and '/' not in output and bool(_BIGQUERY_DATASET.match(output))


def bigquery_table(output: str, table: str, table_prefix: str = '') -> str:
  """'PROJECT:DATASET' + table -> 'PROJECT:DATASET.<prefix><table>'."""
  match = _BIGQUERY_DATASET.match(output)
  if not match:
    raise ValueError('--output %r is not PROJECT:DATASET' % output)
  return '%s:%s.%s%s' % (match.group('project'), match.group('dataset'), table_prefix, table)


def use_bigquery_endpoint(endpoint: str, project: Optional[str]):
  """Point this process's BigQuery clients at `endpoint`, e.g. the BigQuery emulator
  (http://127.0.0.1:9050). Beam has no option for it: WriteToBigQuery manages tables through
  its apitools client (a class-level BASE_URL) and inserts rows through google-cloud-bigquery
  (BIGQUERY_EMULATOR_HOST), and both ask google-auth for credentials, which an emulator does
  not check (`project` stands in for the one credentials would name). For local runs only:
  the DoFns must run in this process."""
  import google.auth
  from apache_beam.io.gcp.internal.clients.bigquery import bigquery_v2_client
  from google.auth.credentials import AnonymousCredentials
  endpoint = endpoint.rstrip('/')
  os.environ['BIGQUERY_EMULATOR_HOST'] = endpoint
  bigquery_v2_client.BigqueryV2.BASE_URL = endpoint + '/bigquery/v2/'
  google.auth.default = lambda *args, **kwargs: (AnonymousCredentials(), project)


def bigquery_write_config(output: str, job: str, table: str, streaming: bool,
                          table_prefix: str = '', load_dir: Optional[str] = None) -> Dict:
  """The WriteToBigQuery arguments for one table (pure, so tests can assert them).

  `load_dir`: a local folder for batch loads into an endpoint set by use_bigquery_endpoint
  (an emulator reads load files from disk; it has no GCS to stage them on, and Beam's
  validation would ask the real GCS for the temp bucket)."""
  config = {
      'table': bigquery_table(output, table, table_prefix),
      'schema': schemas.bigquery_schema(job, table),
      'create_disposition': BigQueryDisposition.CREATE_IF_NEEDED,
      'write_disposition': BigQueryDisposition.WRITE_APPEND,
      'method': (WriteToBigQuery.Method.STREAMING_INSERTS if streaming
                 else WriteToBigQuery.Method.FILE_LOADS),
  }
  if load_dir and not streaming:
    config['custom_gcs_temp_location'] = load_dir
    config['validate'] = False
  partition = schemas.partition_field(job, table)
  if partition:
    config['additional_bq_parameters'] = {
        'timePartitioning': {'type': 'DAY', 'field': partition}}
  return config


def table_dir(output: str, table: str) -> str:
  return FileSystems.join(output, table)


def table_glob(output: str, table: str) -> str:
  return FileSystems.join(output, table, '*.json')


def to_json_line(row: Dict) -> str:
  return json.dumps(row, separators=(', ', ': '))


def _count(row, counter):
  counter.inc()
  return row


class _StampArrival(beam.PTransform):
  """Unbounded rows -> the same rows stamped with their arrival time, in the global window.

  Rows of late panes carry their window's old end as timestamp; a sink that groups (file
  windows, BigQuery's insert-id reshuffle and batching) would hold them against the
  watermark, or drop them. A row's time is in its columns, so the sink needs none."""

  def expand(self, rows):
    return (rows
            | 'Stamp' >> beam.Map(lambda row: window.TimestampedValue(row, time.time()))
            | 'Global' >> beam.WindowInto(window.GlobalWindows()))


class _WriteNdjson(beam.PTransform):

  def __init__(self, output: str, table: str, streaming: bool):
    super().__init__()
    self._output = output
    self._table = table
    self._streaming = streaming

  def expand(self, rows):
    lines = rows | 'ToJson' >> beam.Map(to_json_line)
    if not self._streaming:
      return lines | 'WriteText' >> beam.io.WriteToText(
          FileSystems.join(table_dir(self._output, self._table), self._table),
          file_name_suffix='.json')
    # Unbounded: rows are re-stamped with their arrival time and written in fixed windows
    # of it, a file set per table per window. Re-stamping forward means no row is ever
    # behind the watermark here, so late panes from upstream aggregations are written too.
    return (
        lines
        | 'StampArrival' >> beam.Map(
            lambda line: window.TimestampedValue(line, time.time()))
        | 'FileWindows' >> beam.WindowInto(window.FixedWindows(STREAMING_FILE_WINDOW_S))
        | 'WriteFiles' >> fileio.WriteToFiles(
            path=table_dir(self._output, self._table),
            file_naming=fileio.default_file_naming(self._table, '.json'),
            shards=1))


class WriteTables(beam.PTransform):
  """{table: rows} -> the tables at `output` (a directory, or `PROJECT:DATASET`);
  `bigquery_load_dir` as in bigquery_write_config."""

  def __init__(self, output: str, job: str, streaming: bool = False, table_prefix: str = '',
               bigquery_load_dir: Optional[str] = None):
    super().__init__()
    self._output = output
    self._job = job
    self._streaming = streaming
    self._table_prefix = table_prefix
    self._load_dir = bigquery_load_dir

  def expand(self, tables):
    if not tables:
      raise ValueError('WriteTables needs at least one table')
    known = set(schemas.tables(self._job))
    for table in sorted(tables):
      if table not in known:
        raise KeyError('Job %s has no schema for table %r' % (self._job, table))
      counter = Metrics.counter(self._job, 'rows_' + table)
      rows = tables[table] | 'Count_%s' % table >> beam.Map(_count, counter)
      if is_bigquery_dataset(self._output):
        if self._streaming:
          rows = rows | 'StampArrival_%s' % table >> _StampArrival()
        write = WriteToBigQuery(**bigquery_write_config(
            self._output, self._job, table, self._streaming, self._table_prefix,
            self._load_dir))
      else:
        write = _WriteNdjson(self._output, table, self._streaming)
      rows | 'Write_%s' % table >> write
    return beam.pvalue.PDone(tables[next(iter(sorted(tables)))].pipeline)


class PublishJson(beam.PTransform):
  """Rows -> one JSON message each on a Pub/Sub topic (alerts, commands); `attributes`
  (row -> {str: str}) sets message attributes, e.g. the deviceId a command is for."""

  def __init__(self, topic: str, attributes: Optional[Callable[[Dict], Dict[str, str]]] = None):
    super().__init__()
    self._topic = topic
    self._attributes = attributes

  def expand(self, rows):
    if self._attributes is None:
      return (
          rows
          | 'ToMessage' >> beam.Map(to_message_data)
          | 'Publish' >> beam.io.WriteToPubSub(self._topic))
    return (
        rows
        | 'ToMessage' >> beam.Map(to_pubsub_message, self._attributes)
        | 'Publish' >> beam.io.WriteToPubSub(self._topic, with_attributes=True))


def to_message_data(row: Dict) -> bytes:
  return json.dumps(row, sort_keys=True).encode('utf-8')


def to_pubsub_message(row: Dict, attributes: Callable[[Dict], Dict[str, str]]) -> PubsubMessage:
  return PubsubMessage(to_message_data(row), attributes(row))


# --- Bigtable --------------------------------------------------------------------------

_BIGTABLE = re.compile(r'^(?P<project>[\w.:-]+):(?P<instance>[a-z][a-z0-9-]{5,32}):'
                       r'(?P<table>[\w.-]{1,50})$')


def parse_bigtable(spec: str) -> Tuple[str, str, str]:
  """'PROJECT:INSTANCE:TABLE' -> (project, instance, table); ValueError when malformed."""
  match = _BIGTABLE.match(spec or '')
  if not match:
    raise ValueError('--bigtable must be PROJECT:INSTANCE:TABLE (instance ids are 6-33 '
                     'lowercase letters, digits and hyphens), got %r' % spec)
  return match.group('project'), match.group('instance'), match.group('table')


def direct_row(row: Dict) -> DirectRow:
  """A `{'row_key', 'cells': [{'family', 'column', 'value', 'timestamp'}]}` row (the shape
  a local run writes as a table) -> the DirectRow mutation WriteToBigTable applies."""
  mutation = DirectRow(row_key=row['row_key'].encode('utf-8'))
  for cell in row['cells']:
    micros = timestamps.parse_rfc3339_micros(cell['timestamp'])
    mutation.set_cell(
        cell['family'], cell['column'].encode('utf-8'), cell['value'].encode('utf-8'),
        timestamp=_EPOCH + datetime.timedelta(microseconds=micros))
  return mutation


class WriteBigtable(beam.PTransform):
  """Row dicts (see `direct_row`) -> Bigtable `PROJECT:INSTANCE:TABLE`, through Beam's
  WriteToBigTable; the table and its column families must exist. Counted as
  `<job>/rows_bigtable`. BIGTABLE_EMULATOR_HOST points the client at an emulator."""

  def __init__(self, spec: str, job: str):
    super().__init__()
    self._project, self._instance, self._table = parse_bigtable(spec)
    self._job = job

  def expand(self, rows):
    counter = Metrics.counter(self._job, 'rows_bigtable')
    return (
        rows
        | 'Count' >> beam.Map(_count, counter)
        | 'ToDirectRow' >> beam.Map(direct_row)
        | 'Write' >> WriteToBigTable(self._project, self._instance, self._table))
