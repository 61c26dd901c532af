"""python -m pipelines.report OUTPUT [--out DIR]: the jobs' outputs as one HTML page."""
import argparse
import os
import re
import sys
from typing import Dict, List, Optional

from pipelines.options import ENDPOINT
from pipelines.report import bigquery_source, build, sources
from pipelines.report.sources import JOBS
from transforms.sinks import is_bigquery_dataset

EPILOG = """
OUTPUT is either
  a folder: one sub-folder per job (output/<job>/<table>/*.json and _metrics.json, as
    `make run` leaves them), or a single job's folder; or
  a BigQuery dataset PROJECT:DATASET, read with google-cloud-bigquery (Application Default
    Credentials; none against an emulator). A job is present when one of its own tables
    is there (e.g. heatmap for game_analytics, log_metrics for log_analytics).

Table prefixes (BigQuery): jobs that shared a dataset were run with --table_prefix. Each
job's tables are looked up as <prefix><table>; without --table_prefix JOB=PREFIX the prefix
is found from the job's own table names (none when the plain names exist; the first found,
with a note, when several runs used different ones). `alerts` (log_analytics and
iot_telemetry) is used only when its columns are the job's; `errors` rows are filtered on
their `job` column. Give a prefix (possibly empty: JOB=) to settle either case.

Each job section states its numbers in tables under the charts and lists the run's counters
(from _metrics.json; a dataset does not hold them) and its errors. Jobs with no output are
skipped with a note; empty tables say "no rows". Face crops are shown when their files are on
this machine, otherwise a note says so.

Writes OUT/report.html and PNG charts beside it (OUT/<job>-<chart>.png); nothing is fetched
from the network when the page is opened.
"""


def table_prefix(value: str):
  match = re.match(r'^([a-z_]+)=([A-Za-z0-9_]*)$', value)
  if not match or match.group(1) not in JOBS:
    raise argparse.ArgumentTypeError(
        'expected JOB=PREFIX with JOB one of %s and PREFIX of letters, digits, _; got %r'
        % (', '.join(JOBS), value))
  return match.group(1), match.group(2)


def endpoint(value: str) -> str:
  if not re.match(ENDPOINT, value):
    raise argparse.ArgumentTypeError('expected an http(s):// API root, got %r' % value)
  return value


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m pipelines.report', description='Charts and tables of the jobs\' '
      'outputs in one self-contained HTML page.', epilog=EPILOG,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('output', metavar='OUTPUT',
                 help='Output folder (parent of the job folders, or one job\'s folder) or '
                 'PROJECT:DATASET.')
  p.add_argument('--out', default=None,
                 help='Folder for report.html and its charts. Default: OUTPUT/report for a '
                 'folder, ./report for a dataset.')
  p.add_argument('--table_prefix', type=table_prefix, action='append', default=[],
                 metavar='JOB=PREFIX',
                 help='BigQuery: the --table_prefix JOB was run with (repeatable).')
  p.add_argument('--bigquery_endpoint', type=endpoint, default=None, metavar='URL',
                 help='BigQuery: send requests here, e.g. the emulator http://127.0.0.1:9050 '
                 '(no credentials). Default: BIGQUERY_EMULATOR_HOST when set, else '
                 'bigquery.googleapis.com.')
  return p


def main(argv: Optional[List[str]] = None) -> int:
  args = parser().parse_args(argv)
  notes: List[str] = []
  if is_bigquery_dataset(args.output):
    url = args.bigquery_endpoint or os.environ.get('BIGQUERY_EMULATOR_HOST')
    prefixes: Dict[str, str] = dict(args.table_prefix)
    jobs, notes, scratch = bigquery_source.open_dataset(args.output, url, prefixes,
                                                       build.tables_needed())
    out_dir = args.out or 'report'
  else:
    if args.table_prefix or args.bigquery_endpoint:
      parser().error('--table_prefix and --bigquery_endpoint are for a BigQuery dataset')
    if not os.path.isdir(args.output):
      parser().error('%s is neither a folder nor PROJECT:DATASET' % args.output)
    jobs, scratch = sources.open_output_dir(args.output), None
    out_dir = args.out or os.path.join(args.output, 'report')
  if not jobs:
    notes.append('No job output found in %s: every section is skipped.' % args.output)
  try:
    path = build.build(jobs, out_dir, args.output, notes)
  finally:
    if scratch:
      scratch.cleanup()
  print('Report: %s (%d of %d jobs)' % (path, len(jobs), len(JOBS)))
  return 0


if __name__ == '__main__':
  sys.exit(main())
