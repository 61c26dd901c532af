"""Device telemetry: Pub/Sub messages (live, saved or push envelopes) -> validated points.

A message holds one JSON object or one or more lines of InfluxDB line protocol; each is a
*point*: one device, one event time, one or more metric values (a reading each). Identity
comes from the IoT bridge's attributes first (they are set by the service, not the device),
then from the payload. Anything that is not a finite number in a metric field makes the
point an error record, never a silently skipped metric.
"""
import base64
import binascii
import json
import math
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Timestamp

from transforms import line_protocol, timestamps
from transforms.deadletter import RecordError
from transforms.records import Record
from transforms.sources import parse_json_text, payload_text, record_json

PUBSUB_MESSAGE_TYPE = 'type.googleapis.com/google.pubsub.v1.PubsubMessage'
_MESSAGE_KEYS = frozenset({
    '@type', 'attributes', 'data', 'messageId', 'message_id', 'publishTime',
    'publish_time', 'orderingKey', 'ordering_key', 'deliveryAttempt'})
_MESSAGE_IDENTITY = frozenset({'messageId', 'message_id', 'publishTime', 'publish_time'})
_ENVELOPE_KEYS = frozenset({'message', 'subscription', 'deliveryAttempt'})
TIME_KEYS = ('ts', 'timestamp', 'time')
DEVICE_KEYS = ('device_id', 'deviceId')
REGISTRY_KEYS = ('registry_id', 'registryId')
_ID_KEYS = frozenset(DEVICE_KEYS + REGISTRY_KEYS)
MAX_ID_CHARS = 256
# Event and publish times are kept to 1970..2099: Bigtable refuses cell timestamps before
# 1970, and windows around a time near year 1 or 9999 would not be representable.
MIN_MICROS, MAX_MICROS = 0, 4102444800000000 - 1
# Larger magnitudes would overflow the variance (value squared) in device_stats.
MAX_VALUE = 1e150
FAMILY = 'm'
_REVERSE_BASE = 2**63 - 1
UNKNOWN_REGISTRY = '-'


class Message(NamedTuple):
  """A Pub/Sub message unwrapped from whatever it was saved in."""
  data: Union[str, bytes]
  attributes: Dict[str, str]
  message_id: Optional[str]
  publish_micros: Optional[int]


class Point(NamedTuple):
  """One device's metric values at one instant (a JSON payload or a line-protocol line)."""
  device_id: str
  registry_id: Optional[str]
  micros: int                              # event time, epoch microseconds
  metrics: Tuple[Tuple[str, float], ...]   # (metric, value), in payload order
  message_id: Optional[str] = None
  publish_micros: Optional[int] = None
  registry_location: Optional[str] = None
  project_id: Optional[str] = None
  sub_folder: Optional[str] = None
  gateway_id: Optional[str] = None
  measurement: Optional[str] = None
  tags: Optional[Dict[str, str]] = None
  time_source: str = 'payload'             # payload | publish | read


# --- messages --------------------------------------------------------------------------

def unwrap_message(value: Any) -> Optional[Message]:
  """A saved PubsubMessage (camelCase or snake_case, with or without @type) or a push
  envelope -> its Message; None when `value` is a plain payload."""
  if not isinstance(value, dict):
    return None
  if isinstance(value.get('message'), dict) and set(value) <= _ENVELOPE_KEYS:
    return _message(value['message'])
  if value.get('@type') == PUBSUB_MESSAGE_TYPE or (
      set(value) <= _MESSAGE_KEYS and (isinstance(value.get('data'), str)
                                       or isinstance(value.get('attributes'), dict)
                                       or not set(value).isdisjoint(_MESSAGE_IDENTITY))):
    return _message(value)
  return None


def _message(message: Dict[str, Any]) -> Message:
  attributes = message.get('attributes')
  attributes = {} if attributes is None else attributes
  if not isinstance(attributes, dict) or not all(
      isinstance(v, str) for v in attributes.values()):
    raise RecordError('message attributes must be an object of strings')
  data = message.get('data')
  if not data:
    raise RecordError('message has no data')
  if not isinstance(data, str):
    raise RecordError('message data must be a base64 string, not %s' % type(data).__name__)
  message_id = _first(message, ('messageId', 'message_id'))
  publish_time = _first(message, ('publishTime', 'publish_time'))
  publish_micros = None
  if publish_time is not None:
    try:
      publish_micros = timestamps.parse_rfc3339_micros(str(publish_time))
    except ValueError as e:
      raise RecordError('message publishTime %r is not RFC 3339' % (publish_time,)) from e
  if publish_micros is not None and not MIN_MICROS <= publish_micros <= MAX_MICROS:
    raise RecordError('message publishTime %r is outside 1970-2099' % (publish_time,))
  return Message(_base64(data), attributes,
                 None if message_id is None else str(message_id), publish_micros)


def _first(obj: Dict[str, Any], keys) -> Any:
  return next((obj[k] for k in keys if obj.get(k) is not None), None)


def _base64(data: str) -> bytes:
  """Standard or URL-safe base64 (proto3 JSON accepts both), padding optional; strict, so
  text after the padding is an error rather than silently lost."""
  text = data.strip().rstrip('=')
  text += '=' * (-len(text) % 4)
  try:
    return base64.b64decode(text, validate=True)
  except binascii.Error:
    pass
  if not set(text) & set('+/'):  # one alphabet or the other, not a mix
    try:
      return base64.b64decode(text, altchars=b'-_', validate=True)
    except binascii.Error:
      pass
  raise RecordError('message data is not base64')


def parse_payload(payload: Union[str, bytes]) -> Union[Dict[str, Any], List[str]]:
  """A payload -> its JSON object, or its line-protocol lines (comments dropped)."""
  text = payload_text(payload).strip()
  if not text:
    raise RecordError('payload is empty')
  if text[0] in '{["':
    value = parse_json_text(text)
    if not isinstance(value, dict):
      raise RecordError('payload is a JSON %s, not an object' % _json_type(value))
    return value
  # split('\n'), not splitlines(): a string field may hold \x0b, \x1c or \u2028.
  lines = [line.rstrip('\r') for line in text.split('\n')
           if not line_protocol.is_comment_or_blank(line)]
  if not lines:
    raise RecordError('payload has only line-protocol comments')
  return lines


def _json_type(value: Any) -> str:
  return {list: 'array', str: 'string', bool: 'boolean', type(None): 'null'}.get(
      type(value), 'number')


def expand_record(record: Record) -> List[Record]:
  """A Record -> one Record per point, carrying the message's attributes, id and publish
  time, and the point (a JSON object or a line) as its value. The raw payload stays, so a
  dead letter for any point holds the whole record."""
  if record.parsed:  # a file line the reader parsed (or knows is cut)
    value = record_json(record)
    if not isinstance(value, dict):
      raise RecordError('record is a JSON %s, not an object' % _json_type(value))
  else:
    value = parse_payload(record.payload)
  attributes, message_id, publish_micros = (
      record.attributes or {}, record.message_id, record.publish_time)
  # A live Pub/Sub message's payload is the device's; files hold saved messages.
  live = record.message_id is not None or record.publish_time is not None
  message = None if live else unwrap_message(value)
  if message is not None:
    value = parse_payload(message.data)
    attributes, message_id, publish_micros = (
        message.attributes, message.message_id, message.publish_micros)
  points = [value] if isinstance(value, dict) else value
  several = len(points) > 1
  return [Record(record.payload, record.source, attributes or None, message_id,
                 publish_micros, record.line, part if several else None, point)
          for part, point in enumerate(points)]


# --- points ----------------------------------------------------------------------------

def decode_point(record: Record, read_micros: int) -> Point:
  """An expanded Record (value: JSON object or line-protocol line) -> Point."""
  attributes = record.attributes or {}
  if isinstance(record.value, str):
    return _line_point(record.value, attributes, record, read_micros)
  return _json_point(record.value, attributes, record, read_micros)


def _json_point(obj: Dict[str, Any], attributes: Dict[str, str], record: Record,
                read_micros: int) -> Point:
  device = _identity('device id', attributes.get('deviceId'), obj, DEVICE_KEYS)
  if device is None:
    raise RecordError('no device id: no deviceId attribute and no device_id/deviceId '
                      'in the payload')
  registry = _identity('registry id', attributes.get('deviceRegistryId'), obj, REGISTRY_KEYS)
  raw_time = _first(obj, TIME_KEYS)
  metrics = []
  for key, value in obj.items():
    if key in _ID_KEYS or key in TIME_KEYS:
      continue  # (only the first time key present is the time; the others are not metrics)
    _flatten(key, value, metrics)
  names = [name for name, _ in metrics]
  if len(set(names)) != len(names):
    repeated = sorted({name for name in names if names.count(name) > 1})
    raise RecordError('metric %r is given twice (a dotted key and a nested object)'
                      % repeated[0])
  micros, source = _event_micros(raw_time, record.publish_time, read_micros)
  return _point(device, registry, micros, tuple(metrics), attributes, record, source)


def _line_point(line: str, attributes: Dict[str, str], record: Record,
                read_micros: int) -> Point:
  try:
    parsed = line_protocol.parse_line(line)
  except line_protocol.LineProtocolError as e:
    raise RecordError('payload is neither a JSON object nor line protocol: %s' % e) from e
  device = _identity('device id', attributes.get('deviceId'), parsed.tags, DEVICE_KEYS)
  if device is None:
    raise RecordError('no device id: no deviceId attribute and no device_id/deviceId tag')
  registry = _identity('registry id', attributes.get('deviceRegistryId'), parsed.tags,
                       REGISTRY_KEYS)
  metrics = []
  for key, value in parsed.fields.items():
    if isinstance(value, str):
      raise RecordError('metric %r is a string, not a number: %r' % (key, _short(value)))
    metrics.append((key, _number(key, value)))
  micros = source = None
  if parsed.timestamp_ns is not None:
    micros, source = parsed.timestamp_ns // 1000, 'payload'
    _check_range(micros)
  else:
    micros, source = _event_micros(None, record.publish_time, read_micros)
  return _point(device, registry, micros, tuple(metrics), attributes, record, source,
                parsed.measurement, dict(parsed.tags))


def _point(device, registry, micros, metrics, attributes, record, source,
           measurement=None, tags=None) -> Point:
  return Point(device, registry, micros, metrics, record.message_id, record.publish_time,
               attributes.get('deviceRegistryLocation'), attributes.get('projectId'),
               attributes.get('subFolder'), attributes.get('gatewayId'), measurement, tags,
               source)


def _identity(what: str, attribute: Optional[str], payload: Dict[str, Any], keys) -> Optional[str]:
  """The attribute when set, else the payload's; validated, as it becomes a row key."""
  value = attribute if attribute not in (None, '') else _first(payload, keys)
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, (str, int)):
    raise RecordError('%s must be a string, not %r' % (what, _short(value)))
  value = str(value)
  if not value or len(value) > MAX_ID_CHARS:
    raise RecordError('%s must be 1 to %d characters' % (what, MAX_ID_CHARS))
  if '#' in value or not value.isprintable():
    raise RecordError('%s %r holds # or a control character' % (what, _short(value)))
  return value


def _flatten(name: str, value: Any, out: List[Tuple[str, float]]) -> None:
  if isinstance(value, dict):
    if not value:
      raise RecordError('metric %r is an empty object, not a number' % name)
    for key, item in value.items():
      _flatten('%s.%s' % (name, key), item, out)
    return
  if not name or name.startswith('.') or name.endswith('.') or '..' in name:
    raise RecordError('metric name %r has an empty part' % name)
  out.append((name, _number(name, value)))


def _number(name: str, value: Any) -> float:
  if isinstance(value, bool):
    return 1.0 if value else 0.0
  if value is None:
    raise RecordError('metric %r is null' % name)
  if not isinstance(value, (int, float)):
    raise RecordError('metric %r is not a number: %r' % (name, _short(value)))
  try:
    number = float(value)
  except OverflowError as e:
    raise RecordError('metric %r is out of range: %s' % (name, _short(value))) from e
  if not math.isfinite(number):
    raise RecordError('metric %r is not finite: %r' % (name, number))
  if abs(number) > MAX_VALUE:
    raise RecordError('metric %r is out of range (|value| > %g): %r' % (name, MAX_VALUE, number))
  return number


def _event_micros(raw_time: Any, publish_micros: Optional[int],
                  read_micros: int) -> Tuple[int, str]:
  if raw_time is not None:
    try:
      micros = timestamps.epoch_micros(raw_time)
    except (ValueError, OverflowError) as e:
      raise RecordError('time %r is not RFC 3339 or epoch s/ms' % (_short(raw_time),)) from e
    _check_range(micros)
    return micros, 'payload'
  if publish_micros is not None:
    return publish_micros, 'publish'
  return read_micros, 'read'


def _check_range(micros: int) -> None:
  if not MIN_MICROS <= micros <= MAX_MICROS:
    raise RecordError('event time %s is outside 1970-2099 (a device clock not set?)'
                      % _readable(micros))


def _readable(micros: int) -> str:
  try:
    return timestamps.micros_to_rfc3339(micros)
  except (OverflowError, ValueError):
    return '%d us' % micros


def _short(value: Any, limit: int = 80) -> Any:
  text = value if isinstance(value, str) else repr(value)
  return text if len(text) <= limit else text[:limit] + '...'


def dedupe_key(point: Point) -> str:
  """Same device and series, same instant, same values: the same reading. That drops Pub/Sub
  redeliveries (same message, same publish time) and device retries (a new message id,
  the same payload) alike. A point timed by its read time falls back to its message id."""
  when = str(point.micros)
  if point.time_source == 'read':
    when = 'id:' + point.message_id if point.message_id else 'read:' + when
  return json.dumps([point.registry_id, point.device_id, when, point.measurement,
                     sorted((point.tags or {}).items()), sorted(point.metrics)],
                    separators=(',', ':'))


# --- rows ------------------------------------------------------------------------------

def reading_rows(point: Point) -> List[Dict[str, Any]]:
  """The `readings` table: one row per metric value."""
  shared = {
      'event_time': timestamps.micros_to_rfc3339(point.micros),
      'device_id': point.device_id,
      'registry_id': point.registry_id,
      'publish_time': timestamps.micros_to_rfc3339(point.publish_micros),
      'message_id': point.message_id,
      'registry_location': point.registry_location,
      'project_id': point.project_id,
      'sub_folder': point.sub_folder,
      'gateway_id': point.gateway_id,
      'measurement': point.measurement,
      'tags': json.dumps(point.tags, sort_keys=True) if point.tags else None,
  }
  return [dict(shared, metric=metric, value=value) for metric, value in point.metrics]


def reverse_timestamp(micros: int) -> str:
  """19 digits that sort newest first: (2^63 - 1) - micros, zero-padded."""
  return '%019d' % (_REVERSE_BASE - micros)


def row_key(registry_id: Optional[str], device_id: str, micros: int) -> str:
  """REGISTRY#DEVICE#REVERSE_TIMESTAMP: one device's rows are contiguous, newest first, so
  'latest readings of a device' is a short prefix scan."""
  return '%s#%s#%s' % (registry_id or UNKNOWN_REGISTRY, device_id, reverse_timestamp(micros))


def bigtable_row(point: Point) -> Dict[str, Any]:
  """The `bigtable_rows` table: the Bigtable row a point is written as (one cell per
  metric in family `m`, timestamped with the event time at millisecond granularity)."""
  cell_time = timestamps.micros_to_rfc3339(point.micros // 1000 * 1000)
  return {
      'event_time': timestamps.micros_to_rfc3339(point.micros),
      'row_key': row_key(point.registry_id, point.device_id, point.micros),
      'device_id': point.device_id,
      'registry_id': point.registry_id,
      'cells': [{'family': FAMILY, 'column': metric, 'value': repr(value),
                 'timestamp': cell_time} for metric, value in point.metrics],
  }


# --- DoFns -----------------------------------------------------------------------------

class ExpandMessages(beam.DoFn):
  """Record -> one Record per point (stage `decode_message`)."""

  def process(self, record: Record):
    yield from expand_record(record)


class DecodePoints(beam.DoFn):
  """Expanded Record -> timestamped (dedupe key, Point). Counts `readings_read` in
  readings (a point that fails counts as one) and points without metrics as `filtered`."""

  def __init__(self, job: str, clock):
    self._readings_read = Metrics.counter(job, 'readings_read')
    self._filtered = Metrics.counter(job, 'filtered')
    self._clock = clock

  def process(self, record: Record):
    try:
      point = decode_point(record, int(self._clock() * 1_000_000))
    except Exception:
      self._readings_read.inc()
      raise
    if not point.metrics:
      self._readings_read.inc()
      self._filtered.inc()  # a heartbeat or status message: nothing to measure
      return
    self._readings_read.inc(len(point.metrics))
    yield beam.window.TimestampedValue((dedupe_key(point), point),
                                       Timestamp(micros=point.micros))
