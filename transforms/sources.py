"""ReadRecords: the one reader every job uses (file glob, Pub/Sub, BigQuery).

It emits `Record`s carrying the raw payload, attributes and source, so any later step can
dead-letter a record verbatim. `ParseJsonRecords` is the shared second half: JSON payload ->
value, or an error row.
"""
import re
import time
from typing import Any, Callable, Iterator, Optional, Union

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from transforms.deadletter import RecordError, TryParDo
from transforms import jsonsplit
from transforms.jsonsplit import DEFAULT_MAX_RECORD_CHARS, split_json_records
from transforms.records import Record, json_value

_PUBSUB = re.compile(r'^projects/[^/]+/(topics|subscriptions)/[^/]+$')
_BIGQUERY_TABLE = re.compile(r'^[\w.-]+[:.][\w-]+\.[\w$-]+$')


def is_pubsub(spec: Optional[str]) -> bool:
  return bool(spec) and bool(_PUBSUB.match(spec))


def is_bigquery_table(spec: Optional[str]) -> bool:
  return bool(spec) and '/' not in spec and bool(_BIGQUERY_TABLE.match(spec))


class _Truncated(str):
  """Marks a chunk the splitter already knows is corrupt; the text is the reason."""


class _SplitFileIntoRecords(beam.DoFn):

  def __init__(self, max_record_chars: int):
    self._max = max_record_chars

  def process(self, readable_file: fileio.ReadableFile):
    path = readable_file.metadata.path
    with readable_file.open(compression_type=CompressionTypes.AUTO) as raw:
      for chunk in split_json_records(_text_lines(raw), self._max):
        if chunk.parsed:
          value = chunk.value
        elif chunk.error:
          value = _Truncated(chunk.error)
        else:
          yield Record(chunk.text, path, line=chunk.line)
          continue
        yield Record(chunk.text, path, line=chunk.line, value=value)


def _text_lines(raw) -> Iterator[str]:
  """Lines of a (possibly compressed) byte stream. surrogateescape keeps undecodable bytes,
  so a dead letter can hold them exactly."""
  while True:
    line = raw.readline()
    if not line:
      return
    yield line.decode('utf-8', 'surrogateescape')


def _publish_micros(publish_time) -> Optional[int]:
  if publish_time is None:
    return None
  if hasattr(publish_time, 'timestamp'):  # datetime
    return int(round(publish_time.timestamp() * 1_000_000))
  if hasattr(publish_time, 'seconds'):  # protobuf Timestamp
    return publish_time.seconds * 1_000_000 + publish_time.nanos // 1000
  return None


def record_from_pubsub(message, source: str) -> Record:
  return Record(
      payload=message.data,
      source=source,
      attributes=dict(message.attributes or {}),
      message_id=message.message_id or None,
      publish_time=_publish_micros(message.publish_time))


class ReadRecords(beam.PTransform):
  """`input` -> Records. A file glob (local or gs://, any JSON layout) is bounded; a
  `projects/P/topics/T` or `projects/P/subscriptions/S` is unbounded (streaming); a
  BigQuery `PROJECT:DATASET.TABLE` given as `input_table` reads the table's rows."""

  def __init__(self, input: Optional[str] = None, input_table: Optional[str] = None,
               job: str = 'records', id_label: Optional[str] = None,
               timestamp_attribute: Optional[str] = None,
               max_record_chars: int = DEFAULT_MAX_RECORD_CHARS):
    super().__init__()
    if bool(input) == bool(input_table):
      raise ValueError('ReadRecords needs exactly one of input or input_table')
    if input_table and not is_bigquery_table(input_table):
      raise ValueError('--input_table must be PROJECT:DATASET.TABLE, got %r' % input_table)
    self._input = input
    self._input_table = input_table
    self._job = job
    self._id_label = id_label
    self._timestamp_attribute = timestamp_attribute
    self._max = max_record_chars

  def expand(self, pbegin) -> beam.PCollection[Record]:
    if self._input_table:
      records = (
          pbegin
          | 'ReadBigQuery' >> beam.io.ReadFromBigQuery(table=self._input_table)
          | 'ToRecords' >> beam.Map(
              lambda row, src: Record(None, src, value=row), self._input_table))
    elif is_pubsub(self._input):
      kind = 'topic' if '/topics/' in self._input else 'subscription'
      records = (
          pbegin
          | 'ReadPubSub' >> beam.io.ReadFromPubSub(
              with_attributes=True, id_label=self._id_label,
              timestamp_attribute=self._timestamp_attribute, **{kind: self._input})
          | 'ToRecords' >> beam.Map(record_from_pubsub, self._input))
    else:
      records = (
          pbegin
          | 'MatchFiles' >> fileio.MatchFiles(
              self._input, empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
          | 'ReadMatches' >> fileio.ReadMatches()
          | 'SplitRecords' >> beam.ParDo(_SplitFileIntoRecords(self._max)))
    counter = Metrics.counter(self._job, 'records_read')
    return records | 'CountRecords' >> beam.Map(_count, counter).with_output_types(Record)


def _count(element, counter):
  counter.inc()
  return element


def _check_text(payload) -> None:
  """Refuse text that cannot be encoded as UTF-8: bytes the reader could not decode (kept
  as surrogates) or JSON escapes of lone surrogates. Either would crash the first shuffle
  or sink downstream instead of becoming an error row here."""
  if not isinstance(payload, str) or payload.isascii() and '\\u' not in payload:
    return
  try:
    payload.encode('utf-8')
  except UnicodeEncodeError as e:
    raise RecordError('payload is not valid UTF-8 text at character %d' % e.start) from e


def _check_value(value) -> None:
  if isinstance(value, str):
    _check_text(value)
  elif isinstance(value, dict):
    for key, item in value.items():
      _check_value(key)
      _check_value(item)
  elif isinstance(value, list):
    for item in value:
      _check_value(item)


def _has_escapes(payload) -> bool:
  if isinstance(payload, str):
    return '\\u' in payload
  return isinstance(payload, bytes) and b'\\u' in payload


def record_json(record: Record) -> Any:
  """The record's JSON value; RecordError when it is cut, not UTF-8 or not JSON."""
  if isinstance(record.value, _Truncated):
    raise RecordError('invalid JSON: %s' % record.value)
  _check_text(record.payload)
  try:
    value = json_value(record)
  except UnicodeDecodeError as e:
    raise RecordError('payload is not UTF-8 text: %s' % e.reason) from e
  except ValueError as e:
    raise RecordError('invalid JSON: %s' % e) from e
  if _has_escapes(record.payload):
    _check_value(value)  # escapes like "\ud800" decode to unencodable strings
  return value


def parse_json_text(text: str) -> Any:
  """JSON text (e.g. a message payload) -> its value; RecordError when it is invalid, too
  deeply nested, or escapes lone surrogates."""
  try:
    value = jsonsplit.loads(text)
  except ValueError as e:
    raise RecordError('invalid JSON: %s' % e) from e
  if '\\u' in text:
    _check_value(value)
  return value


def payload_text(payload: Union[str, bytes]) -> str:
  """A raw payload as text; RecordError when it is not valid UTF-8."""
  if isinstance(payload, (bytes, bytearray)):
    try:
      return bytes(payload).decode('utf-8')
    except UnicodeDecodeError as e:
      raise RecordError('payload is not UTF-8 text: %s at byte %d' % (e.reason, e.start)) from e
  _check_text(payload)
  return payload


class _ParseJson(beam.DoFn):

  def process(self, record: Record):
    value = record_json(record)
    yield record if record.parsed else record.with_value(value)


class ParseJsonRecords(beam.PTransform):
  """Records -> (records with a parsed JSON value, error rows)."""

  def __init__(self, job: str, clock: Callable[[], float] = time.time):
    super().__init__()
    self._job = job
    self._clock = clock

  def expand(self, records):
    return records | 'ParseJson' >> TryParDo(
        _ParseJson(), self._job, 'parse_json', self._clock)
