"""game_analytics streaming from the Pub/Sub emulator into the BigQuery emulator: tables
created from schemas/, the events a batch run of the same records gives, a redelivered
message written once, and a malformed one in `errors` with its payload and attributes."""
import os

import pytest

import schemas
from localcloud import clients
from pipelines import game_analytics
from tests.emulator_fixtures import cloud  # noqa: F401 (the session fixture)
from tests.tables import read_table

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = clients.PROJECT
SAMPLE = os.path.join(ROOT, 'pipelines', 'samples', 'game_analytics', 'custom_producer.json')
BAD = b'{"event_name": "PLAYER_MOVE", "event_timestamp": '


def test_game_analytics_from_pubsub_into_bigquery(cloud, tmp_path):  # noqa: F811
  lines = open(SAMPLE, encoding='utf-8').read().splitlines()[:40]
  (tmp_path / 'in.json').write_text('\n'.join(lines) + '\n')
  game_analytics.run(['--input', str(tmp_path / 'in.json'), '--output', str(tmp_path / 'batch')])
  expected_events = len(read_table(tmp_path / 'batch', 'events'))
  assert expected_events > 10

  client = clients.bigquery()
  client.create_dataset('game')
  game = clients.topic('game-events', 'game-job')
  for line in lines:
    game.publisher.publish(game.path, line.encode(), source='unity').result()
  game.publisher.publish(game.path, lines[5].encode(), source='unity').result()  # redelivered
  game.publisher.publish(game.path, BAD, source='unity', build='1.2').result()

  def written():
    return (clients.row_count(client, 'game', 'events') >= expected_events
            and clients.row_count(client, 'game', 'errors') >= 1)

  run = clients.run_streaming(
      'game_analytics', ['--input', game.subscription, '--output', '%s:game' % PROJECT],
      until=written, timeout_s=150, settle_s=5)  # a duplicate written late would show
  output = run.output
  events, errors = (clients.row_count(client, 'game', 'events'),
                    clients.row_count(client, 'game', 'errors'))
  assert (events, errors) == (expected_events, 1), output[-3000:]
  for table in ('events', 'errors'):
    schema = client.get_table('%s.game.%s' % (PROJECT, table)).schema
    assert [(f.name, f.field_type) for f in schema] == [
        (f['name'], f['type']) for f in schemas.fields('game_analytics', table)]
  (row,) = clients.rows(client, 'game', 'errors')
  assert row['job'] == 'game_analytics'
  assert row['payload'] == BAD.decode()
  assert 'build' in str(row['attributes']) and '1.2' in str(row['attributes'])
