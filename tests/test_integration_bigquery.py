"""game_analytics streaming from the Pub/Sub emulator into the BigQuery emulator: tables
created from schemas/, the events a batch run of the same records gives, a redelivered
message written once, and a malformed one in `errors` with its payload and attributes."""
import os
import signal
import subprocess
import sys
import time

import pytest

import schemas
from pipelines import game_analytics
from tests.emulator_fixtures import cloud  # noqa: F401 (the session fixture)
from tests.tables import read_table

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = 'local-project'
SAMPLE = os.path.join(ROOT, 'pipelines', 'samples', 'game_analytics', 'custom_producer.json')
BAD = b'{"event_name": "PLAYER_MOVE", "event_timestamp": '


def _bigquery():
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import bigquery
  return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                         client_options={'api_endpoint': os.environ['BIGQUERY_EMULATOR_HOST']})


def _count(client, table):
  try:
    return list(client.query('SELECT COUNT(*) AS n FROM `%s.game.%s`' % (PROJECT, table))
                .result())[0]['n']
  except Exception:  # the job creates each table with its first row
    return 0


def test_game_analytics_from_pubsub_into_bigquery(cloud, tmp_path):  # noqa: F811
  from google.cloud import pubsub_v1
  lines = open(SAMPLE, encoding='utf-8').read().splitlines()[:40]
  (tmp_path / 'in.json').write_text('\n'.join(lines) + '\n')
  game_analytics.run(['--input', str(tmp_path / 'in.json'), '--output', str(tmp_path / 'batch')])
  expected_events = len(read_table(tmp_path / 'batch', 'events'))
  assert expected_events > 10

  client = _bigquery()
  client.create_dataset('game')
  publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
  topic = publisher.topic_path(PROJECT, 'game-events')
  subscription = subscriber.subscription_path(PROJECT, 'game-job')
  publisher.create_topic(name=topic)
  subscriber.create_subscription(name=subscription, topic=topic)
  for line in lines:
    publisher.publish(topic, line.encode(), source='unity').result()
  publisher.publish(topic, lines[5].encode(), source='unity').result()  # redelivered
  publisher.publish(topic, BAD, source='unity', build='1.2').result()

  job = subprocess.Popen(
      [sys.executable, '-m', 'pipelines', 'game_analytics', '--input', subscription,
       '--output', '%s:game' % PROJECT],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and (
        _count(client, 'events') < expected_events or _count(client, 'errors') < 1):
      time.sleep(3)
    time.sleep(5)  # a duplicate written late would show now
    events, errors = _count(client, 'events'), _count(client, 'errors')
  finally:
    os.killpg(job.pid, signal.SIGTERM)
    output = job.communicate(timeout=30)[0].decode(errors='replace')

  assert (events, errors) == (expected_events, 1), output[-3000:]
  for table in ('events', 'errors'):
    schema = client.get_table('%s.game.%s' % (PROJECT, table)).schema
    assert [(f.name, f.field_type) for f in schema] == [
        (f['name'], f['type']) for f in schemas.fields('game_analytics', table)]
  (row,) = list(client.query('SELECT * FROM `%s.game.errors`' % PROJECT).result())
  assert row['job'] == 'game_analytics'
  assert row['payload'] == BAD.decode()
  assert 'build' in str(row['attributes']) and '1.2' in str(row['attributes'])
