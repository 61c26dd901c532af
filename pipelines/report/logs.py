"""log_analytics: entries and errors per window by log, latency percentiles over time, and
filter-metric counts with the alert thresholds that fired."""
from typing import Dict, List, Sequence, Tuple

from pipelines.report import charts, timeseries
from pipelines.report import html as h
from pipelines.report.sources import JobTables, latest_panes

TITLE = 'Log analytics'
TABLES = ('log_metrics', 'metric_counts', 'alerts')  # what the SQL below reads
BUILTIN_TOTALS = ('entries', 'errors')  # alert metrics the job totals over every log


def series_by(rows: Sequence[Dict], key: str, value: str) -> Dict[str, Tuple[list, list]]:
  """Rows ordered by window_start -> {row[key]: (window starts, values)}."""
  out: Dict[str, Tuple[list, list]] = {}
  for r in rows:
    xs, ys = out.setdefault(r[key], ([], []))
    xs.append(r['window_start'])
    ys.append(r[value])
  return out


def volume_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Entries and errors per window, by log')]
  rows = t.rows('SELECT window_start, log_id, sum(entries) AS entries, sum(errors) AS errors '
                'FROM %s GROUP BY ALL ORDER BY window_start, log_id'
                % latest_panes('log_metrics', 'log_id', 'severity'))
  if not rows:
    return out + [h.no_rows('log_metrics')]
  path, src = files.path('volume')
  timeseries.time_panels(path, 'Log entries and errors per window', [
      timeseries.Panel('Entries', 'entries', series_by(rows, 'log_id', 'entries')),
      timeseries.Panel('Errors (severity ERROR and above)', 'errors',
                   series_by(rows, 'log_id', 'errors'))])
  out.append(h.figure(src, 'Entries and errors per window for each log'))
  totals = t.rows('SELECT log_id, count(DISTINCT window_start) AS windows, sum(entries) AS '
                  'entries, sum(errors) AS errors, sum(http_requests) AS requests FROM %s '
                  'GROUP BY log_id ORDER BY log_id'
                  % latest_panes('log_metrics', 'log_id', 'severity'))
  out.append(h.table(['log', 'windows', 'entries', 'errors', 'error share', 'HTTP requests'],
                     [(r['log_id'], r['windows'], int(r['entries']), int(r['errors']),
                       h.pct(r['errors'], r['entries']), int(r['requests'])) for r in totals]))
  out.append(h.details('Per window (%d rows)' % len(rows), h.table(
      ['window start (UTC)', 'log', 'entries', 'errors'],
      [(r['window_start'], r['log_id'], int(r['entries']), int(r['errors'])) for r in rows])))
  return out


def latency_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  """One panel per log and severity: percentiles of different groups do not add up."""
  out = [h.heading('HTTP latency p50 / p95 / p99 over time')]
  rows = t.rows('SELECT window_start, log_id, severity, http_requests, latency_p50_ms AS p50, '
                'latency_p95_ms AS p95, latency_p99_ms AS p99, latency_max_ms AS max FROM %s '
                'WHERE latency_p50_ms IS NOT NULL ORDER BY log_id, severity, window_start'
                % latest_panes('log_metrics', 'log_id', 'severity'))
  if not rows:
    return out + [h.no_rows('latency (log_metrics rows with HTTP latency)')]
  groups: Dict[str, List[Dict]] = {}
  for r in rows:
    groups.setdefault('%s · %s' % (r['log_id'], r['severity']), []).append(r)
  panels = [timeseries.Panel(name, 'latency (ms, log scale)', {
      p: ([r['window_start'] for r in group], [r[p] for r in group]) for p in
      ('p50', 'p95', 'p99')}, log_y=True) for name, group in groups.items()]
  path, src = files.path('latency')
  timeseries.time_panels(path, 'HTTP request latency percentiles per window', panels)
  out.append(h.figure(src, 'Latency percentiles per window for each log and severity'))
  out.append(h.table(
      ['log · severity', 'windows', 'requests', 'highest p50 (ms)', 'highest p95 (ms)',
       'highest p99 (ms)', 'max (ms)'],
      [(name, len(g), sum(r['http_requests'] for r in g), max(r['p50'] for r in g),
        max(r['p95'] for r in g), max(r['p99'] for r in g),
        max((r['max'] for r in g if r['max'] is not None), default=None))
       for name, g in groups.items()]))
  out.append(h.details('Per window (%d rows)' % len(rows), h.table(
      ['window start (UTC)', 'log', 'severity', 'requests', 'p50 (ms)', 'p95 (ms)', 'p99 (ms)',
       'max (ms)'],
      [(r['window_start'], r['log_id'], r['severity'], r['http_requests'], r['p50'], r['p95'],
        r['p99'], r['max']) for r in rows])))
  return out


def metric_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Filter-metric counts and alerts')]
  counts = t.rows('SELECT window_start, metric, count FROM %s ORDER BY metric, window_start'
                  % latest_panes('metric_counts', 'metric'))
  alerts = t.rows('SELECT window_start, metric, condition, value, threshold FROM %s '
                  'ORDER BY window_start, metric' % latest_panes('alerts', 'metric', 'condition'))
  for metric in sorted({a['metric'] for a in alerts} & set(BUILTIN_TOTALS)):
    counts += t.rows('SELECT window_start, ? AS metric, sum(%s) AS count FROM %s GROUP BY 1 '
                     'ORDER BY 1' % (metric, latest_panes('log_metrics', 'log_id', 'severity')),
                     [metric])
  if not counts:
    out.append(h.no_rows('metric_counts'))
  else:
    series = series_by(counts, 'metric', 'count')
    panels = []
    for metric, (xs, ys) in series.items():
      mine = [a for a in alerts if a['metric'] == metric]
      panels.append(timeseries.Panel(
          metric, 'count per window', {metric: (xs, ys)},
          hlines=[(threshold, 'threshold: %s' % condition) for condition, threshold in
                  sorted({(a['condition'], a['threshold']) for a in mine})],
          marks=[(a['window_start'], a['value']) for a in mine], mark_label='alert fired'))
    path, src = files.path('metrics')
    timeseries.time_panels(path, 'Filter-metric counts per window, with alert thresholds', panels)
    out.append(h.figure(src, 'Filter-metric counts per window with thresholds and alerts',
                        'Dashed: a threshold of an alert that fired; triangles: alert windows. '
                        'Thresholds of rules that never fired are not in the output.'))
    out.append(h.table(
        ['metric', 'windows', 'total', 'highest count', 'alerts'],
        [(metric, len(xs), int(sum(ys)), int(max(ys)),
          sum(1 for a in alerts if a['metric'] == metric)) for metric, (xs, ys) in
         series.items()]))
    out.append(h.details('Per window (%d rows)' % len(counts), h.table(
        ['window start (UTC)', 'metric', 'count'],
        [(r['window_start'], r['metric'], int(r['count'])) for r in counts])))
  out.append(h.heading('Alerts', 4))
  if alerts:
    out.append(h.table(['window start (UTC)', 'metric', 'condition', 'value', 'threshold'],
                       [(a['window_start'], a['metric'], a['condition'], a['value'],
                         a['threshold']) for a in alerts]))
  else:
    out.append(h.no_rows('alerts'))
  return out


def sections(t: JobTables, files: charts.ChartFiles) -> List[str]:
  return volume_section(t, files) + latency_section(t, files) + metric_section(t, files)
