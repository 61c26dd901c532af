"""Unbounded rows to an NDJSON directory: files per arrival-time window, same per-table
globs, and rows that are late for their event-time window are still written."""
import glob
import json
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from transforms.sinks import WriteTables


def test_streaming_rows_land_in_the_table_glob(tmp_path):
  rows = [{'processing_time': '2018-10-10T08:00:0%d.000000Z' % i, 'job': 'game_analytics',
           'stage': 's', 'error': 'e%d' % i, 'payload': None, 'payload_encoding': None,
           'attributes': None, 'source': None} for i in range(3)]
  stream = (TestStream()
            .advance_watermark_to(1539158400)
            .add_elements([beam.window.TimestampedValue(r, 1539158400 + i)
                           for i, r in enumerate(rows[:2])])
            .advance_watermark_to(1539158470)
            # Far behind the watermark: a late pane from an aggregation looks like this.
            .add_elements([beam.window.TimestampedValue(rows[2], 1539158000)])
            .advance_watermark_to_infinity())
  with TestPipeline(options=StandardOptions(streaming=True)) as pipeline:
    errors = pipeline | stream
    {'errors': errors} | WriteTables(str(tmp_path), 'game_analytics', streaming=True)
  files = glob.glob(os.path.join(str(tmp_path), 'errors', '*.json'))
  assert files
  written = []
  for path in files:
    assert os.path.basename(path).startswith('errors-')
    with open(path) as fh:
      written += [json.loads(line) for line in fh]
  assert sorted(written, key=lambda r: r['error']) == rows
