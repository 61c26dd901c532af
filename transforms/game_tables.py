"""The game_analytics tables as composite transforms, each windowed by `Windowing`.

Batch: one global window, so every table is exact over the whole input. Streaming: sessions
are `PlaySessions` windows; heatmap, score_by_age and funnel are fixed windows with early
firings and allowed lateness (see README, "Streaming semantics").
"""
import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Timestamp

from transforms import game
from transforms.firebase import flatten_record
from transforms.game_sessions import (FunnelFn, PlaySessions, ScoreFn, SessionEvent,
                                      SessionSummaryFn, funnel_depth)
from transforms.records import Record
from transforms.windowing import AggregatePerWindow, Windowing, pane_columns


class FlattenEvents(beam.DoFn):
  """A parsed record -> one Record per event it holds (several for legacy payloads)."""

  def __init__(self, job: str):
    self._events_read = Metrics.counter(job, 'events_read')

  def process(self, record: Record):
    try:
      events = flatten_record(record.value)
    except Exception:
      self._events_read.inc()  # a record that cannot be expanded counts as one event
      raise
    self._events_read.inc(len(events))
    for event in events:
      yield record.with_value(event, keep_payload=False)


class DecodeGameEvents(beam.DoFn):
  """Event Record -> timestamped (duplicate key, events row); other apps' events are
  counted as `filtered`."""

  def __init__(self, job: str):
    self._filtered = Metrics.counter(job, 'filtered')

  def process(self, record: Record):
    event = record.value
    name = game.game_event_name(event.name)
    if name is None:
      self._filtered.inc()
      return
    row = game.event_row(event, name)
    key = game.duplicate_key(event, name, row['session_id'])
    yield beam.window.TimestampedValue((key, row), Timestamp(micros=event.micros))


class _ToSessionEvent(beam.DoFn):
  """events row -> (session_id, SessionEvent). A DoFn, not a Map over a function with a
  TimestampParam: Beam would inspect that function's signature for every element."""

  def process(self, row, timestamp=beam.DoFn.TimestampParam):
    yield row['session_id'], SessionEvent(
        row['event_name'], timestamp.micros, row['user_id'], row['age'], row['sex'],
        row['score'])


class _SessionRow(beam.DoFn):

  def process(self, keyed, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
    session_id, summary = keyed
    row = {'session_id': session_id}
    row.update(summary)
    row.update(pane_columns(win, pane))
    yield row


class SessionSummaries(beam.PTransform):
  """events rows -> session summaries (`sessions` rows plus `started` for the funnel)."""

  def __init__(self, windowing: Windowing, session_gap_s: float):
    super().__init__()
    self._windowing = windowing
    self._gap = session_gap_s

  def expand(self, events):
    return (
        events
        | 'ToSessionEvents' >> beam.ParDo(_ToSessionEvent())
        | 'SessionWindows' >> self._windowing.sessions(PlaySessions(self._gap))
        | 'Summarise' >> beam.CombinePerKey(SessionSummaryFn())
        | 'ToRows' >> beam.ParDo(_SessionRow()))


def session_table_row(summary):
  return {k: v for k, v in summary.items() if k != 'started'}


def _on_time(summary):
  """A session's first, complete firing; late re-firings would count it twice."""
  return summary.get('pane_timing') in (None, 'ON_TIME', 'UNKNOWN')


def _cell_count(row, cell_size):
  cell = game.heatmap_cell(row, cell_size)
  return [(cell, 1)] if cell else []


def _heatmap_row(cell, count):
  return [{'layer': cell[0], 'cell_x': cell[1], 'cell_z': cell[2], 'count': count}]


def _score_row(age_group, stats):
  return [dict(stats, age_group=age_group)]


class Heatmap(beam.PTransform):
  """events rows -> heatmap rows: events per layer and map cell, per window."""

  def __init__(self, windowing: Windowing, cell_size: float):
    super().__init__()
    self._windowing = windowing
    self._cell_size = cell_size

  def expand(self, events):
    return (
        events
        | 'ToCells' >> beam.FlatMap(_cell_count, self._cell_size)
        | 'CountCells' >> AggregatePerWindow(self._windowing, sum, _heatmap_row))


class ScoreByAge(beam.PTransform):
  """session summaries -> score_by_age rows over completed sessions, per window."""

  def __init__(self, windowing: Windowing):
    super().__init__()
    self._windowing = windowing

  def expand(self, summaries):
    return (
        summaries
        | 'Completed' >> beam.Filter(lambda s: s['completed'] and _on_time(s))
        | 'ByAgeGroup' >> beam.Map(lambda s: (s['age_group'], s['score']))
        | 'Aggregate' >> AggregatePerWindow(self._windowing, ScoreFn(), _score_row))


class Funnel(beam.PTransform):
  """session summaries -> one funnel row per step, per window."""

  def __init__(self, windowing: Windowing):
    super().__init__()
    self._windowing = windowing

  def expand(self, summaries):
    return (
        summaries
        | 'OnTime' >> beam.Filter(_on_time)
        | 'Depth' >> beam.Map(lambda s: (None, funnel_depth(s)))
        | 'Aggregate' >> AggregatePerWindow(
            self._windowing, FunnelFn(), lambda _, rows: rows))
