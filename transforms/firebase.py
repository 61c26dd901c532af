"""Firebase Analytics records -> flat events, whatever the export format.

Three families are recognised per record: GA4 BigQuery export rows (`events_*`), legacy
Firebase rows (`app_events_*`, `user_dim` + repeated `event_dim`) and the Cloud Functions
analytics payload (`userDim`/`eventDim`), plus flat JSON from custom producers. Each comes
out as `FlatEvent`s with plain parameter values, so game logic never sees the encoding.
"""
from typing import Any, Dict, Iterable, List, NamedTuple, Optional

from transforms import timestamps
from transforms.deadletter import RecordError


class FlatEvent(NamedTuple):
  name: str
  micros: int
  params: Dict[str, Any]
  user_pseudo_id: Optional[str] = None
  user_id: Optional[str] = None
  platform: Optional[str] = None
  country: Optional[str] = None


# Typed value slots of each encoding, in the order a non-null slot is taken.
_SNAKE_SLOTS = ('string_value', 'int_value', 'double_value', 'float_value')
_CAMEL_SLOTS = ('stringValue', 'intValue', 'doubleValue', 'floatValue')


def _typed_value(key: str, slots: Any, names: Iterable[str]) -> Any:
  if slots is None:
    return None
  if not isinstance(slots, dict):
    raise RecordError('param %r: value is not an object' % key)
  for slot in names:
    value = slots.get(slot)
    if value is not None:
      if slot in ('int_value', 'intValue') and isinstance(value, str):
        try:  # INT64 travels as a JSON string
          return int(value)
        except ValueError:
          raise RecordError(
              'param %r: int_value %r is not an integer' % (key, value)) from None
      return value
  return None


def _param_list(params: Any) -> Dict[str, Any]:
  """[{key, value: {string_value|int_value|...}}] -> {key: value}."""
  if params is None:
    return {}
  if not isinstance(params, list):
    raise RecordError('event params must be a list of {key, value}')
  out = {}
  for entry in params:
    if not isinstance(entry, dict) or not isinstance(entry.get('key'), str):
      raise RecordError('event param without a key: %r' % (entry,))
    out[entry['key']] = _typed_value(entry['key'], entry.get('value'), _SNAKE_SLOTS)
  return out


def _param_map(params: Any, camel: bool) -> Dict[str, Any]:
  if params is None:
    return {}
  if not isinstance(params, dict):
    raise RecordError('event params must be an object')
  if not camel:
    return dict(params)
  return {k: _typed_value(k, v, _CAMEL_SLOTS) for k, v in params.items()}


def _obj(value: Any, what: str) -> Dict[str, Any]:
  if value is None:
    return {}
  if not isinstance(value, dict):
    raise RecordError('%s must be an object' % what)
  return value


def _text(value: Any) -> Optional[str]:
  return None if value is None else str(value)


def _micros(value: Any, what: str) -> int:
  try:
    return timestamps.epoch_micros(value)
  except ValueError:
    raise RecordError('%s %r is not a timestamp' % (what, value)) from None


def _name(value: Any) -> str:
  if not isinstance(value, str) or not value:
    raise RecordError('event without a name')
  return value


def _ga4(record: Dict) -> List[FlatEvent]:
  return [FlatEvent(
      name=_name(record.get('event_name')),
      micros=_micros(record.get('event_timestamp'), 'event_timestamp'),
      params=_param_list(record.get('event_params')),
      user_pseudo_id=_text(record.get('user_pseudo_id')),
      user_id=_text(record.get('user_id')),
      platform=_text(record.get('platform')),
      country=_text(_obj(record.get('geo'), 'geo').get('country')))]


def _flat(record: Dict) -> List[FlatEvent]:
  return [FlatEvent(
      name=_name(record.get('event_name')),
      micros=_micros(record.get('event_timestamp'), 'event_timestamp'),
      params=_param_map(record.get('params'), camel=False),
      user_pseudo_id=_text(record.get('user_pseudo_id')),
      user_id=_text(record.get('user_id')),
      platform=_text(record.get('platform')),
      country=_text(record.get('country')))]


def _legacy(record: Dict, camel: bool) -> List[FlatEvent]:
  k = (lambda snake, cc: cc) if camel else (lambda snake, cc: snake)
  user = _obj(record.get(k('user_dim', 'userDim')), 'user_dim')
  app = _obj(user.get(k('app_info', 'appInfo')), 'app_info')
  geo = _obj(user.get(k('geo_info', 'geoInfo')), 'geo_info')
  events = record.get(k('event_dim', 'eventDim'))
  if not isinstance(events, list):
    raise RecordError('%s must be a list of events' % k('event_dim', 'eventDim'))
  out = []
  for event in events:
    event = _obj(event, 'event')
    params = event.get('params')
    out.append(FlatEvent(
        name=_name(event.get('name')),
        micros=_micros(event.get(k('timestamp_micros', 'timestampMicros')), 'timestamp'),
        params=_param_map(params, camel=True) if camel else _param_list(params),
        user_pseudo_id=_text(app.get(k('app_instance_id', 'appInstanceId'))),
        user_id=_text(user.get(k('user_id', 'userId'))),
        platform=_text(app.get(k('app_platform', 'appPlatform'))),
        country=_text(geo.get('country'))))
  return out


def flatten_record(record: Any) -> List[FlatEvent]:
  """One parsed JSON record -> its events. Raises RecordError if it is none of the formats."""
  if not isinstance(record, dict):
    raise RecordError('record is not a JSON object')
  if 'event_dim' in record:
    return _legacy(record, camel=False)
  if 'eventDim' in record:
    return _legacy(record, camel=True)
  if 'event_name' in record:
    return _flat(record) if 'params' in record else _ga4(record)
  raise RecordError('unrecognised record: expected a GA4 export row, a legacy app_events '
                    'row, a Cloud Functions analytics payload or a flat event')
