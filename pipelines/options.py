"""Options every job shares, and parsing that makes `--help` and bad values useful.

A job's options class subclasses `PipelineOptions` directly (Beam only collects options
from direct subclasses when it serialises them) and holds only the job's own flags; the
shared ones live in `JobOptions`. Templates and docs are generated from these classes.
"""
import argparse
import sys
from typing import List, Optional, Type

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import _BeamArgumentParser  # Beam's own parser


class ConfigError(ValueError):
  """Bad configuration, found before anything runs: the CLI prints it and exits 2."""


def _number(value: str, ok, rule: str) -> float:
  number = float(value)
  if not ok(number):
    raise argparse.ArgumentTypeError('must be %s, got %s' % (rule, value))
  return number


def positive(value: str) -> float:
  return _number(value, lambda n: n > 0, '> 0')


def non_negative(value: str) -> float:
  return _number(value, lambda n: n >= 0, '>= 0')


def positive_int(value: str) -> int:
  try:
    number = int(value)
  except ValueError:
    raise argparse.ArgumentTypeError('must be a whole number > 0, got %s' % value) from None
  if number <= 0:
    raise argparse.ArgumentTypeError('must be a whole number > 0, got %s' % value)
  return number


def fraction(value: str) -> float:
  return _number(value, lambda n: 0 <= n <= 1, 'within [0, 1]')


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
        help='Read a BigQuery table PROJECT:DATASET.TABLE instead of --input.')
    group.add_argument(
        '--output', default=None,
        help='Directory (local or gs://) for NDJSON tables, or PROJECT:DATASET for '
        'BigQuery. Default: ./output/<job>.')
    group.add_argument(
        '--table_prefix', default='',
        help='Prefix for BigQuery table names, for jobs sharing a dataset.')
    group.add_argument(
        '--id_label', default=None,
        help='Pub/Sub attribute holding a unique id; the runner drops redeliveries.')
    group.add_argument(
        '--timestamp_attribute', default=None,
        help='Pub/Sub attribute holding the event time (RFC 3339 or epoch ms).')
    group.add_argument(
        '--dedupe_ttl', type=positive, default=3600,
        help='Streaming: remember each record\'s identity for N seconds after it first '
        'came to drop redeliveries and retries (default 3600).')
    group.add_argument(
        '--api_key', default=None,
        help='An API key for the job\'s Google API (Natural Language for tweet_sentiment, '
        'Vision for face_dataset) instead of Application Default Credentials. Prefer '
        'LANGUAGE_API_KEY / VISION_API_KEY in the workers\' environment: it is read there, '
        'while this flag is stored in the job graph.')
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
