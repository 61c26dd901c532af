"""Telemetry decoding: saved / push / live Pub/Sub messages -> points -> rows and row keys."""
import base64
import json

import apache_beam as beam
import pytest
from apache_beam.utils.timestamp import Timestamp

import schemas
from transforms import telemetry
from transforms.deadletter import RecordError
from transforms.records import Record
from transforms.telemetry import (
    DecodePoints, ExpandMessages, Message, Point, bigtable_row, decode_point, dedupe_key,
    expand_record, parse_payload, reading_rows, reverse_timestamp, row_key, unwrap_message)

JOB = 'iot_telemetry'
SUBSCRIPTION = 'projects/p/subscriptions/telemetry'
PATH = '/data/messages.json'
T0 = 1539158400_000000                # 2018-10-10T08:00:00Z
T0_TEXT = '2018-10-10T08:00:00.000000Z'
PUBLISH = T0 + 5_000_000              # 2018-10-10T08:00:05Z
READ = T0 + 60_250_000                # 2018-10-10T08:01:00.25Z: the injected clock
NOW = 1539158460.25                   # the same instant in epoch seconds
PAYLOAD = b'{"ts": "2018-10-10T08:00:00Z", "temperature": 21.5}'
DATA = 'eyJ0cyI6ICIyMDE4LTEwLTEwVDA4OjAwOjAwWiIsICJ0ZW1wZXJhdHVyZSI6IDIxLjV9'  # PAYLOAD
ATTRIBUTES = {'deviceId': 'thermo-1', 'deviceRegistryId': 'reg-1',
              'deviceRegistryLocation': 'us-central1', 'projectId': 'proj-1', 'subFolder': ''}


def live(payload, attributes=None, message_id='m1', publish=PUBLISH):
  """A record as ReadRecords makes it from a live Pub/Sub message."""
  return Record(payload, SUBSCRIPTION, attributes, message_id, publish)


def saved(value, line=3):
  """A file line the reader parsed as JSON."""
  return Record(json.dumps(value), PATH, line=line, value=value)


def points(record, read=READ):
  return [decode_point(r, read) for r in expand_record(record)]


def point(record, read=READ):
  [only] = points(record, read)
  return only


def decode_error(record, read=READ):
  """The RecordError message for a record that cannot become points (either stage)."""
  with pytest.raises(RecordError) as info:
    points(record, read)
  return str(info.value)


def json_point(obj, attributes=None, **kwargs):
  return point(live(json.dumps(obj).encode(), attributes, **kwargs))


# --- saved messages --------------------------------------------------------------------

MESSAGE = Message(PAYLOAD, {'deviceId': 'thermo-1'}, '1001', T0 + 123456)


@pytest.mark.parametrize('value', [
    {'attributes': {'deviceId': 'thermo-1'}, 'data': DATA, 'messageId': '1001',
     'publishTime': '2018-10-10T08:00:00.123456Z'},
    {'attributes': {'deviceId': 'thermo-1'}, 'data': DATA, 'message_id': '1001',
     'publish_time': '2018-10-10T08:00:00.123456Z'},
    {'@type': telemetry.PUBSUB_MESSAGE_TYPE, 'attributes': {'deviceId': 'thermo-1'},
     'data': DATA, 'messageId': '1001', 'publishTime': '2018-10-10T08:00:00.123456789Z'},
    {'attributes': {'deviceId': 'thermo-1'}, 'data': DATA, 'messageId': '1001',
     'publishTime': '2018-10-10T10:00:00.123456+02:00', 'orderingKey': 'k'},
    {'message': {'attributes': {'deviceId': 'thermo-1'}, 'data': DATA, 'messageId': '1001',
                 'publishTime': '2018-10-10T08:00:00.123456Z'},
     'subscription': 'projects/p/subscriptions/push'},
    {'message': {'attributes': {'deviceId': 'thermo-1'}, 'data': DATA,
                 'messageId': '1001', 'message_id': '1001',
                 'publishTime': '2018-10-10T08:00:00.123456Z',
                 'publish_time': '2018-10-10T08:00:00.123456Z'},
     'subscription': 'projects/p/subscriptions/push', 'deliveryAttempt': 2},
], ids=['camel', 'snake', 'type_ns', 'offset', 'push', 'push_both_spellings'])
def test_every_saved_message_spelling_unwraps_to_the_same_message(value):
  assert unwrap_message(value) == MESSAGE


@pytest.mark.parametrize('value', [
    {'attributes': {'deviceId': 'thermo-1'}, 'data': DATA, 'messageId': '1001',
     'publishTime': '2018-10-10T08:00:00.123456Z'},
    {'message': {'attributes': {'deviceId': 'thermo-1'}, 'data': DATA,
                 'message_id': '1001', 'publish_time': '2018-10-10T08:00:00.123456Z'},
     'subscription': 'projects/p/subscriptions/push'},
])
def test_saved_message_expands_to_its_payload_with_message_metadata(value):
  record = saved(value)
  [expanded] = expand_record(record)
  assert expanded == Record(record.payload, PATH, {'deviceId': 'thermo-1'}, '1001',
                            T0 + 123456, 3, None)
  assert expanded.value == {'ts': '2018-10-10T08:00:00Z', 'temperature': 21.5}
  assert decode_point(expanded, READ) == Point(
      'thermo-1', None, T0, (('temperature', 21.5),), '1001', T0 + 123456,
      time_source='payload')


def test_message_ids_and_publish_time_are_optional():
  assert unwrap_message({'data': DATA}) == Message(PAYLOAD, {}, None, None)
  assert unwrap_message({'message': {'data': DATA}}) == Message(PAYLOAD, {}, None, None)
  assert unwrap_message({'data': DATA, 'messageId': 77}).message_id == '77'
  assert unwrap_message({'data': DATA, 'attributes': None}).attributes == {}


@pytest.mark.parametrize('value', [
    {'device_id': 'd', 'temperature': 1},
    {'data': DATA, 'attributes': {}, 'extra': 1},           # a key no message has
    {'message': {'data': DATA}, 'subscription': 's', 'x': 1},
    {'message': 'not an object', 'subscription': 's'},
    ['not', 'an', 'object'],
    'text',
    None,
])
def test_plain_payloads_are_not_messages(value):
  assert unwrap_message(value) is None


def test_a_live_message_payload_is_the_devices_even_if_it_looks_saved():
  inner = {'attributes': {'deviceId': 'inner'}, 'data': DATA, 'messageId': 'inner-id'}
  record = live(json.dumps(inner).encode(), {'deviceId': 'outer', 'projectId': 'proj-1'},
                message_id='outer-id', publish=PUBLISH)
  [expanded] = expand_record(record)
  assert expanded.value == inner
  assert (expanded.attributes, expanded.message_id, expanded.publish_time) == (
      {'deviceId': 'outer', 'projectId': 'proj-1'}, 'outer-id', PUBLISH)
  with pytest.raises(RecordError, match="metric 'attributes.deviceId' is not a number"):
    decode_point(expanded, READ)


@pytest.mark.parametrize('data,expected', [
    ('eyJ2IjoxfQ==', b'{"v":1}'),            # standard, padded
    ('eyJ2IjoxfQ', b'{"v":1}'),              # standard, no padding
    (' eyJ2IjoxfQ== ', b'{"v":1}'),          # surrounding whitespace
    ('-_8=', b'\xfb\xff'),                   # URL-safe, padded
    ('-_8', b'\xfb\xff'),                    # URL-safe, no padding
    ('+/8=', b'\xfb\xff'),                   # the same bytes, standard alphabet
    ('+/8', b'\xfb\xff'),
    ('YQ', b'a'),
    ('YWI', b'ab'),
    ('YWJj', b'abc'),
])
def test_base64_standard_and_url_safe_with_or_without_padding(data, expected):
  assert unwrap_message({'data': data}).data == expected


@pytest.mark.parametrize('data', [
    'not base64!',
    'Y',              # a lone 6-bit group
    'YWJjZ',
    '+-_/',           # both alphabets at once
    'YW Jj',
    '%%%%',
])
def test_bad_base64_is_an_error(data):
  with pytest.raises(RecordError, match='message data is not base64'):
    unwrap_message({'data': data})


def test_base64_with_data_after_padding_is_an_error():
  with pytest.raises(RecordError, match='not base64'):
    unwrap_message({'data': 'YQ==YQ=='})


@pytest.mark.parametrize('value,message', [
    ({'attributes': {'deviceId': 'd'}}, 'message has no data'),
    ({'attributes': {'deviceId': 'd'}, 'data': ''}, 'message has no data'),
    ({'attributes': {'deviceId': 'd'}, 'data': None}, 'message has no data'),
    ({'message': {'attributes': {}}}, 'message has no data'),
    ({'messageId': '1'}, 'message has no data'),  # proto3 JSON omits empty bytes
    ({'data': 5, 'messageId': '1'}, 'message data must be a base64 string, not int'),
    ({'data': ['eyJ2IjoxfQ=='], 'messageId': '1'}, 'message data must be a base64 string, not list'),
    ({'data': DATA, 'attributes': {'deviceId': 5}}, 'attributes must be an object of strings'),
    ({'data': DATA, 'attributes': {'on': True}}, 'attributes must be an object of strings'),
    ({'data': DATA, 'attributes': {'x': None}}, 'attributes must be an object of strings'),
    ({'data': DATA, 'attributes': ['deviceId']}, 'attributes must be an object of strings'),
    ({'data': DATA, 'attributes': 'deviceId=d'}, 'attributes must be an object of strings'),
    ({'data': DATA, 'publishTime': 'yesterday'}, "publishTime 'yesterday' is not RFC 3339"),
    ({'data': DATA, 'publishTime': 1539158400}, 'publishTime 1539158400 is not RFC 3339'),
    ({'data': DATA, 'publish_time': ''}, "publishTime '' is not RFC 3339"),
    ({'message': {'data': DATA, 'publishTime': '2018-13-01T00:00:00Z'}},
     'is not RFC 3339'),
])
def test_bad_saved_messages_are_errors(value, message):
  with pytest.raises(RecordError, match=message.replace('(', r'\(')):
    unwrap_message(value)
  with pytest.raises(RecordError):
    expand_record(saved(value))


def test_empty_list_attributes_are_an_error():
  with pytest.raises(RecordError, match='attributes must be an object'):
    unwrap_message({'data': DATA, 'attributes': []})


def test_publish_time_at_the_epoch_is_kept():
  value = {'attributes': {'deviceId': 'd'}, 'message_id': '1',
           'data': base64.b64encode(b'{"v": 1}').decode(),
           'publishTime': '1970-01-01T00:00:00Z'}
  p = point(saved(value))
  assert (p.micros, p.time_source, p.publish_micros) == (0, 'publish', 0)


def test_live_payload_with_a_data_metric_is_not_a_message():
  p = point(live(b'{"data": 21.5}', {'deviceId': 'd'}))
  assert p.metrics == (('data', 21.5),)


def test_saved_message_with_line_protocol_data_expands_per_line():
  data = base64.b64encode(b'cpu,device_id=d u=1 1000\ncpu,device_id=d u=2 2000').decode()
  record = saved({'data': data, 'messageId': '9'})
  expanded = expand_record(record)
  assert [(r.part, r.value, r.message_id) for r in expanded] == [
      (0, 'cpu,device_id=d u=1 1000', '9'), (1, 'cpu,device_id=d u=2 2000', '9')]
  assert all(r.payload == record.payload and r.line == 3 for r in expanded)


@pytest.mark.parametrize('data,message', [
    (base64.b64encode(b'\xff\xfe').decode(), 'payload is not UTF-8 text'),
    (base64.b64encode(b'[1, 2]').decode(), 'payload is a JSON array, not an object'),
    (base64.b64encode(b'   ').decode(), 'payload is empty'),
])
def test_saved_message_with_a_bad_payload_is_an_error(data, message):
  with pytest.raises(RecordError, match=message):
    expand_record(saved({'data': data}))


# --- payloads --------------------------------------------------------------------------

def test_parse_payload_json_and_line_protocol():
  assert parse_payload(b' {"a": 1}\n') == {'a': 1}
  assert parse_payload('# header\ncpu v=1\r\n\n  # note\ncpu v=2 5\n') == [
      'cpu v=1', 'cpu v=2 5']


@pytest.mark.parametrize('payload,message', [
    (b'', 'payload is empty'),
    (b' \r\n\t', 'payload is empty'),
    (b'# only\n# comments', 'payload has only line-protocol comments'),
    (b'[{"device_id": "d", "v": 1}]', 'payload is a JSON array, not an object'),
    (b'"cpu v=1"', 'payload is a JSON string, not an object'),
    (b'{"v": 1', 'invalid JSON'),
    (b'\xff\xfe{}', 'payload is not UTF-8 text'),
    (b'{"v": "\xe9"}', 'payload is not UTF-8 text'),
    ('{"v": 1, "x": "\udcff"}', 'payload is not valid UTF-8 text'),  # surrogateescape
])
def test_bad_payloads_are_errors(payload, message):
  with pytest.raises(RecordError, match=message):
    parse_payload(payload)
  with pytest.raises(RecordError, match=message):
    expand_record(live(payload, {'deviceId': 'd'}))


@pytest.mark.parametrize('payload', [b'42', b'-1.5', b'true', b'null', b'[1]', b'"x"'])
def test_non_object_json_payloads_are_errors(payload):
  decode_error(live(payload, {'deviceId': 'd'}))


@pytest.mark.parametrize('value,kind', [
    ([1, 2], 'array'), ('text', 'string'), (42, 'number'), (1.5, 'number'),
    (None, 'null'), (True, 'boolean')])
def test_parsed_file_records_must_be_objects(value, kind):
  with pytest.raises(RecordError, match='record is a JSON %s, not an object' % kind):
    expand_record(saved(value))


def test_raw_file_line_of_line_protocol():
  record = Record('weather,device_id=d temp=20.5 1539158400000000000', PATH, line=7)
  [expanded] = expand_record(record)
  assert expanded == Record(record.payload, PATH, None, None, None, 7, None)
  assert expanded.value == 'weather,device_id=d temp=20.5 1539158400000000000'
  assert decode_point(expanded, READ) == Point(
      'd', None, T0, (('temp', 20.5),), measurement='weather', tags={'device_id': 'd'})


def test_raw_file_line_that_is_not_utf8_is_an_error():
  record = Record('cpu,device_id=d v=1 \udcff', PATH, line=2)
  with pytest.raises(RecordError, match='not valid UTF-8'):
    expand_record(record)


# --- JSON points -----------------------------------------------------------------------

@pytest.mark.parametrize('key', telemetry.TIME_KEYS)
@pytest.mark.parametrize('raw,micros', [
    ('2018-10-10T08:00:00Z', T0),
    ('2018-10-10T08:00:00.5z', T0 + 500000),
    ('2018-10-10T10:00:00.25+02:00', T0 + 250000),
    ('2018-10-10T03:00:00-05:00', T0),
    ('2018-10-10T08:00:00.123456789Z', T0 + 123456),   # ns digits: truncated
    ('2018-10-10T08:00:00.999999999Z', T0 + 999999),
    (1539158400, T0),                                  # epoch s
    (1539158400.25, T0 + 250000),                      # epoch s, float
    (1539158400123, T0 + 123000),                      # epoch ms
    (1539158400123.5, T0 + 123500),                    # epoch ms, float
    ('1539158400', T0),                                # numeric string
    (0, 0),
])
def test_json_payload_time_in_each_form(key, raw, micros):
  p = json_point({'device_id': 'd', key: raw, 'v': 1})
  assert (p.micros, p.time_source, p.metrics) == (micros, 'payload', (('v', 1.0),))


def test_ts_wins_over_timestamp_and_time_and_none_is_skipped():
  p = json_point({'device_id': 'd', 'time': 1539158401, 'timestamp': 1539158402,
                  'ts': 1539158400, 'v': 1})
  assert (p.micros, p.metrics) == (T0, (('v', 1.0),))
  p = json_point({'device_id': 'd', 'ts': None, 'time': 1539158400, 'v': 1})
  assert (p.micros, p.time_source) == (T0, 'payload')


def test_time_falls_back_to_publish_then_read_time():
  p = json_point({'device_id': 'd', 'v': 1}, publish=PUBLISH)
  assert (p.micros, p.time_source, p.publish_micros) == (PUBLISH, 'publish', PUBLISH)
  p = json_point({'device_id': 'd', 'v': 1}, publish=None)
  assert (p.micros, p.time_source, p.publish_micros) == (READ, 'read', None)
  p = point(saved({'device_id': 'd', 'v': 1}))
  assert (p.micros, p.time_source, p.message_id) == (READ, 'read', None)
  p = json_point({'device_id': 'd', 'ts': None, 'v': 1}, publish=None)
  assert (p.micros, p.time_source) == (READ, 'read')


@pytest.mark.parametrize('raw', [
    'yesterday', '', '2018-10-10T25:00:00Z', True, False, [1539158400], {'s': 1},
    10**22, -10**22, '99999999999999999999999', 1e300, -1, '1969-12-31T23:59:59Z',
    '2100-01-01T00:00:00Z', 4102444800])
def test_bad_payload_times_are_errors(raw):
  message = decode_error(live(json.dumps({'device_id': 'd', 'ts': raw, 'v': 1}).encode()))
  assert 'is not RFC 3339 or epoch s/ms' in message or 'outside 1970-2099' in message


def test_the_last_moment_of_2099_is_accepted():
  p = json_point({'device_id': 'd', 'ts': '2099-12-31T23:59:59.999999Z', 'v': 1})
  assert p.micros == telemetry.MAX_MICROS


@pytest.mark.parametrize('raw', ['NaN', 'Infinity', '-Infinity'])
def test_non_finite_payload_times_are_errors(raw):
  payload = ('{"device_id": "d", "ts": %s, "v": 1}' % raw).encode()
  assert 'is not RFC 3339 or epoch s/ms' in decode_error(live(payload))


def test_json_point_with_every_attribute():
  p = json_point({'ts': '2018-10-10T08:00:00Z', 'temperature': 21.5, 'humidity': 40},
                 dict(ATTRIBUTES, gatewayId='gw-1'))
  assert p == Point('thermo-1', 'reg-1', T0, (('temperature', 21.5), ('humidity', 40.0)),
                    'm1', PUBLISH, 'us-central1', 'proj-1', '', 'gw-1', None, None,
                    'payload')
  assert p.sub_folder == ''


def test_nested_objects_flatten_with_dots_in_payload_order():
  p = json_point({'device_id': 'd', 'a': {'b': 1, 'c': {'d': 2}}, 'e': 3.5})
  assert p.metrics == (('a.b', 1.0), ('a.c.d', 2.0), ('e', 3.5))


@pytest.mark.parametrize('obj, message', [
    ({'device_id': 'd', 'status': {}}, "metric 'status' is an empty object"),
    ({'device_id': 'd', 'a': {'b': {}}}, "metric 'a.b' is an empty object"),
    ({'device_id': 'd', 'a.b': 1, 'a': {'b': 2}}, "metric 'a.b' is given twice"),
    ({'device_id': 'd', 'v': 1e151}, "metric 'v' is out of range"),
    ({'device_id': 'd', 'v': -1e151}, "metric 'v' is out of range"),
])
def test_metric_shapes_that_are_errors(obj, message):
  assert message in decode_error(live(json.dumps(obj).encode()))


def test_booleans_are_one_and_zero():
  p = json_point({'device_id': 'd', 'door_open': True, 'nested': {'alarm': False}})
  assert p.metrics == (('door_open', 1.0), ('nested.alarm', 0.0))
  assert all(type(value) is float for _, value in p.metrics)


def test_integers_become_floats():
  p = json_point({'device_id': 'd', 'count': 7, 'big': 2**64})
  assert p.metrics == (('count', 7.0), ('big', 18446744073709551616.0))
  assert all(type(value) is float for _, value in p.metrics)


@pytest.mark.parametrize('fragment,message', [
    ('"v": "21.5"', "metric 'v' is not a number: '21.5'"),
    ('"v": null', "metric 'v' is null"),
    ('"v": [1, 2]', "metric 'v' is not a number: '[1, 2]'"),
    ('"v": NaN', "metric 'v' is not finite: nan"),
    ('"v": Infinity', "metric 'v' is not finite: inf"),
    ('"v": -Infinity', "metric 'v' is not finite: -inf"),
    ('"v": 1e400', "metric 'v' is not finite: inf"),
    ('"v": -1e400', "metric 'v' is not finite: -inf"),
    ('"v": 1' + '0' * 400, "metric 'v' is out of range: 1000"),
    ('"a": {"b": "x"}', "metric 'a.b' is not a number: 'x'"),
    ('"a": {"b": null}', "metric 'a.b' is null"),
])
def test_each_bad_metric_kind_is_an_error(fragment, message):
  payload = ('{"device_id": "d", "ok": 1, %s}' % fragment).encode()
  assert message in decode_error(live(payload))


def test_long_bad_values_are_cut_short_in_the_message():
  message = decode_error(live(json.dumps({'device_id': 'd', 'v': 'x' * 500}).encode()))
  assert message == "metric 'v' is not a number: '%s...'" % ('x' * 80)


@pytest.mark.parametrize('obj,name', [
    ({'': 1}, ''),
    ({'a': {'': 1}}, 'a.'),
    ({'': {'b': 1}}, '.b'),
    ({'a.': 1}, 'a.'),
    ({'.a': 1}, '.a'),
    ({'a..b': 1}, 'a..b'),
    ({'a.': {'b': 1}}, 'a..b'),
])
def test_empty_metric_name_parts_are_errors(obj, name):
  message = decode_error(live(json.dumps(dict(obj, device_id='d')).encode()))
  assert message == 'metric name %r has an empty part' % name


def test_dotted_top_level_key_is_a_metric_name():
  assert json_point({'device_id': 'd', 'a.b': 1}).metrics == (('a.b', 1.0),)


def test_point_without_metrics_is_not_an_error():
  p = json_point({'device_id': 'd', 'ts': 1539158400, 'registry_id': 'r'})
  assert (p.device_id, p.registry_id, p.micros, p.metrics) == ('d', 'r', T0, ())


@pytest.mark.parametrize('obj,device,registry', [
    ({'device_id': 'd-1', 'registry_id': 'r-1'}, 'd-1', 'r-1'),
    ({'deviceId': 'd-1', 'registryId': 'r-1'}, 'd-1', 'r-1'),
    ({'device_id': 'snake', 'deviceId': 'camel'}, 'snake', None),
    ({'device_id': None, 'deviceId': 'camel'}, 'camel', None),
    ({'device_id': 42, 'registry_id': 7}, '42', '7'),
    ({'device_id': -1}, '-1', None),
    ({'device_id': 'x' * 256}, 'x' * 256, None),
    ({'device_id': 'thermo 1/ünïcode'}, 'thermo 1/ünïcode', None),
])
def test_device_identity_from_the_payload(obj, device, registry):
  p = json_point(dict(obj, v=1))
  assert (p.device_id, p.registry_id, p.metrics) == (device, registry, (('v', 1.0),))


@pytest.mark.parametrize('obj,message', [
    ({'device_id': 'a#b'}, "device id 'a#b' holds # or a control character"),
    ({'device_id': 'a\x01b'}, "device id 'a\\x01b' holds # or a control character"),
    ({'device_id': 'a\nb'}, 'holds # or a control character'),
    ({'device_id': 'a\x7f'}, 'holds # or a control character'),
    ({'device_id': 'x' * 257}, 'device id must be 1 to 256 characters'),
    ({'device_id': ''}, 'device id must be 1 to 256 characters'),
    ({'device_id': True}, "device id must be a string, not 'True'"),
    ({'device_id': False}, "device id must be a string, not 'False'"),
    ({'device_id': 1.5}, "device id must be a string, not '1.5'"),
    ({'device_id': 1.0}, "device id must be a string, not '1.0'"),
    ({'device_id': ['d']}, 'device id must be a string'),
    ({'device_id': {'id': 'd'}}, 'device id must be a string'),
    ({'device_id': 'd', 'registry_id': 'r#1'}, "registry id 'r#1' holds #"),
    ({'device_id': 'd', 'registry_id': True}, 'registry id must be a string'),
    ({'device_id': 'd', 'registryId': 'r' * 257}, 'registry id must be 1 to 256'),
    ({}, 'no device id: no deviceId attribute and no device_id/deviceId in the payload'),
    ({'device_id': None}, 'no device id'),
])
def test_bad_device_identity_is_an_error(obj, message):
  assert message in decode_error(live(json.dumps(dict(obj, v=1)).encode()))


def test_attributes_win_over_the_payload():
  p = json_point({'device_id': 'payload-d', 'registry_id': 'payload-r', 'v': 1},
                 {'deviceId': 'attr-d', 'deviceRegistryId': 'attr-r'})
  assert (p.device_id, p.registry_id, p.metrics) == ('attr-d', 'attr-r', (('v', 1.0),))
  # an attribute the payload lacks, and the other way round
  p = json_point({'registry_id': 'payload-r', 'v': 1}, {'deviceId': 'attr-d'})
  assert (p.device_id, p.registry_id) == ('attr-d', 'payload-r')
  # an empty attribute is as good as none
  p = json_point({'device_id': 'payload-d', 'v': 1}, {'deviceId': '', 'deviceRegistryId': ''})
  assert (p.device_id, p.registry_id) == ('payload-d', None)


def test_winning_attribute_hides_a_bad_payload_id_but_is_validated_itself():
  p = json_point({'device_id': True, 'registry_id': 'r#', 'v': 1},
                 {'deviceId': 'd', 'deviceRegistryId': 'r'})
  assert (p.device_id, p.registry_id, p.metrics) == ('d', 'r', (('v', 1.0),))
  record = live(b'{"v": 1}', {'deviceId': 'a#b'})
  assert decode_error(record) == "device id 'a#b' holds # or a control character"
  record = live(b'{"v": 1}', {'deviceId': 'd', 'deviceRegistryId': 'r\x00'})
  assert 'registry id' in decode_error(record)


# --- line protocol ---------------------------------------------------------------------

GATEWAY_BATCH = (
    b'# gateway gw-1, batch 17\n'
    b'weather,device_id=d1,registry_id=r1,site=roof temp=21.5,hum=40i,ok=t,'
    b'total=18446744073709551615u 1539158400123456789\r\n'
    b'\n'
    b'weather,deviceId=d2,registryId=r2 temp=-3,ok=F 1539158400000000999\n')


def test_multi_line_protocol_message_with_a_comment_line():
  record = live(GATEWAY_BATCH, {'gatewayId': 'gw-1'})
  expanded = expand_record(record)
  assert [(r.part, r.value) for r in expanded] == [
      (0, 'weather,device_id=d1,registry_id=r1,site=roof temp=21.5,hum=40i,ok=t,'
          'total=18446744073709551615u 1539158400123456789'),
      (1, 'weather,deviceId=d2,registryId=r2 temp=-3,ok=F 1539158400000000999')]
  assert all(r.payload == GATEWAY_BATCH and r.message_id == 'm1' for r in expanded)
  assert [decode_point(r, READ) for r in expanded] == [
      Point('d1', 'r1', T0 + 123456,
            (('temp', 21.5), ('hum', 40.0), ('ok', 1.0), ('total', 18446744073709551615.0)),
            'm1', PUBLISH, gateway_id='gw-1', measurement='weather',
            tags={'device_id': 'd1', 'registry_id': 'r1', 'site': 'roof'}),
      Point('d2', 'r2', T0, (('temp', -3.0), ('ok', 0.0)), 'm1', PUBLISH,
            gateway_id='gw-1', measurement='weather',
            tags={'deviceId': 'd2', 'registryId': 'r2'}),
  ]


def test_line_protocol_attributes_win_over_tags():
  p = point(live(b'cpu,device_id=tag-d,registry_id=tag-r usage=0.5', ATTRIBUTES))
  assert p == Point('thermo-1', 'reg-1', PUBLISH, (('usage', 0.5),), 'm1', PUBLISH,
                    'us-central1', 'proj-1', '', None, 'cpu',
                    {'device_id': 'tag-d', 'registry_id': 'tag-r'}, 'publish')


def test_line_protocol_without_timestamp_falls_back_to_publish_then_read():
  p = point(live(b'cpu,device_id=d usage=1'))
  assert (p.micros, p.time_source) == (PUBLISH, 'publish')
  p = point(live(b'cpu,device_id=d usage=1', publish=None))
  assert (p.micros, p.time_source) == (READ, 'read')


@pytest.mark.parametrize('ns,micros,event_time', [
    (1539158400123456789, T0 + 123456, '2018-10-10T08:00:00.123456Z'),
    (1539158400000000999, T0, T0_TEXT),
    (1999, 1, '1970-01-01T00:00:00.000001Z'),
    (0, 0, '1970-01-01T00:00:00.000000Z'),
    (1539158400000001500, T0 + 1, '2018-10-10T08:00:00.000001Z'),  # floored
])
def test_line_protocol_ns_timestamp_is_floored_to_micros(ns, micros, event_time):
  p = point(live(b'cpu,device_id=d v=1 %d' % ns))
  assert (p.micros, p.time_source) == (micros, 'payload')
  assert reading_rows(p)[0]['event_time'] == event_time


def test_line_protocol_point_without_fields_from_tags_only_is_a_syntax_error():
  assert 'neither a JSON object nor line protocol' in decode_error(
      live(b'cpu,device_id=d'))


@pytest.mark.parametrize('payload,message', [
    (b'cpu,device_id=d msg="hi",v=1', "metric 'msg' is a string, not a number: 'hi'"),
    (b'cpu,device_id=d v=1,msg=""', "metric 'msg' is a string, not a number: ''"),
    (b'cpu v=1', 'no device id: no deviceId attribute and no device_id/deviceId tag'),
    (b'cpu,device_id=a#b v=1', "device id 'a#b' holds # or a control character"),
    (b'cpu,device_id=d,registry_id=r#1 v=1', "registry id 'r#1' holds #"),
    (b'not line protocol at all', 'payload is neither a JSON object nor line protocol: '),
    (b'cpu,device_id=d v=', 'payload is neither a JSON object nor line protocol: '),
    (b'cpu,device_id=d v=1 12:00', 'payload is neither a JSON object nor line protocol: '),
    (b'cpu,device_id=d v=1,v2=abc', 'payload is neither a JSON object nor line protocol: '),
    (b'cpu,device_id=d,device_id=e v=1', 'neither a JSON object nor line protocol: '
     "duplicate tag 'device_id'"),
])
def test_bad_line_protocol_points_are_errors(payload, message):
  assert message in decode_error(live(payload))


def test_one_bad_line_fails_only_its_own_point():
  expanded = expand_record(live(b'cpu,device_id=d v=1 1000\ncpu,device_id=d v=\n'))
  assert [r.part for r in expanded] == [0, 1]
  assert decode_point(expanded[0], READ).metrics == (('v', 1.0),)
  with pytest.raises(RecordError, match='neither a JSON object nor line protocol'):
    decode_point(expanded[1], READ)


# --- expand_record ---------------------------------------------------------------------

def test_expand_record_one_point_has_no_part_and_keeps_everything():
  record = live(PAYLOAD, ATTRIBUTES)
  [expanded] = expand_record(record)
  assert expanded == Record(PAYLOAD, SUBSCRIPTION, ATTRIBUTES, 'm1', PUBLISH, None, None)
  assert expanded.value == {'ts': '2018-10-10T08:00:00Z', 'temperature': 21.5}
  assert expanded.location == SUBSCRIPTION


def test_expand_record_numbers_several_points_from_zero():
  payload = b'a,device_id=d v=1\n# skip\na,device_id=d v=2\na,device_id=d v=3\n'
  record = Record(payload, PATH, {'projectId': 'p'}, 'mid', PUBLISH, 4)
  expanded = expand_record(record)
  assert expanded == [Record(payload, PATH, {'projectId': 'p'}, 'mid', PUBLISH, 4, part)
                      for part in (0, 1, 2)]
  assert [r.value for r in expanded] == [
      'a,device_id=d v=1', 'a,device_id=d v=2', 'a,device_id=d v=3']
  assert [r.location for r in expanded] == [
      PATH + ':4#0', PATH + ':4#1', PATH + ':4#2']


def test_expand_record_of_a_parsed_plain_json_line():
  value = {'device_id': 'd', 'ts': 1539158400, 'v': 2}
  record = saved(value, line=12)
  [expanded] = expand_record(record)
  assert expanded == Record(record.payload, PATH, None, None, None, 12, None)
  assert expanded.value is value


def test_expand_record_without_attributes_keeps_none():
  [expanded] = expand_record(live(b'{"device_id": "d", "v": 1}', {}))
  assert expanded.attributes is None


# --- dedupe keys -----------------------------------------------------------------------

def test_dedupe_key_format():
  p = Point('d', 'r', T0, (('temp', 21.5), ('hum', 40.0)), 'm1', PUBLISH,
            measurement='weather')
  assert dedupe_key(p) == '["r","d","1539158400000000","weather",[],[["hum",40.0],["temp",21.5]]]'
  p = Point('d', None, READ, (('v', 1.0),), 'm1', None, time_source='read')
  assert dedupe_key(p) == '[null,"d","id:m1",null,[],[["v",1.0]]]'
  p = Point('d', None, READ, (('v', 1.0),), None, None, time_source='read')
  assert dedupe_key(p) == '[null,"d","read:1539158460250000",null,[],[["v",1.0]]]'


def test_dedupe_key_same_reading_same_key():
  payload = b'{"ts": 1539158400, "device_id": "d", "a": 1, "b": 2}'
  first = point(live(payload, message_id='m1', publish=PUBLISH))
  redelivered = point(live(payload, message_id='m1', publish=PUBLISH), read=READ + 10)
  retried = point(live(payload, message_id='m2', publish=PUBLISH + 3_000_000))
  reordered = point(live(b'{"b": 2.0, "a": 1, "ts": "2018-10-10T08:00:00Z", "deviceId": "d"}',
                         message_id='m3'))
  from_file = point(saved({'device_id': 'd', 'ts': 1539158400000, 'a': True, 'b': 2}))
  assert len({dedupe_key(p) for p in (first, redelivered, retried, reordered,
                                      from_file)}) == 1
  # publish-timed: a redelivery keeps its publish time
  a = point(live(b'{"device_id": "d", "v": 1}', message_id='m1', publish=PUBLISH))
  b = point(live(b'{"device_id": "d", "v": 1}', message_id='m1', publish=PUBLISH), READ + 1)
  assert a.time_source == 'publish' and dedupe_key(a) == dedupe_key(b)
  # read-timed: the message id, whenever it is read
  a = point(live(b'{"device_id": "d", "v": 1}', message_id='m1', publish=None), READ)
  b = point(live(b'{"device_id": "d", "v": 1}', message_id='m1', publish=None), READ + 5)
  assert a.time_source == 'read' and dedupe_key(a) == dedupe_key(b)


def test_dedupe_key_different_readings_different_keys():
  base = Point('d', 'r', T0, (('v', 1.0),), 'm1', PUBLISH)
  variants = [
      base,
      base._replace(device_id='e'),
      base._replace(registry_id='s'),
      base._replace(registry_id=None),
      base._replace(micros=T0 + 1),
      base._replace(metrics=(('v', 2.0),)),
      base._replace(metrics=(('w', 1.0),)),
      base._replace(metrics=(('v', 1.0), ('w', 1.0))),
      base._replace(measurement='cpu'),
  ]
  assert len({dedupe_key(p) for p in variants}) == len(variants)
  # message id and publish time do not matter for payload-timed points
  assert dedupe_key(base._replace(message_id='m2', publish_micros=None)) == dedupe_key(base)
  # read-timed points: other message ids, or no id and other read times, differ
  read = base._replace(micros=READ, time_source='read')
  assert dedupe_key(read) != dedupe_key(read._replace(message_id='m2'))
  assert dedupe_key(read) == dedupe_key(read._replace(micros=READ + 1))
  no_id = read._replace(message_id=None)
  assert dedupe_key(no_id) != dedupe_key(no_id._replace(micros=READ + 1))
  assert dedupe_key(no_id) != dedupe_key(read)


def test_dedupe_key_keeps_line_protocol_series_apart():
  payload = (b'cpu,device_id=d,core=0 usage=5 1539158400000000000\n'
             b'cpu,device_id=d,core=1 usage=5 1539158400000000000')
  first, second = points(live(payload))
  assert dedupe_key(first) != dedupe_key(second)


# --- rows ------------------------------------------------------------------------------

FULL = Point('thermo-1', 'reg-1', T0 + 123456, (('temp', 21.5), ('hum', 40.0)), 'm1',
             PUBLISH, 'us-central1', 'proj-1', '', 'gw-1', 'weather',
             {'site': 'roof', 'device_id': 'thermo-1'}, 'payload')
BARE = Point('d', None, T0, (('v', 0.1),), time_source='read')


def test_reading_rows_one_per_metric():
  shared = {
      'event_time': '2018-10-10T08:00:00.123456Z', 'device_id': 'thermo-1',
      'registry_id': 'reg-1', 'publish_time': '2018-10-10T08:00:05.000000Z',
      'message_id': 'm1', 'registry_location': 'us-central1', 'project_id': 'proj-1',
      'sub_folder': '', 'gateway_id': 'gw-1', 'measurement': 'weather',
      'tags': '{"device_id": "thermo-1", "site": "roof"}'}
  assert reading_rows(FULL) == [dict(shared, metric='temp', value=21.5),
                                dict(shared, metric='hum', value=40.0)]
  assert reading_rows(BARE) == [{
      'event_time': T0_TEXT, 'device_id': 'd', 'registry_id': None, 'publish_time': None,
      'message_id': None, 'registry_location': None, 'project_id': None,
      'sub_folder': None, 'gateway_id': None, 'measurement': None, 'tags': None,
      'metric': 'v', 'value': 0.1}]
  assert reading_rows(BARE._replace(metrics=())) == []
  assert reading_rows(BARE._replace(tags={}))[0]['tags'] is None


def test_reverse_timestamp():
  assert reverse_timestamp(0) == '9223372036854775807'
  assert reverse_timestamp(T0) == '9221832878454775807'
  assert reverse_timestamp(telemetry.MAX_MICROS) == '9219269592054775808'
  assert reverse_timestamp(2**63 - 1 - 5) == '0000000000000000005'
  for micros in (telemetry.MIN_MICROS, 0, T0, telemetry.MAX_MICROS):
    assert len(reverse_timestamp(micros)) == 19


def test_row_key():
  assert row_key('reg-1', 'thermo-1', T0) == 'reg-1#thermo-1#9221832878454775807'
  assert row_key(None, 'thermo-1', T0) == '-#thermo-1#9221832878454775807'
  assert row_key('', 'thermo-1', T0) == '-#thermo-1#9221832878454775807'


def test_row_keys_sort_newest_first():
  times = [telemetry.MIN_MICROS, 1, 999, 1000, 10**15, T0, T0 + 1, 4 * 10**15,
           telemetry.MAX_MICROS]
  assert times == sorted(times)
  keys = [row_key('reg', 'dev', micros) for micros in times]
  assert sorted(keys) == keys[::-1]
  newest = bigtable_row(BARE._replace(micros=T0 + 1))['row_key']
  oldest = bigtable_row(BARE._replace(micros=T0 - 1))['row_key']
  assert sorted([oldest, bigtable_row(BARE)['row_key'], newest]) == [
      newest, bigtable_row(BARE)['row_key'], oldest]


def test_bigtable_row_cells_in_family_m_at_millisecond_time():
  assert bigtable_row(FULL) == {
      'event_time': '2018-10-10T08:00:00.123456Z',
      'row_key': 'reg-1#thermo-1#9221832878454652351',
      'device_id': 'thermo-1',
      'registry_id': 'reg-1',
      'cells': [
          {'family': 'm', 'column': 'temp', 'value': '21.5',
           'timestamp': '2018-10-10T08:00:00.123000Z'},
          {'family': 'm', 'column': 'hum', 'value': '40.0',
           'timestamp': '2018-10-10T08:00:00.123000Z'},
      ],
  }


@pytest.mark.parametrize('micros,cell_time', [
    (T0 + 999, T0_TEXT),
    (-1500, '1969-12-31T23:59:59.998000Z'),     # floored before 1970 too
    (-1000, '1969-12-31T23:59:59.999000Z'),
])
def test_bigtable_cell_time_is_floored_to_milliseconds(micros, cell_time):
  row = bigtable_row(BARE._replace(micros=micros))
  assert [c['timestamp'] for c in row['cells']] == [cell_time]


@pytest.mark.parametrize('value,text', [
    (0.1, '0.1'), (1.0, '1.0'), (-3.0, '-3.0'), (1e-07, '1e-07'), (1e+16, '1e+16'),
    (18446744073709551615.0, '1.8446744073709552e+19'), (1 / 3, '0.3333333333333333')])
def test_bigtable_cell_values_are_float_repr(value, text):
  assert bigtable_row(BARE._replace(metrics=(('v', value),)))['cells'][0]['value'] == text


def test_bigtable_row_unknown_registry_and_no_metrics():
  row = bigtable_row(BARE._replace(metrics=()))
  assert row == {'event_time': T0_TEXT, 'row_key': '-#d#9221832878454775807',
                 'device_id': 'd', 'registry_id': None, 'cells': []}


@pytest.mark.parametrize('p', [
    FULL, BARE,
    BARE._replace(micros=telemetry.MIN_MICROS),
    BARE._replace(micros=telemetry.MAX_MICROS),
    BARE._replace(micros=-1500),
], ids=['full', 'bare', 'year_1', 'year_9999', 'pre_1970'])
def test_rows_conform_to_their_schemas(p):
  for row in reading_rows(p):
    assert schemas.row_problems(JOB, 'readings', row) == []
  assert schemas.row_problems(JOB, 'bigtable_rows', bigtable_row(p)) == []


def test_decoded_rows_conform_to_their_schemas():
  decoded = (points(live(GATEWAY_BATCH, dict(ATTRIBUTES, gatewayId='gw')))
             + points(live(PAYLOAD, {'deviceId': 'd'})) + points(saved({'device_id': 'd', 'v': {'w': 1}})))
  for p in decoded:
    for row in reading_rows(p):
      assert schemas.row_problems(JOB, 'readings', row) == []
    assert schemas.row_problems(JOB, 'bigtable_rows', bigtable_row(p)) == []


# --- DoFns -----------------------------------------------------------------------------

def test_expand_messages_dofn():
  record = live(b'a,device_id=d v=1\na,device_id=d v=2')
  out = list(ExpandMessages().process(record))
  assert out == expand_record(record)
  assert [(r.part, r.value) for r in out] == [(0, 'a,device_id=d v=1'),
                                              (1, 'a,device_id=d v=2')]
  with pytest.raises(RecordError, match='payload is empty'):
    list(ExpandMessages().process(live(b'')))


def test_decode_points_dofn_yields_timestamped_keyed_points():
  fn = DecodePoints(JOB, lambda: NOW)
  [expanded] = expand_record(live(PAYLOAD, {'deviceId': 'd'}))
  [out] = list(fn.process(expanded))
  p = Point('d', None, T0, (('temperature', 21.5),), 'm1', PUBLISH)
  assert isinstance(out, beam.window.TimestampedValue)
  assert out.value == (dedupe_key(p), p)
  assert out.timestamp == Timestamp(micros=T0)


def test_decode_points_dofn_uses_the_clock_for_read_time():
  fn = DecodePoints(JOB, lambda: NOW)
  [expanded] = expand_record(live(b'{"device_id": "d", "v": 1}', publish=None))
  [out] = list(fn.process(expanded))
  key, p = out.value
  assert (p.micros, p.time_source) == (READ, 'read')
  assert key == '[null,"d","id:m1",null,[],[["v",1.0]]]'
  assert out.timestamp == Timestamp(micros=READ)


def test_decode_points_dofn_refuses_pre_1970_timestamps():
  fn = DecodePoints(JOB, lambda: NOW)
  [expanded] = expand_record(live(b'cpu,device_id=d v=1 -1500'))
  with pytest.raises(RecordError, match='outside 1970-2099'):
    list(fn.process(expanded))


def test_decode_points_dofn_filters_points_without_metrics_and_raises_on_bad_ones():
  fn = DecodePoints(JOB, lambda: NOW)
  [heartbeat] = expand_record(live(b'{"device_id": "d", "ts": 1539158400}'))
  assert list(fn.process(heartbeat)) == []
  [bad] = expand_record(live(b'{"device_id": "d", "v": "high"}'))
  with pytest.raises(RecordError, match="metric 'v' is not a number"):
    list(fn.process(bad))


@pytest.mark.parametrize('payload, message', [
    (b'{"device_id": "d", "t\\ud800": 1}', 'not valid UTF-8'),
    (b'{"device_id": "d", "v": ' + b'[' * 600 + b']' * 600 + b'}', 'nested deeper'),
])
def test_payloads_that_would_break_later_steps_are_errors(payload, message):
  with pytest.raises(RecordError, match=message):
    expand_record(live(payload))
  data = base64.b64encode(payload).decode()
  with pytest.raises(RecordError, match=message):
    expand_record(saved({'data': data, 'messageId': '1'}))


@pytest.mark.parametrize('publish', ['1969-12-31T23:59:59Z', '2100-01-01T00:00:00Z',
                                     '9999-12-31T23:59:59-01:00'])
def test_publish_times_outside_the_range_are_errors(publish):
  with pytest.raises(RecordError, match='outside 1970-2099'):
    unwrap_message({'data': DATA, 'publishTime': publish})
