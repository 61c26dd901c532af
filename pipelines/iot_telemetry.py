"""iot_telemetry: device telemetry (Pub/Sub, or saved messages in files) -> readings and
per-device sliding-window statistics (BigQuery), a time series per device (Bigtable), and
threshold rules that send commands back to devices (Pub/Sub).

    python -m pipelines.iot_telemetry [--input GLOB|projects/P/subscriptions/S]
        [--output DIR|PROJECT:DATASET] [--window 300] [--window_period 60]
        [--rule 'hot: temperature > 30 for 2 windows -> {"fan": "high"}']
        [--command_topic projects/P/topics/T] [--bigtable PROJECT:INSTANCE:TABLE]
"""
import sys
import time
from typing import Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.launch import JobPlan, build_job, main, run_job
from pipelines.options import (PROJECT, PUBSUB_TOPIC, ConfigError, JobOptions, add_repeated,
                               described, positive, text)
from transforms import device_rules, telemetry
from transforms.deadletter import TryParDo
from transforms.dedupe import DropDuplicates
from transforms.device_stats import DeviceStats
from transforms.sinks import PublishJson, WriteBigtable, parse_bigtable
from transforms.windowing import Windowing

JOB = 'iot_telemetry'
DESCRIPTION = ('Device telemetry (JSON or InfluxDB line protocol in Pub/Sub messages) -> '
               'readings, device_stats per sliding window, Bigtable rows, rule alerts '
               '(commands to --command_topic) and errors.')
DEFAULT_WINDOW_S = 300
DEFAULT_PERIOD_S = 60


class IotTelemetryOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('iot_telemetry')
    group.add_argument(
        '--window_period', type=positive, default=DEFAULT_PERIOD_S,
        help='A new device_stats window starts every N seconds (default %d); --window is '
        'each window\'s length (default %d).' % (DEFAULT_PERIOD_S, DEFAULT_WINDOW_S))
    add_repeated(
        group, '--rule', r'\s*[A-Za-z_][-\w.]*\s*:.*(>=|<=|>|<).*->.*\S.*',
        help="NAME: METRIC >|>=|<|<= VALUE [for N windows] -> COMMAND, judged on each "
        "device's window mean, e.g. 'hot: temperature > 30 for 2 windows -> "
        "{\"fan\": \"high\"}'. Fires once, clears once.")
    group.add_argument(
        '--command_topic', default=None,
        type=text('command_topic', '^' + PUBSUB_TOPIC + '$', 'PUBSUB_TOPIC'),
        help='Publish alert rows as command messages (attribute deviceId) to this Pub/Sub '
        'topic, projects/P/topics/T.')
    group.add_argument(
        '--bigtable', default=None,
        type=described('bigtable', '^' + PROJECT + r':[a-z][-a-z0-9]{5,32}:[-_.a-zA-Z0-9]{1,50}$'),
        help='Write the readings as a time series to Bigtable PROJECT:INSTANCE:TABLE '
        '(column family m must exist). Without it the rows go to the bigtable_rows table.')


def check_options(options: PipelineOptions):
  """The job's own flags -> its rules; a bad flag stops the job before it starts."""
  iot = options.view_as(IotTelemetryOptions)
  window_s = options.view_as(JobOptions).window or DEFAULT_WINDOW_S
  try:
    rules = device_rules.parse_rules(iot.rule)
    if iot.bigtable:
      parse_bigtable(iot.bigtable)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  if iot.window_period > window_s:
    raise ConfigError('--window_period (%gs) must not exceed --window (%gs): readings '
                      'between windows would be in none' % (iot.window_period, window_s))
  return rules


def _count_unexpandable(error_row, counter):
  counter.inc()  # a record that cannot be split into points counts as one reading
  return error_row


class IotTelemetry(beam.PTransform):
  """Records -> {'readings', 'device_stats', 'bigtable_rows', 'alerts', 'errors'}."""

  def __init__(self, windowing: Windowing = Windowing(window_s=DEFAULT_WINDOW_S,
                                                       batch_windows=True),
               period_s: float = DEFAULT_PERIOD_S, rules=(), dedupe_ttl_s: float = 3600,
               clock=time.time):
    super().__init__()
    self._windowing = windowing
    self._period_s = period_s
    self._rules = list(rules)
    self._dedupe_ttl_s = dedupe_ttl_s
    self._clock = clock

  def expand(self, records):
    readings_read = Metrics.counter(JOB, 'readings_read')
    expanded, message_errors = records | 'ExpandMessages' >> TryParDo(
        telemetry.ExpandMessages(), JOB, 'decode_message', self._clock)
    message_errors = message_errors | 'CountUnexpandable' >> beam.Map(
        _count_unexpandable, readings_read)
    keyed, point_errors = expanded | 'DecodePoints' >> TryParDo(
        telemetry.DecodePoints(JOB, self._clock), JOB, 'decode_point', self._clock)
    points = keyed | 'DropDuplicates' >> DropDuplicates(
        JOB, self._dedupe_ttl_s, weight=lambda point: len(point.metrics))
    stats = points | 'DeviceStats' >> DeviceStats(self._windowing, self._period_s)
    return {
        'readings': points | 'Readings' >> beam.FlatMap(telemetry.reading_rows),
        'device_stats': stats,
        'bigtable_rows': points | 'BigtableRows' >> beam.Map(telemetry.bigtable_row),
        'alerts': stats | 'Alerts' >> device_rules.EvaluateRules(
            JOB, self._rules, self._period_s),
        'errors': (message_errors, point_errors) | 'Errors' >> beam.Flatten(),
    }


def _build(records, options: PipelineOptions, streaming: bool):
  iot = options.view_as(IotTelemetryOptions)
  rules = check_options(options)
  tables = records | 'IotTelemetry' >> IotTelemetry(
      Windowing.from_options(options.view_as(JobOptions), streaming, batch_windows=True,
                             default_window_s=DEFAULT_WINDOW_S),
      iot.window_period, rules, options.view_as(JobOptions).dedupe_ttl)
  if iot.command_topic:
    tables['alerts'] | 'PublishCommands' >> PublishJson(
        iot.command_topic, attributes=device_rules.command_attributes)
  if iot.bigtable:
    tables.pop('bigtable_rows') | 'WriteBigtable' >> WriteBigtable(iot.bigtable, JOB)
  return tables


def build(argv=None, save_main_session=True) -> JobPlan:
  """The job's pipeline for `argv`, not run (tests inspect it)."""
  return build_job(JOB, IotTelemetryOptions, _build, argv, save_main_session, DESCRIPTION)


def run(argv=None, save_main_session=True) -> Optional[beam.runners.runner.PipelineResult]:
  return run_job(JOB, IotTelemetryOptions, _build, argv, save_main_session, DESCRIPTION)


if __name__ == '__main__':
  sys.exit(main(JOB, run))
