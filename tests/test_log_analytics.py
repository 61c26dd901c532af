"""log_analytics: exact tables on a small hand-made export, accounting, windows with late
data (TestStream), alerts and start-up errors."""
import json

import apache_beam as beam
import pytest
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipelines import launch, log_analytics
from pipelines.log_analytics import JOB, LogAnalytics, parse_rules
from pipelines.options import ConfigError
from transforms.records import Record
from tests.tables import assert_tables_conform, assert_written_tables_conform, read_table
from transforms.windowing import Windowing

REQUESTS = 'projects/shop/logs/run.googleapis.com%2Frequests'


def request(second, status, latency, severity='INFO', insert_id=None, minute=0):
  return {
      'insertId': insert_id or 'r%02d%02d' % (minute, second), 'logName': REQUESTS,
      'timestamp': '2026-11-26T10:%02d:%02d.000123Z' % (minute, second),
      'severity': severity,
      'httpRequest': {'requestMethod': 'GET', 'requestUrl': '/cart', 'status': status,
                      'latency': latency, 'responseSize': '100',
                      'remoteIp': '203.0.113.7:1234'},
      'resource': {'type': 'cloud_run_revision', 'labels': {'service_name': 'shop'}},
  }


ENTRIES = [
    request(5, 200, '0.010s'),
    request(10, 200, '0.020s'),
    request(20, 503, '1.5s', 'ERROR'),
    request(30, '500', '0.040s', 'ERROR'),
    {'insertId': 's1', 'logName': 'projects/shop/logs/struct_log', 'severity': 'ERROR',
     'timestamp': '2026-11-26T10:00:40.5Z', 'jsonPayload': {'message': 'order failed'}},
    {'insertId': 't1', 'logName': 'projects/shop/logs/stdout',
     'timestamp': '2026-11-26T10:00:50.123456789Z', 'textPayload': 'started'},
    request(5, 200, '0.030s', minute=1),
    {'insertId': 'a1', 'logName': 'projects/shop/logs/cloudaudit.googleapis.com%2Factivity',
     'severity': 'NOTICE', 'timestamp': '2026-11-26T10:01:10Z',
     'protoPayload': {'@type': 'type.googleapis.com/google.cloud.audit.AuditLog',
                      'methodName': 'google.cloud.run.v1.Services.ReplaceService'}},
]
DUPLICATE = dict(ENTRIES[0], severity='INFO')
BAD = ['{"logName": "projects/shop/logs/x", "timestamp": ',
       json.dumps(request(7, 200, 'fast')), '42']
METRICS = ['server_errors=httpRequest.status>=500', 'slow=httpRequest.latency>1s',
           'failed=jsonPayload.message:"failed"',
           'audit=logName:"cloudaudit.googleapis.com/activity"']
ALERTS = ['server_errors>1', 'errors>=3', 'entries<3', 'errors<1']
W0 = ('2026-11-26T10:00:00.000000Z', '2026-11-26T10:01:00.000000Z')
W1 = ('2026-11-26T10:01:00.000000Z', '2026-11-26T10:02:00.000000Z')


def records():
  values = [json.dumps(e) for e in ENTRIES + [DUPLICATE]] + BAD
  return [Record(text, 'logs.json', line=i + 1) for i, text in enumerate(values)]


def windowed(window, **row):
  return dict(row, window_start=window[0], window_end=window[1], pane_index=None,
              pane_timing=None)


def stats(entries, errors, http, p50=None, p95=None, p99=None, top=None):
  return dict(entries=entries, errors=errors, http_requests=http, latency_p50_ms=p50,
              latency_p95_ms=p95, latency_p99_ms=p99, latency_max_ms=top)


RUN = 'run.googleapis.com/requests'
EXPECTED_LOG_METRICS = [
    windowed(W0, log_id=RUN, severity='INFO', **stats(2, 0, 2, 15.0, 19.5, 19.9, 20.0)),
    windowed(W0, log_id=RUN, severity='ERROR',
             **stats(2, 2, 2, 770.0, 1427.0, 1485.4, 1500.0)),
    windowed(W0, log_id='struct_log', severity='ERROR', **stats(1, 1, 0)),
    windowed(W0, log_id='stdout', severity='DEFAULT', **stats(1, 0, 0)),
    windowed(W1, log_id=RUN, severity='INFO', **stats(1, 0, 1, 30.0, 30.0, 30.0, 30.0)),
    windowed(W1, log_id='cloudaudit.googleapis.com/activity', severity='NOTICE',
             **stats(1, 0, 0)),
]
# Every window with entries has a row for every metric, zero included.
EXPECTED_METRIC_COUNTS = [
    windowed(W0, metric='server_errors', count=2), windowed(W0, metric='slow', count=1),
    windowed(W0, metric='failed', count=1), windowed(W0, metric='audit', count=0),
    windowed(W1, metric='server_errors', count=0), windowed(W1, metric='slow', count=0),
    windowed(W1, metric='failed', count=0), windowed(W1, metric='audit', count=1),
]
EXPECTED_ALERTS = [
    windowed(W0, metric='server_errors', condition='server_errors>1', value=2.0,
             threshold=1.0),
    windowed(W0, metric='errors', condition='errors>=3', value=3.0, threshold=3.0),
    windowed(W1, metric='entries', condition='entries<3', value=2.0, threshold=3.0),
    windowed(W1, metric='errors', condition='errors<1', value=0.0, threshold=1.0),
]


def _rounded(row):
  return {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}


@pytest.fixture(scope='module')
def batch_result():
  metrics, rules = parse_rules(METRICS, ALERTS)
  pipeline = TestPipeline()
  tables = pipeline | beam.Create(records()) | LogAnalytics(
      Windowing(window_s=60, batch_windows=True), metrics, rules, clock=lambda: 0.0)
  assert_that(tables['log_metrics'] | beam.Map(_rounded), equal_to(EXPECTED_LOG_METRICS),
              label='log_metrics')
  assert_that(tables['metric_counts'], equal_to(EXPECTED_METRIC_COUNTS), label='counts')
  assert_that(tables['alerts'], equal_to(EXPECTED_ALERTS), label='alerts')
  assert_that(tables['log_entries'] | beam.Map(lambda r: (r['log_id'], r['timestamp'])),
              equal_to([('run.googleapis.com/requests', '2026-11-26T10:00:05.000123Z'),
                        ('run.googleapis.com/requests', '2026-11-26T10:00:10.000123Z'),
                        ('run.googleapis.com/requests', '2026-11-26T10:00:20.000123Z'),
                        ('run.googleapis.com/requests', '2026-11-26T10:00:30.000123Z'),
                        ('struct_log', '2026-11-26T10:00:40.500000Z'),
                        ('stdout', '2026-11-26T10:00:50.123456Z'),
                        ('run.googleapis.com/requests', '2026-11-26T10:01:05.000123Z'),
                        ('cloudaudit.googleapis.com/activity',
                         '2026-11-26T10:01:10.000000Z')]), label='entries')
  assert_that(tables['errors'] | beam.Map(lambda r: (r['stage'], r['error'], r['source'])),
              equal_to([
                  ('parse_json', 'invalid JSON: Expecting value: line 1 column 50 (char 49)',
                   'logs.json:10'),
                  ('decode_entry', "httpRequest.latency: 'fast' is not a duration like "
                   '"0.25s"', 'logs.json:11'),
                  ('decode_entry', 'record is not a JSON object', 'logs.json:12')]),
              label='errors')
  for name, rows in tables.items():
    counter = Metrics.counter(JOB, 'rows_' + name)
    rows | 'Count_' + name >> beam.Map(lambda r, c=counter: c.inc())
  assert_tables_conform(tables, JOB)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def test_tables_are_exact(batch_result):
  assert batch_result.state == 'DONE'


def test_every_record_is_accounted_for(batch_result):
  counters = launch.counters(batch_result, JOB)
  assert counters['rows_log_entries'] == 8
  assert counters['duplicates'] == 1
  assert counters['errors'] == counters['rows_errors'] == 3
  records_in = len(records())
  assert records_in == counters['rows_log_entries'] + counters['duplicates'] + \
      counters['errors']


def test_late_entries_update_windows_until_allowed_lateness():
  start = 1795687200  # 2026-11-26T10:00:00Z

  def at(entry, seconds):
    return beam.window.TimestampedValue(Record(json.dumps(entry), 'pubsub'), start + seconds)

  stream = (TestStream()
            .advance_watermark_to(start)
            .add_elements([at(request(5, 200, '0.010s'), 5), at(request(6, 200, '0.020s'), 6)])
            .advance_watermark_to(start + 61)                            # W0 on time
            .add_elements([at(request(7, 500, '0.030s', 'ERROR'), 62)])   # late, allowed
            .advance_watermark_to(start + 200)                           # beyond lateness
            .add_elements([at(request(8, 200, '0.040s'), 201)])
            .advance_watermark_to_infinity())
  windowing = Windowing(streaming=True, window_s=60, early_firing_s=None,
                        allowed_lateness_s=60, batch_windows=True)
  metrics, rules = parse_rules([], ['entries>=2'])
  with TestPipeline(options=StandardOptions(streaming=True)) as pipeline:
    tables = pipeline | stream | LogAnalytics(windowing, metrics, rules)
    assert_that(tables['log_metrics'] | beam.Map(lambda r: (
        r['severity'], r['entries'], r['pane_timing'], r['window_start'])),
        equal_to([('INFO', 2, 'ON_TIME', W0[0]), ('ERROR', 1, 'LATE', W0[0])]),
        label='metrics')
    # W0 fires on time (2 entries) and late (3): the alert is raised once, at its first.
    assert_that(tables['alerts'] | beam.Map(lambda r: (r['value'], r['pane_timing'])),
                equal_to([(2.0, 'ON_TIME')]), label='alerts')
    # The entry too late for its window is still in the log table.
    assert_that(tables['log_entries'] | beam.Map(lambda r: r['insert_id']),
                equal_to(['r0005', 'r0006', 'r0007', 'r0008']), label='entries')


@pytest.mark.parametrize('metrics, alerts, message', [
    (['bad=severity>=>ERROR'], [], "metric bad: unknown operator '>=>' at column 9"),
    (['noequals'], [], "expected NAME=FILTER, got 'noequals'"),
    (['a=severity>=ERROR', 'a=severity<ERROR'], [], 'must be unique: a'),
    (['a=severity>=ERROR'], ['b>1'], "unknown metric 'b'"),
    (['errors=severity>=WARNING'], [], 'errors are built in'),
    ([], ['errors=1'], 'expected METRIC>THRESHOLD'),
])
def test_bad_metric_or_alert_stops_at_start_up(metrics, alerts, message):
  with pytest.raises(ConfigError, match=message):
    parse_rules(metrics, alerts)


def test_cli_reports_a_bad_filter_and_exits_2(capsys):
  from pipelines import __main__ as cli
  assert cli.main(['log_analytics', '--metric', 'x=severity>=(']) == 2
  assert 'log_analytics: error:' in capsys.readouterr().err


def test_alert_topic_adds_a_pubsub_write():
  from apache_beam.io.gcp.pubsub import WriteToPubSub
  from apache_beam.pipeline import PipelineVisitor
  plan = log_analytics.build(['--metric', 'e=severity>=ERROR', '--alert', 'e>5',
                              '--alert_topic', 'projects/my-proj/topics/alerts'],
                             save_main_session=False)
  topics = []

  class Visitor(PipelineVisitor):

    def enter_composite_transform(self, node):
      if isinstance(node.transform, WriteToPubSub):
        topics.append(node.transform._sink.full_topic)

  plan.pipeline.visit(Visitor())
  assert topics == ['projects/my-proj/topics/alerts']


@pytest.fixture(scope='module')
def sample_run(tmp_path_factory):
  out = tmp_path_factory.mktemp('logs')
  log_analytics.run(['--output', str(out), '--metric', 'server_errors=httpRequest.status>=500',
                     '--alert', 'server_errors>20'], save_main_session=False)
  return out


def test_bundled_sample_matches_the_generators_ground_truth(sample_run):
  from pipelines.samples import log_analytics as sample
  truth = sample.ground_truth(sample.SAMPLE_ENTRIES, sample.SAMPLE_SEED)
  c = json.loads((sample_run / '_metrics.json').read_text())['counters']
  assert c['rows_log_entries'] == truth['valid_entries']
  assert c['duplicates'] == truth['duplicates']
  bad = truth['malformed']
  assert c['errors_parse_json'] == bad['invalid_json'] + bad['split_record']
  assert c['errors_decode_entry'] == bad['not_object'] + bad['wrong_type']
  assert c['records_read'] == c['rows_log_entries'] + c['duplicates'] + c['errors']
  alerts = sorted(r['window_start'] for r in read_table(sample_run, 'alerts'))
  assert alerts == [m.replace('Z', '.000000Z') for m in truth['burst_minutes']]
  assert_written_tables_conform(sample_run, JOB)


def test_per_minute_requests_and_5xx_match_the_ground_truth(sample_run):
  from pipelines.samples import log_analytics as sample
  truth = sample.ground_truth(sample.SAMPLE_ENTRIES, sample.SAMPLE_SEED)['per_minute']
  requests, server_errors = {}, {}
  for row in read_table(sample_run, 'log_metrics'):
    if row['log_id'] == RUN:
      requests[row['window_start']] = requests.get(row['window_start'], 0) + row['http_requests']
  for row in read_table(sample_run, 'metric_counts'):
    server_errors[row['window_start']] = row['count']
  for minute, expected in truth.items():
    window = minute.replace('Z', '.000000Z')
    assert requests.get(window, 0) == expected['requests'], minute
    assert server_errors.get(window, 0) == expected['5xx'], minute


@pytest.mark.parametrize('argv, ttl', [
    ([], 3600), (['--dedupe_ttl', '70'], 70), (['--log_dedupe_ttl', '60'], 60)])
def test_dedupe_ttl_and_its_earlier_name(argv, ttl):
  from apache_beam.pipeline import PipelineVisitor
  plan = log_analytics.build(argv, save_main_session=False)
  found = []

  class Visitor(PipelineVisitor):

    def enter_composite_transform(self, node):
      if isinstance(node.transform, LogAnalytics):
        found.append(node.transform._dedupe_ttl_s)

  plan.pipeline.visit(Visitor())
  assert found == [ttl]
