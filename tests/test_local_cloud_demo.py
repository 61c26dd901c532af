"""make run-local-cloud: the producers' messages, and the demo itself on the emulators."""
import base64
import json

import pytest

from localcloud import demo
from tests.emulator_fixtures import cloud  # noqa: F401 (the module fixture)


def test_a_log_sink_message_carries_its_entry_time_as_the_sink_does():
  messages = list(demo.log_messages())
  assert len(messages) == 2971  # the sink's export files, one record each
  stamped = [(json.loads(data), attributes) for data, attributes in messages if attributes]
  assert len(stamped) > 2800
  for entry, attributes in stamped:
    assert attributes == {'logging.googleapis.com/timestamp': entry['timestamp']}


def test_saved_iot_messages_are_published_again_as_the_messages_they_hold():
  messages = list(demo.iot_messages())
  saved = [(data, attributes) for data, attributes in messages if attributes]
  assert len(saved) > 1000 and all('deviceId' in a for _, a in saved)
  # The first saved message of the bundled files, by publish time: its data, decoded.
  first = min((json.loads(line) for line in open(
      demo.os.path.join(demo.SAMPLES, 'iot_telemetry', 'messages-camel.json'))
      if '"publishTime"' in line and '"data"' in line),
      key=lambda m: m['publishTime'])
  assert base64.b64decode(first['data']) in [data for data, _ in saved[:20]]
  assert not any(data.startswith(b'{"@type"') or b'"message":{' in data for data, _ in saved)


def test_game_and_tweet_producers_send_each_record_once():
  assert len(list(demo.game_messages())) == 2268
  assert {tuple(a.items()) for _, a in demo.game_messages()} == {(('producer', 'game-server'),)}
  assert len(list(demo.tweet_messages())) == 1325


@pytest.mark.integration
def test_the_demo_streams_tweets_into_bigquery_and_prints_the_counts(cloud, capsys):  # noqa: F811
  assert demo.main(['--jobs', 'tweet_sentiment', '--timeout', '240', '--quiet', '10']) == 0
  printed = capsys.readouterr().out
  assert 'published  1325 messages to projects/local-project/topics/tweet_sentiment' in printed
  counts = {line.split()[0]: int(line.split()[1]) for line in printed.splitlines()
            if line.endswith(' rows')}
  assert counts['tweets'] == 584  # as many as a batch run of the same messages
  assert counts['sentiment_by_window'] > 0 and counts['top_terms'] > 0
  assert counts['errors'] > 0
