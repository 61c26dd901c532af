"""LanguageApi against a local server speaking the real Natural Language v1 REST API: parsed
values, credentials, retries, dead-letter errors, concurrency and the rate limit as the server
sees them."""
import logging
import pickle
import socket
import threading
import time

import google.auth
import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.oauth2 import credentials as oauth2_credentials

from tests.fake_language_api import (
    ENTITIES_PATH, SENTIMENT_PATH, FakeLanguageApi, extract_entities, score_document)
from transforms.language_api import (
    Entity, LanguageApi, PermanentError, RateLimiter, RetriesExhausted, Sentiment,
    resolve_endpoint)


@pytest.fixture
def fake():
  with FakeLanguageApi() as server:
    yield server


@pytest.fixture
def make_api():
  apis = []

  def make(endpoint, **kwargs):
    kwargs.setdefault('initial_backoff_s', 0.01)
    kwargs.setdefault('max_backoff_s', 0.05)
    kwargs.setdefault('qps', 1000)
    api = LanguageApi(endpoint=endpoint, **kwargs)
    apis.append(api)
    return api

  yield make
  for api in apis:
    api.close()


def expected(text, language='en'):
  score, magnitude, sentences = score_document(text)
  return Sentiment(score, magnitude, language, sentences)


# Parsing.

def test_sentiment_is_parsed_exactly(fake, make_api):
  api = make_api(fake.endpoint)
  assert api.sentiment('I love this phone. The battery is terrible!', 'en') == Sentiment(
      score=0.0, magnitude=1.0, language='en',
      sentences=(('I love this phone.', 0.5, 0.5), ('The battery is terrible!', -0.5, 0.5)))
  # 0.7 and 0.6 are not float32 values: they must not come back as 0.699999988079071.
  assert api.sentiment('Amazing, great camera! Love it.', 'en') == Sentiment(
      0.6, 1.2, 'en', (('Amazing, great camera!', 0.7, 0.7), ('Love it.', 0.5, 0.5)))


def test_request_is_the_documented_rest_call(fake, make_api):
  make_api(fake.endpoint).sentiment('Café ☕ is great', 'fr')
  [record] = fake.requests
  assert record.path == SENTIMENT_PATH
  # The REST transport sends enums as numbers and says so: PLAIN_TEXT = 1, UTF8 = 1.
  assert record.body == {
      'document': {'type': 1, 'content': 'Café ☕ is great', 'language': 'fr'},
      'encodingType': 1}
  assert record.query == {'$alt': ['json;enum-encoding=int']}


@pytest.mark.parametrize('language', [None, '', 'und'])
def test_unknown_language_is_left_to_detection(fake, make_api, language):
  result = make_api(fake.endpoint).sentiment('so happy', language)
  assert fake.requests[0].body['document'] == {'type': 1, 'content': 'so happy'}
  assert result == expected('so happy', 'en')  # the language the API detected


def test_entities_are_parsed_exactly(fake, make_api):
  text = 'Google Pixel battery died. Google support was great. Met Bob in London.'
  result = make_api(fake.endpoint).entities(text, 'en')
  assert result == [
      Entity('Google', 'ORGANIZATION', 0.2857), Entity('Pixel', 'CONSUMER_GOOD', 0.1429),
      Entity('battery', 'CONSUMER_GOOD', 0.1429), Entity('support', 'OTHER', 0.1429),
      Entity('Bob', 'OTHER', 0.1429), Entity('London', 'LOCATION', 0.1429)]
  assert result == [Entity(*e) for e in extract_entities(text)]
  assert fake.requests[0].path == ENTITIES_PATH


def test_text_without_entities(fake, make_api):
  assert make_api(fake.endpoint).entities('so happy today', 'en') == []


# Credentials.

def test_local_endpoint_needs_no_credentials(fake, make_api, monkeypatch):
  def no_adc(*args, **kwargs):
    raise AssertionError('ADC looked up for a local endpoint')
  monkeypatch.setattr(google.auth, 'default', no_adc)
  api = make_api(fake.endpoint)
  assert api.client.transport.host == fake.endpoint  # plain http, no :443 added
  assert api.sentiment('great', 'en') == expected('great')
  assert fake.requests[0].authorization is None and fake.requests[0].api_key is None


def test_remote_endpoint_uses_application_default_credentials(monkeypatch):
  calls = []

  def adc(*args, **kwargs):
    calls.append(kwargs)
    return AnonymousCredentials(), 'project'
  monkeypatch.setattr(google.auth, 'default', adc)
  api = LanguageApi()
  api.connect()  # builds the client only: nothing is sent
  assert len(calls) == 1
  assert api.client.transport.host == 'https://language.googleapis.com'
  api.close()


def test_api_key_is_sent(make_api):
  with FakeLanguageApi(required_api_key='k-123') as fake:
    assert make_api(fake.endpoint, api_key='k-123').sentiment('great', 'en') == expected('great')
    assert fake.requests[0].api_key == 'k-123' and fake.requests[0].authorization is None
    with pytest.raises(PermanentError) as missing:
      make_api(fake.endpoint).sentiment('great', 'en')
    assert missing.value.code == 403 and missing.value.attempts == 1
    with pytest.raises(PermanentError) as wrong:
      make_api(fake.endpoint, api_key='nope').sentiment('great', 'en')
    assert wrong.value.code == 400 and 'API key not valid' in str(wrong.value)


def test_explicit_credentials_are_used(fake, make_api):
  creds = oauth2_credentials.Credentials(token='tok-1')
  make_api(fake.endpoint, credentials=creds).sentiment('great', 'en')
  assert fake.requests[0].authorization == 'Bearer tok-1'


def test_api_key_and_credentials_are_exclusive():
  with pytest.raises(ValueError):
    LanguageApi(api_key='k', credentials=AnonymousCredentials())


@pytest.mark.parametrize('endpoint,resolved', [
    (None, (None, False)),
    ('http://127.0.0.1:8080', ('http://127.0.0.1:8080', True)),
    ('http://fake-language:8080', ('http://fake-language:8080', True)),
    ('127.0.0.1:8080', ('http://127.0.0.1:8080', True)),
    ('localhost:8080', ('http://localhost:8080', True)),
    ('https://localhost:8443', ('https://localhost:8443', True)),
    ('language.googleapis.com', ('language.googleapis.com', False)),
    ('https://eu-language.googleapis.com', ('https://eu-language.googleapis.com', False)),
])
def test_resolve_endpoint(endpoint, resolved):
  assert resolve_endpoint(endpoint) == resolved


# Retries and errors.

def test_429_twice_then_success(fake, make_api):
  fake.fail(429, times=2)
  api = make_api(fake.endpoint)
  assert api.sentiment('great', 'en') == expected('great')
  assert fake.statuses() == [429, 429, 200]
  assert api.stats.snapshot() == {'calls': 1, 'attempts': 3, 'retries': 2, 'successes': 1,
                                  'permanent_failures': 0, 'exhausted': 0}


def test_503_beyond_the_budget_is_retries_exhausted(fake, make_api):
  fake.fail(503, times=None)
  api = make_api(fake.endpoint, max_attempts=4)
  with pytest.raises(RetriesExhausted) as info:
    api.sentiment('great', 'en')
  assert info.value.attempts == 4 and info.value.code == 503
  assert isinstance(info.value.__cause__, api_exceptions.ServiceUnavailable)
  assert fake.statuses() == [503] * 4
  assert api.stats.attempts == 4 and api.stats.retries == 3 and api.stats.exhausted == 1


def test_library_default_retry_is_off(fake, make_api):
  # The generated client retries 503 for up to 600 s by default; only our budget may apply.
  fake.fail(503, times=None)
  with pytest.raises(RetriesExhausted):
    make_api(fake.endpoint, max_attempts=1).sentiment('great', 'en')
  assert fake.statuses() == [503]


@pytest.mark.parametrize('status', [500, 502, 504])
def test_server_errors_are_retried(fake, make_api, status):
  fake.fail(status, times=1)
  assert make_api(fake.endpoint).entities('Google', 'en') == [Entity('Google', 'ORGANIZATION', 1)]
  assert fake.statuses() == [status, 200]


def test_unsupported_language_is_permanent_after_one_attempt(fake, make_api):
  api = make_api(fake.endpoint)
  with pytest.raises(PermanentError) as info:
    api.sentiment('bonjour', 'xx')
  assert info.value.attempts == 1 and info.value.code == 400
  assert 'The language xx is not supported for document_sentiment analysis.' in str(info.value)
  assert isinstance(info.value.__cause__, api_exceptions.BadRequest)
  assert fake.statuses() == [400]
  assert api.stats.permanent_failures == 1 and api.stats.retries == 0


@pytest.mark.parametrize('status', [403, 404])
def test_client_errors_are_permanent(fake, make_api, status):
  fake.fail(status, times=None)
  with pytest.raises(PermanentError) as info:
    make_api(fake.endpoint).entities('Google', 'en')
  assert info.value.code == status and fake.statuses() == [status]


def test_connection_refused_is_retried_then_exhausted(make_api):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  api = make_api('http://127.0.0.1:%d' % port, max_attempts=3)
  with pytest.raises(RetriesExhausted) as info:
    api.sentiment('great', 'en')
  assert info.value.attempts == 3 and info.value.code is None
  assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)


def test_read_timeout_is_retried_then_exhausted(make_api):
  with FakeLanguageApi(latency_s=0.5) as fake:
    api = make_api(fake.endpoint, timeout_s=0.1, max_attempts=2)
    with pytest.raises(RetriesExhausted) as info:
      api.sentiment('great', 'en')
    assert info.value.attempts == 2 and len(fake.requests) == 2
    assert isinstance(info.value.__cause__, requests.exceptions.Timeout)


def test_errors_pickle_with_their_details():
  err = pickle.loads(pickle.dumps(PermanentError('bad language', 1, 400)))
  assert (str(err), err.attempts, err.code) == ('bad language', 1, 400)


# map.

def test_map_keeps_order_and_puts_failures_in_place(fake, make_api):
  fake.fail(503, times=None, match='boom')
  api = make_api(fake.endpoint, max_attempts=3, max_concurrency=4)
  texts = ['I love it', 'boom, terrible', 'bonjour', 'great day. bad night!', 'happy', 'sad']
  items = [(t, 'en') for t in texts]
  items[2] = ('bonjour', 'xx')
  items[4] = ('happy', None)
  results = api.map('sentiment', items)
  assert len(results) == 6
  assert isinstance(results[1], RetriesExhausted) and results[1].attempts == 3
  assert isinstance(results[2], PermanentError) and results[2].attempts == 1
  for i in (0, 3, 4, 5):
    assert results[i] == expected(texts[i]), i
  assert api.stats.snapshot() == {'calls': 6, 'attempts': 8, 'retries': 2, 'successes': 4,
                                  'permanent_failures': 1, 'exhausted': 1}


def test_map_entities_and_edge_cases(fake, make_api):
  api = make_api(fake.endpoint)
  texts = ['Google rocks', 'I met Ann in Paris', 'nothing here']
  assert api.map('entities', [(t, 'en') for t in texts]) == [
      [Entity(*e) for e in extract_entities(t)] for t in texts]
  assert api.map('entities', []) == []
  assert api.map('sentiment', [('great', 'en')]) == [expected('great')]
  with pytest.raises(ValueError):
    api.map('syntax', [('great', 'en')])


# Concurrency and rate limit, measured at the server.

def test_map_runs_concurrently_within_max_concurrency(make_api):
  with FakeLanguageApi(latency_s=0.05) as fake:
    api = make_api(fake.endpoint, max_concurrency=8, qps=1000)
    texts = ['text %d is great' % i for i in range(40)]
    start = time.monotonic()
    results = api.map('sentiment', [(t, 'en') for t in texts])
    elapsed = time.monotonic() - start
    assert results == [expected(t) for t in texts]
    assert elapsed < 40 * 0.05 / 2
    assert 1 < fake.max_in_flight() <= 8


def test_threads_sharing_an_instance_stay_within_max_concurrency(make_api):
  with FakeLanguageApi(latency_s=0.05) as fake:
    api = make_api(fake.endpoint, max_concurrency=3, qps=1000)
    threads = [threading.Thread(target=api.sentiment, args=('great', 'en')) for _ in range(12)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    assert len(fake.requests) == 12 and fake.max_in_flight() == 3


def test_more_than_ten_connections_reuse_the_pool(make_api, caplog):
  with FakeLanguageApi(latency_s=0.05) as fake, caplog.at_level(logging.WARNING):
    api = make_api(fake.endpoint, max_concurrency=16, qps=1000)
    assert all(isinstance(r, Sentiment) for r in api.map('sentiment', [('great', 'en')] * 48))
    assert 10 < fake.max_in_flight() <= 16
  assert 'Connection pool is full' not in caplog.text


def test_rate_limit_holds_at_the_server(fake, make_api):
  api = make_api(fake.endpoint, qps=20, max_concurrency=8)
  start = time.monotonic()
  results = api.map('sentiment', [('great %d' % i, 'en') for i in range(30)])
  elapsed = time.monotonic() - start
  assert all(isinstance(r, Sentiment) for r in results)
  assert elapsed >= 29 / 20 - 0.05
  assert fake.max_in_window(1.0) <= 20 + 1  # qps + burst


def test_retries_are_rate_limited_too(fake, make_api):
  fake.fail(429, times=6)
  api = make_api(fake.endpoint, qps=20, max_concurrency=8, initial_backoff_s=0.001,
                 max_backoff_s=0.001)
  start = time.monotonic()
  results = api.map('sentiment', [('great %d' % i, 'en') for i in range(30)])
  elapsed = time.monotonic() - start
  assert all(isinstance(r, Sentiment) for r in results)
  assert len(fake.requests) == 36 and api.stats.retries == 6
  assert elapsed >= 35 / 20 - 0.05
  assert fake.max_in_window(1.0) <= 20 + 1


# RateLimiter with a fake clock.

class FakeClock:
  def __init__(self):
    self.now = 100.0
    self.sleeps = []

  def __call__(self):
    return self.now

  def sleep(self, seconds):
    self.sleeps.append(round(seconds, 9))
    self.now += seconds


def test_rate_limiter_spaces_requests_strictly():
  clock = FakeClock()
  limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
  grants = []
  for _ in range(5):
    limiter.acquire()
    grants.append(round(clock.now - 100, 9))
  assert grants == [0, 0.1, 0.2, 0.3, 0.4]
  assert clock.sleeps == [0.1] * 4


def test_rate_limiter_burst_and_refill_cap():
  clock = FakeClock()
  limiter = RateLimiter(10, burst=3, clock=clock, sleep=clock.sleep)
  assert [limiter.acquire() for _ in range(4)] == [0, 0, 0, pytest.approx(0.1)]
  clock.now += 60  # a long idle spell saves up at most `burst` tokens
  assert [round(limiter.acquire(), 9) for _ in range(5)] == [0, 0, 0, 0.1, 0.1]


def test_rate_limiter_partial_refill():
  clock = FakeClock()
  limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
  limiter.acquire()
  clock.now += 0.1  # 0.4 of a token back
  assert limiter.acquire() == pytest.approx(0.15)


def test_rate_limiter_reserves_slots_for_waiting_threads():
  # Concurrent callers get successive slots, not the same one.
  clock = FakeClock()
  lock = threading.Lock()
  waits = []
  limiter = RateLimiter(10, clock=clock, sleep=lambda s: None)

  def take():
    w = limiter.acquire()
    with lock:
      waits.append(round(w, 9))
  threads = [threading.Thread(target=take) for _ in range(8)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert sorted(waits) == [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def test_rate_limiter_rejects_bad_settings():
  with pytest.raises(ValueError):
    RateLimiter(0)
  with pytest.raises(ValueError):
    RateLimiter(5, burst=0)


# Lifecycle.

def test_instance_pickles_for_a_dofn_and_reconnects(fake):
  api = LanguageApi(endpoint=fake.endpoint, qps=50)
  api.sentiment('great', 'en')
  copy = pickle.loads(pickle.dumps(api))
  assert copy.stats.calls == 0 and copy.qps == 50
  with copy:
    assert copy.sentiment('great', 'en') == expected('great')
  api.close()


# The fake itself: string enums and offsets when the caller does not ask for numbers.

def test_fake_speaks_the_rest_shapes(fake):
  text = 'Café is great. I hate fire!'
  body = {'document': {'type': 'PLAIN_TEXT', 'content': text}, 'encodingType': 'UTF8'}
  got = requests.post(fake.endpoint + SENTIMENT_PATH, json=body, timeout=5).json()
  assert got == {
      'documentSentiment': {'magnitude': 1.2, 'score': -0.1}, 'language': 'en',
      'sentences': [
          {'text': {'content': 'Café is great.', 'beginOffset': 0},
           'sentiment': {'magnitude': 0.5, 'score': 0.5}},
          {'text': {'content': 'I hate fire!', 'beginOffset': 16},  # é is 2 UTF-8 bytes
           'sentiment': {'magnitude': 0.7, 'score': -0.7}}]}
  body['encodingType'] = 'UTF16'
  got = requests.post(fake.endpoint + SENTIMENT_PATH, json=body, timeout=5).json()
  assert got['sentences'][1]['text']['beginOffset'] == 15
  body = {'document': {'type': 'PLAIN_TEXT', 'content': 'Ask Google', 'language': 'en'},
          'encodingType': 'UTF8'}
  got = requests.post(fake.endpoint + ENTITIES_PATH, json=body, timeout=5).json()
  assert got == {'language': 'en', 'entities': [{
      'name': 'Google', 'type': 'ORGANIZATION', 'metadata': {}, 'salience': 1.0,
      'mentions': [{'text': {'content': 'Google', 'beginOffset': 4}, 'type': 'PROPER'}]}]}


def test_fake_error_bodies(fake):
  fake.fail(429, times=1)
  body = {'document': {'type': 'PLAIN_TEXT', 'content': 'x'}}
  got = requests.post(fake.endpoint + SENTIMENT_PATH, json=body, timeout=5)
  assert got.status_code == 429
  assert got.json()['error']['status'] == 'RESOURCE_EXHAUSTED'
  assert got.json()['error']['code'] == 429
  got = requests.post(fake.endpoint + '/v1/documents:nope', json=body, timeout=5)
  assert got.status_code == 404 and got.json()['error']['status'] == 'NOT_FOUND'
  got = requests.post(fake.endpoint + SENTIMENT_PATH, json={'document': {}}, timeout=5)
  assert got.json() == {'error': {
      'code': 400, 'message': 'One of content, or gcs_content_uri must be set.',
      'status': 'INVALID_ARGUMENT'}}
