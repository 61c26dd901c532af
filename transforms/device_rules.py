"""Threshold rules on device_stats window means -> alert rows and device commands.

`--rule 'hot: temperature > 30 for 2 windows -> {"fan": "high"}'` fires for a device when
the metric's mean has held the condition in N consecutive sliding windows, and clears on
the first window after that where it does not. Only changes are emitted, so a device gets
one command when a rule fires and one when it clears, not one per window.

Windows must be judged in order. Bounded input is grouped per device and rule and sorted;
unbounded input is buffered in state and judged when the watermark passes each window, so
early (speculative) panes never fire a rule. A late pane for a window already judged is
not re-judged: the command went out.
"""
import json
import math
import operator
import re
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import window
from apache_beam.utils.windowed_value import PaneInfoTiming

from transforms import timestamps
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (BagStateSpec, ReadModifyWriteStateSpec,
                                              TimerSpec, on_timer)
from apache_beam.utils.timestamp import Timestamp

FIRING, CLEARED = 'FIRING', 'CLEARED'
OPERATORS = {'>': operator.gt, '>=': operator.ge, '<': operator.lt, '<=': operator.le}

_RULE = re.compile(
    r'^\s*(?P<name>[A-Za-z_][\w.-]*)\s*:\s*'
    r'(?P<metric>[^\s<>=]+?)\s*(?P<op>>=|<=|>|<)\s*'
    r'(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*'
    r'(?:for\s+(?P<windows>\d+)\s+windows?\s*)?'
    r'->\s*(?P<command>\S.*?)\s*$', re.DOTALL)


class Rule(NamedTuple):
  name: str
  metric: str
  op: str
  threshold: float
  windows: int
  command: str

  @property
  def condition(self) -> str:
    text = '%s %s %s' % (self.metric, self.op, _number_text(self.threshold))
    return text + (' for %d windows' % self.windows if self.windows > 1 else '')

  def holds(self, mean: float) -> bool:
    return OPERATORS[self.op](mean, self.threshold)


def _number_text(value: float) -> str:
  return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def parse_rule(spec: str) -> Rule:
  """'NAME: METRIC OP VALUE [for N windows] -> COMMAND' -> Rule; ValueError says why not."""
  match = _RULE.match(spec or '')
  if not match:
    raise ValueError(
        'rule %r is not NAME: METRIC >|>=|<|<= VALUE [for N windows] -> COMMAND' % spec)
  threshold = float(match.group('value'))
  if not math.isfinite(threshold):
    raise ValueError('rule %r: the threshold must be a finite number' % spec)
  windows = int(match.group('windows') or 1)
  if windows < 1:
    raise ValueError('rule %r: "for N windows" needs N >= 1' % spec)
  command = match.group('command')
  if command[0] in '{["':
    try:
      json.loads(command)
    except ValueError as e:
      raise ValueError('rule %r: the command looks like JSON but is not: %s' % (spec, e)) from e
  return Rule(match.group('name'), match.group('metric'), match.group('op'), threshold,
              windows, command)


def parse_rules(specs: Iterable[str]) -> List[Rule]:
  rules = [parse_rule(spec) for spec in specs]
  names = [rule.name for rule in rules]
  repeated = sorted({name for name in names if names.count(name) > 1})
  if repeated:
    raise ValueError('rule names must be unique: %s' % ', '.join(repeated))
  return rules


class RuleState(NamedTuple):
  streak: int = 0                     # consecutive windows the condition has held
  firing: bool = False
  last_start: Optional[int] = None    # start (micros) of the last window judged


def step(rule: Rule, state: RuleState, start_micros: int, mean: float,
         period_micros: int) -> Tuple[RuleState, Optional[str]]:
  """Judge one window (after every earlier one): the new state, and FIRING/CLEARED when
  the rule changes. A missing window (no readings) breaks a streak but clears nothing."""
  if state.last_start is not None and start_micros <= state.last_start:
    return state, None  # judged already
  if not rule.holds(mean):
    return RuleState(0, False, start_micros), CLEARED if state.firing else None
  consecutive = (state.last_start is not None
                 and start_micros - state.last_start == period_micros)
  streak = state.streak + 1 if consecutive else 1
  if not state.firing and streak >= rule.windows:
    return RuleState(streak, True, start_micros), FIRING
  return RuleState(streak, state.firing, start_micros), None


def alert_row(rule: Rule, transition: str, stats_row: Dict[str, Any]) -> Dict[str, Any]:
  return {
      'window_start': stats_row['window_start'],
      'rule': rule.name,
      'state': transition,
      'device_id': stats_row['device_id'],
      'registry_id': stats_row['registry_id'],
      'metric': rule.metric,
      'condition': rule.condition,
      'value': stats_row['mean'],
      'threshold': rule.threshold,
      'command': rule.command,
      'window_end': stats_row['window_end'],
  }


def command_attributes(alert: Dict[str, Any]) -> Dict[str, str]:
  """Pub/Sub attributes of a command message: whom it is for, and what happened."""
  attributes = {'deviceId': alert['device_id'], 'rule': alert['rule'],
                'state': alert['state']}
  if alert.get('registry_id'):
    attributes['deviceRegistryId'] = alert['registry_id']
  return attributes


class _Window(NamedTuple):
  start: int
  end: int
  mean: float
  row: Dict[str, Any]


def judge(rule: Rule, state: RuleState, windows: Iterable[_Window],
          period_micros: int) -> Tuple[RuleState, List[Dict[str, Any]]]:
  """Windows in start order -> the final state and the alert rows."""
  alerts = []
  for win in windows:
    state, transition = step(rule, state, win.start, win.mean, period_micros)
    if transition:
      alerts.append(alert_row(rule, transition, win.row))
  return state, alerts


class _RuleInputs(beam.DoFn):
  """device_stats row -> ((registry, device, rule), window) per rule on its metric.
  Early panes are speculative: a rule is judged on a window's on-time (or late) pane."""

  def __init__(self, rules: List[Rule]):
    self._rules = rules

  def process(self, row, pane=beam.DoFn.PaneInfoParam):
    if pane is not None and pane.timing == PaneInfoTiming.EARLY:
      return
    start = end = None
    for rule in self._rules:
      if rule.metric == row['metric']:
        if start is None:
          start = timestamps.parse_rfc3339_micros(row['window_start'])
          end = timestamps.parse_rfc3339_micros(row['window_end'])
        # A str key: state and grouping need a deterministic key encoding.
        key = json.dumps([row['registry_id'], row['device_id'], rule.name])
        yield key, _Window(start, end, row['mean'], row)


class _JudgeGrouped(beam.DoFn):

  def __init__(self, rules: List[Rule], period_micros: int):
    self._rules = {rule.name: rule for rule in rules}
    self._period = period_micros

  def process(self, grouped):
    key, windows = grouped
    _, alerts = judge(self._rules[json.loads(key)[2]], RuleState(), sorted(windows, key=_start),
                      self._period)
    yield from alerts


def _start(win: _Window) -> int:
  return win.start


class _JudgeInOrder(beam.DoFn):
  """Unbounded: buffer windows until the watermark passes them, then judge in order."""
  PENDING = BagStateSpec('pending', PickleCoder())
  STATE = ReadModifyWriteStateSpec('state', PickleCoder())
  FLUSH_AT = ReadModifyWriteStateSpec('flush_at', VarIntCoder())
  FLUSH = TimerSpec('flush', TimeDomain.WATERMARK)

  def __init__(self, job: str, rules: List[Rule], period_micros: int):
    self._rules = {rule.name: rule for rule in rules}
    self._period = period_micros
    self._late = Metrics.counter(job, 'alerts_late_windows_ignored')

  def process(self, element, timestamp=beam.DoFn.TimestampParam,
              pending=beam.DoFn.StateParam(PENDING),
              flush_at=beam.DoFn.StateParam(FLUSH_AT),
              flush=beam.DoFn.TimerParam(FLUSH)):
    key, win = element
    pending.add((timestamp.micros, json.loads(key)[2], win))
    at = flush_at.read()
    if at is None or timestamp.micros < at:
      flush.set(timestamp)
      flush_at.write(timestamp.micros)

  @on_timer(FLUSH)
  def on_flush(self, fired=beam.DoFn.TimestampParam,
               pending=beam.DoFn.StateParam(PENDING),
               state=beam.DoFn.StateParam(STATE),
               flush_at=beam.DoFn.StateParam(FLUSH_AT),
               flush=beam.DoFn.TimerParam(FLUSH)):
    items = list(pending.read())
    due = sorted((i for i in items if i[0] <= fired.micros), key=lambda i: i[2].start)
    rest = [i for i in items if i[0] > fired.micros]
    pending.clear()
    for item in rest:
      pending.add(item)
    if due:
      rule = self._rules[due[0][1]]
      current = state.read() or RuleState()
      if current.last_start is not None:
        self._late.inc(sum(1 for i in due if i[2].start <= current.last_start))
      current, alerts = judge(rule, current, [i[2] for i in due], self._period)
      state.write(current)
      yield from alerts
    if rest:
      at = min(i[0] for i in rest)
      flush.set(Timestamp(micros=at))
      flush_at.write(at)
    else:
      flush_at.clear()


class EvaluateRules(beam.PTransform):
  """device_stats rows (in their sliding windows) -> `alerts` rows."""

  def __init__(self, job: str, rules: List[Rule], period_s: float):
    super().__init__()
    self._job = job
    self._rules = list(rules)
    self._period = int(round(period_s * 1_000_000))

  def expand(self, stats_rows):
    inputs = (
        stats_rows
        | 'RuleInputs' >> beam.ParDo(_RuleInputs(self._rules))
        | 'Unwindow' >> beam.WindowInto(window.GlobalWindows())
        | 'TypeKeys' >> beam.Map(lambda kv: kv).with_output_types(Tuple[str, Any]))
    if stats_rows.is_bounded:
      return (
          inputs
          | 'PerDeviceRule' >> beam.GroupByKey()
          | 'Judge' >> beam.ParDo(_JudgeGrouped(self._rules, self._period)))
    return inputs | 'JudgeInOrder' >> beam.ParDo(
        _JudgeInOrder(self._job, self._rules, self._period))

