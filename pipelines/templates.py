"""Flex Template metadata, generated from each job's options.

`templates/<job>.metadata.json` is what `gcloud dataflow flex-template build --metadata-file`
reads: the console form, and the checks Dataflow runs on launch parameters. Its parameters
are the flags `python -m pipelines JOB --help` lists; label, help, regex and type come from
the same argparse definitions (`pipelines.options.TemplateParam` rides on each flag's type),
so there is one source of truth and a test fails when a committed file is stale.

  python -m pipelines.templates                write templates/*.metadata.json
  python -m pipelines.templates --check        exit 1 if a committed file differs
  python -m pipelines.templates validate JOB name=value ...
                                               check launch parameters against the committed
                                               metadata (run_dataflow.sh does, before gcloud)

`validate` reads only the JSON, so it starts fast and needs neither Beam nor the jobs.
"""
import argparse
import datetime
import difflib
import importlib
import json
import os
import re
import sys
from typing import Dict, List, Optional, Sequence

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             'templates')
_WORDS = {'api': 'API', 'id': 'ID', 'qps': 'QPS', 'ttl': 'TTL', 'px': '(px)', 'jpeg': 'JPEG',
          'url': 'URL', 'k': 'k'}


def metadata_path(job: str, folder: str = TEMPLATES_DIR) -> str:
  return os.path.join(folder, '%s.metadata.json' % job)


def label(dest: str) -> str:
  words = [_WORDS.get(word, word) for word in dest.split('_')]
  return ' '.join([words[0][:1].upper() + words[0][1:]] + words[1:])


def options_class(job: str):
  """The one PipelineOptions subclass a job module defines (its own flags)."""
  from apache_beam.options.pipeline_options import PipelineOptions
  module = importlib.import_module('pipelines.' + job)
  found = [value for value in vars(module).values()
           if isinstance(value, type) and issubclass(value, PipelineOptions)
           and value.__module__ == module.__name__]
  if len(found) != 1:
    raise TypeError('pipelines.%s must define exactly one PipelineOptions class, found %s'
                    % (job, [cls.__name__ for cls in found]))
  return found[0]


def _default(value) -> Optional[str]:
  if value is None or isinstance(value, (list, tuple)) or value == '':
    return None
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, float) and value.is_integer():
    return str(int(value))
  return str(value)


def parameter(action: argparse.Action, formatter: argparse.HelpFormatter) -> Dict:
  """One flag -> one ParameterMetadata (Dataflow's field names)."""
  param = getattr(action.type, 'template', None)
  help_text = ' '.join(formatter._expand_help(action).split())
  if param is not None and param.cloud_only:
    help_text += ' On Dataflow: %s.' % param.form if param.form else ''
  entry = {
      'name': action.dest,
      'label': label(action.dest),
      'helpText': help_text,
      'isOptional': not (param is not None and param.required),
  }
  if action.choices:
    entry['regexes'] = ['^(%s)$' % '|'.join(re.escape(str(c)) for c in action.choices)]
    entry['paramType'] = 'ENUM'
    entry['enumOptions'] = [{'value': str(c), 'label': str(c)} for c in action.choices]
  elif param is not None:
    entry['regexes'] = [param.regex] if param.regex else []
    entry['paramType'] = param.param_type
  else:
    raise TypeError('%s has no template description: give it a type from '
                    'pipelines.options (text, described, positive ...) or choices'
                    % action.option_strings[0])
  default = _default(action.default)
  if default is not None:
    entry['defaultValue'] = default
  return entry


def metadata(job: str) -> Dict:
  from pipelines.options import flag_actions, help_parser
  module = importlib.import_module('pipelines.' + job)
  cls = options_class(job)
  formatter = help_parser(cls, job, None)._get_formatter()
  return {
      'name': job,
      'description': ' '.join(module.DESCRIPTION.split()),
      'parameters': [parameter(action, formatter) for action in flag_actions(cls)],
  }


def render(job: str) -> str:
  return json.dumps(metadata(job), indent=2, ensure_ascii=False) + '\n'


def jobs() -> List[str]:
  from pipelines.__main__ import JOBS
  return list(JOBS)


def write_all(folder: str = TEMPLATES_DIR) -> List[str]:
  os.makedirs(folder, exist_ok=True)
  written = []
  for job in jobs():
    with open(metadata_path(job, folder), 'w', encoding='utf-8') as f:
      f.write(render(job))
    written.append(metadata_path(job, folder))
  return written


def stale(folder: str = TEMPLATES_DIR) -> List[str]:
  """Jobs whose committed metadata differs from what their options produce."""
  out = []
  for job in jobs():
    path = metadata_path(job, folder)
    current = open(path, encoding='utf-8').read() if os.path.exists(path) else None
    if current != render(job):
      out.append(job)
  return out


def validate(job: str, pairs: Sequence[str], folder: str = TEMPLATES_DIR) -> List[str]:
  """Launch parameters NAME=VALUE -> what Dataflow would refuse (unknown names, values
  that miss a regex, required ones absent), found before anything is submitted."""
  path = metadata_path(job, folder)
  if not os.path.exists(path):
    return ['no template metadata for %r (%s); jobs: %s' % (
        job, path, ', '.join(sorted(f[:-len('.metadata.json')] for f in os.listdir(folder)
                                    if f.endswith('.metadata.json'))))]
  params = {p['name']: p for p in json.load(open(path, encoding='utf-8'))['parameters']}
  errors, seen = [], set()
  for pair in pairs:
    name, sep, value = pair.partition('=')
    if not sep:
      errors.append('%r is not NAME=VALUE' % pair)
      continue
    if name in seen:
      errors.append('%s is given twice' % name)
    seen.add(name)
    if name not in params:
      near = difflib.get_close_matches(name, params, n=1)
      errors.append('%s has no parameter %r%s' % (
          job, name, " (did you mean '%s'?)" % near[0] if near else ''))
      continue
    for regex in params[name].get('regexes', []):
      if not re.fullmatch(regex, value):
        errors.append('%s=%r does not match %s' % (name, value, regex))
  for name, param in params.items():
    if not param['isOptional'] and name not in seen:
      errors.append('%s needs %s=... (%s)' % (job, name, param['label']))
  sources = [name for name in ('input', 'input_table') if name in params]
  if sources and not seen & set(sources):  # the job refuses its bundled sample on Dataflow
    errors.append('%s needs %s=...' % (job, '=... or '.join(sources)))
  if len(seen & set(sources)) > 1:
    errors.append('give input or input_table, not both')
  for pair in pairs:  # a regex cannot know February has no 30th
    name, _, value = pair.partition('=')
    if name == 'run_date' and re.fullmatch(r'[0-9]{4}-[0-9]{2}-[0-9]{2}', value):
      try:
        datetime.date.fromisoformat(value)
      except ValueError:
        errors.append('run_date=%r is not a date' % value)
  return errors


def main(argv: Optional[List[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv[:1] == ['validate']:
    if len(argv) < 2:
      print('usage: python -m pipelines.templates validate JOB [NAME=VALUE ...]',
            file=sys.stderr)
      return 2
    errors = validate(argv[1], argv[2:])
    for error in errors:
      print('template parameter error: %s' % error, file=sys.stderr)
    return 2 if errors else 0
  parser = argparse.ArgumentParser(prog='python -m pipelines.templates',
                                   description='Write or check templates/*.metadata.json.')
  parser.add_argument('--check', action='store_true',
                      help='Write nothing; exit 1 listing the files that are stale.')
  parser.add_argument('--out', default=TEMPLATES_DIR, help='Folder (default templates/).')
  args = parser.parse_args(argv)
  if args.check:
    behind = stale(args.out)
    for job in behind:
      print('%s is stale: run python -m pipelines.templates' % metadata_path(job, args.out),
            file=sys.stderr)
    return 1 if behind else 0
  for path in write_all(args.out):
    print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
