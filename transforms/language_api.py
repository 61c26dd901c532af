"""Cloud Natural Language API (v1) client for Beam DoFns: rate-limited, retried, concurrent.

One `LanguageApi` is built per worker process (in `DoFn.setup()`, or shared with
`apache_beam.utils.shared`) and used from many threads. Every HTTP attempt, retries included,
first takes a token from the instance's `RateLimiter`, so `qps` bounds what the API sees from
that instance. The quota is per project, so on Dataflow pass
qps = project quota / (workers * processes per worker that each build one).

Failures come out as two kinds, so the job can decide per record: `PermanentError` (the request
can never succeed: unsupported language, bad key, ...) goes to dead letters, `RetriesExhausted`
(429/5xx/timeouts that outlasted `max_attempts`) is an outage the job may retry or dead-letter.

The transport is REST (`requests`), not gRPC, so the same client can talk plain HTTP to a
local fake or emulator (`endpoint='http://127.0.0.1:PORT'`, no credentials needed).
"""
import concurrent.futures
import struct
import threading
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import language_v1

# The API-neutral plumbing (errors, rate limiter, counters) is shared with the Vision client.
from transforms.shared_api import (  # noqa: F401  (re-exported)
    ApiError, ApiStats, PermanentError, RateLimiter, RetriesExhausted, resolve_endpoint)


class Sentiment(NamedTuple):
  score: float
  magnitude: float
  language: Optional[str]
  sentences: Tuple[Tuple[str, float, float], ...]  # (text, score, magnitude)


class Entity(NamedTuple):
  name: str
  type: str  # Entity.Type name: PERSON, ORGANIZATION, CONSUMER_GOOD, OTHER, ...
  salience: float


# Failures worth another attempt. 429 arrives as TooManyRequests over REST (ResourceExhausted,
# its subclass, over gRPC); DeadlineExceeded is a GatewayTimeout. requests raises its own
# errors for refused/reset connections and timeouts (ConnectTimeout is a ConnectionError).
TRANSIENT_ERRORS = (
    api_exceptions.TooManyRequests,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.ServiceUnavailable,
    api_exceptions.GatewayTimeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    auth_exceptions.TransportError,  # token refresh could not reach the metadata server
)
is_transient = api_retry.if_exception_type(*TRANSIENT_ERRORS)


def _f32(value: float) -> float:
  """The shortest decimal with the same float32: scores travel as proto floats, so the API's
  0.3 would otherwise read back as 0.30000001192092896."""
  packed = struct.pack('<f', value)
  for digits in range(1, 10):
    candidate = float('%.*g' % (digits, value))
    if struct.pack('<f', candidate) == packed:
      return candidate
  return value


def _enum_name(value: Any) -> str:
  return getattr(value, 'name', None) or str(value)


class LanguageApi:
  """Natural Language v1 over REST for one worker process; safe to share between threads.

  Rate limit and `max_concurrency` are per instance: on Dataflow give each worker process
  qps = project quota / (workers * processes per worker). Credentials: `credentials` if given,
  else `api_key` if given, else none for a local endpoint, else Application Default Credentials.
  Each attempt gets `timeout_s`; a record gets at most `max_attempts` attempts with exponential
  backoff (full jitter) from `initial_backoff_s`, doubling up to `max_backoff_s`.
  """

  RPCS = {'sentiment': 'analyze_sentiment', 'entities': 'analyze_entities'}

  def __init__(self, endpoint: Optional[str] = None, api_key: Optional[str] = None,
               qps: float = 10, max_concurrency: int = 8, timeout_s: float = 30,
               max_attempts: int = 6, initial_backoff_s: float = 0.2, max_backoff_s: float = 20,
               credentials=None):
    if api_key and credentials is not None:
      raise ValueError('api_key and credentials are mutually exclusive')
    if max_concurrency < 1 or max_attempts < 1:
      raise ValueError('max_concurrency and max_attempts must be >= 1')
    self.endpoint, self.local = resolve_endpoint(endpoint)
    self.api_key = api_key
    self.qps = qps
    self.max_concurrency = max_concurrency
    self.timeout_s = timeout_s
    self.max_attempts = max_attempts
    self.initial_backoff_s = initial_backoff_s
    self.max_backoff_s = max_backoff_s
    self.credentials = credentials
    self._init_runtime()

  def _init_runtime(self) -> None:
    self.stats = ApiStats()
    self.rate_limiter = RateLimiter(self.qps)
    self._slots = threading.BoundedSemaphore(self.max_concurrency)
    self._lock = threading.Lock()
    self._client: Optional[language_v1.LanguageServiceClient] = None
    self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None

  # A DoFn holding an unconnected instance pickles; the client, threads and counters do not.
  def __getstate__(self) -> Dict[str, Any]:
    state = dict(self.__dict__)
    for name in ('stats', 'rate_limiter', '_slots', '_lock', '_client', '_pool'):
      state.pop(name, None)
    return state

  def __setstate__(self, state: Dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._init_runtime()

  def __enter__(self) -> 'LanguageApi':
    self.connect()
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  @property
  def client(self) -> language_v1.LanguageServiceClient:
    self.connect()
    return self._client

  def connect(self) -> None:
    """Builds the client (from DoFn.setup); idempotent and thread-safe."""
    with self._lock:
      if self._client is not None:
        return
      options: Dict[str, str] = {}
      if self.endpoint:
        options['api_endpoint'] = self.endpoint
      if self.api_key:
        options['api_key'] = self.api_key  # the client sends it as x-goog-api-key
      credentials = self.credentials
      if credentials is None and not self.api_key and self.local:
        credentials = AnonymousCredentials()  # no ADC lookup for a fake / emulator
      client = language_v1.LanguageServiceClient(
          credentials=credentials, transport='rest', client_options=options or None)
      self._widen_connection_pool(client)
      self._client = client

  def _widen_connection_pool(self, client: language_v1.LanguageServiceClient) -> None:
    """requests keeps 10 connections per host; more concurrent calls would each open (and
    TLS-handshake) a new one and log 'Connection pool is full'. Best effort: the session is
    the transport's private attribute, and an mTLS session keeps its own adapter."""
    session = getattr(client.transport, '_session', None)
    if (not isinstance(session, requests.Session) or getattr(session, 'is_mtls', False)
        or self.max_concurrency <= 10):
      return
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.max_concurrency)
    session.mount('https://', adapter)
    session.mount('http://', adapter)

  def close(self) -> None:
    """Stops the worker threads and closes connections (from DoFn.teardown)."""
    with self._lock:
      pool, self._pool = self._pool, None
      client, self._client = self._client, None
    if pool is not None:
      pool.shutdown(wait=True)
    if client is not None:
      client.transport.close()

  def sentiment(self, text: str, language: Optional[str] = None) -> Sentiment:
    response = self._call('analyze_sentiment', text, language)
    return Sentiment(
        score=_f32(response.document_sentiment.score),
        magnitude=_f32(response.document_sentiment.magnitude),
        language=response.language or _language(language),
        sentences=tuple(
            (s.text.content, _f32(s.sentiment.score), _f32(s.sentiment.magnitude))
            for s in response.sentences))

  def entities(self, text: str, language: Optional[str] = None) -> List[Entity]:
    response = self._call('analyze_entities', text, language)
    return [Entity(e.name, _enum_name(e.type_), _f32(e.salience)) for e in response.entities]

  def map(self, fn_name: str, items: Sequence[Tuple[str, Optional[str]]]
          ) -> List[Union[Sentiment, List[Entity], ApiError]]:
    """fn_name ('sentiment' | 'entities') over (text, language) items, up to max_concurrency at
    once; results in input order, a PermanentError / RetriesExhausted in place of each failure."""
    if fn_name not in self.RPCS:
      raise ValueError('fn_name must be one of %s, got %r' % (sorted(self.RPCS), fn_name))
    fn = getattr(self, fn_name)

    def one(item):
      text, language = (item, None) if isinstance(item, str) else item
      try:
        return fn(text, language)
      except ApiError as exc:
        return exc
      except Exception as exc:  # one bad record must not sink the batch
        return PermanentError('%s: %s: %s' % (fn_name, type(exc).__name__, exc))

    items = list(items)
    if len(items) <= 1 or self.max_concurrency == 1:
      return [one(item) for item in items]
    return list(self._executor().map(one, items))

  def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
    with self._lock:
      if self._pool is None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_concurrency, thread_name_prefix='language-api')
      return self._pool

  def _call(self, rpc_name: str, text: str, language: Optional[str]) -> Any:
    """One RPC with our retry around it: each attempt takes a concurrency slot, then a rate
    token, then calls the client with retry=None (its default retry would retry 503s for up to
    600 s on top of ours, outside the rate limiter)."""
    method = getattr(self.client, rpc_name)
    document = language_v1.Document(content=text, type_=language_v1.Document.Type.PLAIN_TEXT)
    if _language(language):
      document.language = language
    attempts = 0

    def attempt():
      nonlocal attempts
      attempts += 1
      self.stats.add('attempts')
      with self._slots:
        self.rate_limiter.acquire()
        return method(document=document, encoding_type=language_v1.EncodingType.UTF8,
                      retry=None, timeout=self.timeout_s)

    retry = api_retry.Retry(
        predicate=lambda exc: is_transient(exc) and attempts < self.max_attempts,
        initial=self.initial_backoff_s, maximum=self.max_backoff_s, multiplier=2.0,
        timeout=None,  # the budget is max_attempts; each attempt has timeout_s
        on_error=lambda exc: self.stats.add('retries'))
    self.stats.add('calls')
    try:
      response = retry(attempt)()
    except Exception as exc:  # every failure becomes one of our two kinds
      code = getattr(exc, 'code', None)
      code = code if isinstance(code, int) else None
      noun = 'attempt' if attempts == 1 else 'attempts'
      message = '%s failed after %d %s: %s: %s' % (
          rpc_name, attempts, noun, type(exc).__name__, exc)
      if is_transient(exc):
        self.stats.add('exhausted')
        raise RetriesExhausted(message, attempts, code) from exc
      self.stats.add('permanent_failures')
      raise PermanentError(message, attempts, code) from exc
    self.stats.add('successes')
    return response


def _language(language: Optional[str]) -> Optional[str]:
  """None for an unknown language ('und' is BCP-47 for undetermined): let the API detect it."""
  return None if not language or language == 'und' else language
