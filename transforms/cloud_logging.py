"""Cloud Logging `LogEntry` JSON (as a log sink exports it) -> the `log_entries` row.

Exports are irregular: severity may be absent, timestamps carry 3 to 9 fraction digits,
INT64 fields arrive as strings, latency is a duration string, remoteIp may carry a port or
be IPv6, and logName is URL-encoded. Everything here is pure, so each case is unit-tested.
"""
import hashlib
import json
import math
import re
from typing import Any, Dict, Optional
from urllib.parse import unquote

from schemas import INT64_LIMIT
from transforms import timestamps
from transforms.deadletter import RecordError

SEVERITIES = {
    'DEFAULT': 0, 'DEBUG': 100, 'INFO': 200, 'NOTICE': 300, 'WARNING': 400, 'ERROR': 500,
    'CRITICAL': 600, 'ALERT': 700, 'EMERGENCY': 800}
_SEVERITY_NAMES = {number: name for name, number in SEVERITIES.items()}
ERROR_LEVEL = SEVERITIES['ERROR']

_LOG_NAME = re.compile(
    r'^(?:projects|organizations|folders|billingAccounts)/(?P<parent>[^/]+)/logs/(?P<log>.+)$')
_DURATION = re.compile(r'^\s*(-?\d+(?:\.\d+)?)s\s*$')


def severity(value: Any) -> tuple:
  """(name, number) for a LogEntry severity: a name, a number, or absent (DEFAULT)."""
  if value is None:
    return 'DEFAULT', 0
  if isinstance(value, str) and value.strip().upper() in SEVERITIES:
    name = value.strip().upper()
    return name, SEVERITIES[name]
  if isinstance(value, (int, float, str)) and not isinstance(value, bool):
    try:
      number = float(value)
    except ValueError:
      number = None
    if number is not None and number.is_integer() and int(number) in _SEVERITY_NAMES:
      return _SEVERITY_NAMES[int(number)], int(number)
  raise RecordError('severity %r is not a Cloud Logging severity' % (value,))


def log_id(log_name: Any) -> tuple:
  """logName -> (decoded log id, project id): `projects/p/logs/a%2Fb` -> ('a/b', 'p')."""
  if not isinstance(log_name, str) or not log_name:
    raise RecordError('missing logName')
  match = _LOG_NAME.match(log_name)
  if not match:
    raise RecordError('logName %r is not PARENT/ID/logs/LOG_ID' % log_name)
  parent = match.group('parent') if log_name.startswith('projects/') else None
  return unquote(match.group('log')), parent


def duration_ms(value: Any, field: str) -> Optional[float]:
  """A protobuf Duration in JSON ('0.005192s') -> milliseconds."""
  if value is None:
    return None
  if isinstance(value, dict):  # {"seconds": "1", "nanos": 5000}
    try:
      return int(value.get('seconds', 0)) * 1000 + int(value.get('nanos', 0)) / 1e6
    except (TypeError, ValueError):
      raise RecordError('%s: %r is not a duration' % (field, value)) from None
  match = _DURATION.match(value) if isinstance(value, str) else None
  if not match:
    raise RecordError('%s: %r is not a duration like "0.25s"' % (field, value))
  return float(match.group(1)) * 1000


def integer(value: Any, field: str) -> Optional[int]:
  """INT64 fields: numbers or numeric strings ('577')."""
  if value is None:
    return None
  if isinstance(value, bool):
    raise RecordError('%s: %r is not an integer' % (field, value))
  if isinstance(value, str):
    try:
      value = int(value.strip())
    except ValueError:
      raise RecordError('%s: %r is not an integer' % (field, value)) from None
  if isinstance(value, float):
    if not (math.isfinite(value) and value.is_integer()):
      raise RecordError('%s: %r is not an integer' % (field, value))
    value = int(value)
  if not isinstance(value, int) or abs(value) >= INT64_LIMIT:
    raise RecordError('%s: %r is not an INT64' % (field, value))
  return value


def client_ip(value: Any) -> Optional[str]:
  """'203.0.113.7:52341' -> '203.0.113.7'; '[2001:db8::1]:443' -> '2001:db8::1'."""
  if value is None:
    return None
  if not isinstance(value, str):
    raise RecordError('httpRequest.remoteIp: %r is not an address' % (value,))
  text = value.strip()
  if text.startswith('['):
    return text[1:text.index(']')] if ']' in text else text[1:]
  if text.count(':') == 1:  # IPv4 with a port; bare IPv6 has several colons
    return text.split(':', 1)[0]
  return text


def _timestamp(value: Any, field: str, required: bool) -> Optional[int]:
  if value is None or value == '':
    if required:
      raise RecordError('missing %s' % field)
    return None
  if not isinstance(value, str):
    raise RecordError('%s: %r is not an RFC 3339 timestamp' % (field, value))
  try:
    return timestamps.parse_rfc3339_micros(value)
  except ValueError:
    raise RecordError('%s: %r is not an RFC 3339 timestamp' % (field, value)) from None


def _object(entry: Dict, field: str) -> Dict:
  value = entry.get(field)
  if value is None:
    return {}
  if not isinstance(value, dict):
    raise RecordError('%s must be an object' % field)
  return value


def _json(value: Any) -> Optional[str]:
  return json.dumps(value, sort_keys=True) if value else None


def _text(entry: Dict) -> Optional[str]:
  if isinstance(entry.get('textPayload'), str):
    return entry['textPayload']
  payload = entry.get('jsonPayload')
  if isinstance(payload, dict):
    for key in ('message', 'text'):
      if isinstance(payload.get(key), str):
        return payload[key]
  proto = entry.get('protoPayload')
  if isinstance(proto, dict) and isinstance(proto.get('methodName'), str):
    return proto['methodName']
  return None


def _str(value: Any) -> Optional[str]:
  return None if value is None else str(value)


def entry_micros(entry: Dict) -> int:
  """The entry's event time (its `timestamp`; receiveTimestamp when that is missing)."""
  micros = _timestamp(entry.get('timestamp'), 'timestamp', required=False)
  if micros is None:
    micros = _timestamp(entry.get('receiveTimestamp'), 'receiveTimestamp', required=False)
  if micros is None:
    raise RecordError('missing timestamp')
  return micros


def entry_row(entry: Any, micros: Optional[int] = None) -> Dict[str, Any]:
  """A LogEntry -> its `log_entries` row (`micros`: entry_micros, if already read).
  Raises RecordError for unusable entries."""
  if not isinstance(entry, dict):
    raise RecordError('record is not a JSON object')
  if micros is None:
    micros = entry_micros(entry)
  name, number = severity(entry.get('severity'))
  log, project = log_id(entry.get('logName'))
  resource = _object(entry, 'resource')
  http = _object(entry, 'httpRequest')
  payload = entry.get('jsonPayload', entry.get('protoPayload'))
  labels = _object(entry, 'labels')
  resource_labels = resource.get('labels') if isinstance(resource.get('labels'), dict) else {}
  return {
      'timestamp': timestamps.micros_to_rfc3339(micros),
      'receive_timestamp': timestamps.micros_to_rfc3339(
          _timestamp(entry.get('receiveTimestamp'), 'receiveTimestamp', required=False)),
      'log_id': log,
      'project_id': project or _str(resource_labels.get('project_id')),
      'severity': name,
      'severity_number': number,
      'resource_type': _str(resource.get('type')),
      'resource_labels': _json(resource_labels),
      'labels': _json(labels),
      'text': _text(entry),
      'payload': _json(payload) if isinstance(payload, dict) else None,
      'http_method': _str(http.get('requestMethod')),
      'http_url': _str(http.get('requestUrl')),
      'http_status': integer(http.get('status'), 'httpRequest.status'),
      'http_latency_ms': duration_ms(http.get('latency'), 'httpRequest.latency'),
      'http_response_size': integer(http.get('responseSize'), 'httpRequest.responseSize'),
      'remote_ip': client_ip(http.get('remoteIp')),
      'user_agent': _str(http.get('userAgent')),
      'trace': _str(entry.get('trace')),
      'span_id': _str(entry.get('spanId')),
      'insert_id': _str(entry.get('insertId')),
  }


def duplicate_key(entry: Dict, micros: Optional[int] = None) -> str:
  """Cloud Logging's own identity of an entry: logName + insertId + timestamp (`micros`,
  the entry's time when the caller has already read it)."""
  if not entry.get('insertId'):
    # Without an insertId nothing identifies a redelivery: the entry's content does.
    raw = json.dumps(entry, sort_keys=True)
  else:
    # The instant, not its spelling: the same time may come with 3 or 9 fraction digits.
    raw = '%s\x00%s\x00%d' % (entry.get('logName'), entry['insertId'],
                                 entry_micros(entry) if micros is None else micros)
  return hashlib.blake2b(raw.encode('utf-8'), digest_size=16).hexdigest()
