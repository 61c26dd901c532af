"""The game's own rules: names, key spellings, types, cells, age groups, funnel depth."""
import pytest

from transforms import game
from transforms.deadletter import RecordError
from transforms.firebase import FlatEvent
from transforms.game_sessions import funnel_depth

MICROS = 1539158400000000


def row(name, **params):
  return game.event_row(FlatEvent(name, MICROS, params, 'u'), name)


@pytest.mark.parametrize('raw, canonical', [
    ('START_SESSION', 'START_SESSION'), ('end_scene', 'END_SESSION'),
    ('END_SCENE', 'END_SESSION'), ('player_move', 'PLAYER_MOVE'), ('screen_view', None),
    ('session_start', None)])
def test_event_names(raw, canonical):
  assert game.game_event_name(raw) == canonical


def test_key_spellings_are_case_insensitive_and_pox_z_means_pos_z():
  for params in ({'Pos_X': 1.5, 'Pox_Z': -2.0}, {'pos_X': 1.5, 'POS_Z': -2.0},
                 {'pos_x': '1.5', 'pox_z': '-2'}):
    r = row('PLAYER_MOVE', sessionid='s', **params)
    assert (r['x'], r['z']) == (1.5, -2.0)


def test_npc_events_use_pos_y_when_pos_z_is_absent():
  assert row('NPC_MOVE', sessionid='s', pos_x=3, pos_y=4.5)['z'] == 4.5
  assert row('NPC_MOVE', sessionid='s', pos_x=3, pos_z=1, pos_y=4.5)['z'] == 1.0


def test_start_session_fields():
  r = row('START_SESSION', sessionid=123, age='34', sex='true')
  assert (r['session_id'], r['age'], r['sex'], r['user_id']) == ('123', 34, 'male', 'u')
  assert row('START_SESSION', sessionid='s', sex=False)['sex'] == 'female'
  assert row('START_SESSION', sessionid='s', sex='maybe')['sex'] is None
  assert row('START_SESSION', sessionid='s', age='unknown')['age'] is None


@pytest.mark.parametrize('params, reason', [
    ({}, 'missing sessionid'),
    ({'sessionid': '  '}, 'missing sessionid'),
    ({'sessionid': ['s']}, 'sessionid: expected a string'),
    ({'sessionid': 's', 'pos_x': 'north'}, "pos_x: expected a number, got 'north'"),
    ({'sessionid': 's', 'pos_x': True}, 'pos_x: expected a number'),
    ({'sessionid': 's', 'damage': float('nan')}, 'damage: expected a finite number'),
    ({'sessionid': 's', 'score': 1.5}, 'score: expected an integer'),
    ({'sessionid': 's', 'npc_id': {'a': 1}}, 'npc_id: expected an id'),
])
def test_unusable_values_are_record_errors(params, reason):
  with pytest.raises(RecordError, match=reason):
    row('PLAYER_ATTACK', **params)


def test_duplicate_key_ignores_key_spelling_but_not_values():
  a = FlatEvent('PLAYER_MOVE', MICROS, {'sessionid': 's', 'Pos_X': 1.0})
  b = FlatEvent('PLAYER_MOVE', MICROS, {'sessionid': 's', 'pos_x': 1.0})
  c = FlatEvent('PLAYER_MOVE', MICROS, {'sessionid': 's', 'pos_x': 2.0})
  d = FlatEvent('PLAYER_MOVE', MICROS + 1, {'sessionid': 's', 'pos_x': 1.0})
  def key(e):
    return game.duplicate_key(e, 'PLAYER_MOVE', 's')
  assert key(a) == key(b)
  assert len({key(a), key(c), key(d)}) == 3


@pytest.mark.parametrize('x, z, size, cell', [
    (1.5, 2.5, 1.0, (1, 2)), (-0.5, -0.01, 1.0, (-1, -1)), (9.9, 10.0, 5.0, (1, 2)),
    (0.0, 0.0, 0.5, (0, 0))])
def test_heatmap_cell_is_floor_of_coordinate_over_size(x, z, size, cell):
  r = {'event_name': 'PLAYER_MOVE', 'x': x, 'z': z}
  assert game.heatmap_cell(r, size) == ('player_move',) + cell


def test_events_without_a_place_have_no_cell():
  assert game.heatmap_cell({'event_name': 'START_SESSION', 'x': 1.0, 'z': 1.0}, 1) is None
  assert game.heatmap_cell({'event_name': 'PLAYER_MOVE', 'x': None, 'z': 1.0}, 1) is None


@pytest.mark.parametrize('age, group', [
    (34, 30), (0, 0), (9, 0), (120, 120), (121, None), (-1, None), (None, None)])
def test_age_group_is_decade_floor_within_0_to_120(age, group):
  assert game.age_group(age) == group


@pytest.mark.parametrize('started, moves, attacks, completed, depth', [
    (True, 1, 1, True, 4), (True, 1, 0, True, 2), (True, 0, 3, True, 1),
    (False, 5, 5, True, 0), (True, 2, 2, False, 3)])
def test_funnel_depth_counts_steps_in_order(started, moves, attacks, completed, depth):
  session = {'started': started, 'moves': moves, 'attacks': attacks, 'completed': completed}
  assert funnel_depth(session) == depth


@pytest.mark.parametrize('params, reason', [
    ({'sessionid': 's', 'score': 2**63}, 'score: 9223372036854775808 is out of range'),
    ({'sessionid': 's', 'score': '1e19'}, "score: '1e19' is out of range"),
    ({'sessionid': 's', 'pos_x': 10**400}, 'pos_x: 1000'),
])
def test_integers_beyond_bigquery_int64_are_record_errors(params, reason):
  with pytest.raises(RecordError, match=reason):
    row('END_SESSION', **params)


def test_ages_out_of_int64_are_unknown_and_far_cells_are_not_placed():
  assert row('START_SESSION', sessionid='s', age=10**400)['age'] is None
  assert row('START_SESSION', sessionid='s', age=-(2**63) + 1)['age'] == -(2**63) + 1
  assert game.heatmap_cell({'event_name': 'PLAYER_MOVE', 'x': 1e300, 'z': 0.0}, 1) is None


def test_combine_fns_merge_an_empty_list_to_an_empty_accumulator():
  from transforms.game_sessions import FunnelFn, ScoreFn, SessionSummaryFn
  for fn in (SessionSummaryFn(), FunnelFn(), ScoreFn()):
    assert fn.merge_accumulators([]) == fn.create_accumulator()
