"""log_analytics: Cloud Logging exports (log sink -> Pub/Sub or GCS files) -> a flat log
table, per-window metrics with latency percentiles, log-based metric counts and alerts.

    python -m pipelines.log_analytics [--input GLOB|projects/P/subscriptions/S]
        [--output DIR|PROJECT:DATASET] [--window 60]
        [--metric 'server_errors=httpRequest.status>=500'] [--alert 'server_errors>10']
        [--alert_topic projects/P/topics/T]
"""
import argparse
import sys
import time
from typing import Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.launch import JobPlan, build_job, main, run_job
from pipelines.options import (PUBSUB_TOPIC, ConfigError, JobOptions, add_repeated, positive,
                               text)
from transforms import log_tables
from transforms.dedupe import DropDuplicates
from transforms.deadletter import TryParDo
from transforms.log_filter import parse_metric
from transforms.sinks import PublishJson
from transforms.sources import ParseJsonRecords
from transforms.windowing import Windowing

JOB = 'log_analytics'
DESCRIPTION = ('Cloud Logging exports -> log_entries, per-window log_metrics with latency '
               'percentiles, metric_counts for --metric filters, alerts and errors.')
DEFAULT_WINDOW_S = 60


class LogAnalyticsOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('log_analytics')
    add_repeated(
        group, '--metric', r'\s*[A-Za-z_][A-Za-z0-9_]*\s*=.*\S.*',
        help="A log-based metric NAME=FILTER in the Logging query language, e.g. "
        "'server_errors=httpRequest.status>=500'.")
    add_repeated(
        group, '--alert', r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(>=|<=|>|<)\s*-?[0-9]+(\.[0-9]+)?\s*',
        help="METRIC>THRESHOLD on a --metric or on entries/errors, per window, e.g. "
        "'server_errors>10' (also >=, <, <=).")
    group.add_argument(
        '--alert_topic', default=None,
        type=text('alert_topic', '^' + PUBSUB_TOPIC + '$', 'PUBSUB_TOPIC'),
        help='Also publish alert rows as JSON to this Pub/Sub topic (projects/P/topics/T).')
    group.add_argument(  # --dedupe_ttl's earlier name, kept so existing command lines work
        '--log_dedupe_ttl', type=positive, default=None, help=argparse.SUPPRESS)


def parse_rules(metric_specs, alert_specs):
  """--metric and --alert values -> (metrics, alert rules); a bad one stops the job here."""
  try:
    metrics = [parse_metric(spec) for spec in metric_specs]
    names = [name for name, _ in metrics]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
      raise ValueError('--metric names must be unique: %s' % ', '.join(duplicated))
    reserved = sorted(set(names) & set(log_tables.BUILTIN_TOTALS))
    if reserved:
      raise ValueError('--metric names %s are built in (entries, errors): choose another'
                       % ', '.join(reserved))
    return metrics, [log_tables.parse_alert(spec, names) for spec in alert_specs]
  except ValueError as e:
    raise ConfigError(str(e)) from e


class LogAnalytics(beam.PTransform):
  """Records -> {'log_entries', 'log_metrics', 'metric_counts', 'alerts', 'errors'}."""

  def __init__(self, windowing: Windowing = Windowing(window_s=DEFAULT_WINDOW_S,
                                                       batch_windows=True),
               metrics=(), alert_rules=(), dedupe_ttl_s: float = 3600, clock=time.time):
    super().__init__()
    self._windowing = windowing
    self._metrics = list(metrics)
    self._alert_rules = list(alert_rules)
    self._dedupe_ttl_s = dedupe_ttl_s
    self._clock = clock

  def expand(self, records):
    parsed, parse_errors = records | 'ParseJson' >> ParseJsonRecords(JOB, self._clock)
    keyed, decode_errors = parsed | 'DecodeEntries' >> TryParDo(
        log_tables.DecodeLogEntries(self._metrics), JOB, 'decode_entry', self._clock)
    entries = keyed | 'DropDuplicates' >> DropDuplicates(JOB, self._dedupe_ttl_s)
    rows = entries | 'Rows' >> beam.Map(lambda entry: entry.row)
    metric_counts = entries | 'MetricCounts' >> log_tables.CountPerWindow(
        self._windowing, log_tables.matching_metrics, [name for name, _ in self._metrics])
    totals = rows | 'Totals' >> log_tables.CountPerWindow(
        self._windowing, log_tables.totals)
    rules = self._alert_rules
    alerts = ((metric_counts, totals) | 'AlertInputs' >> beam.Flatten()
              | 'Alerts' >> beam.FlatMap(log_tables.alerts_for, rules)
              | 'OncePerWindow' >> log_tables.FirstAlertPerWindow(
                  JOB, self._windowing.window_s + self._windowing.allowed_lateness_s))
    return {
        'log_entries': rows,
        'log_metrics': rows | 'LogMetrics' >> log_tables.LogMetrics(self._windowing),
        'metric_counts': metric_counts,
        'alerts': alerts,
        'errors': (parse_errors, decode_errors) | 'Errors' >> beam.Flatten(),
    }


def _build(records, options: PipelineOptions, streaming: bool):
  logs = options.view_as(LogAnalyticsOptions)
  metrics, rules = parse_rules(logs.metric, logs.alert)
  tables = records | 'LogAnalytics' >> LogAnalytics(
      Windowing.from_options(options.view_as(JobOptions), streaming, batch_windows=True,
                             default_window_s=DEFAULT_WINDOW_S),
      metrics, rules, logs.log_dedupe_ttl or options.view_as(JobOptions).dedupe_ttl)
  if logs.alert_topic:
    tables['alerts'] | 'PublishAlerts' >> PublishJson(logs.alert_topic)
  return tables


def build(argv=None, save_main_session=True) -> JobPlan:
  """The job's pipeline for `argv`, not run (tests inspect it)."""
  return build_job(JOB, LogAnalyticsOptions, _build, argv, save_main_session, DESCRIPTION)


def run(argv=None, save_main_session=True) -> Optional[beam.runners.runner.PipelineResult]:
  return run_job(JOB, LogAnalyticsOptions, _build, argv, save_main_session, DESCRIPTION)


if __name__ == '__main__':
  sys.exit(main(JOB, run))
