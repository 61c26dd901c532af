"""game_analytics: Firebase Analytics events of the RPG -> events, sessions, heatmap,
score by age, play funnel (and errors).

    python -m pipelines.game_analytics [--input GLOB|projects/P/subscriptions/S]
        [--output DIR|PROJECT:DATASET] [--session_gap 600] [--heatmap_cell_size 1.0]
"""
import sys
import time
from typing import Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.launch import JobPlan, build_job, main, run_job
from pipelines.options import JobOptions, positive
from transforms import game_tables
from transforms.dedupe import DropDuplicates
from transforms.deadletter import TryParDo
from transforms.sources import ParseJsonRecords
from transforms.windowing import Windowing

JOB = 'game_analytics'
DESCRIPTION = ('Firebase Analytics game events -> events, sessions, heatmap, score by age, '
               'play funnel and errors.')


class GameAnalyticsOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('game_analytics')
    group.add_argument(
        '--session_gap', type=positive, default=600,
        help='Streaming: a session without END_SESSION closes after N seconds without '
        'events (default 600).')
    group.add_argument(
        '--heatmap_cell_size', type=positive, default=1.0,
        help='Heatmap cell edge in map units: cell = floor(coordinate / size) (default 1).')


def _count_unexpandable(error_row, counter):
  counter.inc()  # a record that cannot be expanded into events counts as one event
  return error_row


class GameAnalytics(beam.PTransform):
  """Records -> {'events', 'sessions', 'heatmap', 'score_by_age', 'funnel', 'errors'}."""

  def __init__(self, windowing: Windowing = Windowing(), session_gap_s: float = 600,
               heatmap_cell_size: float = 1.0, dedupe_ttl_s: float = 3600,
               clock=time.time):
    super().__init__()
    self._windowing = windowing
    self._session_gap_s = session_gap_s
    self._cell_size = heatmap_cell_size
    self._dedupe_ttl_s = dedupe_ttl_s
    self._clock = clock

  def expand(self, records):
    events_read = beam.metrics.Metrics.counter(JOB, 'events_read')
    parsed, parse_errors = records | 'ParseJson' >> ParseJsonRecords(JOB, self._clock)
    parse_errors = parse_errors | 'CountUnparsed' >> beam.Map(
        _count_unexpandable, events_read)
    flat, flatten_errors = parsed | 'FlattenEvents' >> TryParDo(
        game_tables.FlattenEvents(JOB), JOB, 'flatten_record', self._clock)
    keyed, decode_errors = flat | 'DecodeEvents' >> TryParDo(
        game_tables.DecodeGameEvents(JOB), JOB, 'decode_event', self._clock)
    events = keyed | 'DropDuplicates' >> DropDuplicates(JOB, self._dedupe_ttl_s)

    sessions = events | 'Sessions' >> game_tables.SessionSummaries(
        JOB, self._windowing, self._session_gap_s)
    return {
        'events': events,
        'sessions': sessions['rows'] | 'SessionRows' >> beam.Map(
            game_tables.session_table_row),
        'heatmap': events | 'Heatmap' >> game_tables.Heatmap(
            self._windowing, self._cell_size),
        'score_by_age': sessions['final'] | 'ScoreByAge' >> game_tables.ScoreByAge(
            self._windowing),
        'funnel': sessions['final'] | 'Funnel' >> game_tables.Funnel(self._windowing),
        'errors': (parse_errors, flatten_errors, decode_errors)
                  | 'Errors' >> beam.Flatten(),
    }


def _build(records, options: PipelineOptions, streaming: bool):
  game = options.view_as(GameAnalyticsOptions)
  return records | 'GameAnalytics' >> GameAnalytics(
      Windowing.from_options(options.view_as(JobOptions), streaming),
      game.session_gap, game.heatmap_cell_size,
      options.view_as(JobOptions).dedupe_ttl)


def build(argv=None, save_main_session=True) -> JobPlan:
  """The job's pipeline for `argv`, not run (tests inspect it)."""
  return build_job(JOB, GameAnalyticsOptions, _build, argv, save_main_session, DESCRIPTION)


def run(argv=None, save_main_session=True) -> Optional[beam.runners.runner.PipelineResult]:
  return run_job(JOB, GameAnalyticsOptions, _build, argv, save_main_session, DESCRIPTION)


if __name__ == '__main__':
  sys.exit(main(JOB, run))
