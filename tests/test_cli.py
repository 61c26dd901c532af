"""The CLI and output contract (DESIGN.md): job list, --help, the bundled-sample run, the
NDJSON layout, _metrics.json and the accounting identity."""
import glob
import json
import os
import subprocess
import sys

import pytest

import schemas
from pipelines import __main__ as cli
from pipelines import game_analytics
from pipelines.samples import game_analytics as sample
from tests.tables import assert_written_tables_conform, read_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_python_m_pipelines_lists_jobs(capsys):
  assert cli.main([]) == 0
  out = capsys.readouterr().out
  assert 'game_analytics' in out and 'sessions, heatmaps' in out


def test_unknown_job_is_a_usage_error(capsys):
  assert cli.main(['no_such_job']) == 2
  assert 'unknown job' in capsys.readouterr().err


def test_help_lists_shared_and_job_options():
  result = subprocess.run([sys.executable, '-m', 'pipelines', 'game_analytics', '--help'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0
  for flag in ('--input', '--output', '--table_prefix', '--window', '--allowed_lateness',
               '--session_gap', '--heatmap_cell_size'):
    assert flag in result.stdout


def test_bad_option_value_stops_at_start_up(capsys):
  with pytest.raises(SystemExit) as exit_info:
    game_analytics.run(['--window', '-5'])
  assert exit_info.value.code == 2
  assert 'must be > 0' in capsys.readouterr().err


@pytest.fixture(scope='module')
def sample_run(tmp_path_factory):
  out = tmp_path_factory.mktemp('out')
  stale = out / 'events' / 'events-00000-of-00002.json'
  stale.parent.mkdir()
  stale.write_text('{"stale": true}\n')
  game_analytics.run(['--output', str(out)], save_main_session=False)
  return out


def test_every_table_is_written_in_its_own_glob(sample_run):
  for table in schemas.tables(game_analytics.JOB):
    files = glob.glob(os.path.join(str(sample_run), table, '*.json'))
    assert files, table
    assert all(os.path.basename(f).startswith(table + '-') for f in files)
  assert not (sample_run / 'events' / 'events-00000-of-00002.json').exists()


def test_rows_conform_to_their_schemas(sample_run):
  assert_written_tables_conform(sample_run, game_analytics.JOB)


def test_metrics_file_balances_the_books(sample_run):
  c = json.loads((sample_run / '_metrics.json').read_text())['counters']
  assert c['events_read'] == c['rows_events'] + c['duplicates'] + c['filtered'] + c['errors']
  assert c['rows_events'] == len(read_table(sample_run, 'events'))
  assert c['rows_errors'] == c['errors'] == len(read_table(sample_run, 'errors'))


def test_sample_results_match_what_the_generator_put_in(sample_run):
  truth = sample.ground_truth(sample.SAMPLE_PLAYS, sample.SAMPLE_SEED)
  c = json.loads((sample_run / '_metrics.json').read_text())['counters']
  assert c['duplicates'] == truth['duplicates']
  bad = truth['malformed']
  assert c['errors_parse_json'] == bad['invalid_json'] + bad['split_record']
  assert c['errors_flatten_record'] == bad['not_object']
  funnel = {r['step']: r['sessions'] for r in read_table(sample_run, 'funnel')}
  assert [funnel[s] for s in ('started', 'moved', 'attacked', 'completed')] == [
      truth['funnel'][k] for k in ('START_SESSION', 'PLAYER_MOVE', 'PLAYER_ATTACK',
                                   'END_SESSION|END_SCENE')]
  sessions = read_table(sample_run, 'sessions')
  assert len(sessions) == truth['plays']
  completed = sum(r['sessions'] for r in read_table(sample_run, 'score_by_age'))
  assert completed == sum(s['completed'] for s in sessions)


def _write_to_bigquery_transforms(pipeline):
  from apache_beam.io.gcp.bigquery import WriteToBigQuery
  from apache_beam.pipeline import PipelineVisitor

  found = []

  class Visitor(PipelineVisitor):

    def enter_composite_transform(self, node):
      if isinstance(node.transform, WriteToBigQuery):
        found.append(node.transform)

    def visit_transform(self, node):
      self.enter_composite_transform(node)

  pipeline.visit(Visitor())
  return found


@pytest.mark.parametrize('argv, method', [
    ([], 'FILE_LOADS'),
    (['--streaming'], 'STREAMING_INSERTS'),
])
def test_bigquery_output_configures_one_write_per_table(argv, method):
  plan = game_analytics.build(['--output', 'my-proj:analytics', '--table_prefix', 'rpg_'] +
                              argv, save_main_session=False)
  writes = {w.table_reference.tableId: w for w in
            _write_to_bigquery_transforms(plan.pipeline)}
  tables = schemas.tables(game_analytics.JOB)
  assert sorted(writes) == sorted('rpg_' + t for t in tables)
  for table in tables:
    write = writes['rpg_' + table]
    assert (write.table_reference.projectId, write.table_reference.datasetId) == (
        'my-proj', 'analytics')
    assert write.schema == schemas.bigquery_schema(game_analytics.JOB, table)
    assert write.create_disposition == 'CREATE_IF_NEEDED'
    assert write.write_disposition == 'WRITE_APPEND'
    assert write.method == method
    assert write.additional_bq_parameters == {'timePartitioning': {
        'type': 'DAY', 'field': schemas.partition_field(game_analytics.JOB, table)}}
  assert writes['rpg_events'].additional_bq_parameters['timePartitioning']['field'] == (
      'event_time')


def test_pubsub_input_builds_a_streaming_job_reading_attributes():
  from apache_beam.io.gcp.pubsub import ReadFromPubSub
  from apache_beam.options.pipeline_options import StandardOptions
  from apache_beam.pipeline import PipelineVisitor

  plan = game_analytics.build(
      ['--input', 'projects/my-proj/subscriptions/game-events',
       '--timestamp_attribute', 'ts', '--output', 'my-proj:analytics'],
      save_main_session=False)
  assert plan.pipeline.options.view_as(StandardOptions).streaming
  reads = []

  class Visitor(PipelineVisitor):

    def enter_composite_transform(self, node):
      if isinstance(node.transform, ReadFromPubSub):
        reads.append(node.transform)

  plan.pipeline.visit(Visitor())
  source = reads[0]._source
  assert (source.full_subscription, source.with_attributes, source.timestamp_attribute) == (
      'projects/my-proj/subscriptions/game-events', True, 'ts')
  writes = _write_to_bigquery_transforms(plan.pipeline)
  assert {w.method for w in writes} == {'STREAMING_INSERTS'}


def test_id_label_on_the_direct_runner_is_refused_at_start_up():
  with pytest.raises(ValueError, match='--id_label is not supported by the DirectRunner'):
    game_analytics.build(['--input', 'projects/p/subscriptions/s', '--id_label', 'uid'],
                         save_main_session=False)


def test_batch_bigquery_output_without_a_gcs_temp_location_stops_before_running():
  with pytest.raises(ValueError, match='needs --temp_location gs://'):
    game_analytics.run(['--output', 'my-proj:analytics'], save_main_session=False)


def test_a_mistyped_flag_stops_at_start_up(capsys):
  with pytest.raises(SystemExit) as exit_info:
    game_analytics.build(['--sesion_gap', '5'], save_main_session=False)
  assert exit_info.value.code == 2
  assert 'unrecognized arguments: --sesion_gap' in capsys.readouterr().err


def test_beam_and_dataflow_flags_are_accepted():
  plan = game_analytics.build(
      ['--runner', 'DirectRunner', '--direct_num_workers=2', '--project', 'p',
       '--region', 'europe-west1', '--temp_location', 'gs://b/tmp', '--experiments', 'x',
       '--setup_file', './setup.py', '--session_gap=5'], save_main_session=False)
  assert plan.pipeline.options.view_as(game_analytics.GameAnalyticsOptions).session_gap == 5


def test_every_jobs_options_coexist_in_one_process():
  # Beam parses every PipelineOptions subclass it has seen, so two jobs defining the same
  # flag break both; shared flags belong in JobOptions.
  import importlib

  from apache_beam.options.pipeline_options import PipelineOptions

  from pipelines.__main__ import JOBS
  for job in JOBS:
    importlib.import_module('pipelines.' + job)
  options = PipelineOptions(['--dedupe_ttl', '60']).get_all_options()
  assert options['dedupe_ttl'] == 60


@pytest.mark.parametrize('job, argv, message', [
    ('iot_telemetry', ['--rule', 'bad'], "iot_telemetry: error: rule 'bad' is not NAME"),
    ('log_analytics', ['--metric', 'bad'], "log_analytics: error: expected NAME=FILTER"),
])
def test_python_m_a_job_reports_a_config_error_in_one_line(job, argv, message):
  done = subprocess.run([sys.executable, '-m', 'pipelines.' + job] + argv,
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert done.returncode == 2
  assert done.stderr.strip().startswith(message)
  assert 'Traceback' not in done.stderr


def test_no_two_jobs_define_the_same_flag():
  """Beam parses every PipelineOptions subclass together: a flag defined by two jobs (or by
  a job and Beam, such as Dataflow's --labels) breaks every job once both are imported."""
  import importlib

  from apache_beam.options.pipeline_options import PipelineOptions

  from pipelines.__main__ import JOBS
  for name in JOBS:
    importlib.import_module('pipelines.' + name)
  assert PipelineOptions([]).get_all_options()['input_format'] == 'auto'
