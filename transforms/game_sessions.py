"""Play sessions: the summary of one play, and how a stream of events becomes sessions.

A play is over at END_SESSION, or after a gap of inactivity when it never logged one. Beam's
session windows can only close on the gap, and merging windows with late firings depend on
delivery order, so streaming sessions are tracked per `session_id` with state and event-time
timers (`TrackSessions`): the result is the same whatever order events arrive in, and the
same as the batch CombinePerKey over the same `SessionSummaryFn`.
"""
import collections
from typing import Any, Dict, List, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.coders import coders
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (CombiningValueStateSpec, ReadModifyWriteStateSpec,
                                              TimerSpec, on_timer)
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms import timestamps
from transforms.game import ATTACK, END, MOVE, NPC_DIE, START, age_group


# What a session summary needs of an event (a plain namedtuple: Beam encodes it compactly).
SessionEvent = collections.namedtuple(
    'SessionEvent', 'name micros user_id age sex score', defaults=(None, None, None, None))


# Accumulator slots.
_FIRST, _LAST, _END, _START, _USER, _AGE, _SEX, _SCORE, _MOVES, _ATTACKS, _KILLS = range(11)


class SessionSummaryFn(beam.CombineFn):
  """SessionEvents of one session -> the session's summary (a `sessions` row + `started`)."""

  def create_accumulator(self):
    # first/last event micros, END micros, START micros, START's user/age/sex, END's score,
    # move/attack/kill counts.
    return [None, None, None, None, None, None, None, None, 0, 0, 0]

  def add_input(self, acc, event):
    name, micros, user_id, age, sex, score = event
    if acc[_FIRST] is None or micros < acc[_FIRST]:
      acc[_FIRST] = micros
    if acc[_LAST] is None or micros > acc[_LAST]:
      acc[_LAST] = micros
    if acc[_USER] is None:
      acc[_USER] = user_id
    if name == START and (acc[_START] is None or micros < acc[_START]):
      acc[_START], acc[_AGE], acc[_SEX] = micros, age, sex
      acc[_USER] = user_id or acc[_USER]
    elif name == END and (acc[_END] is None or micros < acc[_END]):
      acc[_END], acc[_SCORE] = micros, score
    elif name == MOVE:
      acc[_MOVES] += 1
    elif name == ATTACK:
      acc[_ATTACKS] += 1
    elif name == NPC_DIE:
      acc[_KILLS] += 1
    return acc

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    first = next(accumulators, None)  # portable runners merge stored state, maybe none
    if first is None:
      return self.create_accumulator()
    out = list(first)
    for acc in accumulators:
      for slot, pick in ((_FIRST, min), (_LAST, max)):
        if acc[slot] is not None:
          out[slot] = acc[slot] if out[slot] is None else pick(out[slot], acc[slot])
      if acc[_START] is not None and (out[_START] is None or acc[_START] < out[_START]):
        out[_START], out[_AGE], out[_SEX] = acc[_START], acc[_AGE], acc[_SEX]
        out[_USER] = acc[_USER] or out[_USER]
      elif out[_USER] is None:
        out[_USER] = acc[_USER]
      if acc[_END] is not None and (out[_END] is None or acc[_END] < out[_END]):
        out[_END], out[_SCORE] = acc[_END], acc[_SCORE]
      for slot in (_MOVES, _ATTACKS, _KILLS):
        out[slot] += acc[slot]
    return out

  def extract_output(self, acc) -> Dict[str, Any]:
    return summary_row(acc)


def summary_row(acc) -> Dict[str, Any]:
  completed = acc[_END] is not None
  end = acc[_END] if completed else acc[_LAST]
  return {
      'start_time': timestamps.micros_to_rfc3339(acc[_FIRST]),
      'user_id': acc[_USER],
      'age': acc[_AGE],
      'age_group': age_group(acc[_AGE]),
      'sex': acc[_SEX],
      'end_time': timestamps.micros_to_rfc3339(end),
      'duration_s': None if acc[_FIRST] is None else (end - acc[_FIRST]) / 1e6,
      'score': acc[_SCORE] if completed else None,
      'moves': acc[_MOVES],
      'attacks': acc[_ATTACKS],
      'npc_kills': acc[_KILLS],
      'completed': completed,
      'started': acc[_START] is not None,
  }


def close_micros(acc, gap_micros: int) -> int:
  """When a session is over: its (first) END_SESSION, else its last event plus the gap."""
  return acc[_END] if acc[_END] is not None else acc[_LAST] + gap_micros


class _SessionStateFn(SessionSummaryFn):
  """The summary's accumulator as state: extract_output keeps the raw accumulator."""

  def extract_output(self, acc):
    return acc


class TrackSessions(beam.DoFn):
  """(session_id, SessionEvent) in the global window -> `sessions` rows, and (tagged FINAL)
  each session's summary once it can no longer change.

  A session closes when the watermark passes close_micros(); its row is written then
  (pane_index 0) and rewritten, complete, after later events (pane_index 1, 2 ...). State is
  kept `expiry_s` after the (latest) close; then the final summary is emitted, the state
  dropped, and a marker kept for `forget_s` so that stragglers for the finished session
  are counted (`late_session_events`) rather than starting a second session.
  """
  FINAL = 'final'
  SUMMARY = CombiningValueStateSpec('summary', coders.PickleCoder(), _SessionStateFn())
  ROWS_WRITTEN = ReadModifyWriteStateSpec('rows_written', coders.VarIntCoder())
  FINISHED = ReadModifyWriteStateSpec('finished', coders.BooleanCoder())
  CLOSE = TimerSpec('close', TimeDomain.WATERMARK)
  EXPIRE = TimerSpec('expire', TimeDomain.WATERMARK)
  FORGET = TimerSpec('forget', TimeDomain.WATERMARK)

  def __init__(self, job: str, gap_s: float, expiry_s: float, forget_s: float):
    self._gap = Duration.of(gap_s).micros
    self._expiry = Duration.of(expiry_s)
    self._forget = Duration.of(forget_s)
    self._late = Metrics.counter(job, 'late_session_events')

  def _closes(self, acc) -> Timestamp:
    return Timestamp(micros=close_micros(acc, self._gap))

  def process(self, element, summary=beam.DoFn.StateParam(SUMMARY),
              rows_written=beam.DoFn.StateParam(ROWS_WRITTEN),
              finished=beam.DoFn.StateParam(FINISHED),
              close=beam.DoFn.TimerParam(CLOSE), expire=beam.DoFn.TimerParam(EXPIRE)):
    if finished.read():
      self._late.inc()
      return
    summary.add(element[1])
    closes = self._closes(summary.read())
    # Setting a timer again moves it; one in the past fires at the next watermark.
    close.set(closes)
    if rows_written.read():
      expire.set(closes + self._expiry)  # a closed session changed: keep it open as long

  @on_timer(CLOSE)
  def on_close(self, key=beam.DoFn.KeyParam, summary=beam.DoFn.StateParam(SUMMARY),
               rows_written=beam.DoFn.StateParam(ROWS_WRITTEN),
               expire=beam.DoFn.TimerParam(EXPIRE)):
    acc = summary.read()
    if acc[_FIRST] is None:
      return
    written = rows_written.read() or 0
    rows_written.write(written + 1)
    expire.set(self._closes(acc) + self._expiry)
    row = {'session_id': key}
    row.update(summary_row(acc))
    row.update(pane_index=written, pane_timing='ON_TIME' if written == 0 else 'LATE')
    yield row

  @on_timer(EXPIRE)
  def on_expire(self, key=beam.DoFn.KeyParam, fired=beam.DoFn.TimestampParam,
                summary=beam.DoFn.StateParam(SUMMARY),
                rows_written=beam.DoFn.StateParam(ROWS_WRITTEN),
                finished=beam.DoFn.StateParam(FINISHED),
                forget=beam.DoFn.TimerParam(FORGET)):
    acc = summary.read()
    if acc[_FIRST] is None:
      return
    final = {'session_id': key}
    final.update(summary_row(acc))
    summary.clear()
    rows_written.clear()
    finished.write(True)
    forget.set(fired + self._forget)
    yield beam.pvalue.TaggedOutput(self.FINAL, final)

  @on_timer(FORGET)
  def on_forget(self, finished=beam.DoFn.StateParam(FINISHED)):
    finished.clear()


FUNNEL_STEPS = ('started', 'moved', 'attacked', 'completed')


def funnel_depth(session: Dict[str, Any]) -> int:
  """How many funnel steps the session reached, in order (0..4)."""
  reached = (session['started'], session['moves'] > 0, session['attacks'] > 0,
             session['completed'])
  depth = 0
  for ok in reached:
    if not ok:
      break
    depth += 1
  return depth


class FunnelFn(beam.CombineFn):
  """Sessions -> sessions per funnel step."""

  def create_accumulator(self):
    return [0] * len(FUNNEL_STEPS)

  def add_input(self, acc, depth: int):
    for step in range(depth):
      acc[step] += 1
    return acc

  def merge_accumulators(self, accumulators):
    out = self.create_accumulator()
    for acc in accumulators:
      for step, sessions in enumerate(acc):
        out[step] += sessions
    return out

  def extract_output(self, acc) -> List[Dict[str, Any]]:
    rows = []
    for index, step in enumerate(FUNNEL_STEPS):
      previous = acc[index - 1] if index else acc[0]
      rows.append({
          'step': step,
          'step_index': index,
          'sessions': acc[index],
          'rate_from_start': acc[index] / acc[0] if acc[0] else None,
          'rate_from_previous': acc[index] / previous if previous else None,
      })
    return rows


class ScoreFn(beam.CombineFn):
  """Completed sessions' scores -> sessions, avg, min, max (scores may be missing)."""

  def create_accumulator(self):
    return [0, 0, 0, None, None]  # sessions, scored, total, min, max

  def add_input(self, acc, score: Optional[int]):
    acc[0] += 1
    if score is not None:
      acc[1] += 1
      acc[2] += score
      acc[3] = score if acc[3] is None else min(acc[3], score)
      acc[4] = score if acc[4] is None else max(acc[4], score)
    return acc

  def merge_accumulators(self, accumulators):
    out = [0, 0, 0, None, None]
    for acc in accumulators:
      out[0] += acc[0]
      out[1] += acc[1]
      out[2] += acc[2]
      for slot, pick in ((3, min), (4, max)):
        if acc[slot] is not None:
          out[slot] = acc[slot] if out[slot] is None else pick(out[slot], acc[slot])
    return out

  def extract_output(self, acc) -> Dict[str, Any]:
    return {
        'sessions': acc[0],
        'avg_score': acc[2] / acc[1] if acc[1] else None,
        'min_score': acc[3],
        'max_score': acc[4],
    }
