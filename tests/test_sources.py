"""ReadRecords + ParseJsonRecords: any JSON file layout in, parsed records and error rows out."""
import base64
import datetime
import gzip

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

import schemas
from transforms.records import Record
from transforms.sources import (
    ParseJsonRecords, ReadRecords, is_bigquery_table, is_pubsub, record_from_pubsub)

JOB = 'game_analytics'
NOW = 1539158400.25  # the injected clock: 2018-10-10T08:00:00.250000Z
NOW_TEXT = '2018-10-10T08:00:00.250000Z'


def located_values(records):
  return records | 'Located' >> beam.Map(lambda r: (r.location, r.value))


def error_prefix(row, prefix='invalid JSON'):
  """The row with `error` cut to `prefix` when it starts with it (messages vary by parser)."""
  if row['error'].startswith(prefix):
    return dict(row, error=prefix)
  return row


def counter(result, name):
  found = result.metrics().query(MetricsFilter().with_namespace(JOB).with_name(name))
  return sum(c.committed for c in found['counters'])


def test_mixed_layouts_parse_and_bad_records_become_error_rows(tmp_path):
  ndjson = tmp_path / 'ndjson_crlf.json'
  ndjson.write_bytes(b'{"id": 1}\r\n\r\n{"id": 2, "s": "a\\"}"}\r\n{"id": 3, "broken":\r\n'
                     b'{"id": 4}\r\n')
  array = tmp_path / 'pretty_array.json'
  array.write_bytes(b'[\n  {\n    "id": 5,\n    "pos": [1.5, 2]\n  },\n  {"id": 6}\n]\n')
  concatenated = tmp_path / 'concatenated.json'
  concatenated.write_bytes(b'{"id": 7}{"id": 8} {"id": 9}\nnot json\n')
  latin1 = tmp_path / 'latin1.json'
  latin1.write_bytes(b'{"id": 10, "name": "caf\xe9",\n{"id": 11}\n')

  p = TestPipeline()
  records = p | 'Read' >> ReadRecords(input=str(tmp_path / '*.json'), job=JOB)
  good, errors = records | 'Parse' >> ParseJsonRecords(JOB, clock=lambda: NOW)
  assert_that(located_values(good), equal_to([
      ('%s:1' % ndjson, {'id': 1}),
      ('%s:3' % ndjson, {'id': 2, 's': 'a"}'}),
      ('%s:5' % ndjson, {'id': 4}),
      ('%s:2' % array, {'id': 5, 'pos': [1.5, 2]}),
      ('%s:6' % array, {'id': 6}),
      ('%s:1' % concatenated, {'id': 7}),
      ('%s:1' % concatenated, {'id': 8}),
      ('%s:1' % concatenated, {'id': 9}),
      ('%s:2' % latin1, {'id': 11}),
  ]), label='GoodRecords')

  def row(payload, source, encoding='text'):
    return {'processing_time': NOW_TEXT, 'job': JOB, 'stage': 'parse_json',
            'error': 'invalid JSON', 'payload': payload, 'payload_encoding': encoding,
            'attributes': None, 'source': source}

  assert_that(errors | 'Prefix' >> beam.Map(error_prefix), equal_to([
      row('{"id": 3, "broken":', '%s:4' % ndjson),
      row('not json', '%s:2' % concatenated),
      row(base64.b64encode(b'{"id": 10, "name": "caf\xe9",').decode('ascii'),
          '%s:1' % latin1, encoding='base64'),
  ]), label='ErrorRows')
  assert_that(
      errors | 'Problems' >> beam.Map(lambda r: schemas.row_problems(JOB, 'errors', r)),
      equal_to([[], [], []]), label='ErrorRowsConform')

  result = p.run()
  result.wait_until_finish()
  assert counter(result, 'records_read') == 12  # 9 parsed + 3 dead letters
  assert counter(result, 'errors_parse_json') == 3


def test_gzip_input_is_read_transparently(tmp_path):
  path = tmp_path / 'events.json.gz'
  with gzip.open(path, 'wb') as fh:
    fh.write(b'{"id": 1}\r\n{\n  "id": 2\n}\n{"id": 3}{"id": 4}\n')
  with TestPipeline() as p:
    good, errors = (p | ReadRecords(input=str(tmp_path / '*.json.gz'))
                    | ParseJsonRecords(JOB))
    assert_that(located_values(good), equal_to([
        ('%s:1' % path, {'id': 1}), ('%s:2' % path, {'id': 2}), ('%s:5' % path, {'id': 3}),
        ('%s:5' % path, {'id': 4})]), label='Good')
    assert_that(errors, equal_to([]), label='NoErrors')


def test_invalid_utf8_in_an_otherwise_valid_record_is_an_error_row(tmp_path):
  path = tmp_path / 'latin1.json'
  path.write_bytes(b'{"id": 1}\n{"id": 2, "name": "caf\xe9"}\n{"id": 3}\n')
  with TestPipeline() as p:
    good, errors = (p | ReadRecords(input=str(path)) | ParseJsonRecords(JOB, lambda: NOW))
    assert_that(located_values(good), equal_to([
        ('%s:1' % path, {'id': 1}), ('%s:3' % path, {'id': 3})]), label='Good')
    assert_that(
        errors | beam.Map(lambda r: (r['stage'], r['payload'], r['payload_encoding'],
                                     r['source'])),
        equal_to([('parse_json',
                   base64.b64encode(b'{"id": 2, "name": "caf\xe9"}').decode('ascii'),
                   'base64', '%s:2' % path)]), label='Errors')


def test_pubsub_payloads_that_are_not_utf8_or_not_json_become_error_rows():
  source = 'projects/p/subscriptions/s'
  with TestPipeline() as p:
    records = p | beam.Create([
        Record(b'{"id": 1}', source, attributes={'k': 'v'}, message_id='m1'),
        Record(b'\xff{"id": 2}', source, attributes={'z': '1', 'a': '2'}, message_id='m2'),
        Record(b'{"id": 3', source, message_id='m3'),
    ])
    good, errors = records | ParseJsonRecords(JOB, clock=lambda: NOW)
    assert_that(good | beam.Map(lambda r: (r.message_id, r.value, r.attributes)),
                equal_to([('m1', {'id': 1}, {'k': 'v'})]), label='Good')
    assert_that(errors | beam.Map(error_prefix), equal_to([
        {'processing_time': NOW_TEXT, 'job': JOB, 'stage': 'parse_json',
         'error': 'payload is not UTF-8 text: invalid start byte',
         'payload': base64.b64encode(b'\xff{"id": 2}').decode('ascii'),
         'payload_encoding': 'base64', 'attributes': '{"a": "2", "z": "1"}', 'source': source},
        {'processing_time': NOW_TEXT, 'job': JOB, 'stage': 'parse_json',
         'error': 'invalid JSON', 'payload': '{"id": 3', 'payload_encoding': 'text',
         'attributes': None, 'source': source},
    ]), label='Errors')


def test_a_glob_matching_no_files_fails_the_pipeline(tmp_path):
  pattern = str(tmp_path / 'nothing-*.json')
  with pytest.raises(Exception, match='Empty match for pattern'):
    with TestPipeline() as p:
      p | ReadRecords(input=pattern)


@pytest.mark.parametrize('kwargs', [
    {},
    {'input': 'a.json', 'input_table': 'p:ds.t'},
    {'input_table': 'gs://bucket/table.json'},
])
def test_read_records_rejects_bad_configuration_at_construction(kwargs):
  with pytest.raises(ValueError):
    ReadRecords(**kwargs)


@pytest.mark.parametrize('spec,pubsub,table', [
    ('projects/p/subscriptions/s', True, False),
    ('projects/my-proj/topics/game-events', True, False),
    ('projects/p/topics/t/extra', False, False),
    ('gs://b/x/*.json', False, False),
    ('/tmp/x.json', False, False),
    ('proj:ds.table', False, True),
    ('proj.ds.table', False, True),
    ('my-proj:analytics', False, False),
    ('', False, False),
    (None, False, False),
])
def test_source_classification(spec, pubsub, table):
  assert is_pubsub(spec) is pubsub
  assert is_bigquery_table(spec) is table


def test_record_from_pubsub_keeps_payload_attributes_id_and_publish_time():
  message = PubsubMessage(
      data=b'{"id": 1}', attributes={'a': '1'}, message_id='m1',
      publish_time=datetime.datetime(2018, 10, 10, 8, 0, 0, 123456,
                                     tzinfo=datetime.timezone.utc))
  record = record_from_pubsub(message, 'projects/p/subscriptions/s')
  assert record.payload == b'{"id": 1}'
  assert record.attributes == {'a': '1'}
  assert record.message_id == 'm1'
  assert record.publish_time == 1539158400123456
  assert record.source == 'projects/p/subscriptions/s'
  assert record.location == 'projects/p/subscriptions/s'
  assert not record.parsed


def test_record_from_pubsub_without_id_or_publish_time():
  record = record_from_pubsub(PubsubMessage(data=b'x', attributes=None), 'projects/p/topics/t')
  assert (record.payload, record.message_id, record.publish_time) == (b'x', None, None)
  assert not record.attributes


def test_escaped_lone_surrogates_become_error_rows_instead_of_crashing_a_shuffle():
  source = 'projects/p/subscriptions/s'
  with TestPipeline() as p:
    records = p | beam.Create([
        Record(b'{"name": "\\ud800 x"}', source, message_id='m1'),   # Pub/Sub bytes
        Record('{"name": "\\udc80"}', 'in.json', line=4),             # file text
        Record(b'{"name": "\\u00e9t\\u00e9"}', source, message_id='m3'),  # fine: "ete"
    ])
    good, errors = records | ParseJsonRecords(JOB, clock=lambda: NOW)
    # A shuffle encodes every string as UTF-8: it must not see the bad records.
    shuffled = (good | beam.Map(lambda r: (r.value['name'], 1)) | beam.GroupByKey()
                | beam.MapTuple(lambda name, ones: name))
    assert_that(shuffled, equal_to(['\u00e9t\u00e9']), label='Good')
    assert_that(errors | beam.Map(lambda r: (r['stage'], r['error'][:38], r['source'])),
                equal_to([('parse_json', 'payload is not valid UTF-8 text at cha', source),
                          ('parse_json', 'payload is not valid UTF-8 text at cha',
                           'in.json:4')]), label='Errors')
