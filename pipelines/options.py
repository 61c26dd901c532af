"""Options every job shares, and parsing that makes `--help` and bad values useful.

A job's options class subclasses `PipelineOptions` directly (Beam only collects options
from direct subclasses when it serialises them) and holds only the job's own flags; the
shared ones live in `JobOptions`. Templates and docs are generated from these classes.
"""
import argparse
import datetime
import json
import re
import sys
from typing import List, NamedTuple, Optional, Type

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import _BeamArgumentParser  # Beam's own parser


class ConfigError(ValueError):
  """Bad configuration, found before anything runs: the CLI prints it and exits 2."""


class TemplateParam(NamedTuple):
  """What a flag's Flex Template parameter declares (`python -m pipelines.templates`).

  It rides on the flag's argparse `type`, so the CLI and the template read one definition.
  `regex` is what a launch accepts (no lookaround: Dataflow checks it server-side).
  `cloud_only`: the CLI also takes local paths, but on Dataflow the value must match
  `regex` (a worker cannot read the submitting laptop's disk). `required`: needed on
  Dataflow although the CLI has a local default.
  """
  param_type: str
  regex: Optional[str] = None
  cloud_only: bool = False
  required: bool = False
  form: str = ''  # the cloud form in words, for error messages


def _template(param: TemplateParam):
  def mark(convert):
    convert.template = param
    return convert
  return mark


def text(name: str, regex: str, param_type: str = 'TEXT'):
  """A string flag whose syntax is `regex`, checked by the CLI and by template launches."""
  pattern = re.compile(regex)

  def convert(value: str) -> str:
    if not pattern.fullmatch(value):
      raise argparse.ArgumentTypeError('not a valid %s: %r' % (name, value))
    return value
  convert.__name__ = name
  return _template(TemplateParam(param_type, regex))(convert)


def described(name: str, regex: str, param_type: str = 'TEXT', cloud_only: bool = False,
              required: bool = False, form: str = ''):
  """A string flag the CLI passes through as is (the job parses it, with better messages
  than a regex gives); `regex` is what a template launch accepts. `cloud_only`: a path or
  resource that must match `regex` on Dataflow (see TemplateParam)."""
  def convert(value: str) -> str:
    return value
  convert.__name__ = name
  return _template(TemplateParam(param_type, regex, cloud_only, required, form))(convert)


@_template(TemplateParam('BOOLEAN', '^(true|false)$'))
def boolean(value: str) -> bool:
  """An on/off flag that also takes a value: `--balance`, `--balance=true`, `--balance=false`
  (a Flex Template passes every parameter as --name=value)."""
  lowered = value.strip().lower()
  if lowered in ('true', 'yes', '1'):
    return True
  if lowered in ('false', 'no', '0'):
    return False
  raise argparse.ArgumentTypeError('must be true or false, got %s' % value)


def add_switch(group, flag: str, help: str):
  """A boolean flag: bare means true; =true/=false as a template passes it."""
  group.add_argument(flag, type=boolean, nargs='?', const=True, default=False,
                     metavar='true|false', help=help)


class Repeated(argparse.Action):
  """Like action='append', and a JSON array of strings adds each item: a template launch
  passes a parameter once, so `--metric '["a=x", "b=y"]'` is how it gives two."""

  def __call__(self, parser, namespace, values, option_string=None):
    items = list(getattr(namespace, self.dest, None) or [])
    try:
      items.extend(split_repeated(values))
    except ValueError as e:
      raise argparse.ArgumentError(self, str(e)) from None
    setattr(namespace, self.dest, items)


def split_repeated(value: str) -> List[str]:
  if not value.lstrip().startswith('['):
    return [value]
  try:
    items = json.loads(value)
  except json.JSONDecodeError as e:
    raise ValueError('a value starting with [ must be a JSON array of strings: %s' % e) from None
  if not all(isinstance(item, str) for item in items):
    raise ValueError('a JSON array value must hold strings only: %s' % value)
  return items


def add_repeated(group, flag: str, regex: str, help: str):
  group.add_argument(flag, action=Repeated, default=[],
                     type=described(flag.lstrip('-'), r'^(\[.*\]|' + regex + ')$'),
                     help=help + ' Repeatable; a JSON array of strings gives several at once '
                     '(how a template parameter lists them).')


_ISO_DATE = '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'


@_template(TemplateParam('TEXT', _ISO_DATE))
def iso_date(value: str) -> str:
  try:
    if not re.fullmatch(_ISO_DATE, value):  # fromisoformat also reads 20261120, 2026-W47-5
      raise ValueError(value)
    datetime.date.fromisoformat(value)
  except ValueError:
    raise argparse.ArgumentTypeError('must be a date YYYY-MM-DD, got %s' % value) from None
  return value


_DATE_FIELD = re.compile(r'\{(today|yesterday)(?::([^{}]+))?\}')


def resolve_dates(text: Optional[str], run_date: datetime.date) -> Optional[str]:
  """`{today}` / `{yesterday}` (optionally `{yesterday:%Y/%m/%d}`; default %Y%m%d, the
  suffix of BigQuery's events_YYYYMMDD exports) -> that day relative to `run_date`: a
  scheduled launch of one template reads a new day's data each time."""
  if not text:
    return text

  def day(match):
    date = run_date - datetime.timedelta(days=1 if match.group(1) == 'yesterday' else 0)
    return date.strftime(match.group(2) or '%Y%m%d')
  return _DATE_FIELD.sub(day, text)


def run_date(job_options) -> datetime.date:
  """--run_date, else today in UTC (when the job is launched)."""
  if job_options.run_date:
    return datetime.date.fromisoformat(job_options.run_date)
  return datetime.datetime.now(datetime.timezone.utc).date()


# Syntax shared by the flags (regexes also used by the template metadata).
NUMBER = r'([0-9]+(\.[0-9]*)?|\.[0-9]+)'  # [0-9]: Java's \d is ASCII, Python's is not
PROJECT_ID = r'[a-z][-a-z0-9]{4,28}[a-z0-9]'
PROJECT = r'([a-z0-9.-]+:)?' + PROJECT_ID  # a dataset's project may be domain-scoped
DATE_FIELD = r'\{(today|yesterday)(:[^{}]+)?\}'  # see resolve_dates
GCS = r'gs://[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9](/.*)?'
PUBSUB_TOPIC = r'projects/[^/\s]+/topics/[^/\s]+'
PUBSUB_SOURCE = r'projects/[^/\s]+/(subscriptions|topics)/[^/\s]+'
ENDPOINT = r'^https?://[^\s/]+(/\S*)?$'  # an API root, e.g. a local server or emulator
BQ_DATASET = PROJECT + r':[A-Za-z0-9_]{1,1024}'
BQ_TABLE = PROJECT_ID + r'[:.][A-Za-z0-9_]{1,1024}\.([A-Za-z0-9_$-]|' + DATE_FIELD + ')+'


def _number(value: str, ok, rule: str) -> float:
  number = float(value)
  if not ok(number):
    raise argparse.ArgumentTypeError('must be %s, got %s' % (rule, value))
  return number


@_template(TemplateParam('NUMBER', r'^([0-9]*[1-9][0-9]*(\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*)$'))
def positive(value: str) -> float:
  return _number(value, lambda n: n > 0, '> 0')


@_template(TemplateParam('NUMBER', '^' + NUMBER + '$'))
def non_negative(value: str) -> float:
  return _number(value, lambda n: n >= 0, '>= 0')


@_template(TemplateParam('NUMBER', r'^[-+]?[0-9]+$'))
def integer(value: str) -> int:
  try:
    return int(value)
  except ValueError:
    raise argparse.ArgumentTypeError('must be a whole number, got %s' % value) from None


def int_range(low: int, high: int):
  """A whole number the job accepts within [low, high]: the job checks the range with its
  own message; the template's regex (it lists the values) refuses others at launch."""
  def convert(value: str) -> int:
    return integer(value)
  convert.__name__ = 'int_range'
  values = '|'.join(str(n) for n in range(low, high + 1))
  return _template(TemplateParam('NUMBER', '^(%s)$' % values))(convert)


@_template(TemplateParam('NUMBER', r'^0*[1-9][0-9]*$'))
def positive_int(value: str) -> int:
  try:
    number = int(value)
  except ValueError:
    raise argparse.ArgumentTypeError('must be a whole number > 0, got %s' % value) from None
  if number <= 0:
    raise argparse.ArgumentTypeError('must be a whole number > 0, got %s' % value)
  return number


@_template(TemplateParam('NUMBER', r'^(0+(\.[0-9]*)?|0*\.[0-9]+|0*1(\.0*)?)$'))
def fraction(value: str) -> float:
  return _number(value, lambda n: 0 <= n <= 1, 'within [0, 1]')


@_template(TemplateParam('NUMBER', r'^[-+]?(0+(\.[0-9]*)?|0*\.[0-9]+|0*1(\.0*)?)$'))
def score(value: str) -> float:
  """A sentiment score or threshold, within [-1, 1]."""
  return _number(value, lambda n: -1 <= n <= 1, 'within [-1, 1]')


INPUT_FORMATS = ('auto', 'images', 'url_list', 'index')


def input_format(job_options, accepted) -> str:
  """--input_format, refused unless 'auto' or one of `accepted` (the job's own)."""
  chosen = job_options.input_format
  if chosen != 'auto' and chosen not in accepted:
    raise ConfigError('--input_format %s is not an input of this job (it takes auto, %s)'
                      % (chosen, ', '.join(accepted)))
  return chosen


class JobOptions(PipelineOptions):
  """Input, output and windowing, the same for every job."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('input and output')
    group.add_argument(
        '--input', default=None,
        type=described('input', '^(' + GCS + '|' + PUBSUB_SOURCE + ')$', cloud_only=True,
                      form='a gs:// glob or a Pub/Sub projects/P/subscriptions/S'),
        help='File glob (local or gs://) of JSON records, or projects/P/subscriptions/S '
        'or projects/P/topics/T (Pub/Sub, streaming). Default: the bundled sample.')
    group.add_argument(
        '--input_format', choices=INPUT_FORMATS, default='auto',
        help='Image jobs: what --input holds. images: an image glob (<root>/<label>/<file> '
        'for face_dataset); url_list (face_dataset): PubFig-style URL lists; index '
        '(image_inference): face_dataset index files (path,label lines, the label is the '
        'ground truth). auto (default): url_list / index for *.txt and *.tsv, else images.')
    group.add_argument(
        '--input_table', default=None,
        type=described('input_table', '^' + BQ_TABLE + '$', 'BIGQUERY_TABLE', cloud_only=True,
                      form='PROJECT:DATASET.TABLE'),
        help='Read a BigQuery table PROJECT:DATASET.TABLE instead of --input.')
    group.add_argument(
        '--output', default=None,
        type=described('output', '^(' + GCS + '|' + BQ_DATASET + ')$', cloud_only=True,
                       required=True, form='gs://BUCKET/PATH or PROJECT:DATASET'),
        help='Directory (local or gs://) for NDJSON tables, or PROJECT:DATASET for '
        'BigQuery. Default: ./output/<job>.')
    group.add_argument(
        '--table_prefix', default='', type=text('table_prefix', '^[A-Za-z0-9_]*$'),
        help='Prefix for BigQuery table names, for jobs sharing a dataset.')
    group.add_argument(
        '--id_label', default=None, type=text('id_label', r'^\S{1,256}$'),
        help='Pub/Sub attribute holding a unique id; the runner drops redeliveries.')
    group.add_argument(
        '--timestamp_attribute', default=None, type=text('timestamp_attribute', r'^\S{1,256}$'),
        help='Pub/Sub attribute holding the event time (RFC 3339 or epoch ms).')
    group.add_argument(
        '--dedupe_ttl', type=positive, default=3600,
        help='Streaming: remember each record\'s identity for N seconds after it first '
        'came to drop redeliveries and retries (default 3600).')
    group.add_argument(
        '--api_key', default=None, type=described('api_key', '^[A-Za-z0-9_-]+$'),
        help='An API key for the job\'s Google API (Natural Language for tweet_sentiment, '
        'Vision for face_dataset) instead of Application Default Credentials. Prefer '
        'LANGUAGE_API_KEY / VISION_API_KEY in the workers\' environment: it is read there, '
        'while this flag is stored in the job graph.')
    group.add_argument(
        '--bigquery_endpoint', default=None,
        type=described('bigquery_endpoint', ENDPOINT),
        help='Local runs: send BigQuery reads and writes to this endpoint, e.g. the BigQuery '
        'emulator http://127.0.0.1:9050 (no credentials). Default: BIGQUERY_EMULATOR_HOST '
        'when set, else bigquery.googleapis.com.')
    group.add_argument(
        '--run_date', default=None, type=iso_date,
        help='The day {today} stands for in --input, --input_table and --output ({yesterday} '
        'is the day before; {yesterday:%%Y/%%m/%%d} picks the format, default %%Y%%m%%d), e.g. '
        '--input_table p:analytics_1.events_{yesterday}. Default: the UTC date at launch, so '
        'a scheduled template reads a new day each run; set it to backfill.')
    group = parser.add_argument_group('windowing (streaming)')
    group.add_argument(
        '--window', type=positive, default=None,
        help="Window length in seconds for windowed tables (default: the job's own, "
        "300 for game_analytics, 60 for log_analytics, 300 for iot_telemetry).")
    group.add_argument(
        '--early_firing', type=non_negative, default=60,
        help='Emit early results every N seconds of processing time; 0 disables '
        '(default 60).')
    group.add_argument(
        '--allowed_lateness', type=non_negative, default=600,
        help='Accept events up to N seconds behind the watermark; later ones do not '
        'change windowed tables (default 600).')


def _option_classes(options_cls: Type[PipelineOptions]) -> List[Type[PipelineOptions]]:
  return [JobOptions] + ([options_cls] if options_cls is not JobOptions else [])


def help_parser(options_cls: Type[PipelineOptions], prog: str,
                description: Optional[str]) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog, description=description,
      epilog='Every Apache Beam pipeline option is accepted as well, e.g. --runner, '
      '--streaming, --project, --region, --temp_location, --direct_num_workers, '
      '--direct_running_mode.')
  for cls in _option_classes(options_cls):
    cls._add_argparse_args(parser)
  return parser


def parse_options(options_cls: Type[PipelineOptions], argv: Optional[List[str]],
                  prog: str, description: Optional[str] = None) -> PipelineOptions:
  """PipelineOptions for `argv`; prints help and exits on --help; exits with a usage
  error (status 2) on a malformed value of one of the job's own flags."""
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = help_parser(options_cls, prog, description)
  if '--help' in argv or '-h' in argv:
    parser.print_help()
    raise SystemExit(0)
  parser.parse_known_args(argv)  # validates the job's flags with argparse's messages
  unknown = unknown_flags(argv)
  if unknown:
    parser.error('unrecognized arguments: %s (see --help)' % ' '.join(unknown))
  return PipelineOptions(argv)


def unknown_flags(argv: List[str]) -> List[str]:
  """Flags no PipelineOptions class defines: a typo such as --sesion_gap would otherwise be
  ignored by Beam with a log line, and the job would run with the default."""
  parser = _BeamArgumentParser(allow_abbrev=False)
  classes = {}
  for cls in PipelineOptions.__subclasses__():  # what Beam itself accepts
    classes.setdefault(str(cls), cls)
  for cls in classes.values():
    cls._add_argparse_args(parser)
  _, unknown = parser.parse_known_args(argv)
  return [arg.split('=', 1)[0] for arg in unknown if arg.startswith('--')]


def flag_actions(options_cls: Type[PipelineOptions]) -> List[argparse.Action]:
  """The job's flags as --help lists them (hidden ones left out): what templates describe."""
  parser = help_parser(options_cls, 'flags', None)
  return [action for action in parser._actions
          if action.option_strings and action.dest != 'help'
          and action.help != argparse.SUPPRESS]


def check_cloud_values(options: PipelineOptions, options_cls: Type[PipelineOptions]):
  """On Dataflow, paths and resources must be in the cloud: a worker cannot read the
  submitting machine's disk, and an output there would be lost."""
  values = options.get_all_options()
  for action in flag_actions(options_cls):
    param = getattr(action.type, 'template', None)
    if param is None or not param.cloud_only:
      continue
    value = values.get(action.dest)
    flag = action.option_strings[0]
    if value is None:
      if param.required:
        raise ConfigError('%s is required on Dataflow (%s)' % (flag, param.form))
    elif not re.fullmatch(param.regex, value):
      raise ConfigError('on Dataflow, %s must be %s, got %r' % (flag, param.form, value))
