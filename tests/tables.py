"""What job tests share: reading a written table back, checking rows against schemas/,
and a job's counters summed over steps."""
import glob
import json
import os

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

import schemas


def read_table(out, table):
  """The rows of `<out>/<table>/*.json` (the directory layout every job writes)."""
  rows = []
  for path in sorted(glob.glob(os.path.join(str(out), table, '*.json'))):
    with open(path, encoding='utf-8') as fh:
      rows += [json.loads(line) for line in fh if line.strip()]
  return rows


def assert_written_tables_conform(out, job):
  for table in schemas.tables(job):
    for row in read_table(out, table):
      assert schemas.row_problems(job, table, row) == [], (table, row)


def assert_tables_conform(tables, job):
  """In a TestPipeline: every row of every output PCollection fits its schema."""
  for name, rows in tables.items():
    assert_that(rows | 'Problems_' + name >> beam.FlatMap(
        lambda row, table: schemas.row_problems(job, table, row), name),
        equal_to([]), label='conforms_' + name)
