"""Hand-made game events for tests: small enough to know every output exactly."""
import json

from transforms.records import Record

T0 = 1539158400_000000  # 2018-10-10T08:00:00Z in microseconds


def ga4(name, seconds, session='s1', user='u1', **params):
  """A GA4 export row; ints as INT64 strings, floats as double_value, like the export."""
  event_params = [{'key': 'sessionid', 'value': {'string_value': session}}]
  for key, value in params.items():
    if isinstance(value, bool) or isinstance(value, str):
      slot = {'string_value': str(value).lower() if isinstance(value, bool) else value}
    elif isinstance(value, int):
      slot = {'int_value': str(value)}
    else:
      slot = {'double_value': value}
    event_params.append({'key': key, 'value': slot})
  return {
      'event_name': name,
      'event_timestamp': str(T0 + int(seconds * 1_000_000)),
      'event_params': event_params,
      'user_pseudo_id': user,
      'platform': 'ANDROID',
      'geo': {'country': 'Japan'},
  }


def record(value, source='test.json', line=None):
  return Record(json.dumps(value), source, line=line)
