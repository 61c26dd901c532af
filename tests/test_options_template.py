"""pipelines.options as template launches use it: --flag=true/false switches, repeated flags
given as JSON arrays, {today}/{yesterday} in paths, the checks that run before a Dataflow
job is built, and flag syntax that agrees with the template regexes."""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

import pytest

from pipelines import __main__ as cli
from pipelines import face_dataset, game_analytics, image_inference, iot_telemetry
from pipelines import log_analytics, tweet_sentiment
from pipelines.options import (ConfigError, JobOptions, TemplateParam, boolean, fraction,
                               integer, non_negative, parse_options, positive, positive_int,
                               resolve_dates, run_date, score, split_repeated, text)
from tests.tables import read_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(options_cls, argv):
  return parse_options(options_cls, argv, 'prog')


def _usage_error(options_cls, argv, capsys):
  """argv -> argparse's message, asserting it is a usage error (exit status 2)."""
  with pytest.raises(SystemExit) as exit_info:
    _parse(options_cls, argv)
  assert exit_info.value.code == 2
  return capsys.readouterr().err


# --- 1. switches -----------------------------------------------------------------------------

SWITCHES = [
    (face_dataset.FaceDatasetOptions, '--balance', 'balance'),
    (tweet_sentiment.TweetSentimentOptions, '--include_retweets', 'include_retweets'),
    (image_inference.ImageInferenceOptions, '--large_model', 'large_model'),
]


@pytest.mark.parametrize('options_cls,flag,dest', SWITCHES)
@pytest.mark.parametrize('given,expected', [
    (['{flag}'], True),
    (['{flag}=true'], True),
    (['{flag}=false'], False),
    (['{flag}=False'], False),
    ([], False),
    (['{flag}', '--window', '30'], True),  # bare, followed by another flag
    (['{flag}=false', '--window', '30'], False),
])
def test_switch(options_cls, flag, dest, given, expected):
  argv = [arg.format(flag=flag) for arg in given]
  options = _parse(options_cls, argv)
  assert getattr(options.view_as(options_cls), dest) is expected
  if '--window' in argv:
    assert options.view_as(JobOptions).window == 30


@pytest.mark.parametrize('options_cls,flag,dest', SWITCHES)
def test_switch_refuses_other_values(options_cls, flag, dest, capsys):
  err = _usage_error(options_cls, [flag + '=maybe'], capsys)
  assert 'argument %s: must be true or false, got maybe' % flag in err


def test_boolean_converter():
  for value in ('true', 'TRUE', ' yes ', '1'):
    assert boolean(value) is True
  for value in ('false', 'No', '0'):
    assert boolean(value) is False
  with pytest.raises(argparse.ArgumentTypeError, match='must be true or false, got maybe'):
    boolean('maybe')
  assert boolean.template == TemplateParam('BOOLEAN', '^(true|false)$')


# --- 2. repeated flags -----------------------------------------------------------------------

LOGS = log_analytics.LogAnalyticsOptions
IOT = iot_telemetry.IotTelemetryOptions


@pytest.mark.parametrize('options_cls,argv,dest,expected', [
    (LOGS, ['--metric', 'a=x', '--metric', 'b=y'], 'metric', ['a=x', 'b=y']),
    (LOGS, ['--metric', '["a=x","b=y"]', '--metric', 'c=z'], 'metric', ['a=x', 'b=y', 'c=z']),
    (LOGS, ['--metric', 'c=z', '--metric', ' ["a=x", "b=y"]'], 'metric', ['c=z', 'a=x', 'b=y']),
    (LOGS, ['--metric=server_errors=httpRequest.status>=500'], 'metric',
     ['server_errors=httpRequest.status>=500']),
    (LOGS, ['--metric', '[]'], 'metric', []),
    (LOGS, [], 'metric', []),
    (LOGS, ['--alert', 'a>1', '--alert', '["b>2", "c<3"]'], 'alert', ['a>1', 'b>2', 'c<3']),
    (IOT, ['--rule', 'hot: temperature > 30 -> {"fan": "high"}',
           '--rule', '["cold: temperature < 5 -> off"]'], 'rule',
     ['hot: temperature > 30 -> {"fan": "high"}', 'cold: temperature < 5 -> off']),
])
def test_repeated_flags_accumulate_in_order(options_cls, argv, dest, expected):
  assert getattr(_parse(options_cls, argv).view_as(options_cls), dest) == expected


def test_repeated_default_is_not_shared_between_parses():
  assert _parse(LOGS, ['--metric', 'a=x']).view_as(LOGS).metric == ['a=x']
  assert _parse(LOGS, []).view_as(LOGS).metric == []


@pytest.mark.parametrize('value,message', [
    ('[1, 2]', 'argument --metric: a JSON array value must hold strings only: [1, 2]'),
    ('["a=x", 2]', 'argument --metric: a JSON array value must hold strings only'),
    ('[oops', 'argument --metric: a value starting with [ must be a JSON array of strings'),
])
def test_malformed_json_array_is_a_usage_error(value, message, capsys):
  assert message in _usage_error(LOGS, ['--metric', value], capsys)


@pytest.mark.parametrize('value,expected', [
    ('a=x', ['a=x']),
    ('a=[x]', ['a=[x]']),
    ('{"a": 1}', ['{"a": 1}']),
    ('["a", "b"]', ['a', 'b']),
    ('  ["a"]', ['a']),
    ('[]', []),
    ('["a, b"]', ['a, b']),
])
def test_split_repeated(value, expected):
  assert split_repeated(value) == expected


@pytest.mark.parametrize('value,message', [
    ('[1]', 'must hold strings only'),
    ('["a", null]', 'must hold strings only'),
    ('[oops', 'must be a JSON array of strings'),
    ('["a"] trailing', 'must be a JSON array of strings'),
])
def test_split_repeated_refuses(value, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    split_repeated(value)


# --- 3. {today} / {yesterday} and --run_date --------------------------------------------------

DAY = datetime.date(2026, 3, 1)


@pytest.mark.parametrize('given,expected', [
    ('{today}', '20260301'),
    ('{yesterday}', '20260228'),
    ('{yesterday:%Y/%m/%d}', '2026/02/28'),
    ('gs://my-bucket/logs/{yesterday:%Y/%m/%d}/*.json', 'gs://my-bucket/logs/2026/02/28/*.json'),
    ('my-project:analytics_1.events_{yesterday}', 'my-project:analytics_1.events_20260228'),
    ('from_{yesterday}_to_{today}', 'from_20260228_to_20260301'),
    ('gs://my-bucket/events/*.json', 'gs://my-bucket/events/*.json'),
    ('{tomorrow}', '{tomorrow}'),
    ('{today:}', '{today:}'),
    ('', ''),
    (None, None),
])
def test_resolve_dates(given, expected):
  assert resolve_dates(given, DAY) == expected


def test_resolve_dates_crosses_a_year():
  assert resolve_dates('{yesterday}', datetime.date(2027, 1, 1)) == '20261231'


def test_run_date_flag():
  options = _parse(game_analytics.GameAnalyticsOptions, ['--run_date', '2026-11-20'])
  assert run_date(options.view_as(JobOptions)) == datetime.date(2026, 11, 20)


def test_run_date_defaults_to_todays_utc_date():
  before = datetime.datetime.now(datetime.timezone.utc).date()
  day = run_date(_parse(game_analytics.GameAnalyticsOptions, []).view_as(JobOptions))
  after = datetime.datetime.now(datetime.timezone.utc).date()
  assert day in (before, after)


@pytest.mark.parametrize('value', [
    '2026-13-01',
    '26/11/2026',
    '2026-02-30',
    # Python 3.11's date.fromisoformat also reads ISO 8601 basic and week dates, which
    # --help ("YYYY-MM-DD") and the template regex do not allow.
    '20261120',
    '2026-W47-5',
])
def test_bad_run_date_is_a_usage_error(value, capsys):
  err = _usage_error(game_analytics.GameAnalyticsOptions, ['--run_date', value], capsys)
  assert 'argument --run_date: must be a date YYYY-MM-DD, got %s' % value in err


# --- 4. build_job resolves the dates it is given ----------------------------------------------

def test_build_resolves_dates_in_input_table_and_output(tmp_path):
  plan = game_analytics.build([
      '--input_table', 'my-project:analytics_1.events_{yesterday:%Y_%m_%d}',
      '--output', str(tmp_path / 'out_{today}'), '--run_date', '2026-03-01'],
      save_main_session=False)
  job_options = plan.pipeline.options.view_as(JobOptions)
  assert job_options.input_table == 'my-project:analytics_1.events_2026_02_28'
  assert job_options.output == str(tmp_path / 'out_20260301')
  assert plan.output == str(tmp_path / 'out_20260301')


def test_run_reads_the_file_of_yesterday(tmp_path):
  sample = os.path.join(ROOT, 'pipelines', 'samples', 'game_analytics', 'custom_producer.json')
  with open(sample, encoding='utf-8') as fh:
    lines = [next(fh) for _ in range(6)]
  (tmp_path / 'events_20261126.json').write_text(''.join(lines), encoding='utf-8')
  (tmp_path / 'events_20261127.json').write_text(''.join(lines[:3]), encoding='utf-8')
  game_analytics.run(['--input', str(tmp_path / 'events_{yesterday}.json'),
                      '--run_date', '2026-11-27', '--output', str(tmp_path / 'out_{today}')],
                     save_main_session=False)
  out = tmp_path / 'out_20261127'
  assert not (tmp_path / 'out_{today}').exists()
  events = read_table(out, 'events')
  assert sorted(row['event_name'] for row in events) == [
      'NPC_CREATE', 'NPC_CREATE', 'PLAYER_MOVE', 'START_SESSION']
  counters = json.loads((out / '_metrics.json').read_text())['counters']
  assert counters['events_read'] == 6  # the 6 lines of the 26th, not the 3 of the 27th


# --- 5. Dataflow: checked before any Pipeline is built ----------------------------------------

DATAFLOW = ['--runner', 'DataflowRunner', '--project', 'my-project', '--region', 'us-central1',
            '--temp_location', 'gs://my-bucket/tmp']
GCS_IN = ['--input', 'gs://my-bucket/events/*.json']
GCS_OUT = ['--output', 'gs://my-bucket/out']
MODEL = ['--model', 'gs://my-bucket/m/face.keras']


@pytest.mark.parametrize('job,argv,message', [
    (game_analytics, GCS_OUT,
     '--input (or --input_table) is required on Dataflow: the bundled sample is on this '
     'machine'),
    (game_analytics, ['--input', 'events/*.json'] + GCS_OUT,
     "on Dataflow, --input must be a gs:// glob or a Pub/Sub projects/P/subscriptions/S, "
     "got 'events/*.json'"),
    (game_analytics, ['--input', '/tmp/events_{yesterday}.json', '--run_date', '2026-11-27']
     + GCS_OUT,
     "on Dataflow, --input must be a gs:// glob or a Pub/Sub projects/P/subscriptions/S, "
     "got '/tmp/events_20261126.json'"),
    (game_analytics, GCS_IN + ['--output', 'out/'],
     "on Dataflow, --output must be gs://BUCKET/PATH or PROJECT:DATASET, got 'out/'"),
    (game_analytics, GCS_IN + ['--output', 'out_{today}', '--run_date', '2026-11-27'],
     "on Dataflow, --output must be gs://BUCKET/PATH or PROJECT:DATASET, got 'out_20261127'"),
    (game_analytics, GCS_IN,
     '--output is required on Dataflow (gs://BUCKET/PATH or PROJECT:DATASET)'),
    (log_analytics, ['--input', 'projects/my-project/subscriptions/logs'],
     '--output is required on Dataflow (gs://BUCKET/PATH or PROJECT:DATASET)'),
    (game_analytics, ['--input_table', 'my-project:analytics_1.events_{yesterday}'],
     '--output is required on Dataflow (gs://BUCKET/PATH or PROJECT:DATASET)'),
    (game_analytics, ['--input_table', 'events'] + GCS_OUT,
     "on Dataflow, --input_table must be PROJECT:DATASET.TABLE, got 'events'"),
    (image_inference, ['--input', 'gs://my-bucket/i.txt', '--output', 'gs://my-bucket/o',
                       '--model', 'face.keras'],
     "on Dataflow, --model must be a gs:// path to the .keras file, got 'face.keras'"),
    (image_inference, ['--input', 'gs://my-bucket/i.txt', '--output', 'gs://my-bucket/o'],
     '--model is required on Dataflow (a gs:// path to the .keras file)'),
    (image_inference, ['--input', 'gs://my-bucket/i.txt', '--output', 'gs://my-bucket/o']
     + MODEL + ['--model_labels', 'labels.txt'],
     "on Dataflow, --model_labels must be a gs:// path to labels.txt, got 'labels.txt'"),
])
def test_dataflow_values_are_checked_before_the_pipeline(job, argv, message):
  with pytest.raises(ConfigError) as error:
    job.build(DATAFLOW + argv, save_main_session=False)
  assert str(error.value) == message


def test_dataflow_error_is_one_line_and_exit_2_from_the_cli(capsys):
  assert cli.main(['game_analytics'] + DATAFLOW + GCS_IN) == 2
  assert capsys.readouterr().err == (
      'game_analytics: error: --output is required on Dataflow '
      '(gs://BUCKET/PATH or PROJECT:DATASET)\n')


def test_image_inference_refuses_a_local_model_without_loading_tensorflow():
  code = (
      'import sys\n'
      'from pipelines import image_inference\n'
      'from pipelines.options import ConfigError\n'
      'try:\n'
      '  image_inference.build(%r, save_main_session=False)\n'
      'except ConfigError as e:\n'
      '  print(e)\n'
      'print("tensorflow" in sys.modules)\n'
      % (DATAFLOW + ['--input', 'gs://my-bucket/i.txt', '--output', 'gs://my-bucket/o',
                     '--model', 'face.keras']))
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
  assert result.stdout.splitlines() == [
      "on Dataflow, --model must be a gs:// path to the .keras file, got 'face.keras'",
      'False'], result.stderr


# --- 6. flag syntax: the CLI and the template regexes agree --------------------------------

def test_text_flags_are_checked_by_the_cli(capsys):
  err = _usage_error(LOGS, ['--alert_topic', 'alerts'], capsys)
  assert "argument --alert_topic: not a valid alert_topic: 'alerts'" in err
  err = _usage_error(LOGS, ['--table_prefix', 'a b'], capsys)
  assert "argument --table_prefix: not a valid table_prefix: 'a b'" in err
  options = _parse(LOGS, ['--alert_topic', 'projects/my-project/topics/alerts',
                          '--table_prefix', 'team_a_'])
  assert options.view_as(LOGS).alert_topic == 'projects/my-project/topics/alerts'
  assert options.view_as(JobOptions).table_prefix == 'team_a_'


def test_text_flag_through_the_job_exits_2(capsys):
  with pytest.raises(SystemExit) as exit_info:
    log_analytics.build(['--alert_topic', 'alerts'], save_main_session=False)
  assert exit_info.value.code == 2
  assert "not a valid alert_topic: 'alerts'" in capsys.readouterr().err


def test_text_converter():
  convert = text('thing', '^[a-z]+$')
  assert convert('abc') == 'abc'
  with pytest.raises(argparse.ArgumentTypeError, match="not a valid thing: 'ab1'"):
    convert('ab1')
  assert convert.__name__ == 'thing'
  assert convert.template == TemplateParam('TEXT', '^[a-z]+$')
  assert text('t', '^x$', 'PUBSUB_TOPIC').template.param_type == 'PUBSUB_TOPIC'


def test_integer_converter():
  assert integer('-1') == -1
  assert integer('42') == 42
  with pytest.raises(argparse.ArgumentTypeError, match='must be a whole number, got x'):
    integer('x')
  with pytest.raises(argparse.ArgumentTypeError, match='must be a whole number, got 1.5'):
    integer('1.5')


NUMERIC = {'positive': positive, 'non_negative': non_negative, 'positive_int': positive_int,
           'integer': integer, 'fraction': fraction, 'score': score}
STRINGS = ['0', '1', '2', '10', '-1', '+1', '0.5', '.5', '5.', '.', '', 'abc', '1e3', '1E3',
           'inf', '-inf', 'nan', 'Infinity', '-0', '00', '007', '0001', '1.0', '1.00', '1.5',
           '-1.5', '-0.5', '-1.0', '+0.5', '0.0', '-0.0', '0.', '00.5', '1.01', ' 5', '5 ',
           '1_000', '0x10', '1.2.3', '-', '+', '\u0663', '\uff11']
# Where a converter (float/int based) accepts what its template regex refuses: deliberate
# narrowing, so that a template launch takes only plain decimals that Dataflow's regex
# engine and the CLI read alike. Never the other way round: a value that passes the regex
# always parses. '\u0663' (ARABIC-INDIC DIGIT THREE) and '\uff11' (FULLWIDTH DIGIT ONE) are
# digits to float() and int(), and to Python's \d (used by NUMBER, non_negative's regex).
CONVERTER_ONLY = {
    'positive': {'+1', '1e3', '1E3', 'inf', 'Infinity', '+0.5', ' 5', '5 ', '1_000', '\u0663',
                 '\uff11'},
    'non_negative': {'+1', '1e3', '1E3', 'inf', 'Infinity', '-0', '-0.0', '+0.5', ' 5', '5 ',
                     '1_000', '\u0663', '\uff11'},
    'positive_int': {'+1', ' 5', '5 ', '1_000', '\u0663', '\uff11'},
    'integer': {' 5', '5 ', '1_000', '\u0663', '\uff11'},
    'fraction': {'+1', '-0', '-0.0', '+0.5', '\uff11'},
    'score': {'\uff11'},
}


def _accepts(convert, value):
  try:
    convert(value)
  except argparse.ArgumentTypeError:
    return False
  except ValueError:  # float() of a non-number
    return False
  return True


@pytest.mark.parametrize('name', sorted(NUMERIC))
def test_numeric_converters_agree_with_their_regex(name):
  convert = NUMERIC[name]
  assert convert.template.param_type == 'NUMBER'
  regex = convert.template.regex
  converter_only = {s for s in STRINGS if _accepts(convert, s) and not re.fullmatch(regex, s)}
  regex_only = {s for s in STRINGS if re.fullmatch(regex, s) and not _accepts(convert, s)}
  assert regex_only == set()
  assert converter_only == CONVERTER_ONLY[name]


@pytest.mark.parametrize('name,accepted', [
    ('positive', {'1', '2', '10', '0.5', '.5', '5.', '007', '0001', '1.0', '1.00', '1.5',
                  '00.5', '1.01'}),
    ('fraction', {'0', '1', '0.5', '.5', '00', '0001', '1.0', '1.00', '0.0', '0.', '00.5'}),
    ('score', {'0', '1', '-1', '+1', '0.5', '.5', '-0', '00', '0001', '1.0', '1.00', '-0.5',
               '-1.0', '+0.5', '0.0', '-0.0', '0.', '00.5'}),
])
def test_numeric_regex_accepts_exactly(name, accepted):
  regex = NUMERIC[name].template.regex
  assert {s for s in STRINGS if re.fullmatch(regex, s)} == accepted
