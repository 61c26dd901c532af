"""Dead letters: every record a step cannot use becomes one exact, loadable `errors` row."""
import base64
import json
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

import schemas
from transforms.deadletter import RecordError, TryParDo, encode_payload, error_row
from transforms.records import Record

JOB = 'game_analytics'
NOW = 1539158400.5
NOW_TEXT = '2018-10-10T08:00:00.500000Z'


# --- encode_payload ------------------------------------------------------------------------

def test_encode_payload_keeps_text_as_text():
  assert encode_payload('{"city": "Tōkyō"}') == ('{"city": "Tōkyō"}', 'text')


def test_encode_payload_decodes_valid_utf8_bytes():
  assert encode_payload('{"city": "Tōkyō"}'.encode('utf-8')) == ('{"city": "Tōkyō"}', 'text')


def test_encode_payload_base64_encodes_bytes_that_are_not_utf8():
  raw = b'\x89PNG\r\n\x1a\n\xff\x00'
  payload, encoding = encode_payload(raw)
  assert encoding == 'base64'
  assert payload == 'iVBORw0KGgr/AA=='
  assert base64.b64decode(payload) == raw


def test_encode_payload_restores_the_bytes_a_file_reader_kept_as_surrogates():
  raw = b'{"name": "caf\xe9"}'  # Latin-1, not UTF-8
  text = raw.decode('utf-8', 'surrogateescape')
  payload, encoding = encode_payload(text)
  assert encoding == 'base64'
  assert base64.b64decode(payload) == raw


def test_encode_payload_of_none_and_of_a_json_value():
  assert encode_payload(None) == (None, None)
  assert encode_payload({'b': 1, 'a': [1, 'x']}) == ('{"a": [1, "x"], "b": 1}', 'text')


def test_encode_payload_never_raises_on_a_lone_surrogate():
  payload, encoding = encode_payload(json.loads('"\\ud800 x"'))
  assert encoding in ('text', 'base64')
  assert payload


# --- error_row -----------------------------------------------------------------------------

def test_error_row_for_a_file_record():
  record = Record('{"id": 1, "pos": [1,', 'gs://bucket/in/events.json',
                  attributes={'zone': 'eu', 'app': 'rpg'}, line=7)
  row = error_row(JOB, 'parse_json', 'invalid JSON: oops', record, NOW)
  assert row == {
      'processing_time': NOW_TEXT,
      'job': JOB,
      'stage': 'parse_json',
      'error': 'invalid JSON: oops',
      'payload': '{"id": 1, "pos": [1,',
      'payload_encoding': 'text',
      'attributes': '{"app": "rpg", "zone": "eu"}',
      'source': 'gs://bucket/in/events.json:7',
  }
  assert schemas.row_problems(JOB, 'errors', row) == []


def test_error_row_for_a_binary_pubsub_record():
  record = Record(b'\xff\xfe{}', 'projects/p/subscriptions/s', attributes={}, message_id='m1')
  row = error_row(JOB, 'parse_json', 'payload is not UTF-8 text', record, NOW)
  assert (row['payload'], row['payload_encoding']) == ('//57fQ==', 'base64')
  assert base64.b64decode(row['payload']) == b'\xff\xfe{}'
  assert row['attributes'] is None
  assert row['source'] == 'projects/p/subscriptions/s'
  assert schemas.row_problems(JOB, 'errors', row) == []


class Event(NamedTuple):
  session_id: str
  score: int
  pos: tuple


def test_error_row_for_a_record_without_payload_keeps_the_value_fields_by_name():
  record = Record(None, 'my-proj:analytics.raw', value=Event('s1', 30, (1.5, 2)))
  row = error_row(JOB, 'decode_event', 'RecordError: no user', record, NOW)
  assert row['payload'] == '{"pos": [1.5, 2], "score": 30, "session_id": "s1"}'
  assert row['payload_encoding'] == 'text'
  assert row['source'] == 'my-proj:analytics.raw'
  assert row['attributes'] is None
  assert schemas.row_problems(JOB, 'errors', row) == []


def test_error_row_for_a_bare_value():
  row = error_row(JOB, 'sessions', 'ValueError: x', ('s1', [1, 2]), NOW)
  assert (row['payload'], row['payload_encoding'], row['source']) == (
      '["s1", [1, 2]]', 'text', None)


# --- TryParDo ------------------------------------------------------------------------------

class ScoreTimesTen(beam.DoFn):
  """n=2: bad input; n=3: a bug (ValueError); n=4: fails after yielding part of its output."""

  def process(self, record):
    value = json.loads(record.payload)
    if value['n'] == 2:
      raise RecordError('bad thing')
    if value['n'] == 3:
      int(value['score'])
    if value['n'] == 4:
      yield 'partial'
      raise RecordError('failed after a partial output')
    yield value['n'] * 10


def test_try_pardo_passes_good_elements_and_turns_failures_into_error_rows():
  records = [
      Record('{"n": 1}', 'in.json', line=1),
      Record('{"n": 2}', 'in.json', attributes={'k': 'v'}, line=2),
      Record('{"n": 3, "score": "x"}', 'in.json', line=3),
      Record('{"n": 4}', 'in.json', line=4),
      Record('{"n": 5}', 'in.json', line=5),
  ]

  def row(error, payload, line, attributes=None):
    return {'processing_time': NOW_TEXT, 'job': JOB, 'stage': 'score', 'error': error,
            'payload': payload, 'payload_encoding': 'text', 'attributes': attributes,
            'source': 'in.json:%d' % line}

  p = TestPipeline()
  good, errors = (p | beam.Create(records)
                  | TryParDo(ScoreTimesTen(), JOB, 'score', clock=lambda: NOW))
  assert_that(good, equal_to([10, 50]), label='Good')
  assert_that(errors, equal_to([
      row('bad thing', '{"n": 2}', 2, '{"k": "v"}'),
      row("ValueError: invalid literal for int() with base 10: 'x'",
          '{"n": 3, "score": "x"}', 3),
      row('failed after a partial output', '{"n": 4}', 4),
  ]), label='Errors')
  assert_that(errors | beam.Map(lambda r: schemas.row_problems(JOB, 'errors', r)),
              equal_to([[], [], []]), label='Conform')
  result = p.run()
  result.wait_until_finish()

  def count(name):
    found = result.metrics().query(MetricsFilter().with_namespace(JOB).with_name(name))
    return sum(c.committed for c in found['counters'])

  assert count('errors') == 3
  assert count('errors_score') == 3
