"""tweet_sentiment: exact tables on hand-made tweets in both shapes, retweets, notices,
duplicates and bad records; per-window aggregates (TestStream for late tweets); options."""
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipelines import launch, tweet_sentiment
from pipelines.options import ConfigError
from pipelines.tweet_sentiment import JOB, TweetSentiment
from tests.tables import assert_tables_conform
from transforms import sentiment, tweets
from transforms.records import Record
from transforms.windowing import Windowing

T0 = 1795701600  # 2026-11-26T14:00:00Z


class FixedScores:
  """A backend with known answers: score by text, magnitude = |score| * 2, terms local;
  texts containing 'xx-lang' are refused like an unsupported language."""

  def __init__(self, scores):
    self._scores = dict(scores)

  def setup(self):
    pass

  def close(self):
    pass

  def stats(self):
    return {}

  def analyze(self, items):
    out = []
    for text, lang in items:
      if lang == 'xx':
        out.append(sentiment.UnsupportedLanguage('language %r is not supported' % lang))
        continue
      score = self._scores[text]
      out.append(sentiment.Analysis(score, abs(score) * 2, tuple(tweets.terms(text))))
    return out


def v1(tweet_id, second, text, user='ann', lang='en', hashtags=(), minute=0, **extra):
  status = {
      'created_at': 'Wed Nov 26 14:%02d:%02d +0000 2026' % (minute, second),
      'id': int(tweet_id), 'id_str': tweet_id, 'text': text, 'lang': lang,
      'user': {'id': 100 + len(user), 'id_str': str(100 + len(user)), 'screen_name': user},
      'entities': {'hashtags': [{'text': h, 'indices': [0, 1]} for h in hashtags]},
      'timestamp_ms': str((T0 + minute * 60 + second) * 1000 + 250),
  }
  status.update(extra)
  return status


def v2(tweet_id, second, text, user='bob', lang='en', hashtags=(), minute=0, rule_id=1,
       referenced=None, included=()):
  data = {'id': tweet_id, 'text': text, 'lang': lang, 'author_id': '200',
          'created_at': '2026-11-26T14:%02d:%02d.500Z' % (minute, second),
          'entities': {'hashtags': [{'start': 0, 'end': 1, 'tag': h} for h in hashtags]}}
  if referenced:
    data['referenced_tweets'] = [{'type': 'retweeted', 'id': referenced}]
  return {'data': data, 'includes': {'users': [{'id': '200', 'username': user, 'name': 'B'}],
                                     'tweets': list(included)},
          'matching_rules': [{'id': rule_id, 'tag': None}]}


LOVE = 'I love the Nova X camera. #NovaX'
FIRE = 'My Nova X battery caught fire! Recall it now'
MEH = 'Nova X ships today https://t.co/abc @orbitel'
OTHER = 'Lunch was fine'
LONG = ('Long review of the Nova X: the screen is great and the battery lasts all day, '
        'but the price is steep and the charger is missing from the box, '
        'so overall I am happy with it.')
SCORES = {LOVE: 0.75, FIRE: -0.5, MEH: 0.0, OTHER: 0.25, LONG: 0.25}

RECORDS = [
    v1('11', 5, LOVE, hashtags=['NovaX']),
    v2('12', 20, FIRE, rule_id=2**70 + 1),
    v1('13', 30, 'RT @ann: I love the Nova X camera. #NovaX', user='cy',
       retweeted_status=v1('11', 5, LOVE, hashtags=['NovaX'])),     # folded into 11
    v2('14', 40, 'RT @bob: My Nova X...', user='dee', referenced='12',
       included=[v2('12', 20, FIRE)['data']]),                      # folded into 12
    v1('15', 10, MEH.replace('Nova X', 'Nova X'), minute=1),
    v1('16', 20, LONG[:100] + '… https://t.co/x', minute=1, truncated=True,
       extended_tweet={'full_text': LONG, 'entities': {'hashtags': []}}),
    v1('17', 30, OTHER, minute=1),                                  # matches no keyword
    v1('11', 5, LOVE, hashtags=['NovaX']),                          # delivered twice
    {'limit': {'track': 12, 'timestamp_ms': str(T0 * 1000)}},
    {'errors': [{'title': 'operational-disconnect',
                 'disconnect_type': 'OperationalDisconnect'}]},
    v1('18', 40, 'Nova X test', lang='xx', minute=1),              # unsupported language
    {'id_str': 'nineteen', 'text': 'no id', 'created_at': 'x'},     # not a tweet
]
CUT = '{"created_at": "Wed Nov 26 14:00:50 +0000 2026", "id_str": "20", "text": "cut'
TRACK = 'nova x,#novax,recall,battery'


def records():
  lines = [json.dumps(r) for r in RECORDS] + [CUT]
  return [Record(text, 'stream.json', line=i + 1) for i, text in enumerate(lines)]


def window(minute):
  return tuple('2026-11-26T14:%02d:00.000000Z' % m for m in (minute, minute + 1))


def by_window(minute, keyword, tweets, avg_score, positive, negative, neutral):
  start, end = window(minute)
  return {'keyword': keyword, 'tweets': tweets, 'avg_score': avg_score,
          'avg_magnitude': abs(avg_score) * 2 if tweets == 1 else None,
          'positive': positive, 'negative': negative, 'neutral': neutral,
          'window_start': start, 'window_end': end, 'pane_index': None, 'pane_timing': None}


def _without_magnitude(row):
  return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()
          if k != 'avg_magnitude'}


EXPECTED_BY_WINDOW = [_without_magnitude(r) for r in [
    by_window(0, 'nova x', 2, 0.125, 1, 1, 0),
    by_window(0, '#novax', 1, 0.75, 1, 0, 0),
    by_window(0, 'recall', 1, -0.5, 0, 1, 0),
    by_window(0, 'battery', 1, -0.5, 0, 1, 0),
    by_window(1, 'nova x', 2, 0.125, 1, 0, 1),
    by_window(1, 'battery', 1, 0.25, 1, 0, 0),
]]


@pytest.fixture(scope='module')
def batch_result():
  pipeline = TestPipeline()
  tables = pipeline | beam.Create(records()) | TweetSentiment(
      FixedScores(SCORES), Windowing(window_s=60, batch_windows=True), track=TRACK,
      top_terms=3, clock=lambda: T0 + 3600.0)
  assert_that(tables['tweets'] | beam.Map(lambda r: (
      r['tweet_id'], r['created_at'], r['user_name'], r['keywords'], r['is_retweet'],
      r['sentiment_label'], r['text'] == LONG)), equal_to([
          ('11', '2026-11-26T14:00:05.250000Z', 'ann', ['nova x', '#novax'], False,
           'positive', False),
          ('12', '2026-11-26T14:00:20.500000Z', 'bob', ['nova x', 'recall', 'battery'],
           False, 'negative', False),
          ('15', '2026-11-26T14:01:10.250000Z', 'ann', ['nova x'], False, 'neutral', False),
          ('16', '2026-11-26T14:01:20.250000Z', 'ann', ['nova x', 'battery'], False,
           'positive', True)]), label='tweets')
  assert_that(tables['sentiment_by_window'] | beam.Map(_without_magnitude),
              equal_to(EXPECTED_BY_WINDOW), label='by_window')
  assert_that(tables['sentiment_by_window'] | beam.Filter(lambda r: r['keyword'] == 'nova x')
              | beam.Map(lambda r: (r['window_start'], r['avg_magnitude'])),
              equal_to([(window(0)[0], 1.25), (window(1)[0], 0.25)]), label='magnitude')
  assert_that(tables['top_terms'] | beam.Filter(lambda r: r['keyword'] == 'nova x')
              | beam.Map(lambda r: (r['window_start'], r['rank'], r['term'], r['count'])),
              equal_to([
                  (window(0)[0], 1, '#novax', 1), (window(0)[0], 2, 'battery', 1),
                  (window(0)[0], 3, 'camera', 1),
                  (window(1)[0], 1, 'battery', 1), (window(1)[0], 2, 'box', 1),
                  (window(1)[0], 3, 'charger', 1)]), label='top_terms')
  assert_that(tables['errors'] | beam.Map(lambda r: (r['stage'], r['source'])), equal_to([
      ('sentiment', 'stream.json:11'), ('decode_tweet', 'stream.json:12'),
      ('parse_json', 'stream.json:13')]), label='errors')
  assert_tables_conform(tables, JOB)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def test_tables_are_exact(batch_result):
  assert batch_result.state == 'DONE'


def test_every_record_is_accounted_for(batch_result):
  c = launch.counters(batch_result, JOB)
  # 13 records: 4 tweets; 1 redelivery + 2 retweets folded into their originals;
  # 2 notices + 1 tweet matching no keyword; 3 errors (language, not a tweet, cut)
  assert (c['duplicates'], c['filtered'], c['filtered_notices'], c['errors']) == (3, 3, 2, 3)
  assert len(records()) == 4 + c['duplicates'] + c['filtered'] + c['errors']


def test_streaming_late_tweets_update_their_window_until_allowed_lateness():
  subscription = 'projects/p/subscriptions/tweets'

  def tweet(tweet_id, second, text, arrival):
    return beam.window.TimestampedValue(
        Record(json.dumps(v1(tweet_id, second % 60, text, minute=second // 60)).encode(),
               subscription, message_id='m' + tweet_id, publish_time=arrival * 1_000_000),
        arrival)

  stream = (TestStream()
            .advance_watermark_to(T0)
            .add_elements([tweet('1', 5, LOVE, T0 + 6), tweet('2', 20, FIRE, T0 + 21),
                           tweet('1', 5, LOVE, T0 + 22)])                # redelivered
            .advance_watermark_to(T0 + 61)                               # minute 0 on time
            .add_elements([tweet('3', 30, MEH, T0 + 62)])                # late, allowed
            .advance_watermark_to(T0 + 100)
            .advance_watermark_to(T0 + 200)                              # beyond lateness
            .add_elements([tweet('4', 40, LOVE + ' again', T0 + 201)])
            .advance_watermark_to_infinity())
  scores = dict(SCORES, **{LOVE + ' again': 0.5})
  windowing = Windowing(streaming=True, window_s=60, early_firing_s=None,
                        allowed_lateness_s=60, batch_windows=True)
  with TestPipeline(options=StandardOptions(streaming=True)) as pipeline:
    tables = pipeline | stream | TweetSentiment(
        FixedScores(scores), windowing, track='nova x')
    assert_that(tables['sentiment_by_window'] | beam.Map(lambda r: (
        r['window_start'], r['tweets'], round(r['avg_score'], 6), r['pane_timing'])),
        equal_to([(window(0)[0], 2, 0.125, 'ON_TIME'),
                  (window(0)[0], 3, round(0.25 / 3, 6), 'LATE')]), label='by_window')
    # The tweet too late for its window is still a row; the redelivery is not.
    assert_that(tables['tweets'] | beam.Map(lambda r: r['tweet_id']),
                equal_to(['1', '2', '3', '4']), label='tweets')


@pytest.mark.parametrize('argv, message', [
    (['--positive_threshold', '-0.5'], 'must be above --negative_threshold'),
    (['--entities', 'api'], '--entities api needs --sentiment_backend api'),
])
def test_bad_options_stop_at_start_up(argv, message):
  with pytest.raises(ConfigError, match=message):
    tweet_sentiment.build(argv, save_main_session=False)


def test_a_threshold_outside_minus_one_to_one_is_a_usage_error(capsys):
  with pytest.raises(SystemExit) as exit_info:
    tweet_sentiment.build(['--positive_threshold', '1.5'], save_main_session=False)
  assert exit_info.value.code == 2
  assert 'must be within [-1, 1]' in capsys.readouterr().err


def test_entities_off_writes_no_top_terms():
  from apache_beam.pipeline import PipelineVisitor
  plan = tweet_sentiment.build(['--entities', 'off'], save_main_session=False)
  written = []

  class Visitor(PipelineVisitor):

    def enter_composite_transform(self, node):
      if node.full_label.startswith('Write/Write_') and node.full_label.count('/') == 1:
        written.append(node.full_label.split('_', 1)[1])

  plan.pipeline.visit(Visitor())
  assert sorted(written) == ['errors', 'sentiment_by_window', 'tweets']


def test_api_backend_against_a_local_server_loses_nothing():
  """The real client code (REST, retries, rate limit, concurrency) against a local server
  speaking the Natural Language REST API, with injected 429s, 503s and a refused language."""
  from tests.fake_language_api import FakeLanguageApi, score_document
  texts = {str(i): 'Nova X review %d: I love the camera. The battery is terrible.' % i
           for i in range(30)}
  texts['5'] = 'Nova X is great'           # 429 twice, then answered
  texts['6'] = 'Nova X is on fire'          # 503 on every attempt: retries exhausted
  lines = [json.dumps(v1(i, int(i), text)) for i, text in texts.items()]
  lines.append(json.dumps(v1('77', 50, 'Nova X ist toll', lang='xx')))  # 400
  with FakeLanguageApi(latency_s=0.01) as fake:
    fake.fail(429, times=2, match='is great')
    fake.fail(503, times=None, match='on fire')
    backend = sentiment.ApiSentiment(
        'local', endpoint=fake.endpoint, qps=200, max_concurrency=8, max_attempts=3,
        initial_backoff_s=0.01, max_backoff_s=0.05)
    pipeline = TestPipeline()
    tables = pipeline | beam.Create(
        [Record(line, 'tweets.json', line=n + 1) for n, line in enumerate(lines)]
    ) | TweetSentiment(backend, track='nova x', batch_size=10)
    expected = [(i, score_document(text)[0]) for i, text in texts.items() if i != '6']
    assert_that(tables['tweets'] | beam.Map(lambda r: (r['tweet_id'], r['sentiment_score'])),
                equal_to(expected), label='tweets')
    assert_that(tables['errors'] | beam.Map(lambda r: (r['stage'], r['source'],
                                                       r['error'].split(':')[0])),
                equal_to([('sentiment', 'tweets.json:7', 'RetriesExhausted'),
                          ('sentiment', 'tweets.json:31', 'PermanentError')]), label='errors')
    result = pipeline.run()
    result.wait_until_finish()
    statuses = fake.statuses()
  c = launch.counters(result, JOB)
  assert c['tweets_scored'] == 29 and c['errors'] == 2
  assert statuses.count(429) == 2 and statuses.count(503) == 3 and statuses.count(400) == 1
  assert c['api_retries'] == 2 + 2


class IntendedScores(FixedScores):
  """Scores each tweet as the generator meant it (+0.5, -0.5 or 0), in every language."""

  def __init__(self, intended_by_text):
    super().__init__({text: {'positive': 0.5, 'negative': -0.5, 'neutral': 0.0}[label]
                      for text, label in intended_by_text.items()})


@pytest.fixture(scope='module')
def truth():
  from pipelines.samples import tweet_sentiment as sample
  return sample.ground_truth(sample.SAMPLE_TWEETS, sample.SAMPLE_SEED)


def test_bundled_sample_windows_match_the_generators_ground_truth(truth):
  from pipelines.launch import sample_input
  from transforms.sources import ReadRecords
  intended = {t['full_text']: t['intended'] for t in truth['original_list']}
  matched = sorted(set().union(*map(set, truth['keyword_originals'].values())))
  expected_windows = sorted(
      (window.replace('Z', '.000000Z'), keyword, count)
      for window, counts in truth['windows'].items() for keyword, count in counts.items())
  pipeline = TestPipeline()
  tables = (pipeline | ReadRecords(sample_input(JOB), job=JOB)
            | TweetSentiment(IntendedScores(intended), track=','.join(truth['track'])))
  assert_that(tables['tweets'] | beam.Map(lambda r: r['tweet_id']), equal_to(matched),
              label='tweets')
  assert_that(tables['sentiment_by_window'] | beam.Map(
      lambda r: (r['window_start'], r['keyword'], r['tweets'])),
      equal_to(expected_windows), label='windows')
  result = pipeline.run()
  result.wait_until_finish()
  c = launch.counters(result, JOB)
  assert c['records_read'] == truth['records']
  assert c['errors'] == truth['errors']
  assert c['filtered_notices'] == truth['filtered']
  assert c['records_read'] == len(matched) + c['duplicates'] + c['filtered'] + c['errors']


def test_bundled_sample_runs_offline_with_the_local_model(tmp_path, truth):
  from tests.tables import assert_written_tables_conform, read_table
  tweet_sentiment.run(['--output', str(tmp_path), '--track', ','.join(truth['track'])],
                      save_main_session=False)
  c = json.loads((tmp_path / '_metrics.json').read_text())['counters']
  assert c['records_read'] == truth['records']
  assert c['errors'] == truth['errors']      # only the broken records: nothing else fails
  assert c['records_read'] == c['rows_tweets'] + c['duplicates'] + c['filtered'] + c['errors']
  assert_written_tables_conform(tmp_path, JOB)
  intended = {t['id']: t['intended'] for t in truth['original_list']}
  rows = read_table(tmp_path, 'tweets')
  assert {r['lang'] for r in rows} <= {'en', 'und'}
  agree = sum(r['sentiment_label'] == intended[r['tweet_id']] for r in rows)
  assert agree >= 0.95 * len(rows)          # VADER reads the tweets as they were written


def test_the_tweets_own_record_wins_over_copies_from_retweets_in_any_order():
  own = v1('11', 5, LOVE, hashtags=['NovaX'])
  embedded = dict(v1('11', 5, LOVE, hashtags=['NovaX']))
  del embedded['timestamp_ms']                      # as inside a real retweeted_status
  retweet = v1('13', 30, 'RT @ann: ' + LOVE, user='cy', retweeted_status=embedded)
  for order in ([retweet, own], [own, retweet]):
    lines = [json.dumps(r) for r in order]
    with TestPipeline() as pipeline:
      tables = pipeline | beam.Create(
          [Record(line, 'stream.json', line=i + 1) for i, line in enumerate(lines)]
      ) | TweetSentiment(FixedScores(SCORES), track='nova x')
      assert_that(tables['tweets'] | beam.Map(lambda r: (r['tweet_id'], r['created_at'])),
                  equal_to([('11', '2026-11-26T14:00:05.250000Z')]))


def test_keep_alive_messages_are_filtered_and_times_out_of_range_are_errors():
  messages = [b'\r\n', b'  ', json.dumps(v1('11', 5, LOVE)).encode(),
              json.dumps(dict(v1('12', 5, LOVE), timestamp_ms='10000000000000000')).encode(),
              json.dumps(dict(v1('13', 5, LOVE), timestamp_ms=None,
                              created_at='Mon Jan 01 00:00:00 +0100 0001')).encode()]
  with TestPipeline() as pipeline:
    tables = pipeline | beam.Create([
        Record(m, 'projects/p/subscriptions/s', message_id=str(i), publish_time=T0 * 10**6)
        for i, m in enumerate(messages)]) | TweetSentiment(FixedScores(SCORES))
    assert_that(tables['tweets'] | beam.Map(lambda r: r['tweet_id']), equal_to(['11']),
                label='tweets')
    assert_that(tables['errors'] | beam.Map(lambda r: r['error']), equal_to([
        'tweet time 10000000000000000000 us is outside 2006-2099',
        'tweet time -62135600400000000 us is outside 2006-2099']), label='errors')


def test_one_api_client_per_process_however_many_dofn_instances():
  import pickle
  from tests.fake_language_api import FakeLanguageApi
  with FakeLanguageApi() as fake:
    backend = sentiment.ApiSentiment('local', endpoint=fake.endpoint, qps=50)
    copies = [pickle.loads(pickle.dumps(backend)) for _ in range(3)]
    for copy in copies:
      copy.setup()
    assert len({id(copy._client) for copy in copies}) == 1
    copies[0].analyze([('I love it', 'en')])
    copies[1].analyze([('I love it', 'en')])
    assert copies[2].stats()['calls'] == 2      # reported once, by whoever asks first
    assert copies[0].stats() == {}


def test_api_entities_become_the_terms_and_are_asked_only_for_scored_tweets():
  from tests.fake_language_api import FakeLanguageApi, extract_entities, score_document
  good = 'Orbitel recalls the Nova X. Google and Samsung watch.'
  with FakeLanguageApi() as fake:
    fake.fail(400, times=None, match='refused')
    backend = sentiment.ApiSentiment('api', endpoint=fake.endpoint, qps=100, max_attempts=2,
                                     initial_backoff_s=0.01)
    backend.setup()
    [scored, refused] = backend.analyze([(good, 'en'), ('refused text', 'en')])
    paths = [r.path for r in fake.requests]
  assert scored == sentiment.Analysis(
      score_document(good)[0], score_document(good)[1],
      tuple(name.lower() for name, _, _ in extract_entities(good)))
  assert isinstance(refused, Exception)
  assert sum(p.endswith(':analyzeEntities') for p in paths) == 1
