"""iot_telemetry: exact sliding-window stats, Bigtable rows, rules firing and clearing,
accounting, dedupe and late data (TestStream), start-up errors and the bundled sample."""
import base64
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipelines import iot_telemetry, launch
from pipelines.iot_telemetry import JOB, IotTelemetry
from pipelines.options import ConfigError
from transforms import device_rules
from transforms.records import Record
from transforms.windowing import Windowing

from tests.tables import assert_tables_conform, assert_written_tables_conform, read_table

T0 = 1795683600  # 2026-11-26T09:00:00Z
NS = 1_000_000_000
ATTRS = {'deviceId': 'th-1', 'deviceRegistryId': 'greenhouse',
         'deviceRegistryLocation': 'europe-west1', 'projectId': 'acme-iot', 'subFolder': ''}


def at(minute, second):
  return '2026-11-26T09:%02d:%02d.000000Z' % (minute, second)


def saved(payload, message_id, publish, attributes=ATTRS, **extra):
  data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
  return json.dumps(dict({'attributes': attributes, 'data': base64.b64encode(data).decode(),
                          'messageId': message_id, 'publishTime': publish}, **extra))


LP = ('env,room=r2,device_id=lp-1 temperature=31,humidity=50i %d\n'
      'env,room=r2,device_id=lp-1 temperature=33 %d') % ((T0 + 30) * NS, (T0 + 90) * NS)
LINES = [
    # th-1 (greenhouse): JSON payloads in saved messages, times in three spellings
    saved({'ts': at(0, 10), 'temperature': 20}, '101', at(0, 11)),
    saved({'timestamp': (T0 + 40) * 1000, 'temperature': 22}, '102', at(0, 41)),
    json.dumps({'message': json.loads(saved({'time': T0 + 70, 'temperature': 24}, '103',
                                            at(1, 11))) | {'message_id': '103'},
                'subscription': 'projects/acme-iot/subscriptions/push'}),
    saved({'temperature': 26, 'fan_on': True, 'battery': {'voltage': 3.25}}, '104',
          at(1, 40), **{'@type': 'type.googleapis.com/google.pubsub.v1.PubsubMessage'}),
    # lp-1: line protocol, two points in one message, then a third that clears the rule
    saved(LP.encode(), '201', at(1, 31), attributes={}),
    '{"device_id": "lp-1", "ts": "%s", "temperature": 20}' % at(2, 30),
    # a plain payload line for a device with no registry
    '{"deviceId": "solo", "ts": %d, "pressure": 1013.25}' % ((T0 + 15) * 1000),
    # the same as line 1, redelivered; the retry of line 2 under a new message id
    saved({'ts': at(0, 10), 'temperature': 20}, '101', at(0, 11)),
    saved({'timestamp': (T0 + 40) * 1000, 'temperature': 22}, '999', at(0, 45)),
    # a heartbeat: a device and a time, nothing to measure
    '{"device_id": "solo", "ts": "%s"}' % at(0, 20),
    # bad: a word for a number, no device id, not base64, a string field, cut JSON, neither
    saved({'ts': at(0, 50), 'temperature': 'hot'}, '105', at(0, 51)),
    '{"ts": "%s", "temperature": 21}' % at(0, 55),
    json.dumps({'attributes': ATTRS, 'data': '%%%not base64', 'messageId': '106'}),
    saved(b'env,device_id=lp-1 status="ok",temperature=30 %d' % ((T0 + 50) * NS), '202',
          at(0, 51), attributes={}),
    '{"device_id": "lp-1", "ts": ',
    'hello from pi',
]
RULES = ['hot: temperature > 30 for 2 windows -> {"fan": "high"}',
         'flat: battery.voltage < 3.3 -> charge']


def records():
  return [Record(text, 'telemetry.json', line=i + 1) for i, text in enumerate(LINES)]


def window(minute, length=2):
  """The window starting at 09:MM (MM may be -1) of `length` minutes."""
  return tuple('2026-11-26T%02d:%02d:00.000000Z' % divmod(9 * 60 + m, 60)
               for m in (minute, minute + length))


def stats(device, metric, minute, count, low, high, mean, stddev, first, last,
          registry='greenhouse'):
  start, end = window(minute)
  return {'device_id': device, 'registry_id': registry, 'metric': metric, 'count': count,
          'min': low, 'max': high, 'mean': mean, 'stddev': stddev, 'first_time': first,
          'last_time': last, 'window_start': start, 'window_end': end,
          'pane_index': None, 'pane_timing': None}


SQRT2 = 1.414214
EXPECTED_STATS = [
    # th-1 temperature: 20 @0:10, 22 @0:40, 24 @1:10, 26 @1:40; windows of 2 min every 1
    stats('th-1', 'temperature', -1, 2, 20.0, 22.0, 21.0, SQRT2, at(0, 10), at(0, 40)),
    stats('th-1', 'temperature', 0, 4, 20.0, 26.0, 23.0, 2.581989, at(0, 10), at(1, 40)),
    stats('th-1', 'temperature', 1, 2, 24.0, 26.0, 25.0, SQRT2, at(1, 10), at(1, 40)),
    stats('th-1', 'fan_on', 0, 1, 1.0, 1.0, 1.0, None, at(1, 40), at(1, 40)),
    stats('th-1', 'fan_on', 1, 1, 1.0, 1.0, 1.0, None, at(1, 40), at(1, 40)),
    stats('th-1', 'battery.voltage', 0, 1, 3.25, 3.25, 3.25, None, at(1, 40), at(1, 40)),
    stats('th-1', 'battery.voltage', 1, 1, 3.25, 3.25, 3.25, None, at(1, 40), at(1, 40)),
    # lp-1 temperature: 31 @0:30, 33 @1:30, 20 @2:30
    stats('lp-1', 'temperature', -1, 1, 31.0, 31.0, 31.0, None, at(0, 30), at(0, 30), None),
    stats('lp-1', 'temperature', 0, 2, 31.0, 33.0, 32.0, SQRT2, at(0, 30), at(1, 30), None),
    stats('lp-1', 'temperature', 1, 2, 20.0, 33.0, 26.5, 9.192388, at(1, 30), at(2, 30),
          None),
    stats('lp-1', 'temperature', 2, 1, 20.0, 20.0, 20.0, None, at(2, 30), at(2, 30), None),
    stats('lp-1', 'humidity', -1, 1, 50.0, 50.0, 50.0, None, at(0, 30), at(0, 30), None),
    stats('lp-1', 'humidity', 0, 1, 50.0, 50.0, 50.0, None, at(0, 30), at(0, 30), None),
    stats('solo', 'pressure', -1, 1, 1013.25, 1013.25, 1013.25, None, at(0, 15), at(0, 15),
          None),
    stats('solo', 'pressure', 0, 1, 1013.25, 1013.25, 1013.25, None, at(0, 15), at(0, 15),
          None),
]


def alert(state, device, registry, minute, value, rule=0):
  parsed = device_rules.parse_rule(RULES[rule])
  return {'window_start': window(minute)[0],
          'rule': parsed.name, 'state': state, 'device_id': device, 'registry_id': registry,
          'metric': parsed.metric, 'condition': parsed.condition, 'value': value,
          'threshold': parsed.threshold, 'command': parsed.command,
          'window_end': window(minute)[1]}


EXPECTED_ALERTS = [
    alert('FIRING', 'lp-1', None, 0, 32.0),       # 31 then 32: the second window fires
    alert("CLEARED", "lp-1", None, 1, 26.5),
    alert('FIRING', 'th-1', 'greenhouse', 0, 3.25, rule=1),
]
EXPECTED_ERRORS = [
    ('decode_point', "metric 'temperature' is not a number: 'hot'", 'telemetry.json:11'),
    ('decode_point', 'no device id: no deviceId attribute and no device_id/deviceId in the '
     'payload', 'telemetry.json:12'),
    ('decode_message', 'message data is not base64', 'telemetry.json:13'),
    ('decode_point', "metric 'status' is a string, not a number: 'ok'", 'telemetry.json:14'),
    ('decode_message', 'invalid JSON: Expecting value: line 1 column 28 (char 27)',
     'telemetry.json:15'),
    ('decode_point', 'payload is neither a JSON object nor line protocol: ', 'telemetry.json:16'),
]


def _rounded(row):
  return {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}


def _error_key(row):
  error = row['error']
  if error.startswith('payload is neither'):
    error = error[:error.index(':') + 2]
  return row['stage'], error, row['source']


@pytest.fixture(scope='module')
def batch_result():
  pipeline = TestPipeline()
  tables = pipeline | beam.Create(records()) | IotTelemetry(
      Windowing(window_s=120, batch_windows=True), period_s=60,
      rules=device_rules.parse_rules(RULES), clock=lambda: T0 + 3600.0)
  assert_that(tables['device_stats'] | beam.Map(_rounded), equal_to(EXPECTED_STATS),
              label='device_stats')
  assert_that(tables['alerts'], equal_to(EXPECTED_ALERTS), label='alerts')
  assert_that(tables['errors'] | beam.Map(_error_key), equal_to(EXPECTED_ERRORS),
              label='errors')
  assert_that(tables['readings'] | beam.Map(lambda r: (
      r['device_id'], r['metric'], r['value'], r['event_time'], r['message_id'],
      r['publish_time'])), equal_to([
          ('th-1', 'temperature', 20.0, at(0, 10), '101', at(0, 11)),
          ('th-1', 'temperature', 22.0, at(0, 40), '102', at(0, 41)),
          ('th-1', 'temperature', 24.0, at(1, 10), '103', at(1, 11)),
          ('th-1', 'temperature', 26.0, at(1, 40), '104', at(1, 40)),  # publish time
          ('th-1', 'fan_on', 1.0, at(1, 40), '104', at(1, 40)),
          ('th-1', 'battery.voltage', 3.25, at(1, 40), '104', at(1, 40)),
          ('lp-1', 'temperature', 31.0, at(0, 30), '201', at(1, 31)),
          ('lp-1', 'humidity', 50.0, at(0, 30), '201', at(1, 31)),
          ('lp-1', 'temperature', 33.0, at(1, 30), '201', at(1, 31)),
          ('lp-1', 'temperature', 20.0, at(2, 30), None, None),
          ('solo', 'pressure', 1013.25, at(0, 15), None, None)]), label='readings')
  assert_that(tables['bigtable_rows'] | beam.Map(lambda r: (
      r['row_key'], [(c['column'], c['value']) for c in r['cells']])), equal_to([
          ('greenhouse#th-1#9221576353244775807', [('temperature', '20.0')]),
          ('greenhouse#th-1#9221576353214775807', [('temperature', '22.0')]),
          ('greenhouse#th-1#9221576353184775807', [('temperature', '24.0')]),
          ('greenhouse#th-1#9221576353154775807', [
              ('temperature', '26.0'), ('fan_on', '1.0'), ('battery.voltage', '3.25')]),
          ('-#lp-1#9221576353224775807', [('temperature', '31.0'), ('humidity', '50.0')]),
          ('-#lp-1#9221576353164775807', [('temperature', '33.0')]),
          ('-#lp-1#9221576353104775807', [('temperature', '20.0')]),
          ('-#solo#9221576353239775807', [('pressure', '1013.25')])]), label='bigtable')
  assert_tables_conform(tables, JOB)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def test_tables_are_exact(batch_result):
  assert batch_result.state == 'DONE'


def test_every_reading_is_accounted_for(batch_result):
  counters = launch.counters(batch_result, JOB)
  # 11 unique readings; line 8 repeats 1 reading, line 9 retries 1; a heartbeat; 6 errors
  assert (counters['duplicates'], counters['filtered'], counters['errors']) == (2, 1, 6)
  assert counters['readings_read'] == 11 + 2 + 1 + 6
  assert counters['errors_decode_message'] == 2
  assert counters['errors_decode_point'] == 4


def test_streaming_late_readings_update_windows_and_rules_judge_on_time_panes():
  subscription = 'projects/acme-iot/subscriptions/telemetry'

  def message(message_id, second, temperature, published=None):
    published = T0 + second + 1 if published is None else published
    payload = json.dumps({'ts': T0 + second, 'temperature': temperature}).encode()
    record = Record(payload, subscription, ATTRS, message_id, published * 1_000_000)
    return beam.window.TimestampedValue(record, published)

  stream = (TestStream()
            .advance_watermark_to(T0)
            .add_elements([message('1', 10, 20), message('2', 40, 22), message('1', 10, 20)])
            .advance_watermark_to(T0 + 60)
            .add_elements([message('3', 70, 24)])
            .advance_watermark_to(T0 + 120)
            .add_elements([message('4', 50, 26, published=T0 + 121),   # late, within 120 s
                           message('6', 190, 10)])
            .advance_watermark_to(T0 + 180)
            .advance_watermark_to(T0 + 240)
            .advance_watermark_to(T0 + 300)
            .advance_watermark_to(T0 + 400)
            .add_elements([message('5', 20, 99, published=T0 + 401)])  # beyond lateness
            .advance_watermark_to_infinity())
  windowing = Windowing(streaming=True, window_s=120, early_firing_s=None,
                        allowed_lateness_s=120, batch_windows=True)
  rules = device_rules.parse_rules(['warm: temperature >= 22 for 2 windows -> {"fan": "on"}'])
  with TestPipeline(options=StandardOptions(streaming=True)) as pipeline:
    tables = pipeline | stream | IotTelemetry(windowing, 60, rules)
    assert_that(tables['device_stats'] | beam.Map(lambda r: (
        r['window_start'], r['count'], round(r['mean'], 6), r['pane_timing'])), equal_to([
            (window(-1)[0], 2, 21.0, 'ON_TIME'), (window(-1)[0], 3, 22.666667, 'LATE'),
            (window(0)[0], 3, 22.0, 'ON_TIME'), (window(0)[0], 4, 23.0, 'LATE'),
            (window(1)[0], 1, 24.0, 'ON_TIME'),
            (window(2)[0], 1, 10.0, 'ON_TIME'), (window(3)[0], 1, 10.0, 'ON_TIME')]),
        label='stats')
    assert_that(tables['alerts'] | beam.Map(lambda r: (r['state'], r['window_start'],
                                                       r['value'])),
                equal_to([('FIRING', window(1)[0], 24.0), ('CLEARED', window(2)[0], 10.0)]),
                label='alerts')
    # The redelivery of message 1 is dropped; the reading too late for any window stays.
    assert_that(tables['readings'] | beam.Map(lambda r: (r['message_id'], r['value'])),
                equal_to([('1', 20.0), ('2', 22.0), ('3', 24.0), ('4', 26.0), ('6', 10.0),
                          ('5', 99.0)]), label='readings')


@pytest.mark.parametrize('argv, message', [
    (['--rule', 'hot: temperature > 30'], 'is not NAME: METRIC'),
    (['--rule', 'a: t > 1 -> x', '--rule', 'a: t > 2 -> y'], 'unique: a'),
    (['--bigtable', 'proj:instance'], 'PROJECT:INSTANCE:TABLE'),
    (['--window', '60', '--window_period', '120'], 'must not exceed --window'),
    (['--window_period', '120'], None),  # within the default 300 s window
])
def test_bad_options_stop_at_start_up(argv, message):
  if message is None:
    iot_telemetry.build(argv, save_main_session=False)
    return
  with pytest.raises(ConfigError, match=message):
    iot_telemetry.build(argv, save_main_session=False)


def test_cli_reports_a_bad_rule_and_exits_2(capsys):
  from pipelines import __main__ as cli
  assert cli.main(['iot_telemetry', '--rule', 'hot: t >> 1 -> x']) == 2
  assert 'iot_telemetry: error:' in capsys.readouterr().err


def _sinks(plan):
  from apache_beam.io.gcp.bigtableio import WriteToBigTable
  from apache_beam.io.gcp.pubsub import WriteToPubSub
  from apache_beam.pipeline import PipelineVisitor
  found = []

  class Visitor(PipelineVisitor):

    def enter_composite_transform(self, node):
      if isinstance(node.transform, WriteToPubSub):
        found.append(('pubsub', node.transform._sink.full_topic,
                      node.transform.with_attributes))
      if isinstance(node.transform, WriteToBigTable):
        found.append(('bigtable', node.transform._project_id, node.transform._instance_id,
                      node.transform._table_id))
      if node.full_label.startswith('Write/Write_') and node.full_label.count('/') == 1:
        found.append(('table', node.full_label.split('_', 1)[1]))

  plan.pipeline.visit(Visitor())
  return sorted(found)


def test_command_topic_and_bigtable_add_their_writes():
  plan = iot_telemetry.build(
      ['--rule', RULES[0], '--command_topic', 'projects/acme-iot/topics/commands',
       '--bigtable', 'acme-iot:telemetry-1:readings'], save_main_session=False)
  assert _sinks(plan) == [
      ('bigtable', 'acme-iot', 'telemetry-1', 'readings'),
      ('pubsub', 'projects/acme-iot/topics/commands', True),
      ('table', 'alerts'), ('table', 'device_stats'), ('table', 'errors'),
      ('table', 'readings')]


def test_without_bigtable_the_rows_are_a_table():
  plan = iot_telemetry.build([], save_main_session=False)
  assert ('table', 'bigtable_rows') in _sinks(plan)
  assert not [s for s in _sinks(plan) if s[0] != 'table']


@pytest.fixture(scope='module')
def sample_run(tmp_path_factory):
  out = tmp_path_factory.mktemp('iot')
  iot_telemetry.run(['--output', str(out), '--rule', RULES[0]], save_main_session=False)
  return out


@pytest.fixture(scope='module')
def truth():
  from pipelines.samples import iot_telemetry as sample
  return sample.ground_truth(sample.SAMPLE_DEVICES, sample.SAMPLE_SEED)


def test_bundled_sample_counters_match_the_generators_ground_truth(sample_run, truth):
  c = json.loads((sample_run / '_metrics.json').read_text())['counters']
  assert c['records_read'] == truth['records']
  assert (c['rows_readings'], c['duplicates'], c['filtered'], c['errors']) == (
      truth['readings'], truth['duplicates'], truth['filtered'], truth['errors'])
  assert c['readings_read'] == truth['readings_read'] == (
      c['rows_readings'] + c['duplicates'] + c['filtered'] + c['errors'])
  assert c['rows_bigtable_rows'] == truth['points']
  assert_written_tables_conform(sample_run, JOB)


def test_bundled_sample_readings_are_exactly_what_was_sent(sample_run, truth):
  from transforms.timestamps import parse_rfc3339_micros
  got = sorted(((r['registry_id'], r['device_id'], r['metric'],
                 parse_rfc3339_micros(r['event_time']), r['value'])
                for r in read_table(sample_run, 'readings')), key=repr)
  assert got == sorted(truth['readings_list'], key=repr)


def test_bundled_sample_window_means_and_the_heat_spike_alerts(sample_run, truth):
  from pipelines.samples import iot_telemetry as sample
  from transforms.timestamps import parse_rfc3339_micros
  expected = sample.sliding_means(truth['readings_list'])
  got = {}
  for row in read_table(sample_run, 'device_stats'):
    if row['metric'] == 'temperature':
      got.setdefault((row['registry_id'], row['device_id']), {})[
          parse_rfc3339_micros(row['window_start'])] = row['mean']
  assert got.keys() == expected.keys()
  for device, means in expected.items():
    assert got[device] == pytest.approx(means, rel=1e-12), device
  alerts = [(a['registry_id'], a['device_id'], a['state'], a['window_start'])
            for a in read_table(sample_run, 'alerts')]
  spike = truth['spike_device']
  assert sorted(alerts) == sorted([
      spike + ('FIRING', truth['spike_windows']['FIRING'].replace('Z', '.000000Z')),
      spike + ('CLEARED', truth['spike_windows']['CLEARED'].replace('Z', '.000000Z'))])
