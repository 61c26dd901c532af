"""pipelines.launch: what every job's run() shares (defaults, replacing old output, the
counter summary and _metrics.json)."""
import glob
import json
import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import game_analytics, launch


def test_sample_input_is_the_bundled_folder_and_matches_files():
  pattern = launch.sample_input('game_analytics')
  assert pattern.endswith(os.path.join('samples', 'game_analytics', '*.json*'))
  assert len(glob.glob(pattern)) == 4


def test_clear_tables_removes_only_the_jobs_table_files(tmp_path):
  for relative in ('events/events-00000-of-00002.json', 'errors/errors-00000-of-00001.json',
                   'events/notes.txt', 'other_table/x.json', '_metrics.json'):
    path = tmp_path / relative
    path.parent.mkdir(exist_ok=True)
    path.write_text('{}\n')
  launch._clear_outputs(str(tmp_path), "game_analytics")
  left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*') if p.is_file())
  assert left == ['_metrics.json', 'events/notes.txt', 'other_table/x.json']


def test_summary_and_metrics_file(tmp_path):
  values = {'errors': 2, 'events_read': 10, 'rows_events': 8}
  text = launch.summary_text('game_analytics', values, str(tmp_path))
  assert text.splitlines() == [
      'game_analytics counters:',
      '  errors                 2',
      '  events_read           10',
      '  rows_events            8',
      'Output: %s' % os.path.join(str(tmp_path), '<table>', '*.json'),
  ]
  assert launch.summary_text('game_analytics', values, 'p:ds').endswith(
      'Output: BigQuery dataset p:ds')
  launch._write_metrics(str(tmp_path), values)
  assert json.loads((tmp_path / '_metrics.json').read_text()) == {'counters': values}


def test_is_local_knows_the_direct_runner_from_remote_ones():
  from apache_beam.options.pipeline_options import PipelineOptions
  assert launch.is_local(PipelineOptions([]))
  assert launch.is_local(PipelineOptions(['--runner', 'DirectRunner']))
  assert not launch.is_local(PipelineOptions(['--runner', 'DataflowRunner']))


@pytest.mark.parametrize('runner, local, dataflow', [
    (None, True, False), ('DirectRunner', True, False), ('Direct', True, False),
    ('directrunner', True, False), ('SwitchingDirectRunner', True, False),
    ('PrismRunner', True, False), ('DataflowRunner', False, True), ('dataflow', False, True),
    ('FlinkRunner', False, False),
])
def test_runner_names_in_every_form_beam_accepts(runner, local, dataflow):
  options = PipelineOptions(['--runner', runner] if runner else [])
  assert (launch.is_local(options), launch.is_dataflow(options)) == (local, dataflow)


def test_a_local_runner_by_any_name_runs_locally(tmp_path):
  """`--runner Direct` is Beam's DirectRunner: no Dataflow checks (it needs no gs://)."""
  plan = game_analytics.build(['--runner', 'Direct', '--output', str(tmp_path)])
  assert plan.local


def test_a_local_batch_run_into_a_bigquery_endpoint_needs_no_gcs_temp_location(
    tmp_path, monkeypatch):
  """Loads into an emulator stage their files in a local --temp_location (or a new temp
  folder); without an endpoint a batch BigQuery output still needs gs:// first."""
  from pipelines.options import ConfigError
  from transforms import sinks
  monkeypatch.delenv('BIGQUERY_EMULATOR_HOST', raising=False)
  with pytest.raises(ConfigError, match='needs --temp_location gs://'):
    launch.check_cloud_options(*_plan_and_options(['--output', 'my-project:game']))
  used = []
  monkeypatch.setattr(launch, 'use_bigquery_endpoint', lambda *args: used.append(args))
  plan, options = _plan_and_options([
      '--output', 'my-project:game', '--bigquery_endpoint', 'http://127.0.0.1:9050',
      '--temp_location', str(tmp_path)])
  launch.check_cloud_options(plan, options)  # no gs:// needed
  assert used == [('http://127.0.0.1:9050', 'my-project')]
  assert plan.bigquery_endpoint == 'http://127.0.0.1:9050'
  assert launch.bigquery_load_dir(options) == str(tmp_path)
  assert sinks.is_bigquery_dataset(plan.output)


def _plan_and_options(argv):
  plan = game_analytics.build(argv)
  return plan, plan.pipeline.options


def test_a_bigquery_endpoint_is_for_local_runs():
  """The endpoint hook patches this process's clients: Dataflow workers would not see it."""
  from pipelines.options import ConfigError
  with pytest.raises(ConfigError, match='is for local runs'):
    game_analytics.build([
        '--runner', 'DataflowRunner', '--project', 'my-project', '--region', 'us-central1',
        '--temp_location', 'gs://my-bucket/tmp', '--input', 'gs://my-bucket/events/*',
        '--output', 'my-project:game', '--bigquery_endpoint', 'http://127.0.0.1:9050'])
