"""The Google Cloud data path on loopback: Pub/Sub, Bigtable, BigQuery and GCS emulators.

  python -m localcloud.emulators start [NAME ...] [--state DIR] [--PORT-FLAGS]
  python -m localcloud.emulators stop [--state DIR]
  python -m localcloud.emulators env [--state DIR]     the *_EMULATOR_HOST exports

Pub/Sub and Bigtable come with the Google Cloud SDK (`gcloud beta emulators ...`); BigQuery
(bqemulator) and GCS (gcp-storage-emulator) come from PyPI, each in its own venv under the
state folder (bqemulator's pytest plugin would break the project's pytest). Each emulator
runs in its own process group (`gcloud ... start` leaves a Java/Go child behind that a plain
kill misses), is waited for until it answers, and has a PID file, so `stop` ends every
process it started and nothing is left running.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_STATE = os.path.join(ROOT, '.emulators')
HOST = '127.0.0.1'
PROJECT = 'local-project'  # what the demo and tests create resources in
# The BigQuery emulator's DuckDB downloads these extensions at start unless they are in
# $HOME/.duckdb: they come from PyPI instead, into a HOME private to the emulator.
BQ_REQUIREMENTS = ['bqemulator==1.4.0', 'duckdb==1.5.5', 'duckdb-extension-spatial==1.5.5',
                   'duckdb-extension-avro==1.5.5', 'numpy']
GCS_REQUIREMENTS = ['gcp-storage-emulator==2026.7.19']
# Exported with the emulators: the emulators take anonymous requests, and without this
# google-auth probes for a GCE metadata server (about 20 s per process off GCE) before Beam
# falls back to an anonymous client.
CLIENT_ENV = {'NO_GCE_CHECK': 'True'}


class Emulator(NamedTuple):
  name: str
  env: str          # the variable clients read, e.g. PUBSUB_EMULATOR_HOST
  port: int         # default port
  command: Callable[[str, int, str], List[str]]  # (host, port, state dir) -> argv
  ready: Callable[[str, int], bool]
  env_value: Callable[[str, int], str] = lambda host, port: '%s:%d' % (host, port)
  missing: Callable[[str], Optional[str]] = lambda state: None  # why it cannot start


def _http_ok(url: str) -> bool:
  try:
    with urllib.request.urlopen(url, timeout=2) as response:
      return response.status < 500
  except OSError:
    return False


def _port_open(host: str, port: int) -> bool:
  try:
    with socket.create_connection((host, port), timeout=1):
      return True
  except OSError:
    return False


def _gcloud_missing(component: str) -> Callable[[str], Optional[str]]:
  def missing(state: str) -> Optional[str]:
    gcloud = shutil.which('gcloud')
    if gcloud is None:
      return 'gcloud is not installed (the Google Cloud SDK brings the %s emulator)' % component
    sdk = os.path.dirname(os.path.dirname(os.path.realpath(gcloud)))
    if not os.path.isdir(os.path.join(sdk, 'platform', component)):
      return 'the SDK at %s has no %s (gcloud components install %s)' % (
          sdk, component, component)
    return None
  return missing


def venv_bin(state: str, venv: str, program: str) -> str:
  return os.path.join(state, venv, 'bin', program)


def _venv_missing(venv: str, program: str) -> Callable[[str], Optional[str]]:
  def missing(state: str) -> Optional[str]:
    if not os.path.exists(venv_bin(state, venv, program)):
      return '%s is not installed: python -m localcloud.emulators install' % program
    return None
  return missing


EMULATORS: Dict[str, Emulator] = {e.name: e for e in [
    Emulator(
        'pubsub', 'PUBSUB_EMULATOR_HOST', 8085,
        lambda host, port, state: [
            'gcloud', 'beta', 'emulators', 'pubsub', 'start', '--host-port=%s:%d' % (host, port),
            '--data-dir=%s' % os.path.join(state, 'pubsub-data'), '--quiet'],
        lambda host, port: _http_ok('http://%s:%d/' % (host, port)),
        missing=_gcloud_missing('pubsub-emulator')),
    Emulator(
        'bigtable', 'BIGTABLE_EMULATOR_HOST', 8086,
        lambda host, port, state: [
            'gcloud', 'beta', 'emulators', 'bigtable', 'start',
            '--host-port=%s:%d' % (host, port), '--quiet'],
        _port_open,
        missing=_gcloud_missing('bigtable-emulator')),
    Emulator(
        'bigquery', 'BIGQUERY_EMULATOR_HOST', 9050,
        lambda host, port, state: [
            venv_bin(state, 'venv-bigquery', 'bqemulator'), 'start', '--rest-host', host,
            '--rest-port', str(port), '--grpc-host', host, '--grpc-port', str(port + 10),
            '--project', PROJECT],
        lambda host, port: _http_ok(
            'http://%s:%d/bigquery/v2/projects/%s/datasets' % (host, port, PROJECT)),
        env_value=lambda host, port: 'http://%s:%d' % (host, port),
        missing=_venv_missing('venv-bigquery', 'bqemulator')),
    Emulator(
        'gcs', 'STORAGE_EMULATOR_HOST', 9023,
        lambda host, port, state: [
            venv_bin(state, 'venv-gcs', 'gcp-storage-emulator'), 'start', '--host', host,
            '--port', str(port), '--in-memory'],
        lambda host, port: _http_ok('http://%s:%d/storage/v1/b' % (host, port)),
        env_value=lambda host, port: 'http://%s:%d' % (host, port),
        missing=_venv_missing('venv-gcs', 'gcp-storage-emulator')),
]}


def install(state: str = DEFAULT_STATE, python: str = sys.executable):
  """The PyPI emulators, each in its own venv (kept: a second install is a no-op)."""
  for venv, requirements, program in (('venv-bigquery', BQ_REQUIREMENTS, 'bqemulator'),
                                      ('venv-gcs', GCS_REQUIREMENTS, 'gcp-storage-emulator')):
    if os.path.exists(venv_bin(state, venv, program)):
      continue
    path = os.path.join(state, venv)
    subprocess.run([python, '-m', 'venv', path], check=True)
    done = subprocess.run([os.path.join(path, 'bin', 'python'), '-m', 'pip', 'install',
                           '--quiet'] + requirements, capture_output=True, text=True)
    if done.returncode != 0:
      raise RuntimeError('installing %s failed:\n%s' % (program, done.stderr[-3000:]))
  _duckdb_extensions(state)


def duckdb_home(state: str) -> str:
  return os.path.join(state, 'bigquery-home')


def _duckdb_extensions(state: str):
  """Copy the pip-installed DuckDB extensions where DuckDB looks, so it downloads nothing."""
  python = venv_bin(state, 'venv-bigquery', 'python')
  if not os.path.exists(python):
    return
  code = ('import duckdb, glob, os, sys\n'
          'import duckdb_extension_spatial, duckdb_extension_avro\n'
          'files = []\n'
          'for m in (duckdb_extension_spatial, duckdb_extension_avro):\n'
          '  files += glob.glob(os.path.join(os.path.dirname(m.__file__), "**", '
          '"*.duckdb_extension"), recursive=True)\n'
          'print(duckdb.__version__); print("\\n".join(files))\n')
  found = subprocess.run([python, '-c', code], capture_output=True, text=True, check=True)
  version, *files = found.stdout.split()
  target = os.path.join(duckdb_home(state), '.duckdb', 'extensions', 'v' + version,
                        'linux_amd64')
  os.makedirs(target, exist_ok=True)
  for path in files:
    shutil.copy2(path, target)


class Running(NamedTuple):
  name: str
  pid: int
  port: int
  env: str
  value: str


def _record_path(state: str, name: str) -> str:
  return os.path.join(state, '%s.json' % name)


def running(state: str = DEFAULT_STATE) -> List[Running]:
  out = []
  for name in EMULATORS:
    path = _record_path(state, name)
    if os.path.exists(path):
      with open(path) as f:
        out.append(Running(**json.load(f)))
  return out


def exports(state: str = DEFAULT_STATE) -> Dict[str, str]:
  values = {r.env: r.value for r in running(state)}
  return dict(values, **CLIENT_ENV) if values else values


def start(names: Sequence[str] = tuple(EMULATORS), state: str = DEFAULT_STATE,
          ports: Optional[Dict[str, int]] = None, timeout_s: float = 120) -> Dict[str, str]:
  """Start `names` (each in its own process group) and wait until every one answers;
  -> their *_EMULATOR_HOST values. One that cannot start stops the others it started."""
  os.makedirs(os.path.join(state, 'pubsub-data'), exist_ok=True)
  ports = ports or {}
  for name in names:
    reason = EMULATORS[name].missing(state)
    if reason:
      raise RuntimeError('%s emulator: %s' % (name, reason))
  started = []
  try:
    for name in names:
      emulator = EMULATORS[name]
      port = ports.get(name, emulator.port)
      if _port_open(HOST, port):
        raise RuntimeError('%s emulator: port %d is taken (another emulator still running? '
                           'python -m localcloud.emulators stop)' % (name, port))
      env = dict(os.environ)
      if name == 'bigquery':
        env['HOME'] = duckdb_home(state)
      log = open(os.path.join(state, '%s.log' % name), 'ab')
      process = subprocess.Popen(emulator.command(HOST, port, state), stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=env, cwd=state)
      record = Running(name, process.pid, port, emulator.env, emulator.env_value(HOST, port))
      with open(_record_path(state, name), 'w') as f:
        json.dump(record._asdict(), f)
      started.append(name)
    deadline = time.monotonic() + timeout_s
    waiting = {r.name: r for r in running(state) if r.name in started}
    while waiting:
      for name, record in list(waiting.items()):
        if EMULATORS[name].ready(HOST, record.port):
          del waiting[name]
        elif not _alive(record.pid):
          raise RuntimeError('%s emulator exited at start; see %s' % (
              name, os.path.join(state, '%s.log' % name)))
      if waiting and time.monotonic() > deadline:
        raise RuntimeError('%s did not answer within %ds' % (', '.join(waiting), timeout_s))
      time.sleep(0.2)
  except BaseException:
    stop(state, started)
    raise
  return dict({r.env: r.value for r in running(state) if r.name in names}, **CLIENT_ENV)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:  # a zombie child of ours is not alive
    done, _ = os.waitpid(pid, os.WNOHANG)
    return done == 0
  except ChildProcessError:
    return True


def stop(state: str = DEFAULT_STATE, names: Optional[Sequence[str]] = None) -> List[str]:
  """End each emulator's whole process group (TERM, then KILL after 10 s)."""
  stopped = []
  for record in running(state):
    if names is not None and record.name not in names:
      continue
    end_group(record.pid)
    os.remove(_record_path(state, record.name))
    stopped.append(record.name)
  return stopped


def end_group(pgid: int, wait_s: float = 10):
  """TERM the process group `pgid` (its leader started with start_new_session), KILL it
  if it is still there after `wait_s`."""
  for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
      os.killpg(pgid, sig)
    except ProcessLookupError:
      return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and _group_alive(pgid):
      _alive(pgid)  # reap the leader when it is our own child
      time.sleep(0.1)
    if not _group_alive(pgid):
      return


def answers(name: str, value: str) -> bool:
  """Whether emulator `name` answers at `value`, its *_EMULATOR_HOST setting
  (host:port, or http://host:port)."""
  host, port = value.rsplit('/', 1)[-1].rsplit(':', 1)
  return EMULATORS[name].ready(host, int(port))


def _group_alive(pgid: int) -> bool:
  try:
    os.killpg(pgid, 0)
    return True
  except ProcessLookupError:
    return False


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m localcloud.emulators',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('command', choices=('install', 'start', 'stop', 'env', 'status'))
  parser.add_argument('names', nargs='*',
                      help='emulators among %s (default: all)' % ', '.join(EMULATORS))
  parser.add_argument('--state', default=DEFAULT_STATE,
                      help='folder for PID files, logs and the PyPI emulators\' venvs')
  for name, emulator in EMULATORS.items():
    parser.add_argument('--%s_port' % name, type=int, default=emulator.port,
                        help='%s port (default %d)' % (name, emulator.port))
  args = parser.parse_args(argv)
  unknown = [name for name in args.names if name not in EMULATORS]
  if unknown:
    parser.error('unknown emulator %s (known: %s)' % (', '.join(unknown), ', '.join(EMULATORS)))
  names = args.names or list(EMULATORS)
  if args.command == 'install':
    install(args.state)
    return 0
  if args.command == 'start':
    ports = {name: getattr(args, '%s_port' % name) for name in EMULATORS}
    try:
      values = start(names, args.state, ports)
    except RuntimeError as e:
      print('emulators: %s' % e, file=sys.stderr)
      return 1
    print('# started %s; to use them:' % ', '.join(names), file=sys.stderr)
    for env, value in values.items():
      print('export %s=%s' % (env, value))
    return 0
  if args.command == 'stop':
    stopped = stop(args.state, args.names or None)
    print('stopped: %s' % (', '.join(stopped) or 'nothing was running'), file=sys.stderr)
    return 0
  if args.command == 'env':
    for env, value in exports(args.state).items():
      print('export %s=%s' % (env, value))
    return 0
  for record in running(args.state):
    print('%-9s pid %-7d %s=%s %s' % (record.name, record.pid, record.env, record.value,
                                     'up' if EMULATORS[record.name].ready(HOST, record.port)
                                     else 'NOT ANSWERING'))
  return 0


if __name__ == '__main__':
  sys.exit(main())
