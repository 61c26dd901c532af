"""game_analytics in batch: exact tables for a small hand-made input in every encoding."""
import json

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from apache_beam.metrics import Metrics
from pipelines.game_analytics import JOB, GameAnalytics
from tests.game_fixtures import T0, ga4
from tests.tables import assert_tables_conform
from transforms.records import Record
from transforms.timestamps import micros_to_rfc3339

NO_WINDOW = {'window_start': None, 'window_end': None, 'pane_index': None,
             'pane_timing': None}


def ts(seconds):
  return micros_to_rfc3339(T0 + int(seconds * 1_000_000))


def micros(seconds):
  return str(T0 + int(seconds * 1_000_000))


def legacy_params(**params):
  out = []
  for key, value in params.items():
    slot = ({'string_value': value} if isinstance(value, str) else
            {'int_value': str(value), 'string_value': None} if isinstance(value, int) else
            {'double_value': value})
    out.append({'key': key, 'value': slot})
  return out


S1 = [
    ga4('START_SESSION', 0, age=34, sex='true'),
    ga4('PLAYER_MOVE', 2, pos_x=1.5, pos_z=2.5),
    ga4('PLAYER_MOVE', 4, Pos_X=1.7, Pox_Z=2.1),
    ga4('PLAYER_ATTACK', 5, npc_id=7, type='pig', pos_x=-0.5, pos_z=3.0, damage=10.0,
        life=90.0),
    ga4('NPC_DIE', 6, npc_id=7, type='pig', pos_x=-0.5, pos_y=3.2),
    ga4('END_SESSION', 120, score=300),
]
S2_LEGACY = {
    'user_dim': {'user_id': None,
                 'app_info': {'app_instance_id': 'u2', 'app_platform': 'IOS'},
                 'geo_info': {'country': 'France'}},
    'event_dim': [
        {'name': 'START_SESSION', 'timestamp_micros': micros(10),
         'params': legacy_params(sessionid='s2', age=7, sex='false')},
        {'name': 'PLAYER_MOVE', 'timestamp_micros': micros(12),
         'params': legacy_params(sessionid='s2', pos_x=0.0, pos_z=0.25)},
        {'name': 'END_SCENE', 'timestamp_micros': micros(40),
         'params': legacy_params(sessionid='s2', score=100)},
    ]}
S3_FUNCTIONS = {
    'userDim': {'appInfo': {'appInstanceId': 'u3', 'appPlatform': 'ANDROID'},
                'geoInfo': {'country': 'Brazil'}},
    'eventDim': [
        {'name': 'START_SESSION', 'timestampMicros': micros(20),
         'params': {'sessionid': {'stringValue': 's3'}, 'age': {'stringValue': 'unknown'}}},
        {'name': 'NPC_CREATE', 'timestampMicros': micros(21),
         'params': {'sessionid': {'stringValue': 's3'}, 'npc_id': {'intValue': '1'},
                    'pos_x': {'doubleValue': 5.5}, 'pos_y': {'floatValue': 5.0}}},
    ]}


def flat(name, seconds, session, user, **params):
  return {'event_name': name, 'event_timestamp': T0 + int(seconds * 1_000_000),
          'user_pseudo_id': user, 'params': dict(params, sessionid=session)}


S4 = [flat('START_SESSION', 30, 's4', 'u4', age=150),
      flat('PLAYER_MOVE', 31, 's4', 'u4', pos_x=2, pos_z=2),
      flat('PLAYER_ATTACK', 32, 's4', 'u4', pos_x=2.9, pos_z=2.9),
      flat('END_SESSION', 60, 's4', 'u4', score=50)]
S5 = [flat('PLAYER_MOVE', 50, 's5', 'u5', pos_x=0.5, pos_z=0.5),
      flat('END_SESSION', 55, 's5', 'u5', score=10)]

BAD_LINES = [
    '{"event_name": "PLAYER_MOVE", "event_timestamp": ',   # invalid JSON
    '42',                                                   # not an object
    '{"foo": 1}',                                           # not an event format
    '',                                                     # blank: not a record
]
NOT_GAME = [ga4('screen_view', 3), flat('session_start', 1, 's1', 'u1')]
BAD_EVENTS = [
    {k: v for k, v in ga4('PLAYER_MOVE', 7, pos_x=1.0).items()
     if k != 'event_params'} | {'event_params': [
         {'key': 'pos_x', 'value': {'double_value': 1.0}}]},  # missing sessionid
    ga4('PLAYER_MOVE', 8, pos_x='north', pos_z=1.0),        # wrong type
]


def input_records():
  values = S1 + [S1[1]] + [S2_LEGACY, S3_FUNCTIONS] + S4 + S5 + NOT_GAME + BAD_EVENTS
  records = [Record(json.dumps(v), 'mem.json', line=i + 1) for i, v in enumerate(values)]
  records += [Record(text, 'bad.json', line=i + 1) for i, text in enumerate(BAD_LINES)
              if text]
  return records


EXPECTED_SESSIONS = [
    dict(session_id='s1', start_time=ts(0), user_id='u1', age=34, age_group=30, sex='male',
         end_time=ts(120), duration_s=120.0, score=300, moves=2, attacks=1, npc_kills=1,
         completed=True),
    dict(session_id='s2', start_time=ts(10), user_id='u2', age=7, age_group=0, sex='female',
         end_time=ts(40), duration_s=30.0, score=100, moves=1, attacks=0, npc_kills=0,
         completed=True),
    dict(session_id='s3', start_time=ts(20), user_id='u3', age=None, age_group=None,
         sex=None, end_time=ts(21), duration_s=1.0, score=None, moves=0, attacks=0,
         npc_kills=0, completed=False),
    dict(session_id='s4', start_time=ts(30), user_id='u4', age=150, age_group=None,
         sex=None, end_time=ts(60), duration_s=30.0, score=50, moves=1, attacks=1,
         npc_kills=0, completed=True),
    dict(session_id='s5', start_time=ts(50), user_id='u5', age=None, age_group=None,
         sex=None, end_time=ts(55), duration_s=5.0, score=10, moves=1, attacks=0,
         npc_kills=0, completed=True),
]
EXPECTED_SESSIONS = [dict(s, pane_index=None, pane_timing=None) for s in EXPECTED_SESSIONS]


def heat(layer, x, z, count):
  return dict(NO_WINDOW, layer=layer, cell_x=x, cell_z=z, count=count)


EXPECTED_HEATMAP = [
    heat('player_move', 1, 2, 2), heat('player_move', 0, 0, 2), heat('player_move', 2, 2, 1),
    heat('player_attack', -1, 3, 1), heat('player_attack', 2, 2, 1),
    heat('npc_die', -1, 3, 1), heat('npc_create', 5, 5, 1),
]
EXPECTED_SCORE_BY_AGE = [
    dict(NO_WINDOW, age_group=30, sessions=1, avg_score=300.0, min_score=300, max_score=300),
    dict(NO_WINDOW, age_group=0, sessions=1, avg_score=100.0, min_score=100, max_score=100),
    dict(NO_WINDOW, age_group=None, sessions=2, avg_score=30.0, min_score=10, max_score=50),
]
EXPECTED_FUNNEL = [
    dict(NO_WINDOW, step='started', step_index=0, sessions=4, rate_from_start=1.0,
         rate_from_previous=1.0),
    dict(NO_WINDOW, step='moved', step_index=1, sessions=3, rate_from_start=0.75,
         rate_from_previous=0.75),
    dict(NO_WINDOW, step='attacked', step_index=2, sessions=2, rate_from_start=0.5,
         rate_from_previous=2 / 3),
    dict(NO_WINDOW, step='completed', step_index=3, sessions=2, rate_from_start=0.5,
         rate_from_previous=1.0),
]
EXPECTED_COUNTERS = {
    'events_read': 25, 'rows_events': 17, 'duplicates': 1,
    'filtered': 2, 'errors': 5, 'errors_parse_json': 1, 'errors_flatten_record': 2,
    'errors_decode_event': 2,
}


class _CountRows(beam.PTransform):
  """Counts rows the way WriteTables does, so the accounting can be checked."""

  def expand(self, rows):
    counter = Metrics.counter(JOB, 'rows_' + self.label.split('_', 1)[1])
    return rows | beam.Map(lambda row: counter.inc() or row)


def _fixed_clock():
  return 1_700_000_000.0


@pytest.fixture(scope='module')
def run_result():
  """Run the job once; every test below reads its tables and counters."""
  pipeline = TestPipeline()
  records = pipeline | beam.Create(input_records())
  tables = records | GameAnalytics(clock=_fixed_clock)
  collected = {}
  for name, rows in tables.items():
    rows | 'Count_%s' % name >> _CountRows()
    collected[name] = rows
  assert_that(collected['sessions'], equal_to(EXPECTED_SESSIONS), label='sessions')
  assert_that(collected['heatmap'], equal_to(EXPECTED_HEATMAP), label='heatmap')
  assert_that(collected['score_by_age'], equal_to(EXPECTED_SCORE_BY_AGE), label='score')
  assert_that(collected['funnel'], equal_to(EXPECTED_FUNNEL), label='funnel')
  assert_that(collected['events'] | beam.Map(
      lambda r: (r['session_id'], r['event_name'], r['event_time'], r['x'], r['z'])),
      equal_to(EXPECTED_EVENT_KEYS), label='events')
  assert_that(collected['errors'] | beam.Map(lambda r: (r['stage'], r['error'])),
              equal_to(EXPECTED_ERRORS), label='errors')
  assert_tables_conform(collected, JOB)
  full_rows = collected['events'] | beam.Filter(
      lambda r: r['event_name'] in ('PLAYER_ATTACK', 'START_SESSION') and
      r['session_id'] == 's1')
  assert_that(full_rows, equal_to(EXPECTED_FULL_EVENTS), label='full_events')
  result = pipeline.run()
  result.wait_until_finish()
  return result


EXPECTED_EVENT_KEYS = [
    ('s1', 'START_SESSION', ts(0), None, None), ('s1', 'PLAYER_MOVE', ts(2), 1.5, 2.5),
    ('s1', 'PLAYER_MOVE', ts(4), 1.7, 2.1), ('s1', 'PLAYER_ATTACK', ts(5), -0.5, 3.0),
    ('s1', 'NPC_DIE', ts(6), -0.5, 3.2), ('s1', 'END_SESSION', ts(120), None, None),
    ('s2', 'START_SESSION', ts(10), None, None), ('s2', 'PLAYER_MOVE', ts(12), 0.0, 0.25),
    ('s2', 'END_SESSION', ts(40), None, None),
    ('s3', 'START_SESSION', ts(20), None, None), ('s3', 'NPC_CREATE', ts(21), 5.5, 5.0),
    ('s4', 'START_SESSION', ts(30), None, None), ('s4', 'PLAYER_MOVE', ts(31), 2.0, 2.0),
    ('s4', 'PLAYER_ATTACK', ts(32), 2.9, 2.9), ('s4', 'END_SESSION', ts(60), None, None),
    ('s5', 'PLAYER_MOVE', ts(50), 0.5, 0.5), ('s5', 'END_SESSION', ts(55), None, None),
]
_EVENT_NULLS = dict(npc_id=None, npc_type=None, x=None, z=None, damage=None, life=None,
                    score=None, age=None, sex=None)
EXPECTED_FULL_EVENTS = [
    dict(_EVENT_NULLS, event_time=ts(0), event_name='START_SESSION', session_id='s1',
         user_id='u1', age=34, sex='male', platform='ANDROID', country='Japan'),
    dict(_EVENT_NULLS, event_time=ts(5), event_name='PLAYER_ATTACK', session_id='s1',
         user_id='u1', npc_id='7', npc_type='pig', x=-0.5, z=3.0, damage=10.0, life=90.0,
         platform='ANDROID', country='Japan'),
]
EXPECTED_ERRORS = [
    ('parse_json', 'invalid JSON: Expecting value: line 1 column 50 (char 49)'),
    ('flatten_record', 'record is not a JSON object'),
    ('flatten_record', 'unrecognised record: expected a GA4 export row, a legacy app_events '
     'row, a Cloud Functions analytics payload or a flat event'),
    ('decode_event', 'missing sessionid'),
    ('decode_event', "pos_x: expected a number, got 'north'"),
]


def test_tables_match_hand_computed_values(run_result):
  # The assertions ran inside the pipeline; a mismatch fails run_result's run().
  assert run_result.state == 'DONE'


def _counters(result):
  out = {}
  for c in result.metrics().query(MetricsFilter().with_namespace(JOB))['counters']:
    out[c.key.metric.name] = out.get(c.key.metric.name, 0) + c.committed
  return out


def test_counters_are_exact(run_result):
  counters = _counters(run_result)
  for name, value in EXPECTED_COUNTERS.items():
    assert counters.get(name, 0) == value, name


def test_every_event_read_is_accounted_for(run_result):
  c = _counters(run_result)
  assert c['events_read'] == (c['rows_events'] + c.get('duplicates', 0) +
                              c.get('filtered', 0) + c.get('errors', 0))
  assert c['rows_errors'] == c['errors']


def test_error_rows_keep_the_raw_payload_and_source():
  with TestPipeline() as pipeline:
    records = pipeline | beam.Create([Record('{"broken": ', 'in/a.json', line=3)])
    errors = (records | GameAnalytics(clock=_fixed_clock))['errors']
    assert_that(errors, equal_to([{
        'processing_time': '2023-11-14T22:13:20.000000Z', 'job': JOB,
        'stage': 'parse_json',
        'error': 'invalid JSON: Expecting value: line 1 column 12 (char 11)',
        'payload': '{"broken": ', 'payload_encoding': 'text', 'attributes': None,
        'source': 'in/a.json:3'}]))


def test_a_bad_event_in_a_bundle_keeps_its_neighbours_and_the_raw_record():
  bundle = {'user_dim': {'app_info': {'app_instance_id': 'u9'}}, 'event_dim': [
      {'name': 'START_SESSION', 'timestamp_micros': micros(0),
       'params': legacy_params(sessionid='s9', age=20)},
      {'name': 'PLAYER_MOVE', 'timestamp_micros': micros(2),
       'params': legacy_params(pos_x=1.0)},                      # no sessionid
  ]}
  raw = json.dumps(bundle)
  with TestPipeline() as pipeline:
    tables = (pipeline | beam.Create([Record(raw, 'app_events.json', line=7)])
              | GameAnalytics(clock=_fixed_clock))
    assert_that(tables['events'] | beam.Map(lambda r: (r['session_id'], r['event_name'])),
                equal_to([('s9', 'START_SESSION')]), label='events')
    assert_that(tables['errors'] | beam.Map(
        lambda r: (r['stage'], r['error'], r['payload'], r['source'])),
        equal_to([('decode_event', 'missing sessionid', raw, 'app_events.json:7#1')]),
        label='errors')
