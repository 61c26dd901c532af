"""localcloud.emulators: each emulator answers after start, and stop leaves nothing behind."""
import os
import socket

import pytest

from localcloud import emulators
from tests.emulator_fixtures import free_port, unavailable

pytestmark = pytest.mark.integration


def _group_gone(pgid):
  try:
    os.killpg(pgid, 0)
  except ProcessLookupError:
    return True
  return False


def test_start_answers_and_stop_ends_every_process(tmp_path):
  state = str(tmp_path)
  ports = {'pubsub': free_port(), 'bigtable': free_port()}
  try:
    values = emulators.start(['pubsub', 'bigtable'], state, ports)
  except RuntimeError as e:
    unavailable(str(e))
  assert values == {'PUBSUB_EMULATOR_HOST': '127.0.0.1:%d' % ports['pubsub'],
                    'BIGTABLE_EMULATOR_HOST': '127.0.0.1:%d' % ports['bigtable'],
                    'NO_GCE_CHECK': 'True'}
  assert emulators.exports(state) == values
  records = emulators.running(state)
  assert [r.name for r in records] == ['pubsub', 'bigtable']
  for record in records:
    assert emulators.EMULATORS[record.name].ready('127.0.0.1', record.port)
  assert sorted(emulators.stop(state)) == ['bigtable', 'pubsub']
  for record in records:
    assert _group_gone(record.pid), record  # the Java/Go children too
    with pytest.raises(OSError):
      socket.create_connection(('127.0.0.1', record.port), timeout=1).close()
  assert emulators.running(state) == []


def test_a_taken_port_is_a_clear_error_and_nothing_stays_up(tmp_path):
  state = str(tmp_path)
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    port = taken.getsockname()[1]
    pubsub_port = free_port()
    with pytest.raises(RuntimeError, match='bigtable emulator: port %d is taken' % port):
      emulators.start(['pubsub', 'bigtable'], state, {'pubsub': pubsub_port,
                                                      'bigtable': port})
  assert emulators.running(state) == []
  with pytest.raises(OSError):
    socket.create_connection(('127.0.0.1', pubsub_port), timeout=1).close()


def test_cli_lists_unknown_emulators(capsys):
  with pytest.raises(SystemExit) as exit_:
    emulators.main(['start', 'spanner'])
  assert exit_.value.code == 2
  assert 'unknown emulator spanner (known: pubsub, bigtable, bigquery, gcs)' in (
      capsys.readouterr().err)
