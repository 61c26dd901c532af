"""Rule parsing and the fire/clear state machine, without Beam."""
import pytest
from apache_beam.utils.windowed_value import PaneInfo, PaneInfoTiming

from transforms import device_rules
from transforms.device_rules import CLEARED, FIRING, Rule, RuleState, judge, parse_rule, step

MINUTE = 60_000_000


@pytest.mark.parametrize('spec, rule', [
    ('hot: temperature > 30 -> {"fan": "high"}',
     Rule('hot', 'temperature', '>', 30.0, 1, '{"fan": "high"}')),
    ('  cold:battery.voltage<=3.05 for 3 windows->LOW  ',
     Rule('cold', 'battery.voltage', '<=', 3.05, 3, 'LOW')),
    ('dry: humidity < -1e-3 for 1 window -> water on',
     Rule('dry', 'humidity', '<', -0.001, 1, 'water on')),
    ('x.y-z: m >= .5 -> ["a", 1]', Rule('x.y-z', 'm', '>=', 0.5, 1, '["a", 1]')),
])
def test_rules_parse(spec, rule):
  assert parse_rule(spec) == rule


def test_condition_text_is_normalised():
  assert parse_rule('hot:temperature>30.0 for 2 windows->x').condition == \
      'temperature > 30 for 2 windows'
  assert parse_rule('c: v <= 3.05 -> x').condition == 'v <= 3.05'


@pytest.mark.parametrize('spec, message', [
    ('temperature > 30 -> x', 'is not NAME: METRIC'),
    ('hot: temperature = 30 -> x', 'is not NAME: METRIC'),
    ('hot: temperature > warm -> x', 'is not NAME: METRIC'),
    ('hot: temperature > 30', 'is not NAME: METRIC'),
    ('hot: temperature > 30 ->   ', 'is not NAME: METRIC'),
    ('hot: temperature > 30 for 0 windows -> x', 'needs N >= 1'),
    ('hot: temperature > 30 for two windows -> x', 'is not NAME: METRIC'),
    ('hot: temperature > 30 -> {"fan": high}', 'looks like JSON but is not'),
])
def test_bad_rules_say_why(spec, message):
  with pytest.raises(ValueError, match=message):
    parse_rule(spec)


def test_rule_names_must_be_unique():
  with pytest.raises(ValueError, match='unique: hot'):
    device_rules.parse_rules(['hot: t > 1 -> a', 'hot: t > 2 -> b', 'cold: t < 0 -> c'])


def _windows(*means, start=0, skip=()):
  out = []
  for i, mean in enumerate(means):
    if i in skip:
      continue
    begin = start + i * MINUTE
    row = {'window_start': 'w%d' % i, 'window_end': 'e%d' % i, 'device_id': 'd',
           'registry_id': 'r', 'mean': mean}
    out.append(device_rules._Window(begin, begin + 5 * MINUTE, mean, row))
  return out


def _transitions(rule, windows):
  _, alerts = judge(rule, RuleState(), windows, MINUTE)
  return [(a['state'], a['window_start'], a['value']) for a in alerts]


def test_fires_after_n_consecutive_windows_and_clears_once():
  rule = parse_rule('hot: t > 30 for 2 windows -> fan')
  windows = _windows(29, 31, 32, 33, 30, 29, 31, 31)
  assert _transitions(rule, windows) == [
      (FIRING, 'w2', 32), (CLEARED, 'w4', 30), (FIRING, 'w7', 31)]


def test_a_gap_breaks_the_streak_but_does_not_clear():
  rule = parse_rule('hot: t > 30 for 2 windows -> fan')
  assert _transitions(rule, _windows(31, 31, 31, skip=(1,))) == []
  firing = _windows(31, 31, 31, 31, 20, skip=(2, 3))
  assert _transitions(rule, firing) == [(FIRING, 'w1', 31), (CLEARED, 'w4', 20)]


def test_a_one_window_rule_fires_on_the_first_window():
  rule = parse_rule('low: v <= 3 -> charge')
  assert _transitions(rule, _windows(3, 2.5, 3.5, 3.0)) == [
      (FIRING, 'w0', 3), (CLEARED, 'w2', 3.5), (FIRING, 'w3', 3.0)]


def test_windows_already_judged_are_ignored():
  rule = parse_rule('hot: t > 30 -> fan')
  state, transition = step(rule, RuleState(), 5 * MINUTE, 31, MINUTE)
  assert transition == FIRING
  assert step(rule, state, 4 * MINUTE, 10, MINUTE) == (state, None)
  assert step(rule, state, 5 * MINUTE, 10, MINUTE) == (state, None)
  assert step(rule, state, 6 * MINUTE, 10, MINUTE) == (RuleState(0, False, 6 * MINUTE),
                                                         CLEARED)


def test_alert_rows_and_command_attributes():
  rule = parse_rule('hot: temperature > 30 for 2 windows -> {"fan": "high"}')
  row = {'window_start': '2026-11-26T09:00:00.000000Z',
         'window_end': '2026-11-26T09:05:00.000000Z', 'device_id': 'th-1',
         'registry_id': 'greenhouse', 'metric': 'temperature', 'mean': 31.5}
  alert = device_rules.alert_row(rule, FIRING, row)
  assert alert == {
      'window_start': '2026-11-26T09:00:00.000000Z', 'rule': 'hot', 'state': 'FIRING',
      'device_id': 'th-1', 'registry_id': 'greenhouse', 'metric': 'temperature',
      'condition': 'temperature > 30 for 2 windows', 'value': 31.5, 'threshold': 30.0,
      'command': '{"fan": "high"}', 'window_end': '2026-11-26T09:05:00.000000Z'}
  assert device_rules.command_attributes(alert) == {
      'deviceId': 'th-1', 'deviceRegistryId': 'greenhouse', 'rule': 'hot', 'state': 'FIRING'}
  assert device_rules.command_attributes(dict(alert, registry_id=None)) == {
      'deviceId': 'th-1', 'rule': 'hot', 'state': 'FIRING'}


def test_early_panes_are_not_judged_and_other_metrics_not_routed():
  rules = [parse_rule('hot: temperature > 30 -> fan'), parse_rule('dry: humidity < 20 -> w')]
  fn = device_rules._RuleInputs(rules)
  row = {'registry_id': None, 'device_id': 'd', 'metric': 'temperature', 'mean': 31.0,
         'window_start': '1970-01-01T00:01:00.000000Z',
         'window_end': '1970-01-01T00:06:00.000000Z'}
  early = PaneInfo(True, False, PaneInfoTiming.EARLY, 0, -1)
  on_time = PaneInfo(True, False, PaneInfoTiming.ON_TIME, 1, 0)
  assert list(fn.process(row, early)) == []
  [(key, judged)] = list(fn.process(row, on_time))
  assert key == '[null, "d", "hot"]'
  assert (judged.start, judged.end, judged.mean) == (60_000_000, 360_000_000, 31.0)
  assert list(fn.process(dict(row, metric='pressure'), on_time)) == []


def test_a_threshold_must_be_finite():
  with pytest.raises(ValueError, match='finite'):
    parse_rule('hot: t < 1e999 -> x')
