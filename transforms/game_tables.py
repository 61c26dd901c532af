"""The game_analytics tables as composite transforms, each windowed by `Windowing`.

Batch: one global window, so every table is exact over the whole input. Streaming: sessions
are tracked per session_id with state and timers; heatmap, score_by_age and funnel are fixed
windows with early firings and allowed lateness (see README, "Streaming semantics").
"""
from typing import Any, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Timestamp

from transforms import game
from transforms.firebase import flatten_record
from transforms.game_sessions import (FunnelFn, ScoreFn, SessionEvent, SessionSummaryFn,
                                      TrackSessions, funnel_depth)
from transforms.records import Record
from transforms.windowing import AggregatePerWindow, Windowing


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
    several = len(events) > 1
    for part, event in enumerate(events):
      yield record.with_value(event, part if several else None)


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

  def process(self, keyed):
    session_id, summary = keyed
    row = {'session_id': session_id}
    row.update(summary)
    row.update(pane_index=None, pane_timing=None)
    yield row


class _Restamp(beam.DoFn):
  """(session_id, [SessionEvent]) -> each event again, at its own event time."""

  def process(self, grouped):
    session_id, events = grouped
    for event in events:
      yield beam.window.TimestampedValue((session_id, event), Timestamp(micros=event.micros))


LATENESS_WINDOW_S = 1


class DropTooLate(beam.PTransform):
  """Drops events more than `allowed_lateness_s` behind the watermark (1 s windows, fired
  per element): Beam's own lateness rule, applied before per-session state."""

  def __init__(self, allowed_lateness_s: float):
    super().__init__()
    self._lateness = allowed_lateness_s

  def expand(self, keyed):
    return (
        keyed
        | 'LatenessWindows' >> beam.WindowInto(
            window.FixedWindows(LATENESS_WINDOW_S),
            trigger=trigger.Repeatedly(trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=self._lateness)
        | 'GroupArrivals' >> beam.GroupByKey()
        | 'Restamp' >> beam.ParDo(_Restamp()).with_output_types(Tuple[str, Any])
        | 'GlobalWindow' >> beam.WindowInto(window.GlobalWindows()))


class SessionSummaries(beam.PTransform):
  """events rows -> {'rows': `sessions` rows, 'final': one summary per session (a row plus
  `started`), for the aggregates}.

  Batch: one exact summary per session_id, and rows and finals are the same. Streaming:
  TrackSessions (see game_sessions) writes a row when a session closes and again for each
  later event, and its final summary `allowed_lateness` after it closed.
  """

  def __init__(self, job: str, windowing: Windowing, session_gap_s: float):
    super().__init__()
    self._job = job
    self._windowing = windowing
    self._gap = session_gap_s

  def expand(self, events):
    keyed = events | 'ToSessionEvents' >> beam.ParDo(_ToSessionEvent())
    if not self._windowing.streaming:
      summaries = (
          keyed
          | 'Summarise' >> beam.CombinePerKey(SessionSummaryFn())
          | 'ToRows' >> beam.ParDo(_SessionRow()))
      return {'rows': summaries, 'final': summaries}
    lateness = self._windowing.allowed_lateness_s
    tracked = (
        keyed
        | 'DropTooLate' >> DropTooLate(lateness)
        | 'TrackSessions' >> beam.ParDo(TrackSessions(
            self._job, self._gap, lateness + 2 * LATENESS_WINDOW_S,
            forget_s=self._gap)).with_outputs(
                TrackSessions.FINAL, main='rows'))
    return {'rows': tracked.rows, 'final': tracked[TrackSessions.FINAL]}


def session_table_row(summary):
  return {k: v for k, v in summary.items() if k != 'started'}


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
        | 'Completed' >> beam.Filter(lambda s: s['completed'])
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
        | 'Depth' >> beam.Map(lambda s: (None, funnel_depth(s)))
        | 'Aggregate' >> AggregatePerWindow(
            self._windowing, FunnelFn(), lambda _, rows: rows))
