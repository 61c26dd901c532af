"""LogEntry JSON -> log_entries rows, for every irregularity real exports have."""
import json

import pytest

from transforms import cloud_logging as cl
from transforms.deadletter import RecordError

REQUEST = {
    'insertId': 'abc123',
    'logName': 'projects/shop-prod/logs/run.googleapis.com%2Frequests',
    'timestamp': '2026-11-26T10:00:01.123456789Z',
    'receiveTimestamp': '2026-11-26T10:00:01.200Z',
    'severity': 'ERROR',
    'httpRequest': {'requestMethod': 'GET', 'requestUrl': 'https://shop/api/cart',
                    'status': 503, 'responseSize': '577', 'latency': '0.005192s',
                    'remoteIp': '203.0.113.7:52341', 'userAgent': 'curl/8.0'},
    'resource': {'type': 'cloud_run_revision',
                 'labels': {'service_name': 'shop-api', 'project_id': 'shop-prod'}},
    'labels': {'instanceId': 'i-1'},
    'trace': 'projects/shop-prod/traces/0af7651916cd43dd8448eb211c80319c',
    'spanId': 'b7ad6b7169203331',
}


def test_request_entry_row_is_exact():
  assert cl.entry_row(REQUEST) == {
      'timestamp': '2026-11-26T10:00:01.123456Z',
      'receive_timestamp': '2026-11-26T10:00:01.200000Z',
      'log_id': 'run.googleapis.com/requests', 'project_id': 'shop-prod',
      'severity': 'ERROR', 'severity_number': 500,
      'resource_type': 'cloud_run_revision',
      'resource_labels': '{"project_id": "shop-prod", "service_name": "shop-api"}',
      'labels': '{"instanceId": "i-1"}', 'text': None, 'payload': None,
      'http_method': 'GET', 'http_url': 'https://shop/api/cart', 'http_status': 503,
      'http_latency_ms': pytest.approx(5.192), 'http_response_size': 577,
      'remote_ip': '203.0.113.7', 'user_agent': 'curl/8.0',
      'trace': 'projects/shop-prod/traces/0af7651916cd43dd8448eb211c80319c',
      'span_id': 'b7ad6b7169203331', 'insert_id': 'abc123'}


@pytest.mark.parametrize('value, expected', [
    (None, ('DEFAULT', 0)), ('INFO', ('INFO', 200)), ('warning', ('WARNING', 400)),
    ('EMERGENCY', ('EMERGENCY', 800)), (500, ('ERROR', 500)), ('600', ('CRITICAL', 600))])
def test_severity_names_numbers_and_absent(value, expected):
  assert cl.severity(value) == expected


def test_unknown_severity_is_an_error():
  with pytest.raises(RecordError, match='not a Cloud Logging severity'):
    cl.severity('LOUD')


@pytest.mark.parametrize('stamp, micros_part', [
    ('2026-11-26T10:00:01.123Z', '123000'), ('2026-11-26T10:00:01.1234Z', '123400'),
    ('2026-11-26T10:00:01.123456Z', '123456'), ('2026-11-26T10:00:01.123456789Z', '123456'),
    ('2026-11-26T10:00:01Z', '000000')])
def test_three_to_nine_fraction_digits(stamp, micros_part):
  row = cl.entry_row(dict(REQUEST, timestamp=stamp))
  assert row['timestamp'] == '2026-11-26T10:00:01.%sZ' % micros_part


def test_receive_timestamp_absent_and_missing_timestamp():
  entry = {k: v for k, v in REQUEST.items() if k != 'receiveTimestamp'}
  assert cl.entry_row(entry)['receive_timestamp'] is None
  only_received = {k: v for k, v in REQUEST.items() if k != 'timestamp'}
  assert cl.entry_row(only_received)['timestamp'] == '2026-11-26T10:00:01.200000Z'
  with pytest.raises(RecordError, match='missing timestamp'):
    cl.entry_row({k: v for k, v in only_received.items() if k != 'receiveTimestamp'})


@pytest.mark.parametrize('latency, ms', [
    ('0.005192s', 5.192), ('60.369159188s', 60369.159188), ('1s', 1000.0),
    ({'seconds': '1', 'nanos': 500000000}, 1500.0)])
def test_latency_durations(latency, ms):
  assert cl.duration_ms(latency, 'latency') == pytest.approx(ms)


@pytest.mark.parametrize('http, reason', [
    ({'latency': 'fast'}, "httpRequest.latency: 'fast' is not a duration"),
    ({'status': 'teapot'}, "httpRequest.status: 'teapot' is not an integer"),
    ({'responseSize': 2**63}, 'is not an INT64'),
])
def test_wrong_types_are_record_errors(http, reason):
  with pytest.raises(RecordError, match=reason):
    cl.entry_row(dict(REQUEST, httpRequest=http))


def test_integers_as_strings():
  row = cl.entry_row(dict(REQUEST, httpRequest={'status': '503', 'responseSize': '577'}))
  assert (row['http_status'], row['http_response_size']) == (503, 577)


@pytest.mark.parametrize('remote, ip', [
    ('203.0.113.7:52341', '203.0.113.7'), ('203.0.113.7', '203.0.113.7'),
    ('2001:db8::1', '2001:db8::1'), ('[2001:db8::1]:443', '2001:db8::1'),
    ('::1', '::1')])
def test_remote_ip_without_port(remote, ip):
  assert cl.client_ip(remote) == ip


@pytest.mark.parametrize('log_name, log, project', [
    ('projects/p/logs/struct_log', 'struct_log', 'p'),
    ('projects/p/logs/cloudaudit.googleapis.com%2Factivity',
     'cloudaudit.googleapis.com/activity', 'p'),
    ('organizations/123/logs/cloudaudit.googleapis.com%2Fdata_access',
     'cloudaudit.googleapis.com/data_access', None)])
def test_log_names_are_decoded(log_name, log, project):
  assert cl.log_id(log_name) == (log, project)


def test_bad_log_name():
  with pytest.raises(RecordError, match='missing logName'):
    cl.entry_row({k: v for k, v in REQUEST.items() if k != 'logName'})
  with pytest.raises(RecordError, match='is not PARENT/ID/logs/LOG_ID'):
    cl.log_id('struct_log')


def test_text_and_payload_for_each_payload_kind():
  base = {'logName': 'projects/p/logs/x', 'timestamp': '2026-11-26T10:00:00Z'}
  text = cl.entry_row(dict(base, textPayload='Traceback (most recent call last):\n  ...'))
  assert (text['text'], text['payload']) == ('Traceback (most recent call last):\n  ...',
                                             None)
  structured = cl.entry_row(dict(base, jsonPayload={'message': 'paid', 'order_id': 7}))
  assert structured['text'] == 'paid'
  assert json.loads(structured['payload']) == {'message': 'paid', 'order_id': 7}
  assert cl.entry_row(dict(base, jsonPayload={'text': 'hi'}))['text'] == 'hi'
  audit = {'@type': 'type.googleapis.com/google.cloud.audit.AuditLog',
           'methodName': 'google.cloud.run.v1.Services.ReplaceService'}
  row = cl.entry_row(dict(base, protoPayload=audit, severity='NOTICE'))
  assert row['text'] == 'google.cloud.run.v1.Services.ReplaceService'
  assert json.loads(row['payload']) == audit
  assert (row['severity'], row['severity_number']) == ('NOTICE', 300)


def test_not_an_object():
  with pytest.raises(RecordError, match='not a JSON object'):
    cl.entry_row([1, 2])


def test_duplicate_key_is_log_name_insert_id_and_timestamp():
  key = cl.duplicate_key(REQUEST)
  assert key == cl.duplicate_key(dict(REQUEST, severity='INFO'))  # a redelivery
  assert key != cl.duplicate_key(dict(REQUEST, insertId='other'))
  assert key != cl.duplicate_key(dict(REQUEST, timestamp='2026-11-26T10:00:02Z'))
  assert key != cl.duplicate_key(dict(REQUEST, logName='projects/p/logs/other'))


def test_odd_values_are_record_errors_not_garbage():
  with pytest.raises(RecordError, match='remoteIp'):
    cl.entry_row(dict(REQUEST, httpRequest={'remoteIp': {'a': 1}}))
  for bad in (500.7, float('inf'), 'LOUD'):
    with pytest.raises(RecordError, match='not a Cloud Logging severity'):
      cl.severity(bad)
  assert cl.severity(500.0) == ('ERROR', 500)


def test_duplicate_key_compares_instants_not_spellings():
  assert cl.duplicate_key(dict(REQUEST, timestamp='2026-11-26T10:00:01.1Z')) == \
      cl.duplicate_key(dict(REQUEST, timestamp='2026-11-26T10:00:01.100000000Z'))
