"""Play sessions: the session window that closes on END_SESSION, and the session summary.

Beam's `Sessions` window only closes after a gap of inactivity; a play that logged
END_SESSION is over, so `PlaySessions` closes the window at that event instead (the window
ends just after it). Windows that END_SESSION closed end on an odd microsecond, open ones on
an even one: the standard IntervalWindow (and its coder) carries the mark through merges,
so a late event within allowed lateness rejoins the closed session without reopening it.
"""
import collections
from typing import Any, Dict, List, Optional

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.transforms.window import IntervalWindow, WindowFn
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms import timestamps
from transforms.game import ATTACK, END, MOVE, NPC_DIE, START, age_group


def _open_end(micros: int) -> int:
  return micros + (micros % 2)        # round up to even


def _closed_end(micros: int) -> int:
  return micros + 1 + (micros % 2)    # the first odd microsecond after it


def is_closed(window: IntervalWindow) -> bool:
  return window.end.micros % 2 == 1


class PlaySessions(WindowFn):
  """Session windows per key that close after `gap_s` of inactivity or at END_SESSION.

  Elements are (session_id, SessionEvent) pairs; the event name decides the window.
  """

  def __init__(self, gap_s: float):
    if gap_s <= 0:
      raise ValueError('session gap must be positive')
    self.gap = Duration.of(gap_s)

  def assign(self, context):
    start = context.timestamp.micros
    _, event = context.element
    if event.name == END:
      end = _closed_end(start)
    else:
      end = _open_end(start + self.gap.micros)
    return [IntervalWindow(Timestamp(micros=start), Timestamp(micros=end))]

  def get_window_coder(self):
    return coders.IntervalWindowCoder()

  def merge(self, merge_context):
    group: List[IntervalWindow] = []
    start = end = None
    closed = False
    for w in sorted(merge_context.windows, key=lambda w: (w.start, w.end)):
      if group and w.start < end:
        group.append(w)
        if is_closed(w):
          end = min(end, w.end) if closed else w.end
          closed = True
        elif not closed:
          end = max(end, w.end)
        continue
      _emit(merge_context, group, start, end)
      group, start, end, closed = [w], w.start, w.end, is_closed(w)
    _emit(merge_context, group, start, end)

  def is_merging(self):
    return True

  def __eq__(self, other):
    return type(self) is type(other) and self.gap == other.gap

  def __hash__(self):
    return hash((type(self), self.gap))


def _emit(merge_context, group, start, end):
  if not group:
    return
  merged = IntervalWindow(start, end)
  if len(group) > 1 or group[0] != merged:
    merge_context.merge(group, merged)


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
    out = list(next(accumulators))
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
    return [sum(values) for values in zip(*accumulators, strict=False)]

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
