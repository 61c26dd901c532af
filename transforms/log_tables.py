"""The log_analytics tables as composite transforms: per-window log metrics with latency
percentiles, filter-based metric counts, and threshold alerts over them."""
import math
import operator
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.utils.timestamp import Timestamp

from transforms import cloud_logging
from transforms.deadletter import RecordError
from transforms.dedupe import DropDuplicates
from transforms.records import Record
from transforms.windowing import AggregatePerWindow, Windowing


class LogEntry(NamedTuple):
  """A decoded entry: its table row and the `--metric` names whose filters it matched.
  Filters run on the raw LogEntry before the dedupe shuffle, so the raw entry never has to
  travel through it."""
  row: Dict[str, Any]
  metrics: Tuple[str, ...] = ()


class DecodeLogEntries(beam.DoFn):
  """Parsed Record -> timestamped (duplicate key, LogEntry)."""

  def __init__(self, metrics: Sequence[Tuple[str, Any]] = ()):
    self._metrics = list(metrics)

  def process(self, record: Record):
    entry = record.value
    if not isinstance(entry, dict):
      raise RecordError('record is not a JSON object')
    micros = cloud_logging.entry_micros(entry)  # parsed once, used three times
    row = cloud_logging.entry_row(entry, micros)
    key = cloud_logging.duplicate_key(entry, micros)
    matched = tuple(name for name, log_filter in self._metrics if log_filter.matches(entry))
    yield beam.window.TimestampedValue((key, LogEntry(row, matched)), Timestamp(micros=micros))


def percentile(ordered: Sequence[float], fraction: float) -> Optional[float]:
  """Linear interpolation between closest ranks (numpy's and DuckDB quantile_cont's)."""
  if not ordered:
    return None
  rank = fraction * (len(ordered) - 1)
  low, high = math.floor(rank), math.ceil(rank)
  return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class LogMetricsFn(beam.CombineFn):
  """Rows of one log and severity -> entries, errors, requests and latency percentiles.

  Latencies are kept exactly (a window of one log holds thousands, not millions), so the
  percentiles are exact and testable."""

  def create_accumulator(self):
    return [0, 0, 0, []]  # entries, errors, http requests, latencies

  def add_input(self, acc, row):
    acc[0] += 1
    if row['severity_number'] >= cloud_logging.ERROR_LEVEL:
      acc[1] += 1
    if row['http_method'] is not None or row['http_status'] is not None:
      acc[2] += 1
    if row['http_latency_ms'] is not None:
      acc[3].append(row['http_latency_ms'])
    return acc

  def merge_accumulators(self, accumulators):
    out = self.create_accumulator()
    for acc in accumulators:
      out[0] += acc[0]
      out[1] += acc[1]
      out[2] += acc[2]
      out[3].extend(acc[3])
    return out

  def extract_output(self, acc) -> Dict[str, Any]:
    ordered = sorted(acc[3])
    return {
        'entries': acc[0], 'errors': acc[1], 'http_requests': acc[2],
        'latency_p50_ms': percentile(ordered, 0.50),
        'latency_p95_ms': percentile(ordered, 0.95),
        'latency_p99_ms': percentile(ordered, 0.99),
        'latency_max_ms': ordered[-1] if ordered else None,
    }


def _metrics_rows(key, stats):
  log_id, severity = key
  return [dict(stats, log_id=log_id, severity=severity)]


class LogMetrics(beam.PTransform):
  """log_entries rows -> log_metrics rows per window x log_id x severity."""

  def __init__(self, windowing: Windowing):
    super().__init__()
    self._windowing = windowing

  def expand(self, rows):
    return (
        rows
        | 'ByLogAndSeverity' >> beam.Map(lambda r: ((r['log_id'], r['severity']), r))
        | 'Aggregate' >> AggregatePerWindow(self._windowing, LogMetricsFn(), _metrics_rows))


def matching_metrics(entry: LogEntry, names: Sequence[str]):
  """(name, 1) for each `--metric` the entry matched and (name, 0) for the others, so a
  window with entries has a row (maybe 0) for every metric: `<` alerts can fire on 0."""
  return [(name, 1 if name in entry.metrics else 0) for name in names]


BUILTIN_TOTALS = ('entries', 'errors')


def totals(row):
  """Every row counts towards `entries`; those with severity >= ERROR towards `errors`
  (0 otherwise, so `errors` has a row in every window with entries)."""
  return [('entries', 1), ('errors', int(row['severity_number'] >= cloud_logging.ERROR_LEVEL))]


def _count_row(metric, count):
  return [{'metric': metric, 'count': count}]


class CountPerWindow(beam.PTransform):
  """Elements -> metric_counts-shaped rows ({metric, count} per window) summing the
  (name, n) pairs `names(element, *args)` returns."""

  def __init__(self, windowing: Windowing, names, *args):
    super().__init__()
    self._windowing = windowing
    self._names = names
    self._args = args

  def expand(self, elements):
    return (
        elements
        | 'Names' >> beam.FlatMap(self._names, *self._args)
        | 'Count' >> AggregatePerWindow(self._windowing, sum, _count_row))


_COMPARE = {'>': operator.gt, '>=': operator.ge, '<': operator.lt, '<=': operator.le}
_ALERT = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$')


class AlertRule(NamedTuple):
  metric: str
  op: str
  threshold: float

  def __str__(self):
    threshold = int(self.threshold) if self.threshold.is_integer() else self.threshold
    return '%s%s%s' % (self.metric, self.op, threshold)


def parse_alert(spec: str, known_metrics: Sequence[str]) -> AlertRule:
  """'server_errors>10' -> AlertRule; a rule that does not parse, or names a metric that
  is neither a --metric nor entries/errors, is a start-up error (ValueError)."""
  match = _ALERT.match(spec)
  if not match:
    raise ValueError('--alert %r: expected METRIC>THRESHOLD (>, >=, < or <=)' % spec)
  metric, op, threshold = match.group(1), match.group(2), float(match.group(3))
  if metric not in known_metrics and metric not in BUILTIN_TOTALS:
    raise ValueError('--alert %r: unknown metric %r (known: %s)' % (
        spec, metric, ', '.join(sorted(set(known_metrics) | set(BUILTIN_TOTALS)))))
  return AlertRule(metric, op, threshold)


def alerts_for(row: Dict[str, Any], rules: List[AlertRule]) -> List[Dict[str, Any]]:
  """A metric_counts-shaped row -> an alert row per rule it breaks."""
  out = []
  for rule in rules:
    if rule.metric == row['metric'] and _COMPARE[rule.op](row['count'], rule.threshold):
      out.append({
          'metric': rule.metric, 'condition': str(rule), 'value': float(row['count']),
          'threshold': rule.threshold, 'window_start': row['window_start'],
          'window_end': row['window_end'], 'pane_index': row['pane_index'],
          'pane_timing': row['pane_timing']})
  return out


class FirstAlertPerWindow(beam.PTransform):
  """Alert rows -> one per rule and window: the first firing in which the condition held.
  Streaming windows fire several times (early, on time, late); an alert is raised once."""

  def __init__(self, job: str, remember_s: float):
    super().__init__()
    self._job = job
    self._remember_s = remember_s

  def expand(self, alerts):
    return (
        alerts
        | 'ByRuleAndWindow' >> beam.Map(
            lambda row: ('%s\x00%s' % (row['condition'], row['window_start']), row))
        | 'First' >> DropDuplicates(self._job, self._remember_s, counter='repeated_alerts'))
