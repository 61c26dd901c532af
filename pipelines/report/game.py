"""game_analytics: map heatmaps per layer, score by age group, the funnel, sessions over time."""
from typing import Dict, List, Optional, Sequence

from pipelines.report import charts, rasters, timeseries
from pipelines.report import html as h
from pipelines.report import timebins
from pipelines.report.sources import JobTables, latest_panes, latest_whole_panes

TITLE = 'Game analytics'
TABLES = ('heatmap', 'score_by_age', 'funnel', 'sessions')  # what the SQL below reads
# The four first; any other layer the job writes follows.
LAYER_ORDER = ('player_move', 'player_attack', 'npc_move', 'npc_die', 'npc_create')
TOP_CELLS = 10


def funnel_steps(rows: Sequence[Dict]) -> List[Dict]:
  """Steps in order with sessions summed over windows, and the conversion from the first
  step and from the step before (None when the base is 0)."""
  steps: Dict[int, Dict] = {}
  for row in rows:
    step = steps.setdefault(row['step_index'], {'step': row['step'], 'sessions': 0})
    step['sessions'] += row['sessions']
  out, first, previous = [], None, None
  for index in sorted(steps):
    sessions = steps[index]['sessions']
    first = sessions if first is None else first
    if previous is None:
      from_previous = 1.0 if sessions else None
    else:
      from_previous = sessions / previous if previous else None
    out.append({'step_index': index, 'step': steps[index]['step'], 'sessions': sessions,
                'from_start': sessions / first if first else None,
                'from_previous': from_previous})
    previous = sessions
  return out


def funnel_annotation(index: int, step: Dict) -> str:
  if index == 0:
    return '%d sessions' % step['sessions']
  return '%d  (%s of the step before)' % (step['sessions'], h.ratio_pct(step['from_previous']))


def age_label(group: Optional[int]) -> str:
  return 'unknown' if group is None else '%d–%d' % (group, group + 9)


def ordered_layers(names) -> List[str]:
  names = set(names)
  return [n for n in LAYER_ORDER if n in names] + sorted(names - set(LAYER_ORDER))


def heatmap_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Heatmaps over the map, per layer')]
  rows = t.rows('SELECT layer, cell_x, cell_z, sum(count) AS n FROM %s GROUP BY ALL'
                % latest_panes('heatmap', 'layer', 'cell_x', 'cell_z'))
  if not rows:
    return out + [h.no_rows('heatmap')]
  layers: Dict[str, Dict] = {name: {} for name in ordered_layers(r['layer'] for r in rows)}
  for r in rows:
    layers[r['layer']][(r['cell_x'], r['cell_z'])] = int(r['n'])
  path, src = files.path('heatmaps')
  rasters.map_heatmaps(path, 'Events per map cell, by layer', layers, 'events per cell')
  out.append(h.figure(src, 'Heatmaps of events per map cell for each layer',
                      'Grey: no events. One logarithmic colour scale for every layer.'))
  summary, top = [], []
  for name, counts in layers.items():
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    (bx, bz), bn = ranked[0]
    summary.append((name, len(counts), sum(counts.values()), '(%d, %d)' % (bx, bz), bn))
    top += [(name, rank + 1, x, z, n) for rank, ((x, z), n) in enumerate(ranked[:TOP_CELLS])]
  out.append(h.table(['layer', 'cells with events', 'events', 'busiest cell (x, z)',
                      'events in busiest cell'], summary))
  out.append(h.details('Top %d cells per layer' % TOP_CELLS, h.table(
      ['layer', 'rank', 'cell x', 'cell z', 'events'], top)))
  return out


def score_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Score by age group')]
  # avg_score is null in a window none of whose sessions has a score: the mean is weighted by
  # the sessions of the windows with one (the table has no count of scored sessions).
  scored = 'FILTER (WHERE avg_score IS NOT NULL)'
  rows = t.rows(
      'SELECT age_group, sum(sessions) AS sessions, CASE WHEN count(avg_score) = 1 '
      'THEN max(avg_score) ELSE sum(avg_score * sessions) {0} / sum(sessions) {0} END AS mean, '
      'min(min_score) AS min, max(max_score) AS max FROM {1} GROUP BY age_group '
      'ORDER BY age_group NULLS LAST'.format(scored, latest_panes('score_by_age', 'age_group')))
  if not rows:
    return out + [h.no_rows('score_by_age')]
  drawn = [r for r in rows if r['mean'] is not None]
  if drawn:
    path, src = files.path('score_by_age')
    charts.bars(path, 'Session score by age group: mean, with min–max range',
                [age_label(r['age_group']) for r in drawn], [r['mean'] for r in drawn],
                'age group (years)', 'score',
                yerr=([r['mean'] - r['min'] for r in drawn], [r['max'] - r['mean'] for r in drawn]),
                annotations=['%.1f' % r['mean'] for r in drawn])
    out.append(h.figure(src, 'Mean score per age group with min and max'))
  else:
    out.append(h.no_rows('scores'))
  out.append(h.table(['age group', 'sessions', 'mean score', 'min score', 'max score'],
                     [(age_label(r['age_group']), int(r['sessions']), r['mean'], r['min'],
                       r['max']) for r in rows],
                     caption='Mean over the windows with scores, weighted by their sessions'))
  return out


def funnel_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Funnel')]
  steps = funnel_steps(t.rows('SELECT step, step_index, sessions FROM %s'
                              % latest_whole_panes('funnel')))
  if not steps:
    return out + [h.no_rows('funnel')]
  path, src = files.path('funnel')
  charts.bars(path, 'Funnel: sessions reaching each step', [s['step'] for s in steps],
              [s['sessions'] for s in steps], 'sessions', '',
              annotations=[funnel_annotation(i, s) for i, s in enumerate(steps)],
              horizontal=True, colour=charts.PALETTE[2])
  out.append(h.figure(src, 'Funnel of sessions per step'))
  out.append(h.table(['step', 'sessions', 'of first step', 'step conversion'],
                     [(s['step'], s['sessions'], h.ratio_pct(s['from_start']),
                       h.ratio_pct(s['from_previous'])) for s in steps]))
  return out


def sessions_section(t: JobTables, files: charts.ChartFiles) -> List[str]:
  out = [h.heading('Sessions over time')]
  rows = t.rows('SELECT start_time, completed FROM %s WHERE start_time IS NOT NULL'
                % latest_panes('sessions', window='session_id'))
  if not rows:
    return out + [h.no_rows('sessions')]
  times = [r['start_time'] for r in rows]
  width = timebins.bin_width_s(min(times), max(times))
  bins = timebins.count_by_bin(
      ((r['start_time'], 'completed' if r['completed'] else 'not completed') for r in rows), width)
  starts = [b for b, _ in bins]
  done = [c.get('completed', 0) for _, c in bins]
  open_ = [c.get('not completed', 0) for _, c in bins]
  series = {'completed': (starts, done)}
  if any(open_):  # drawn first, as high as both: the completed bars cover their share
    totals = [d + o for d, o in zip(done, open_, strict=True)]
    series = {'not completed': (starts, totals), **series}
  path, src = files.path('sessions')
  timeseries.time_panels(path, 'Sessions started per %s' % timebins.width_text(width), [
      timeseries.Panel('', 'sessions', series, kind='bar', bar_width_days=width / 86400.0 * 0.9)],
      xlabel='session start (UTC)', panel_height=3.2,
      colours={'completed': charts.PALETTE[0], 'not completed': charts.PALETTE[1]})
  out.append(h.figure(src, 'Sessions started per time bin'))
  out.append(h.long_table(
      ['bin start (UTC)', 'sessions', 'completed', 'not completed'],
      [(b, d + o, d, o) for b, d, o in zip(starts, done, open_, strict=True)],
      caption='Bins of %s by session start' % timebins.width_text(width)))
  return out


def sections(t: JobTables, files: charts.ChartFiles) -> List[str]:
  return (heatmap_section(t, files) + score_section(t, files) + funnel_section(t, files)
          + sessions_section(t, files))

