"""Each Firebase encoding flattens to the same events (pure functions, no Beam)."""
import pytest

from transforms.deadletter import RecordError
from transforms.firebase import FlatEvent, flatten_record

MICROS = 1539158400123456


def test_ga4_export_row_with_int64_strings_and_null_slots():
  row = {
      'event_date': '20181010', 'event_timestamp': str(MICROS), 'event_name': 'PLAYER_ATTACK',
      'event_params': [
          {'key': 'sessionid', 'value': {'string_value': 'abc', 'int_value': None,
                                         'float_value': None, 'double_value': None}},
          {'key': 'npc_id', 'value': {'int_value': '12'}},
          {'key': 'damage', 'value': {'double_value': 2.5}},
          {'key': 'life', 'value': {'float_value': 7.0}},
          {'key': 'unset', 'value': {'string_value': None}},
      ],
      'user_pseudo_id': 'pseudo', 'user_id': None, 'platform': 'IOS',
      'geo': {'country': 'Japan', 'city': 'Tokyo'}, 'device': {'category': 'mobile'},
  }
  assert flatten_record(row) == [FlatEvent(
      'PLAYER_ATTACK', MICROS,
      {'sessionid': 'abc', 'npc_id': 12, 'damage': 2.5, 'life': 7.0, 'unset': None},
      'pseudo', None, 'IOS', 'Japan')]


def test_ga4_numeric_timestamp_and_absent_params():
  event, = flatten_record({'event_name': 'screen_view', 'event_timestamp': MICROS})
  assert (event.name, event.micros, event.params) == ('screen_view', MICROS, {})


def test_legacy_app_events_row_expands_every_event():
  row = {
      'user_dim': {'user_id': 'player-9',
                   'app_info': {'app_instance_id': 'inst', 'app_platform': 'ANDROID'},
                   'geo_info': {'country': 'Peru'}},
      'event_dim': [
          {'name': 'START_SESSION', 'timestamp_micros': str(MICROS),
           'params': [{'key': 'sessionid', 'value': {'string_value': 's'}},
                      {'key': 'age', 'value': {'int_value': '41'}}]},
          {'name': 'PLAYER_MOVE', 'timestamp_micros': str(MICROS + 2_000_000),
           'params': [{'key': 'sessionid', 'value': {'string_value': 's'}},
                      {'key': 'pos_x', 'value': {'double_value': -3.25}}]},
      ]}
  assert flatten_record(row) == [
      FlatEvent('START_SESSION', MICROS, {'sessionid': 's', 'age': 41}, 'inst', 'player-9',
                'ANDROID', 'Peru'),
      FlatEvent('PLAYER_MOVE', MICROS + 2_000_000, {'sessionid': 's', 'pos_x': -3.25},
                'inst', 'player-9', 'ANDROID', 'Peru'),
  ]


def test_cloud_functions_payload_with_typed_param_maps():
  payload = {
      'userDim': {'userId': None, 'appInfo': {'appInstanceId': 'inst', 'appPlatform': 'IOS'},
                  'geoInfo': {'country': 'Chile'}},
      'eventDim': [{'name': 'END_SCENE', 'timestampMicros': str(MICROS),
                    'params': {'sessionid': {'stringValue': 's'},
                               'score': {'intValue': '77'},
                               'ratio': {'doubleValue': 0.5}}}]}
  assert flatten_record(payload) == [FlatEvent(
      'END_SCENE', MICROS, {'sessionid': 's', 'score': 77, 'ratio': 0.5}, 'inst', None, 'IOS',
      'Chile')]


def test_flat_custom_producer_json():
  record = {'event_name': 'PLAYER_MOVE', 'event_timestamp': MICROS, 'user_pseudo_id': 'u',
            'platform': 'WEB', 'country': 'Kenya', 'params': {'sessionid': 's', 'pos_x': 1}}
  assert flatten_record(record) == [FlatEvent(
      'PLAYER_MOVE', MICROS, {'sessionid': 's', 'pos_x': 1}, 'u', None, 'WEB', 'Kenya')]


@pytest.mark.parametrize('record, reason', [
    (42, 'record is not a JSON object'),
    (['a'], 'record is not a JSON object'),
    ({'hello': 1}, 'unrecognised record'),
    ({'event_name': 'X', 'event_timestamp': 'soon'}, "event_timestamp 'soon' is not a timestamp"),
    ({'event_name': 'X', 'event_timestamp': MICROS, 'event_params': {'a': 1}},
     'event params must be a list'),
    ({'event_name': 'X', 'event_timestamp': MICROS,
      'event_params': [{'key': 'n', 'value': {'int_value': 'x1'}}]},
     "param 'n': int_value 'x1' is not an integer"),
    ({'event_dim': 'nope'}, 'event_dim must be a list'),
    ({'eventDim': [{'name': '', 'timestampMicros': '1'}]}, 'event without a name'),
])
def test_unusable_records_raise_record_error(record, reason):
  with pytest.raises(RecordError, match=reason.replace('(', r'\(')):
    flatten_record(record)
