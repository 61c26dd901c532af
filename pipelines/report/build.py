"""Assembling the page: one section per job (skipped with a note when its output is absent),
each ending with the job's counters and errors; report.html and the PNGs in one folder."""
import datetime
import glob
import os
from typing import Dict, List, Sequence

import schemas

from pipelines.report import faces, game, inference, iot, job_health, logs, tweets
from pipelines.report import html as h
from pipelines.report.charts import ChartFiles
from pipelines.report.sources import JOBS, JobTables

REPORT_FILE = 'report.html'
SECTIONS = {'game_analytics': game, 'log_analytics': logs, 'iot_telemetry': iot,
            'tweet_sentiment': tweets, 'face_dataset': faces, 'image_inference': inference}


def tables_needed() -> Dict[str, Sequence[str]]:
  """{job: the tables its section reads} (errors is read for every job)."""
  return {job: module.TABLES for job, module in SECTIONS.items()}


def remove_old_charts(out_dir: str) -> None:
  """A rebuild must not leave the last report's charts behind (`<job>-*.png` only)."""
  for job in JOBS:
    for path in glob.glob(os.path.join(glob.escape(out_dir), job + '-*.png')):
      os.remove(path)


def job_section(job: str, tables: JobTables, out_dir: str) -> List[str]:
  body = [h.para('Source: %s' % tables.origin)]
  body += [h.note(n) for n in tables.notes]
  absent = [t for t in SECTIONS[job].TABLES + (schemas.ERRORS_TABLE,) if t not in tables.present]
  if absent:
    body.append(h.note('Tables not in this output (shown as empty): %s.' % ', '.join(absent)))
  body += SECTIONS[job].sections(tables, ChartFiles(out_dir, job))
  return body + job_health.counters_block(tables) + job_health.errors_block(tables)


def build(jobs: Dict[str, JobTables], out_dir: str, origin: str,
          notes: Sequence[str] = ()) -> str:
  """Writes `<out_dir>/report.html` and its charts; returns the page's path."""
  os.makedirs(out_dir, exist_ok=True)
  remove_old_charts(out_dir)
  toc, body = [], [h.note(n) for n in notes]
  for job in JOBS:
    title = '%s (%s)' % (SECTIONS[job].TITLE, job)
    toc.append((job, title if job in jobs else title + ' — skipped'))
    body.append(h.heading(title, 2, job))
    if job not in jobs:
      body.append(h.note('Skipped: no %s output in %s.' % (job, origin), 'note skipped'))
      continue
    body += job_section(job, jobs[job], out_dir)
  now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
  page = h.page('beam-analytics report', [
      'From %s; built %s. Times are UTC; floats rounded to 4 decimals.' % (origin, now),
      'Jobs: %d of %d present.' % (len(jobs), len(JOBS))], toc, body)
  path = os.path.join(out_dir, REPORT_FILE)
  with open(path, 'w', encoding='utf-8') as fh:
    fh.write(page)
  return path
