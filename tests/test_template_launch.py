"""A Flex Template launch as the launcher performs it: every parameter as --name=value to
templates/launch.py, which runs the image's job (here on the DirectRunner)."""
import importlib.util
import json
import os

import pytest

from pipelines import templates
from pipelines.__main__ import JOBS
from pipelines.options import parse_options
from tests.tables import read_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch_module():
  spec = importlib.util.spec_from_file_location(
      'template_launch', os.path.join(ROOT, 'templates', 'launch.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _metadata(job):
  with open(templates.metadata_path(job), encoding='utf-8') as f:
    return json.load(f)


@pytest.mark.parametrize('job', list(JOBS))
def test_every_default_a_template_shows_parses_back_to_the_cli_default(job):
  """The console pre-fills defaultValue and passes it as --name=value: the job must read it
  as the value it would have had without the flag."""
  cls = templates.options_class(job)
  argv = ['--%s=%s' % (p['name'], p['defaultValue'])
          for p in _metadata(job)['parameters'] if 'defaultValue' in p]
  assert argv  # every job has defaults
  given = parse_options(cls, argv, job).get_all_options()
  default = parse_options(cls, [], job).get_all_options()
  for param in _metadata(job)['parameters']:
    if 'defaultValue' in param:
      assert given[param['name']] == default[param['name']], param['name']


def test_a_log_analytics_template_launch_with_list_and_boolean_parameters(tmp_path):
  """--metric and --alert as one JSON-array parameter each, the way a template passes them;
  the job's alerts prove both rules arrived."""
  out = tmp_path / 'out'
  launch = _launch_module()
  status = launch.main(
      ['--metric=["server_errors=httpRequest.status>=500", "warnings=severity=WARNING"]',
       '--alert=["server_errors>0", "warnings>0"]', '--output=%s' % out,
       '--runner=DirectRunner'],
      environ={'BEAM_ANALYTICS_JOB': 'log_analytics'})
  assert status == 0
  metrics = {row['metric'] for row in read_table(out, 'metric_counts')}
  assert metrics == {'server_errors', 'warnings'}
  alerted = {row['metric'] for row in read_table(out, 'alerts')}
  assert alerted == {'server_errors', 'warnings'}
