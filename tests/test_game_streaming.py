"""game_analytics streaming semantics with TestStream: sessions that close on END_SESSION
or after the gap, early/on-time/late panes, and data beyond allowed lateness."""
from typing import Any, Tuple

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipelines.game_analytics import GameAnalytics
from tests.game_fixtures import T0, ga4, record
from transforms.timestamps import micros_to_rfc3339
from transforms.windowing import Windowing

START = T0 / 1e6
WINDOWING = Windowing(streaming=True, window_s=60, early_firing_s=30, allowed_lateness_s=120)
GAP = 300


def at(seconds):
  return micros_to_rfc3339(T0 + int(seconds * 1e6))


def event(name, seconds, session='s1', **params):
  # Arrival (element) timestamps lag event time by 0.5 s, as publish times would.
  return beam.window.TimestampedValue(
      record(ga4(name, seconds, session=session, user='u-' + session, **params)),
      START + seconds + 0.5)


def stream():
  return (
      TestStream()
      .advance_watermark_to(START)
      .add_elements([event('START_SESSION', 0, age=34, sex='true'),
                     event('PLAYER_MOVE', 2, pos_x=1.5, pos_z=1.5),
                     event('PLAYER_MOVE', 3, pos_x=1.2, pos_z=1.7)])
      .advance_processing_time(31)                     # early heatmap pane
      .add_elements([event('END_SESSION', 10, score=50)])
      .advance_watermark_to(START + 11)                # s1 closes at END_SESSION
      .add_elements([event('PLAYER_MOVE', 5, pos_x=1.1, pos_z=1.1)])  # late for s1
      .advance_watermark_to(START + 61)                # heatmap window [0, 60) on time
      .add_elements([event('PLAYER_ATTACK', 6, pos_x=1.1, pos_z=1.1)])  # late, allowed
      .add_elements([event('START_SESSION', 100, session='s2', age=21),
                     event('PLAYER_MOVE', 101, session='s2', pos_x=10.0, pos_z=10.0)])
      # The watermark moves on in steps, as a real source's does: the DirectRunner does not
      # hold it back for pending timers, so a jump past a window's lateness would drop the
      # final summaries emitted in it (Dataflow holds the watermark; no such loss there).
      .advance_watermark_to(START + 140)               # s1 is final (10 + 122)
      .advance_watermark_to(START + 500)               # s2 closes by the gap
      .add_elements([event('PLAYER_MOVE', 7, pos_x=1.1, pos_z=1.1)])  # beyond lateness
      .advance_watermark_to(START + 530)               # s2 is final (401 + 122)
      .advance_watermark_to(START + 700)
      .advance_watermark_to_infinity())


@pytest.fixture(scope='module')
def tables_checked():
  options = StandardOptions(streaming=True)
  pipeline = TestPipeline(options=options)
  tables = pipeline | stream() | GameAnalytics(WINDOWING, session_gap_s=GAP)
  assert_that(
      tables['sessions'] | beam.Map(lambda r: (
          r['session_id'], r['pane_index'], r['pane_timing'], r['moves'], r['attacks'],
          r['completed'], r['end_time'])),
      equal_to([
          ('s1', 0, 'ON_TIME', 2, 0, True, at(10)),
          ('s1', 1, 'LATE', 3, 0, True, at(10)),
          ('s1', 2, 'LATE', 3, 1, True, at(10)),
          ('s2', 0, 'ON_TIME', 1, 0, False, at(101)),
      ]), label='sessions')
  assert_that(
      tables['heatmap'] | beam.Map(lambda r: (
          r['layer'], r['cell_x'], r['cell_z'], r['count'], r['window_start'],
          r['window_end'], r['pane_timing'])),
      equal_to([
          ('player_move', 1, 1, 2, at(0), at(60), 'EARLY'),
          ('player_move', 1, 1, 3, at(0), at(60), 'ON_TIME'),
          ('player_attack', 1, 1, 1, at(0), at(60), 'LATE'),
          ('player_move', 10, 10, 1, at(60), at(120), 'ON_TIME'),
      ]), label='heatmap')
  # Aggregates count each session once, final, in the window in which it became final:
  # allowed lateness (+2 s) after it closed (s1: 10 + 122 -> [120, 180); s2: 401 + 122).
  assert_that(
      tables['score_by_age'] | beam.Map(lambda r: (
          r['age_group'], r['sessions'], r['avg_score'], r['window_start'],
          r['pane_timing'])),
      equal_to([(30, 1, 50.0, at(120), 'ON_TIME')]), label='score_by_age')
  assert_that(
      tables['funnel'] | beam.Map(lambda r: (
          r['step'], r['sessions'], r['window_start'], r['pane_timing'])),
      equal_to([
          ('started', 1, at(120), 'ON_TIME'), ('moved', 1, at(120), 'ON_TIME'),
          ('attacked', 1, at(120), 'ON_TIME'), ('completed', 1, at(120), 'ON_TIME'),
          ('started', 1, at(480), 'ON_TIME'), ('moved', 1, at(480), 'ON_TIME'),
          ('attacked', 0, at(480), 'ON_TIME'), ('completed', 0, at(480), 'ON_TIME'),
      ]), label='funnel')
  # Every event is kept in `events`, even the one too late for sessions and aggregates.
  assert_that(tables['events'] | beam.Map(lambda r: (r['session_id'], r['event_time'])),
              equal_to([('s1', at(t)) for t in (0, 2, 3, 10, 5, 6, 7)] +
                       [('s2', at(100)), ('s2', at(101))]), label='events')
  pipeline.run().wait_until_finish()
  return True


def test_session_closes_at_end_session_then_takes_late_events(tables_checked):
  assert tables_checked


def test_duplicates_are_dropped_in_streaming_too():
  twice = event('PLAYER_MOVE', 2, pos_x=1.5, pos_z=1.5)
  test_stream = (TestStream()
                 .advance_watermark_to(START)
                 .add_elements([twice, event('START_SESSION', 0)])
                 .add_elements([twice])
                 .advance_watermark_to_infinity())
  with TestPipeline(options=StandardOptions(streaming=True)) as pipeline:
    tables = pipeline | test_stream | GameAnalytics(WINDOWING, session_gap_s=GAP)
    assert_that(tables['events'] | beam.Map(lambda r: r['event_name']),
                equal_to(['PLAYER_MOVE', 'START_SESSION']))


PLAY = {
    'start': lambda: event('START_SESSION', 0, age=34, sex='true'),
    'move': lambda: event('PLAYER_MOVE', 2, pos_x=1.0, pos_z=1.0),
    'attack': lambda: event('PLAYER_ATTACK', 3, pos_x=1.0, pos_z=1.0),
    'end': lambda: event('END_SESSION', 10, score=50),
    'end_scene': lambda: event('END_SCENE', 12, score=60),
    'after_end': lambda: event('NPC_MOVE', 20, npc_id=1, pos_x=2.0, pos_y=2.0),
}
ORDERS = {
    'in_order': [['start', 'move', 'attack', 'end', 'after_end']],
    'event_after_the_session_closed': [['start', 'move', 'attack', 'end'], 15, ['after_end']],
    'start_after_the_session_closed': [['move', 'attack', 'end', 'after_end'], 30, ['start']],
    'whole_play_late_within_lateness': [100, ['start', 'move', 'attack', 'end', 'after_end']],
    'end_logged_twice': [['start', 'move', 'attack', 'end', 'end_scene', 'after_end']],
}


def _play_stream(steps):
  test_stream = TestStream().advance_watermark_to(START)
  for step in steps:
    if isinstance(step, list):
      test_stream = test_stream.add_elements([PLAY[name]() for name in step])
    else:
      test_stream = test_stream.advance_watermark_to(START + step)
  for seconds in (140, 300, 700):
    test_stream = test_stream.advance_watermark_to(START + seconds)
  return test_stream.advance_watermark_to_infinity()


def _latest(rows):
  return max(rows, key=lambda r: r['pane_index'])


@pytest.mark.parametrize('order', sorted(ORDERS))
def test_sessions_and_aggregates_do_not_depend_on_delivery_order(order):
  with TestPipeline(options=StandardOptions(streaming=True)) as pipeline:
    tables = pipeline | _play_stream(ORDERS[order]) | GameAnalytics(
        WINDOWING, session_gap_s=GAP)

    def latest_session_is_the_batch_one(rows):
      latest = _latest(rows)
      assert [r['pane_index'] for r in rows if r is not latest] == list(range(len(rows) - 1))
      got = {k: latest[k] for k in ('session_id', 'start_time', 'end_time', 'moves',
                                    'attacks', 'npc_kills', 'completed', 'score', 'age',
                                    'age_group', 'sex')}
      assert got == {'session_id': 's1', 'start_time': at(0), 'end_time': at(10),
                     'moves': 1, 'attacks': 1, 'npc_kills': 0, 'completed': True,
                     'score': 50, 'age': 34, 'age_group': 30, 'sex': 'male'}

    def funnel_counts_the_play_once(rows):
      totals = {}
      for r in rows:
        totals[r['step']] = totals.get(r['step'], 0) + r['sessions']
      assert totals == {'started': 1, 'moved': 1, 'attacked': 1, 'completed': 1}

    assert_that(tables['sessions'], latest_session_is_the_batch_one, label='sessions')
    assert_that(tables['funnel'], funnel_counts_the_play_once, label='funnel')
    assert_that(tables['score_by_age'] | beam.Map(
        lambda r: (r['age_group'], r['sessions'], r['avg_score'])),
        equal_to([(30, 1, 50.0)]), label='score_by_age')


def _run_stream(test_stream, checks):
  """Runs GameAnalytics on a TestStream and applies {table: matcher}."""
  with TestPipeline(options=StandardOptions(streaming=True)) as pipeline:
    tables = pipeline | test_stream | GameAnalytics(WINDOWING, session_gap_s=GAP)
    for name, matcher in checks.items():
      assert_that(tables[name], matcher, label='check_' + name)


def _funnel_totals(rows):
  totals = dict.fromkeys(('started', 'moved', 'attacked', 'completed'), 0)
  for r in rows:
    totals[r['step']] += r['sessions']
  return totals


def _expect(project, expected):
  def matcher(rows):
    assert project(rows) == expected
  return matcher


def test_a_gap_closed_session_that_resumes_is_one_session_as_in_batch():
  test_stream = (
      TestStream().advance_watermark_to(START)
      .add_elements([event('START_SESSION', 100, age=34), event('PLAYER_MOVE', 101)])
      .advance_watermark_to(START + 402)               # closed by the gap at 401
      .advance_watermark_to(START + 440)
      .add_elements([event('PLAYER_ATTACK', 450)])     # the player is back, on time
      .advance_watermark_to(START + 500)
      .add_elements([event('END_SESSION', 600, score=70)])
      .advance_watermark_to(START + 601)
      .advance_watermark_to(START + 730)               # final at 600 + 122
      .advance_watermark_to(START + 900)
      .advance_watermark_to_infinity())
  _run_stream(test_stream, {
      'sessions': _expect(
          lambda rows: [(r['pane_index'], r['end_time'], r['attacks'], r['completed'],
                         r['score']) for r in sorted(rows, key=lambda r: r['pane_index'])],
          [(0, at(101), 0, False, None), (1, at(600), 1, True, 70)]),
      'funnel': _expect(_funnel_totals,
                        {'started': 1, 'moved': 1, 'attacked': 1, 'completed': 1}),
      'score_by_age': _expect(
          lambda rows: [(r['age_group'], r['sessions'], r['avg_score']) for r in rows],
          [(30, 1, 70.0)]),
  })


def test_events_for_a_finished_session_do_not_start_a_second_session():
  test_stream = (
      TestStream().advance_watermark_to(START)
      .add_elements([PLAY[name]() for name in ('start', 'move', 'attack', 'end')])
      .advance_watermark_to(START + 140)               # final at 10 + 122
      .add_elements([event('END_SESSION', 200, score=90)])  # on time, but session is over
      .advance_watermark_to(START + 300)
      .advance_watermark_to(START + 700)
      .advance_watermark_to_infinity())
  # They are counted as late_session_events; the DirectRunner's streaming mode does not
  # report every bundle's counters, so this test checks the tables only.
  _run_stream(test_stream, {
      'sessions': _expect(
          lambda rows: [(r['session_id'], r['pane_index'], r['score']) for r in rows],
          [('s1', 0, 50)]),
      'score_by_age': _expect(
          lambda rows: [(r['age_group'], r['sessions'], r['avg_score']) for r in rows],
          [(30, 1, 50.0)]),
  })


def test_track_sessions_runs_on_the_portable_runner_state_api():
  # The FnApiRunner (Dataflow's harness model) merges stored combining state on add, and
  # the first merge of a new key has nothing stored.
  from transforms.game_sessions import SessionEvent, TrackSessions
  with TestPipeline() as pipeline:
    out = (pipeline | beam.Create(range(20))
           | beam.Map(lambda i: beam.window.TimestampedValue(
               ('s%d' % i, SessionEvent('PLAYER_MOVE', T0 + i * 1_000_000)), START + i)
                      ).with_output_types(Tuple[str, Any])
           | beam.ParDo(TrackSessions('test', 300, 122, 300)).with_outputs(
               TrackSessions.FINAL, main='rows'))
    assert_that(out.rows | beam.Map(lambda r: r['session_id']),
                equal_to(['s%d' % i for i in range(20)]), label='rows')
    assert_that(out[TrackSessions.FINAL] | beam.Map(lambda r: r['moves']),
                equal_to([1] * 20), label='finals')
