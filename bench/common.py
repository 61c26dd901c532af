"""What every benchmark shares: run a job in-process and with two worker processes, time
things, read NDJSON tables, print the timing table and write the JSON report.

Imported by the bench scripts after they put the project root on sys.path."""
import contextlib
import glob
import io
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter

import apache_beam
import duckdb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI = ['--direct_num_workers=2', '--direct_running_mode=multi_processing']
LABELS = {'beam': 'Beam DirectRunner, in-process', 'beam_mp': 'Beam DirectRunner, 2 procs',
          'duckdb': 'DuckDB SQL', 'python': 'plain Python'}


def timed(fn, *args):
  """(seconds, result) of fn(*args)."""
  start = time.perf_counter()
  result = fn(*args)
  return time.perf_counter() - start, result


def rows(out, table):
  """The rows of one NDJSON table in an output directory."""
  for name in sorted(glob.glob(os.path.join(out, table, '*.json'))):
    with open(name, encoding='utf-8') as fh:
      yield from (json.loads(line) for line in fh if line.strip())


def beam_in_process(job, path, out, extra=()):
  captured = io.StringIO()  # run() prints its counter summary; main() shows it once
  with contextlib.redirect_stdout(captured):
    job.run(['--input', path, '--output', out] + list(extra), save_main_session=False)
  return captured.getvalue()


def beam_subprocess(job, path, out, extra=()):
  cmd = [sys.executable, '-m', 'pipelines', job.JOB, '--input', path, '--output', out]
  subprocess.run(cmd + list(extra), cwd=ROOT, check=True, capture_output=True)


def time_beam(job, path, out, times, details):
  """Times the job in-process, then with two worker processes (a subprocess if the
  in-process multi-processing mode fails here)."""
  logging.getLogger('apache_beam.runners.portability').setLevel(logging.ERROR)  # worker noise
  times['beam'], details['beam_printed'] = timed(beam_in_process, job, path, out('beam'))
  try:
    times['beam_mp'], _ = timed(beam_in_process, job, path, out('beam_mp'), MULTI)
    details['beam_mp'] = 'in-process, ' + ' '.join(MULTI)
  except Exception as e:  # noqa: BLE001
    print('in-process multi_processing failed (%r); running it as a subprocess' % e)
    times['beam_mp'], _ = timed(beam_subprocess, job, path, out('beam_mp'), MULTI)
    details['beam_mp'] = 'subprocess `python -m pipelines %s`, %s' % (job.JOB, ' '.join(MULTI))


def environment():
  env = {'cpu_count': os.cpu_count(), 'machine': platform.machine(), 'cpu': platform.processor(),
         'python': platform.python_version(), 'apache_beam': apache_beam.__version__,
         'duckdb': duckdb.__version__}
  with contextlib.suppress(OSError):
    with open('/proc/cpuinfo') as fh:
      env['cpu'] = next((row.split(':', 1)[1].strip() for row in fh
                         if row.startswith('model name')), env['cpu'])
  return env


def print_timings(times, n, unit, beam_mp_note):
  """The timing table (`unit` per second, speed relative to Beam in-process); returns the
  environment it ran in."""
  print('\n%-30s %9s %10s %s' % ('implementation', 'seconds', unit + '/s', 'speed vs Beam'))
  for name, label in LABELS.items():
    print('%-30s %9.2f %10.0f %12.2fx' % (label, times[name], n / times[name],
                                          times['beam'] / times[name]))
  print('(speed vs Beam = Beam in-process seconds / these seconds; 2 procs: %s)' % beam_mp_note)
  env = environment()
  print('machine: %(cpu_count)d CPUs (%(machine)s, %(cpu)s); python %(python)s, apache_beam '
        '%(apache_beam)s, duckdb %(duckdb)s' % env)
  return env


def finish(work, name, report, input_path, out, keep, start):
  """Writes the JSON report and, unless `keep`, removes the input and the outputs."""
  report_path = os.path.join(work, 'bench_%s.json' % name)
  with open(report_path, 'w') as fh:
    json.dump(report, fh, indent=2)
  if not keep:
    os.remove(input_path)
    for label in LABELS:
      shutil.rmtree(out(label), ignore_errors=True)
  print('report: %s (total %.0f s)' % (report_path, time.perf_counter() - start))


def compare(reference, other, exact, close, rel_tol, abs_tol=1e-12):
  """Row-by-row comparison of two {key: row} tables: `exact` columns must be equal, `close`
  ones equal within the tolerances. Returns (counts, up to three differing examples)."""
  def same(a, b, column):
    if column in exact or a is None or b is None:
      return a == b
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)

  result = Counter({'match': 0, 'mismatch': 0})
  examples = []
  for key in sorted(set(reference) | set(other), key=str):
    ref, got = reference.get(key), other.get(key)
    if ref is None or got is None:
      side = 'only_reference' if got is None else 'only_other'
      result[side] += 1
      diff = {'row': side}
    else:
      diff = {c: (ref.get(c), got.get(c)) for c in tuple(exact) + tuple(close)
              if not same(ref.get(c), got.get(c), c)}
      result['match' if not diff else 'mismatch'] += 1
      for column in diff:
        result['column ' + column] += 1
    if diff and len(examples) < 3:
      examples.append((key, diff))
  return result, examples
