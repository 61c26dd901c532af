"""The emulators for integration tests: started once per test module on free ports, in a state
folder of their own (the PyPI emulators' venvs are shared with `make emulators`), and
stopped at the end. In CI a missing emulator fails the test; elsewhere it skips with why."""
import os
import socket

import pytest

from localcloud import emulators


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def unavailable(reason: str):
  if os.environ.get('CI'):
    pytest.fail('emulator unavailable in CI: %s' % reason)
  pytest.skip(reason)


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
  """{ENV_VAR: value} of all four emulators, running; set in os.environ for the test module
  only (later tests must not reach an emulator by accident)."""
  state = str(tmp_path_factory.mktemp('emulators'))
  shared = emulators.DEFAULT_STATE
  try:
    emulators.install(shared)
  except Exception as e:  # no PyPI, no venv module ...
    unavailable('could not install the PyPI emulators: %s' % e)
  for name in ('venv-bigquery', 'venv-gcs', 'bigquery-home'):
    os.symlink(os.path.join(shared, name), os.path.join(state, name))
  ports = {name: free_port() for name in emulators.EMULATORS}
  ports['bigquery'] = free_port()  # its gRPC port is rest + 10: keep them apart
  try:
    values = emulators.start(list(emulators.EMULATORS), state, ports)
  except RuntimeError as e:
    unavailable(str(e))
  saved = {key: os.environ.get(key) for key in values}
  os.environ.update(values)
  yield values
  emulators.stop(state)
  for key, value in saved.items():
    if value is None:
      os.environ.pop(key, None)
    else:
      os.environ[key] = value
