"""iot_telemetry on the real connectors: Pub/Sub emulator in, Bigtable emulator and a Pub/Sub
command topic out, read back with the Google client libraries."""
import datetime
import json
import os

import pytest

from localcloud import clients
from tests.emulator_fixtures import cloud  # noqa: F401 (the session fixture)

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = clients.PROJECT
RULE = 'hot: temperature > 30 -> {"fan": "high"}'


def _key(device, at):
  micros = int(at.timestamp()) * 1_000_000
  return 'greenhouse#%s#%019d' % (device, (2 ** 63 - 1) - micros)


def _now_text():
  return datetime.datetime.now(datetime.timezone.utc).isoformat().replace('+00:00', 'Z')


def test_iot_telemetry_streams_from_pubsub_into_bigtable_and_commands(cloud, tmp_path):  # noqa: F811
  publisher, topic, subscriber, subscription = clients.topic('telemetry', 'telemetry-job')
  _, commands_topic, _, commands = clients.topic('commands', 'commands-check')
  table = clients.bigtable_table('iot-instance', 'readings', ['m'])
  now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
  readings = [('dev-1', 35.0), ('dev-1', 36.5), ('dev-2', 20.0)]
  sent = []
  for i, (device, temperature) in enumerate(readings):
    at = now - datetime.timedelta(seconds=10 - i)
    payload = {'device_id': device, 'time': at.isoformat().replace('+00:00', 'Z'),
               'temperature': temperature}
    publisher.publish(topic, json.dumps(payload).encode(), deviceId=device,
                      deviceRegistryId='greenhouse').result()
    sent.append((device, at))
  publisher.publish(topic, b'{"device_id": "dev-3", "temperature":', deviceId='dev-3').result()

  # The DirectRunner's Pub/Sub source holds its watermark at the wall clock, so readings
  # stamped a few seconds ago arrive late: --allowed_lateness takes them, and the late pane
  # judges the rule (early panes never do).
  wanted = {_key(device, at) for device, at in sent}
  rows, command = {}, []

  def heartbeat():
    """Readings keep coming, as from live devices: the watermark follows them, so the
    windows close and the rule is judged."""
    beat = {'device_id': 'dev-9', 'temperature': 20.0, 'time': _now_text()}
    publisher.publish(topic, json.dumps(beat).encode(), deviceId='dev-9',
                      deviceRegistryId='greenhouse')

  def written():
    rows.update({row.row_key.decode(): row for row in table.read_rows()})
    if not command:
      answer = subscriber.pull(subscription=commands, max_messages=10, timeout=5)
      command.extend(m.message for m in answer.received_messages)
    return bool(command) and wanted <= set(rows)

  run = clients.run_streaming(
      'iot_telemetry',
      ['--input', subscription, '--output', str(tmp_path / 'out'),
       '--bigtable', '%s:iot-instance:readings' % PROJECT, '--command_topic', commands_topic,
       '--rule', RULE, '--window', '5', '--window_period', '5', '--early_firing', '0',
       '--allowed_lateness', '120'],
      until=written, timeout_s=150, poll_s=1, tick=heartbeat)
  output = run.output
  assert wanted <= set(rows), (sorted(wanted - set(rows)), output[-3000:])
  for key in wanted:
    assert set(rows[key].cells) == {'m'}
  first = rows[_key(*sent[0])]
  assert first.cells['m'][b'temperature'][0].value == b'35.0'
  assert first.cells['m'][b'temperature'][0].timestamp == sent[0][1]
  assert command, output[-3000:]
  command = command[0]
  assert (command.attributes['deviceId'], command.attributes['rule'],
          command.attributes['state']) == ('dev-1', 'hot', 'FIRING')
  alert = json.loads(command.data)
  assert alert['device_id'] == 'dev-1' and alert['value'] > 30
  assert json.loads(alert['command']) == {'fan': 'high'}
