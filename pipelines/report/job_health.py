"""What every job section ends with: the run's counters and a summary of its dead letters."""
from typing import Dict, List

from pipelines.report import html as h
from pipelines.report.sources import JobTables

TOP_ERRORS = 10
SAMPLE_ERRORS = 3
PAYLOAD_CHARS = 300


def counters_block(tables: JobTables) -> List[str]:
  """The counters of `_metrics.json`, every one, exactly as written."""
  out = [h.heading('Counters (_metrics.json)', 3)]
  if tables.counters is None:
    out.append(h.note('No _metrics.json here: a local run writes it beside its tables '
                      '(a BigQuery dataset does not hold it).'))
  elif not tables.counters:
    out.append(h.no_rows('counters'))
  else:
    out.append(h.table(['counter', 'value'], sorted(tables.counters.items())))
  return out


def error_summary(tables: JobTables) -> Dict[str, list]:
  """Errors by stage, by stage and error (the most frequent), and a few sample rows."""
  by_stage = tables.rows('SELECT stage, count(*) AS n FROM errors GROUP BY stage '
                         'ORDER BY n DESC, stage')
  by_error = tables.rows('SELECT stage, error, count(*) AS n FROM errors GROUP BY ALL '
                         'ORDER BY n DESC, stage, error')
  samples = tables.rows('SELECT processing_time, stage, error, payload, payload_encoding, '
                        'source FROM errors ORDER BY processing_time, stage, error LIMIT ?',
                        [SAMPLE_ERRORS])
  return {'by_stage': by_stage, 'by_error': by_error, 'samples': samples}


def errors_block(tables: JobTables) -> List[str]:
  out = [h.heading('Errors (dead letters)', 3)]
  if 'errors' not in tables.present:
    return out + [h.note('No errors table in this output.')]
  summary = error_summary(tables)
  if not summary['by_stage']:
    return out + [h.no_rows('errors')]
  total = sum(r['n'] for r in summary['by_stage'])
  out.append(h.para('%d error rows in %d stages.' % (total, len(summary['by_stage']))))
  out.append(h.table(['stage', 'errors'], [(r['stage'], r['n']) for r in summary['by_stage']],
                     caption='Errors by stage'))
  shown = summary['by_error'][:TOP_ERRORS]
  rows = [(r['stage'], r['error'], r['n']) for r in shown]
  rest = summary['by_error'][TOP_ERRORS:]
  if rest:
    rows.append(('', '(%d other errors)' % len(rest), sum(r['n'] for r in rest)))
  out.append(h.table(['stage', 'error', 'count'], rows, caption='Errors by stage and error'))
  out.append(h.table(
      ['processing time', 'stage', 'error', 'payload', 'source'],
      [(r['processing_time'], r['stage'], r['error'], h.Raw(
          '<pre class="payload">%s</pre>' % h.esc(_clip(r['payload'], r['payload_encoding']))),
        r['source']) for r in summary['samples']],
      caption='Sample error rows (first %d by processing time)' % SAMPLE_ERRORS))
  return out


def _clip(payload, encoding) -> str:
  if payload is None:
    return h.NO_VALUE
  text = payload if len(payload) <= PAYLOAD_CHARS else payload[:PAYLOAD_CHARS] + ' …'
  return '[base64] ' + text if encoding == 'base64' else text
