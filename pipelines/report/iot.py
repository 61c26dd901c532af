"""iot_telemetry: per-metric time series of the busiest devices with alert periods shaded,
and a device x window table of readings."""
import datetime
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

from pipelines.report import charts, timeseries
from pipelines.report import html as h
from pipelines.report.sources import JobTables, latest_panes

TITLE = 'IoT telemetry'
TABLES = ('device_stats', 'alerts')  # what the SQL below reads
BUSIEST = 4          # devices drawn, plus any device with an alert
MAX_DEVICES = 8
MAX_HEAT_WINDOWS = 120  # columns of the device x window table (the latest ones)
_HEAT = matplotlib.colormaps['YlGnBu']


def busiest_devices(totals: Sequence[Tuple[str, int]], alerted: Sequence[str],
                    n: int = BUSIEST, limit: int = MAX_DEVICES) -> List[str]:
  """The n devices with most readings (ties by id), then alerted ones, at most `limit`."""
  ranked = [d for d, _ in sorted(totals, key=lambda dt: (-dt[1], dt[0]))]
  chosen = ranked[:n]
  for device in sorted(set(alerted)):
    if device not in chosen and len(chosen) < limit:
      chosen.append(device)
  return chosen


def alert_spans(alerts: Sequence[Dict], end: Optional[datetime.datetime]) -> List[Dict]:
  """FIRING .. CLEARED periods per device, metric and rule: from the firing window's start
  to the clearing window's start (to `end`, the last window drawn, while still firing)."""
  spans, open_ = [], {}
  for a in sorted(alerts, key=lambda a: (a['window_start'], a['state'])):
    key = (a['device_id'], a['metric'], a['rule'])
    if a['state'] == 'FIRING':
      open_.setdefault(key, a['window_start'])
    elif key in open_:
      spans.append({'device_id': key[0], 'metric': key[1], 'rule': key[2],
                    'start': open_.pop(key), 'end': a['window_start']})
  for (device, metric, rule), start in sorted(open_.items()):
    spans.append({'device_id': device, 'metric': metric, 'rule': rule, 'start': start,
                  'end': end, 'open': True})
  return spans


def device_label(registry: Optional[str], device: str, several_registries: bool) -> str:
  """How the report names a device: its id, or registry/id when the output holds more than
  one registry (the same id in two registries is two devices; no registry: the id alone)."""
  return '%s/%s' % (registry, device) if several_registries and registry is not None else device


def labelled_stats(t: JobTables) -> Tuple[str, bool]:
  """device_stats' latest panes per (registry, device, metric), the job's key, with a
  `device` column naming each device; and whether there are several registries."""
  registries = t.rows('SELECT DISTINCT registry_id FROM "device_stats" UNION '
                      'SELECT DISTINCT registry_id FROM "alerts"')
  several = len(registries) > 1
  label = "coalesce(registry_id || '/', '') || device_id" if several else 'device_id'
  return ('(SELECT *, %s AS device FROM %s)' % (
      label, latest_panes('device_stats', 'registry_id', 'device_id', 'metric')), several)


def series_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Busiest devices: metric means per window')]
  stats_sql, several = labelled_stats(t)
  totals = t.rows('SELECT device, sum(count) AS n FROM %s GROUP BY 1' % stats_sql)
  if not totals:
    return out + [h.no_rows('device_stats')]
  alerts = [dict(a, device=device_label(a['registry_id'], a['device_id'], several))
            for a in t.rows('SELECT window_start, window_end, rule, state, registry_id, '
                            'device_id, metric, condition, value, threshold FROM alerts '
                            'ORDER BY window_start, registry_id, device_id')]
  devices = busiest_devices([(r['device'], int(r['n'])) for r in totals],
                            [a['device'] for a in alerts])
  marks = ', '.join('?' for _ in devices)
  rows = t.rows('SELECT window_start, device, metric, count, mean, min, max FROM %s '
                'WHERE device IN (%s) ORDER BY metric, device, window_start'
                % (stats_sql, marks), devices)
  end = t.rows('SELECT max(window_start) AS end FROM "device_stats"')[0]['end']
  spans = alert_spans([dict(a, device_id=a['device']) for a in alerts], end)
  by_metric: Dict[str, Dict[str, Tuple[list, list]]] = {}
  for r in rows:
    xs, ys = by_metric.setdefault(r['metric'], {}).setdefault(r['device'], ([], []))
    xs.append(r['window_start'])
    ys.append(r['mean'])
  panels = []
  for metric, series in sorted(by_metric.items()):
    ordered = {d: series[d] for d in devices if d in series}
    panels.append(timeseries.Panel(metric, 'mean', ordered, spans=[
        (s['start'], s['end'], 'alert: %s' % s['rule']) for s in spans
        if s['metric'] == metric and s['device_id'] in ordered]))
  path, src = files.path('series')
  timeseries.time_panels(path, 'Per-metric window means of the busiest devices', panels,
                     ncols=2 if len(panels) > 2 else 1, panel_height=2.4)
  out.append(h.figure(src, 'Metric means per window for the busiest devices',
                      'Devices: the %d with most readings, then any with an alert. Shaded: '
                      'from the window an alert fired to the window it cleared.' % BUSIEST))
  summary = t.rows('SELECT device, metric, count(*) AS windows, min(min) AS low, '
                   'max(max) AS high FROM %s WHERE device IN (%s) GROUP BY ALL '
                   'ORDER BY device, metric' % (stats_sql, marks), devices)
  out.append(h.table(['device', 'metric', 'windows', 'lowest reading', 'highest reading'],
                     [(r['device'], r['metric'], r['windows'], r['low'], r['high'])
                      for r in summary]))
  out.append(h.details('Per window (%d rows)' % len(rows), h.table(
      ['window start (UTC)', 'device', 'metric', 'readings', 'mean', 'min', 'max'],
      [(r['window_start'], r['device'], r['metric'], r['count'], r['mean'], r['min'],
        r['max']) for r in rows])))
  out.append(h.heading('Alerts', 4))
  if alerts:
    out.append(h.table(['window start (UTC)', 'window end (UTC)', 'device', 'rule', 'state',
                        'metric', 'condition', 'value', 'threshold'],
                       [(a['window_start'], a['window_end'], a['device'], a['rule'],
                         a['state'], a['metric'], a['condition'], a['value'], a['threshold'])
                        for a in alerts]))
  else:
    out.append(h.no_rows('alerts'))
  return out


def heat_colour(value: int, top: int) -> str:
  """Background for a heat-table cell: white for 0, darker for more."""
  if not value or not top:
    return '#ffffff'
  return matplotlib.colors.to_hex(_HEAT(0.15 + 0.85 * value / top))


def heat_section(t: JobTables) -> List[str]:
  out = [h.heading('Readings per device and window')]
  rows = t.rows('SELECT device, window_start, sum(count) AS n FROM %s GROUP BY ALL'
                % labelled_stats(t)[0])
  if not rows:
    return out + [h.no_rows('device_stats')]
  windows = sorted({r['window_start'] for r in rows})
  shown = windows[-MAX_HEAT_WINDOWS:]
  if len(shown) < len(windows):
    out.append(h.note('Showing the last %d of %d windows.' % (len(shown), len(windows))))
  cells = {(r['device'], r['window_start']): int(r['n']) for r in rows}
  top = max(cells.values())
  head = ''.join('<th class="time" title="%s">%s</th>' % (h.fmt_time(w), w.strftime('%H:%M'))
                 for w in shown)
  body = []
  for device in sorted({r['device'] for r in rows}):
    tds = ''.join('<td class="num" style="background:%s;color:%s">%s</td>' % (
        heat_colour(cells.get((device, w), 0), top),
        '#fff' if cells.get((device, w), 0) > top * 0.6 else '#1d1d1f',
        cells.get((device, w), 0)) for w in shown)
    body.append('<tr><th>%s</th>%s</tr>' % (h.esc(device), tds))
  out.append(h.para('Readings (metric values) per device in each window; windows from %s to '
                    '%s UTC, labelled by start time.' % (h.fmt_time(shown[0]),
                                                         h.fmt_time(shown[-1]))))
  out.append('<div class="scroll"><table class="heat"><thead><tr><th>device</th>%s</tr></thead>'
             '<tbody>%s</tbody></table></div>' % (head, ''.join(body)))
  return out


def sections(t: JobTables, files: charts.ChartFiles) -> List[str]:
  return series_section(t, files) + heat_section(t)
