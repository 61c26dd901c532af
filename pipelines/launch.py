"""Launching a job: options -> read -> job transform -> write -> run -> counter summary.

Every job's `run()` is a thin call into `run_job`, so the CLI contract (defaults, bundled
sample, `_metrics.json`, the printed summary) is the same for all of them.
"""
import json
import logging
import os
import re
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Type

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions,
                                                  SetupOptions, StandardOptions)
from apache_beam.runners.runner import PipelineResult

import schemas
from pipelines.options import (ConfigError, JobOptions, check_cloud_values, parse_options,
                               resolve_dates, run_date)
from transforms.sinks import WriteTables, is_bigquery_dataset, table_glob, use_bigquery_endpoint
from transforms.sources import ReadRecords, is_pubsub

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'samples')
METRICS_FILE = '_metrics.json'  # the counters of a local run, beside its tables


def sample_input(job: str) -> str:
  return os.path.join(SAMPLES_DIR, job, '*.json*')


LOCAL_RUNNERS = (None, 'direct', 'switchingdirect', 'bundlebaseddirect', 'fnapi', 'prism')


def runner_kind(options: PipelineOptions) -> Optional[str]:
  """--runner as Beam matches it: any case, with or without the Runner suffix."""
  runner = options.view_as(StandardOptions).runner
  if runner is None:
    return None
  name = (runner if isinstance(runner, str) else type(runner).__name__).lower()
  return name[:-len('runner')] if name.endswith('runner') else name


def is_local(options: PipelineOptions) -> bool:
  """Whether the pipeline runs on this machine (so this machine's GPUs are the workers')."""
  return runner_kind(options) in LOCAL_RUNNERS


def is_dataflow(options: PipelineOptions) -> bool:
  return runner_kind(options) in ('dataflow', 'testdataflow')


def default_output(job: str) -> str:
  return os.path.join('output', job)


def counters(result: PipelineResult, job: str) -> Dict[str, int]:
  """The job's counters from a finished pipeline (committed where the runner has them)."""
  out = {}
  for counter in result.metrics().query(MetricsFilter().with_namespace(job))['counters']:
    value = counter.committed if counter.committed is not None else counter.attempted
    out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + (value or 0)
  return dict(sorted(out.items()))


def _clear_outputs(output: str, job: str, files: Sequence[str] = ()):
  """Directory outputs are replaced, so a rerun never leaves stale shards in a glob (nor
  stale files of `files`, globs relative to `output`)."""
  patterns = [table_glob(output, table) for table in schemas.tables(job)]
  patterns += [FileSystems.join(output, pattern) for pattern in files]
  for result in FileSystems.match(patterns):
    if result.metadata_list:
      FileSystems.delete([m.path for m in result.metadata_list])


def _write_metrics(output: str, values: Dict[str, int]):
  with FileSystems.create(FileSystems.join(output, METRICS_FILE)) as fh:
    fh.write(json.dumps({'counters': values}, indent=2, sort_keys=True).encode('utf-8'))


def summary_text(job: str, values: Dict[str, int], output: str) -> str:
  lines = ['%s counters:' % job]
  width = max([len(k) for k in values] + [10])
  lines += ['  %-*s %12d' % (width, name, value) for name, value in values.items()]
  if is_bigquery_dataset(output):
    lines.append('Output: BigQuery dataset %s' % output)
  else:
    lines.append('Output: %s' % table_glob(output, '<table>'))
  return '\n'.join(lines)


# (pipeline, --input or the default input, options) -> what the job's build() takes
Reader = Callable[[beam.Pipeline, Optional[str], PipelineOptions], Any]


class JobPlan:
  """A job's pipeline, built but not run, with what run_job needs to report on it."""

  def __init__(self, pipeline: beam.Pipeline, output: str, local: bool, runner: str,
               bigquery_endpoint: Optional[str] = None):
    self.pipeline = pipeline
    self.output = output
    self.local = local
    self.runner = runner
    self.bigquery_endpoint = bigquery_endpoint  # set when BigQuery is an emulator


def build_job(job: str, options_cls: Type[PipelineOptions],
              build: Callable[[beam.PCollection, PipelineOptions, bool],
                              Dict[str, beam.PCollection]],
              argv: Optional[List[str]], save_main_session: bool = True,
              description: Optional[str] = None, read: Optional[Reader] = None,
              default_input: Optional[str] = None) -> JobPlan:
  """Parse `argv` and wire ReadRecords -> build(records) -> WriteTables (no I/O yet).

  `options_cls` holds the job's own flags; the shared ones are JobOptions'. A job whose
  input is not records (face_dataset reads images) passes its own `read(pipeline, source,
  options)`, and `default_input` when its bundled sample is not `samples/<job>/*.json*`.
  """
  options = parse_options(options_cls, argv, 'python -m pipelines.%s' % job, description)
  job_options = options.view_as(JobOptions)
  day = run_date(job_options)
  for name in ('input', 'input_table', 'output'):  # views share values: every view sees it
    setattr(job_options, name, resolve_dates(getattr(job_options, name), day))
  if read is None and job_options.input and job_options.input_table:  # jobs with their own
    raise ConfigError('give --input or --input_table, not both')       # read say more
  local = is_local(options)
  if is_dataflow(options):
    if not (job_options.input or job_options.input_table):
      raise ConfigError('--input (or --input_table) is required on Dataflow: the bundled '
                        'sample is on this machine')
    check_cloud_values(options, options_cls)
  endpoint = job_options.bigquery_endpoint or os.environ.get('BIGQUERY_EMULATOR_HOST')
  if endpoint and (is_bigquery_dataset(job_options.output) or job_options.input_table):
    if not local:
      raise ConfigError('--bigquery_endpoint (or BIGQUERY_EMULATOR_HOST) is for local runs')
    project = (job_options.output.rsplit(':', 1)[0] if is_bigquery_dataset(job_options.output)
               else re.sub(r'[:.][^:.]+\.[^.]+$', '', job_options.input_table))
    use_bigquery_endpoint(endpoint, project)
  else:
    endpoint = None
  source = job_options.input or (
      None if job_options.input_table else default_input or sample_input(job))
  standard = options.view_as(StandardOptions)
  if is_pubsub(source):
    standard.streaming = True  # an unbounded source needs a streaming pipeline
  streaming = bool(standard.streaming)
  output = job_options.output or default_output(job)
  options.view_as(SetupOptions).save_main_session = save_main_session
  if local and is_pubsub(source) and job_options.id_label:
    raise ConfigError('--id_label is not supported by the DirectRunner; run without it '
                     'locally (duplicates are still dropped by content) or on Dataflow')

  pipeline = beam.Pipeline(options=options)
  if read is None:
    records = pipeline | 'Read' >> ReadRecords(
        source, job_options.input_table, job=job, id_label=job_options.id_label,
        timestamp_attribute=job_options.timestamp_attribute)
  else:
    records = read(pipeline, source, options)
  tables = build(records, options, streaming)
  tables | 'Write' >> WriteTables(output, job, streaming, job_options.table_prefix,
                                  bigquery_load_dir(options) if endpoint else None)
  return JobPlan(pipeline, output, local, standard.runner, endpoint)


def bigquery_load_dir(options: PipelineOptions) -> str:
  """Where batch loads into a BigQuery emulator stage their files: a local --temp_location,
  else a new temporary folder."""
  temp = options.view_as(GoogleCloudOptions).temp_location
  if temp and '://' not in temp:
    return temp
  return tempfile.mkdtemp(prefix='beam-analytics-bigquery-loads-')


def check_cloud_options(plan: JobPlan, options: PipelineOptions):
  """Batch BigQuery loads and reads stage files on GCS: say so before running, not after a
  retry loop."""
  gcp = options.view_as(GoogleCloudOptions)
  job_options = options.view_as(JobOptions)
  streaming = options.view_as(StandardOptions).streaming
  needs_temp = job_options.input_table or (
      is_bigquery_dataset(plan.output) and not streaming and not plan.bigquery_endpoint)
  if needs_temp and not (gcp.temp_location or '').startswith('gs://'):
    raise ConfigError('BigQuery %s in batch needs --temp_location gs://BUCKET/tmp' % (
        'input' if job_options.input_table else 'output'))


def main(job: str, run: Callable[[Optional[List[str]]], object],
         argv: Optional[List[str]] = None) -> int:
  """The command line around a job's run(): a bad flag or rule is one line on stderr and
  exit status 2, not a traceback."""
  logging.getLogger().setLevel(logging.WARNING)
  try:
    run(argv)
  except ConfigError as e:  # found before anything ran
    print('%s: error: %s' % (job, e), file=sys.stderr)
    return 2
  return 0


def run_job(job: str, options_cls: Type[PipelineOptions],
            build: Callable[[beam.PCollection, PipelineOptions, bool],
                            Dict[str, beam.PCollection]],
            argv: Optional[List[str]], save_main_session: bool,
            description: Optional[str] = None, read: Optional[Reader] = None,
            default_input: Optional[str] = None,
            output_files: Sequence[str] = ()) -> PipelineResult:
  """Build the job, run it; locally, wait and report its counters. `output_files` are
  globs (relative to --output) of the job's files besides its tables, replaced too."""
  plan = build_job(job, options_cls, build, argv, save_main_session, description, read,
                   default_input)
  check_cloud_options(plan, plan.pipeline.options)
  if plan.local and not is_bigquery_dataset(plan.output):
    _clear_outputs(plan.output, job, output_files)
  result = plan.pipeline.run()
  if not plan.local:
    logging.info('Submitted %s to %s', job, plan.runner)
    return result
  result.wait_until_finish()
  values = counters(result, job)
  print(summary_text(job, values, plan.output))
  if not is_bigquery_dataset(plan.output):
    _write_metrics(plan.output, values)
  return result
