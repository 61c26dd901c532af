"""iot_telemetry on the real connectors: Pub/Sub emulator in, Bigtable emulator and a Pub/Sub
command topic out, read back with the Google client libraries."""
import datetime
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.emulator_fixtures import cloud  # noqa: F401 (the session fixture)

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = 'local-project'
RULE = 'hot: temperature > 30 -> {"fan": "high"}'


def _topic_and_subscription(topic, subscription):
  from google.cloud import pubsub_v1
  publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
  topic_path = publisher.topic_path(PROJECT, topic)
  sub_path = subscriber.subscription_path(PROJECT, subscription)
  publisher.create_topic(name=topic_path)
  subscriber.create_subscription(name=sub_path, topic=topic_path)
  return publisher, topic_path, subscriber, sub_path


def _bigtable_table(instance_id, table_id):
  from google.cloud import bigtable
  from google.cloud.bigtable import column_family
  client = bigtable.Client(project=PROJECT, admin=True)
  table = client.instance(instance_id).table(table_id)
  table.create(column_families={'m': column_family.MaxVersionsGCRule(1)})
  return table


def _key(device, at):
  micros = int(at.timestamp()) * 1_000_000
  return 'greenhouse#%s#%019d' % (device, (2 ** 63 - 1) - micros)


def _now_text():
  return datetime.datetime.now(datetime.timezone.utc).isoformat().replace('+00:00', 'Z')


def test_iot_telemetry_streams_from_pubsub_into_bigtable_and_commands(cloud, tmp_path):  # noqa: F811
  publisher, topic, subscriber, subscription = _topic_and_subscription(
      'telemetry', 'telemetry-job')
  _, commands_topic, _, commands = _topic_and_subscription('commands', 'commands-check')
  table = _bigtable_table('iot-instance', 'readings')
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
  job = subprocess.Popen(
      [sys.executable, '-m', 'pipelines', 'iot_telemetry', '--input', subscription,
       '--output', str(tmp_path / 'out'), '--bigtable', '%s:iot-instance:readings' % PROJECT,
       '--command_topic', commands_topic, '--rule', RULE, '--window', '5',
       '--window_period', '5', '--early_firing', '0', '--allowed_lateness', '120'],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  wanted = {_key(device, at) for device, at in sent}
  try:
    deadline = time.monotonic() + 150
    rows, command = {}, None
    while time.monotonic() < deadline and (command is None or not wanted <= set(rows)):
      # Readings keep coming, as from live devices: the watermark follows them, so the
      # windows close and the rule is judged.
      heartbeat = {'device_id': 'dev-9', 'temperature': 20.0, 'time': _now_text()}
      publisher.publish(topic, json.dumps(heartbeat).encode(), deviceId='dev-9',
                        deviceRegistryId='greenhouse')
      rows = {row.row_key.decode(): row for row in table.read_rows()}
      if command is None:
        answer = subscriber.pull(subscription=commands, max_messages=10, timeout=5)
        if answer.received_messages:
          command = answer.received_messages[0].message
      time.sleep(1)
  finally:
    os.killpg(job.pid, signal.SIGTERM)
    output = job.communicate(timeout=30)[0].decode(errors='replace')

  assert wanted <= set(rows), (sorted(wanted - set(rows)), output[-3000:])
  for key in wanted:
    assert set(rows[key].cells) == {'m'}
  first = rows[_key(*sent[0])]
  assert first.cells['m'][b'temperature'][0].value == b'35.0'
  assert first.cells['m'][b'temperature'][0].timestamp == sent[0][1]
  assert command is not None, output[-3000:]
  assert (command.attributes['deviceId'], command.attributes['rule'],
          command.attributes['state']) == ('dev-1', 'hot', 'FIRING')
  alert = json.loads(command.data)
  assert alert['device_id'] == 'dev-1' and alert['value'] > 30
  assert json.loads(alert['command']) == {'fan': 'high'}
