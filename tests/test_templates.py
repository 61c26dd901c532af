"""Flex Template metadata (pipelines.templates): the committed templates/*.metadata.json are
current, list exactly the flags `--help` lists, and their regexes accept what a launch may
pass and refuse the rest; `validate` reports what a launch would be refused for."""
import json
import os
import re
import subprocess
import sys

import pytest

from pipelines import templates
from pipelines.__main__ import JOBS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_JOBS = list(JOBS)
PARAM_TYPES = {'TEXT', 'NUMBER', 'BOOLEAN', 'ENUM', 'BIGQUERY_TABLE', 'PUBSUB_TOPIC',
               'GCS_READ_FILE'}


def _env():
  return dict(os.environ, PYTHONPATH=ROOT)


def _python(*args, timeout=120):
  return subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True,
                        text=True, timeout=timeout)


def committed(job):
  with open(templates.metadata_path(job), encoding='utf-8') as fh:
    return json.load(fh)


def params(job):
  return {p['name']: p for p in committed(job)['parameters']}


# --- 1. the committed files are what the options produce ------------------------------------

def test_every_job_has_committed_metadata_and_nothing_else():
  assert templates.jobs() == ALL_JOBS
  files = sorted(f for f in os.listdir(templates.TEMPLATES_DIR) if f.endswith('.metadata.json'))
  assert files == sorted('%s.metadata.json' % job for job in ALL_JOBS)


@pytest.mark.parametrize('job', ALL_JOBS)
def test_committed_metadata_is_current(job):
  with open(templates.metadata_path(job), encoding='utf-8') as fh:
    assert fh.read() == templates.render(job)
  assert committed(job)['name'] == job


def test_check_passes_on_the_committed_files():
  result = _python('-m', 'pipelines.templates', '--check')
  assert (result.returncode, result.stderr) == (0, '')


def test_check_names_the_file_that_was_edited(tmp_path, capsys):
  assert templates.main(['--out', str(tmp_path)]) == 0
  written = capsys.readouterr().out.splitlines()
  assert written == [templates.metadata_path(job, str(tmp_path)) for job in ALL_JOBS]
  assert templates.stale(str(tmp_path)) == []

  edited = tmp_path / 'log_analytics.metadata.json'
  data = json.loads(edited.read_text(encoding='utf-8'))
  data['parameters'][0]['helpText'] = 'edited by hand'
  edited.write_text(json.dumps(data, indent=2) + '\n', encoding='utf-8')
  result = _python('-m', 'pipelines.templates', '--check', '--out', str(tmp_path))
  assert result.returncode == 1
  assert result.stderr.splitlines() == [
      '%s is stale: run python -m pipelines.templates' % edited]
  assert result.stdout == ''


def test_check_reports_a_missing_file(tmp_path):
  templates.write_all(str(tmp_path))
  (tmp_path / 'face_dataset.metadata.json').unlink()
  assert templates.stale(str(tmp_path)) == ['face_dataset']
  assert templates.main(['--check', '--out', str(tmp_path)]) == 1


# --- 2. parameters == the flags --help lists, in its order ---------------------------------

@pytest.fixture(scope='module')
def help_texts():
  """`python -m pipelines JOB --help` for every job, run side by side."""
  procs = {job: subprocess.Popen([sys.executable, '-m', 'pipelines', job, '--help'], cwd=ROOT,
                                 env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
           for job in ALL_JOBS}
  out = {}
  for job, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, (job, stderr)
    out[job] = stdout
  return out


def _listed_flags(help_text):
  """Long flags at option positions (two spaces in, as argparse lists them), in order."""
  flags = re.findall(r'^  (--[a-z_]+)', help_text, flags=re.MULTILINE)
  return [flag for flag in flags if flag != '--help']


def _usage_flags(help_text):
  usage = help_text.split('\n\n', 1)[0]
  return [flag for flag in re.findall(r'\[(--[a-z_]+)', usage) if flag != '--help']


@pytest.mark.parametrize('job', ALL_JOBS)
def test_parameters_are_the_flags_help_lists_in_order(help_texts, job):
  listed = _listed_flags(help_texts[job])
  assert len(listed) == len(set(listed)), listed
  names = ['--' + p['name'] for p in committed(job)['parameters']]
  assert set(names) == set(listed)
  assert names == listed
  assert _usage_flags(help_texts[job]) == listed


def test_help_parity_sees_job_flags_and_skips_hidden_ones(help_texts):
  log_flags = _listed_flags(help_texts['log_analytics'])
  assert log_flags[-3:] == ['--metric', '--alert', '--alert_topic']
  assert '--log_dedupe_ttl' not in log_flags  # hidden alias: neither in --help nor template
  assert 'log_dedupe_ttl' not in params('log_analytics')
  assert _listed_flags(help_texts['game_analytics'])[-2:] == ['--session_gap',
                                                              '--heatmap_cell_size']


# --- 3. every parameter is well formed ------------------------------------------------------

ENUMS = {
    'game_analytics': {'input_format': ['auto', 'images', 'url_list', 'index']},
    'log_analytics': {'input_format': ['auto', 'images', 'url_list', 'index']},
    'iot_telemetry': {'input_format': ['auto', 'images', 'url_list', 'index']},
    'tweet_sentiment': {'input_format': ['auto', 'images', 'url_list', 'index'],
                        'sentiment_backend': ['local', 'api'],
                        'entities': ['local', 'api', 'off']},
    'face_dataset': {'input_format': ['auto', 'images', 'url_list', 'index'],
                     'detector': ['local', 'vision']},
    'image_inference': {'input_format': ['auto', 'images', 'url_list', 'index'],
                        'device': ['auto', 'cpu', 'gpu']},
}
REQUIRED = {job: ['output'] for job in ALL_JOBS}
REQUIRED['image_inference'] = ['output', 'model']


@pytest.mark.parametrize('job', ALL_JOBS)
def test_every_parameter_is_complete(job):
  for p in committed(job)['parameters']:
    assert {'name', 'label', 'helpText', 'isOptional', 'paramType', 'regexes'} <= set(p), p
    assert re.fullmatch(r'[a-z][a-z0-9_]*', p['name']), p['name']
    assert p['label'] == templates.label(p['name'])
    assert p['helpText'].strip() and '%%' not in p['helpText'], p
    assert isinstance(p['isOptional'], bool)
    assert p['paramType'] in PARAM_TYPES, p
    assert p['regexes'], p['name']
    for regex in p['regexes']:
      re.compile(regex)
      for lookaround in ('(?=', '(?!', '(?<'):
        assert lookaround not in regex, (p['name'], regex)
      assert regex.startswith('^') and regex.endswith('$'), (p['name'], regex)


@pytest.mark.parametrize('job', ALL_JOBS)
def test_required_parameters(job):
  required = [p['name'] for p in committed(job)['parameters'] if not p['isOptional']]
  assert required == REQUIRED[job]


@pytest.mark.parametrize('job', ALL_JOBS)
def test_enum_parameters_list_their_choices(job):
  enums = {p['name']: p for p in committed(job)['parameters'] if p['paramType'] == 'ENUM'}
  assert sorted(enums) == sorted(ENUMS[job])
  for name, choices in ENUMS[job].items():
    p = enums[name]
    assert p['enumOptions'] == [{'value': c, 'label': c} for c in choices]
    assert p['regexes'] == ['^(%s)$' % '|'.join(choices)]
  from pipelines.options import flag_actions
  for action in flag_actions(templates.options_class(job)):
    if action.choices:
      assert list(action.choices) == ENUMS[job][action.dest]


@pytest.mark.parametrize('job', ALL_JOBS)
def test_every_default_value_passes_its_own_regexes(job):
  for p in committed(job)['parameters']:
    if 'defaultValue' in p:
      for regex in p['regexes']:
        assert re.fullmatch(regex, p['defaultValue']), (p['name'], p['defaultValue'], regex)


def test_cloud_only_parameters_say_what_dataflow_needs():
  game = params('game_analytics')
  assert game['output']['helpText'].endswith(
      'Default: ./output/<job>. On Dataflow: gs://BUCKET/PATH or PROJECT:DATASET.')
  assert game['input_table']['helpText'].endswith('On Dataflow: PROJECT:DATASET.TABLE.')
  assert 'On Dataflow' not in game['session_gap']['helpText']
  assert params('image_inference')['model']['helpText'].endswith(
      'On Dataflow: a gs:// path to the .keras file.')
  # argparse's %% is expanded as --help shows it
  assert ('{yesterday:%Y/%m/%d} picks the format, default %Y%m%d'
          in game['run_date']['helpText'])


def test_parameter_types():
  assert params('game_analytics')['input_table']['paramType'] == 'BIGQUERY_TABLE'
  assert params('log_analytics')['alert_topic']['paramType'] == 'PUBSUB_TOPIC'
  assert params('iot_telemetry')['command_topic']['paramType'] == 'PUBSUB_TOPIC'
  assert params('image_inference')['model']['paramType'] == 'GCS_READ_FILE'
  assert params('face_dataset')['balance']['paramType'] == 'BOOLEAN'
  assert params('game_analytics')['session_gap']['paramType'] == 'NUMBER'
  assert params('log_analytics')['metric']['paramType'] == 'TEXT'


# --- 4. regexes accept good values and refuse bad ones (through validate) ------------------

REGEX_CASES = [
    # numbers: positive
    ('game_analytics', 'session_gap', '600', True),
    ('game_analytics', 'session_gap', '0.5', True),
    ('game_analytics', 'session_gap', '.5', True),
    ('game_analytics', 'session_gap', '0', False),
    ('game_analytics', 'session_gap', '-1', False),
    ('game_analytics', 'session_gap', 'abc', False),
    ('game_analytics', 'session_gap', '', False),
    ('game_analytics', 'session_gap', '1e3', False),
    ('game_analytics', 'session_gap', '0.0', False),
    # non_negative
    ('game_analytics', 'early_firing', '0', True),
    ('game_analytics', 'early_firing', '60', True),
    ('game_analytics', 'early_firing', '-1', False),
    # fraction
    ('face_dataset', 'validate_fraction', '0', True),
    ('face_dataset', 'validate_fraction', '1', True),
    ('face_dataset', 'validate_fraction', '0.3', True),
    ('face_dataset', 'validate_fraction', '1.0', True),
    ('face_dataset', 'validate_fraction', '1.5', False),
    ('face_dataset', 'validate_fraction', '.', False),
    ('face_dataset', 'validate_fraction', '1.01', False),
    # score
    ('tweet_sentiment', 'positive_threshold', '-0.5', True),
    ('tweet_sentiment', 'positive_threshold', '-1', True),
    ('tweet_sentiment', 'positive_threshold', '-1.5', False),
    ('tweet_sentiment', 'positive_threshold', '2', False),
    # positive_int / integer
    ('face_dataset', 'max_faces', '2', True),
    ('face_dataset', 'max_faces', '0', False),
    ('face_dataset', 'max_faces', '1.5', False),
    ('face_dataset', 'near_duplicate_distance', '-1', True),
    ('face_dataset', 'near_duplicate_distance', '4', True),
    ('face_dataset', 'near_duplicate_distance', '4.0', False),
    # booleans
    ('face_dataset', 'balance', 'true', True),
    ('face_dataset', 'balance', 'false', True),
    ('face_dataset', 'balance', 'yes', False),
    ('face_dataset', 'balance', 'True', False),
    ('image_inference', 'large_model', 'true', True),
    ('tweet_sentiment', 'include_retweets', '1', False),
    # enums
    ('face_dataset', 'detector', 'vision', True),
    ('face_dataset', 'detector', 'Vision', False),
    ('face_dataset', 'detector', 'visionx', False),
    ('image_inference', 'device', 'gpu', True),
    # input, output, input_table
    ('game_analytics', 'input', 'gs://my-bucket/events/*.json', True),
    ('game_analytics', 'input', 'projects/p-123456/subscriptions/s', True),
    ('game_analytics', 'input', 'projects/p-123456/topics/t', True),
    ('game_analytics', 'input', 'events/*.json', False),
    ('game_analytics', 'input', '/tmp/x', False),
    ('game_analytics', 'input', 'gs://b/x', False),  # a bucket name is 3+ characters
    ('game_analytics', 'input', 'projects/p/subscriptions/', False),
    ('game_analytics', 'output', 'gs://my-bucket/out', True),
    ('game_analytics', 'output', 'my-project:analytics', True),
    ('game_analytics', 'output', 'example.com:my-project:analytics', True),
    ('game_analytics', 'output', 'out/', False),
    ('game_analytics', 'output', 'my-project.analytics', False),
    ('game_analytics', 'input_table', 'my-project:analytics_1.events_{yesterday}', True),
    ('game_analytics', 'input_table', 'my-project.analytics_1.events_20261126', True),
    ('game_analytics', 'input_table', 'events', False),
    ('game_analytics', 'input_table', 'my-project:analytics_1', False),
    # topics
    ('log_analytics', 'alert_topic', 'projects/my-project/topics/alerts', True),
    ('log_analytics', 'alert_topic', 'alerts', False),
    ('log_analytics', 'alert_topic', 'projects/my-project/subscriptions/alerts', False),
    ('iot_telemetry', 'command_topic', 'projects/my-project/topics/commands', True),
    # repeated flags: one value, or a JSON array of them
    ('log_analytics', 'metric', '["a=x", "b=y"]', True),
    ('log_analytics', 'metric', 'server_errors=httpRequest.status>=500', True),
    ('log_analytics', 'metric', '=x', False),
    ('log_analytics', 'metric', 'server_errors', False),
    ('log_analytics', 'alert', 'server_errors>10', True),
    ('log_analytics', 'alert', '["server_errors>10", "entries<=1"]', True),
    ('log_analytics', 'alert', 'server_errors', False),
    ('iot_telemetry', 'rule', 'hot: temperature > 30 -> {"fan": "high"}', True),
    ('iot_telemetry', 'rule', 'hot: temperature > 30 for 2 windows -> {"fan": "high"}', True),
    ('iot_telemetry', 'rule', 'hot temperature', False),
    ('iot_telemetry', 'bigtable', 'my-project:my-instance:readings', True),
    ('iot_telemetry', 'bigtable', 'readings', False),
    # dates and files
    ('game_analytics', 'run_date', '2026-11-26', True),
    ('game_analytics', 'run_date', '26/11/2026', False),
    ('game_analytics', 'run_date', '20261126', False),
    ('image_inference', 'model', 'gs://my-bucket/m/face.keras', True),
    ('image_inference', 'model', 'face.keras', False),
    ('game_analytics', 'table_prefix', 'team_a_', True),
    ('game_analytics', 'table_prefix', 'a b', False),
]


def _base(job):
  base = {'input': 'gs://my-bucket/in/*', 'output': 'gs://my-bucket/out'}
  if job == 'image_inference':
    base['model'] = 'gs://my-bucket/m/face.keras'
  return base


@pytest.mark.parametrize('job,name,value,ok', REGEX_CASES)
def test_regex_accepts_and_refuses(job, name, value, ok):
  given = dict(_base(job), **{name: value})
  if name == 'input_table':
    given.pop('input')  # one source or the other
  errors = templates.validate(job, ['%s=%s' % item for item in given.items()])
  if ok:
    assert errors == []
  else:
    (regex,) = params(job)[name]['regexes']
    assert errors == ['%s=%r does not match %s' % (name, value, regex)]


# --- 5. validate's messages ------------------------------------------------------------------

GOOD = 'output=gs://my-bucket/out'
SOURCE = 'input=gs://my-bucket/in/*'  # a launch reads --input or --input_table


def test_validate_passes_good_parameters():
  assert templates.validate('game_analytics', [SOURCE, GOOD]) == []
  assert templates.validate('game_analytics', [
      'input_table=my-project:analytics_1.events_{yesterday}', GOOD]) == []
  assert templates.validate('log_analytics', [SOURCE, GOOD, 'metric=a=x', 'alert=a>1']) == []
  assert templates.validate('image_inference', [SOURCE, GOOD,
                                                'model=gs://my-bucket/m.keras']) == []


def test_validate_suggests_the_parameter_meant():
  assert templates.validate('game_analytics', [SOURCE, GOOD, 'windw=60']) == [
      "game_analytics has no parameter 'windw' (did you mean 'window'?)"]
  assert templates.validate('game_analytics', [SOURCE, GOOD, 'zzzzzz=1']) == [
      "game_analytics has no parameter 'zzzzzz'"]


def test_validate_reports_missing_required_parameters():
  assert templates.validate('game_analytics', []) == [
      'game_analytics needs output=... (Output)',
      'game_analytics needs input=... or input_table=...']
  assert templates.validate('image_inference', ['input=gs://my-bucket/i.txt']) == [
      'image_inference needs output=... (Output)', 'image_inference needs model=... (Model)']


def test_validate_reports_a_pair_without_equals_and_a_repeated_name():
  assert templates.validate('game_analytics', [SOURCE, GOOD, 'x']) == ["'x' is not NAME=VALUE"]
  assert templates.validate('game_analytics', [SOURCE, GOOD, 'window=60', 'window=120']) == [
      'window is given twice']


def test_validate_reports_an_unknown_job():
  (error,) = templates.validate('no_such_job', [GOOD])
  assert error.startswith("no template metadata for 'no_such_job' (")
  assert error.endswith('); jobs: face_dataset, game_analytics, image_inference, '
                        'iot_telemetry, log_analytics, tweet_sentiment')


def test_validate_cli_exits_2_with_errors_on_stderr():
  result = _python('-m', 'pipelines.templates', 'validate', 'game_analytics', 'windw=1')
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      "template parameter error: game_analytics has no parameter 'windw' "
      "(did you mean 'window'?)",
      'template parameter error: game_analytics needs output=... (Output)',
      'template parameter error: game_analytics needs input=... or input_table=...']
  assert result.stdout == ''


def test_validate_cli_exits_0_quietly_on_good_parameters():
  result = _python('-m', 'pipelines.templates', 'validate', 'log_analytics', SOURCE, GOOD,
                   'window=60', 'metric=["a=x", "b=y"]', 'alert=a>1')
  assert (result.returncode, result.stdout, result.stderr) == (0, '', '')


def test_validate_needs_neither_beam_nor_the_jobs():
  code = ('import sys\n'
          'from pipelines import templates\n'
          'rc = templates.main(["validate", "game_analytics", "%s", "%s"])\n'
          'print(rc, sorted(m for m in sys.modules if m.split(".")[0] in '
          '("apache_beam", "transforms") or m.startswith("pipelines.")))' % (SOURCE, GOOD))
  result = _python('-c', code)
  assert result.stdout.strip() == "0 ['pipelines.templates']", result.stderr


def test_validate_without_a_job_is_a_usage_error(capsys):
  assert templates.main(['validate']) == 2
  assert capsys.readouterr().err.startswith('usage: python -m pipelines.templates validate JOB')


# --- 6. labels and 7. defaults --------------------------------------------------------------

@pytest.mark.parametrize('dest,expected', [
    ('api_qps', 'API QPS'),
    ('session_gap', 'Session gap'),
    ('min_face_px', 'Min face (px)'),
    ('id_label', 'ID label'),
    ('dedupe_ttl', 'Dedupe TTL'),
    ('jpeg_quality', 'JPEG quality'),
    ('top_k', 'Top k'),
    ('input', 'Input'),
])
def test_label(dest, expected):
  assert templates.label(dest) == expected


def test_committed_labels():
  assert params('face_dataset')['min_face_px']['label'] == 'Min face (px)'
  assert params('tweet_sentiment')['api_qps']['label'] == 'API QPS'
  assert params('face_dataset')['max_upload_px']['label'] == 'Max upload (px)'


@pytest.mark.parametrize('job,name,expected', [
    ('game_analytics', 'session_gap', '600'),
    ('game_analytics', 'heatmap_cell_size', '1'),  # 1.0 written as an integer
    ('game_analytics', 'input_format', 'auto'),
    ('game_analytics', 'dedupe_ttl', '3600'),
    ('tweet_sentiment', 'positive_threshold', '0.25'),
    ('tweet_sentiment', 'negative_threshold', '-0.25'),
    ('tweet_sentiment', 'include_retweets', 'false'),
    ('face_dataset', 'balance', 'false'),
    ('face_dataset', 'reject_labels', 'sunglasses'),
    ('face_dataset', 'validate_fraction', '0.3'),
    ('face_dataset', 'max_image_bytes', '33554432'),
    ('image_inference', 'large_model', 'false'),
    ('image_inference', 'device', 'auto'),
    ('log_analytics', 'metric', None),  # default [] is no default
    ('log_analytics', 'alert', None),
    ('log_analytics', 'window', None),  # None: the job's own
    ('log_analytics', 'table_prefix', None),  # '' is no default
    ('log_analytics', 'output', None),
    ('image_inference', 'model', None),
])
def test_default_value(job, name, expected):
  assert params(job)[name].get('defaultValue') == expected


# --- found in review: what the job refuses at launch, validate refuses first ---------------

@pytest.mark.parametrize('job, extra, error', [
    ('log_analytics', ['input=gs://my-bucket/in/*', 'input_table=my-project:ds.logs'],
     'give input or input_table, not both'),
    ('game_analytics', ['input=gs://my-bucket/in/*', 'run_date=2026-02-30'],
     "run_date='2026-02-30' is not a date"),
])
def test_validate_refuses_what_the_job_would(job, extra, error):
  assert templates.validate(job, [GOOD] + extra) == [error]


@pytest.mark.parametrize('job, name, value, ok', [
    ('face_dataset', 'near_duplicate_distance', '10', True),
    ('face_dataset', 'near_duplicate_distance', '-1', True),
    ('face_dataset', 'near_duplicate_distance', '11', False),
    ('face_dataset', 'jpeg_quality', '95', True),
    ('face_dataset', 'jpeg_quality', '99', False),
    ('face_dataset', 'jpeg_quality', '0', False),
    ('game_analytics', 'input_table', 'example.com:my-project:ds.events', False),
    ('game_analytics', 'input_table', 'my-project.ds.events_{yesterday:%Y%m%d}', True),
])
def test_ranges_and_tables_the_job_checks_are_in_the_regexes(job, name, value, ok):
  given = dict(_base(job), **{name: value})
  if name == 'input_table':
    given.pop('input')
  errors = templates.validate(job, ['%s=%s' % item for item in given.items()])
  assert (errors == []) == ok, errors
