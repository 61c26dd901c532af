"""WriteTables: every job's output tables to an NDJSON directory or a BigQuery dataset.

The directory layout is `<output>/<table>/*.json`, one glob per table, rows as
newline-delimited JSON that `bq load --source_format=NEWLINE_DELIMITED_JSON` takes as is.
BigQuery tables are created from `schemas/`, day-partitioned on the table's first TIMESTAMP
column. Rows per table are counted (`rows_<table>`), so the accounting identity can be
checked from metrics alone.
"""
import json
import re
import time
from typing import Dict, Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import window

import schemas

_BIGQUERY_DATASET = re.compile(r'^(?P<project>[\w.-]+(:[\w-]+)?):(?P<dataset>\w+)$')
STREAMING_FILE_WINDOW_S = 60


def is_bigquery_dataset(output: Optional[str]) -> bool:
  return bool(output) and '/' not in output and bool(_BIGQUERY_DATASET.match(output))


def bigquery_table(output: str, table: str, table_prefix: str = '') -> str:
  """'PROJECT:DATASET' + table -> 'PROJECT:DATASET.<prefix><table>'."""
  match = _BIGQUERY_DATASET.match(output)
  if not match:
    raise ValueError('--output %r is not PROJECT:DATASET' % output)
  return '%s:%s.%s%s' % (match.group('project'), match.group('dataset'), table_prefix, table)


def bigquery_write_config(output: str, job: str, table: str, streaming: bool,
                          table_prefix: str = '') -> Dict:
  """The WriteToBigQuery arguments for one table (pure, so tests can assert them)."""
  config = {
      'table': bigquery_table(output, table, table_prefix),
      'schema': schemas.bigquery_schema(job, table),
      'create_disposition': BigQueryDisposition.CREATE_IF_NEEDED,
      'write_disposition': BigQueryDisposition.WRITE_APPEND,
      'method': (WriteToBigQuery.Method.STREAMING_INSERTS if streaming
                 else WriteToBigQuery.Method.FILE_LOADS),
  }
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
  """{table: rows} -> the tables at `output` (a directory, or `PROJECT:DATASET`)."""

  def __init__(self, output: str, job: str, streaming: bool = False, table_prefix: str = ''):
    super().__init__()
    self._output = output
    self._job = job
    self._streaming = streaming
    self._table_prefix = table_prefix

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
        write = WriteToBigQuery(**bigquery_write_config(
            self._output, self._job, table, self._streaming, self._table_prefix))
      else:
        write = _WriteNdjson(self._output, table, self._streaming)
      rows | 'Write_%s' % table >> write
    return beam.pvalue.PDone(tables[next(iter(sorted(tables)))].pipeline)


class PublishJson(beam.PTransform):
  """Rows -> one JSON message each on a Pub/Sub topic (alerts, commands)."""

  def __init__(self, topic: str):
    super().__init__()
    self._topic = topic

  def expand(self, rows):
    return (
        rows
        | 'ToMessage' >> beam.Map(lambda row: json.dumps(row, sort_keys=True).encode('utf-8'))
        | 'Publish' >> beam.io.WriteToPubSub(self._topic))
