"""What every remote-API client here shares: one client per worker process, the errors a
record is dead-lettered with, a client-side rate limit and thread-safe counters.

Dataflow runs a DoFn instance per harness thread; a client each would multiply the
connections and, worse, the client-side rate limit. `beam.utils.shared` keeps one per
process and configuration. The API key is read from the environment on the worker, so it
never enters the pickled job graph.
"""
import os
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

from apache_beam.utils import shared


class SharedClient:
  """The client (weakly referenceable, as `shared` needs) and the counts reported so far."""

  def __init__(self, api):
    self.api = api
    self._reported: Dict[str, int] = {}
    self._lock = threading.Lock()

  def take_stats(self) -> Dict[str, int]:
    """The process's counts not reported yet: each is reported once, whichever DoFn
    instance takes it."""
    with self._lock:
      now = self.api.stats.snapshot()
      delta = {k: v - self._reported.get(k, 0) for k, v in now.items()
               if v != self._reported.get(k, 0)}
      self._reported = now
      return delta


class SharedApi:
  """`api_class(**options)`, connected once per process: call `acquire()` in DoFn.setup()."""

  def __init__(self, api_class, options: Dict[str, Any], api_key_env: Optional[str] = None):
    self._api_class = api_class
    self._options = dict(options)
    self._api_key_env = api_key_env
    self._shared = shared.Shared()

  def acquire(self) -> SharedClient:
    return self._shared.acquire(self._connect, tag=repr(sorted(
        (k, v) for k, v in self._options.items() if k not in ('api_key', 'credentials'))))

  def _connect(self) -> SharedClient:
    options = dict(self._options)
    if not options.get('api_key') and self._api_key_env:
      options['api_key'] = os.environ.get(self._api_key_env) or None
    api = self._api_class(**options)
    api.connect()
    return SharedClient(api)


class ApiError(Exception):
  """A failed request; `attempts` made, HTTP `code` of the last answer (None: no answer)."""

  def __init__(self, message: str, attempts: int = 0, code: Optional[int] = None):
    super().__init__(message, attempts, code)  # all in args, so the error pickles
    self.message = message
    self.attempts = attempts
    self.code = code

  def __str__(self) -> str:
    return self.message


class PermanentError(ApiError):
  """The request can never succeed (400 e.g. unsupported language, 401, 403, 404): dead-letter
  the record. A 401/403 on every record means the job's credentials or key are wrong."""


class RetriesExhausted(ApiError):
  """Transient failures (429, 5xx, timeouts, connection errors) outlasted the retry budget."""


class RateLimiter:
  """Thread-safe token bucket: `qps` tokens a second, at most `burst` saved up.

  burst=1 spaces grants exactly 1/qps apart. Each caller reserves the next free slot under the
  lock and sleeps outside it, so waiting threads are served in order and a late sleeper never
  lets two later grants bunch up: any window of T seconds holds at most qps * T + burst grants.
  """

  def __init__(self, qps: float, burst: int = 1, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], Any] = time.sleep):
    if not qps > 0:
      raise ValueError('qps must be > 0, got %r' % (qps,))
    if burst < 1:
      raise ValueError('burst must be >= 1, got %r' % (burst,))
    self.qps = float(qps)
    self.burst = burst
    self._clock = clock
    self._sleep = sleep
    self._lock = threading.Lock()
    self._tokens = float(burst)  # negative: slots already promised to waiting callers
    self._last = clock()

  def acquire(self) -> float:
    """Blocks until the caller may send one request; returns the seconds waited."""
    with self._lock:
      now = self._clock()
      self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
      self._last = now
      self._tokens -= 1
      wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
    if wait > 0:
      self._sleep(wait)
    return wait


class ApiStats:
  """Thread-safe counters, read with `snapshot()` (or as attributes) for Beam metrics."""

  FIELDS = ('calls', 'attempts', 'retries', 'successes', 'permanent_failures', 'exhausted')

  def __init__(self):
    self._lock = threading.Lock()
    self._counts = dict.fromkeys(self.FIELDS, 0)

  def add(self, name: str, n: int = 1) -> None:
    with self._lock:
      self._counts[name] += n

  def snapshot(self) -> Dict[str, int]:
    with self._lock:
      return dict(self._counts)

  def __getattr__(self, name: str) -> int:
    if name in type(self).FIELDS:  # subclasses count other things (VisionStats)
      return self.snapshot()[name]
    raise AttributeError(name)


_LOOPBACK = frozenset(('localhost', '127.0.0.1', '::1'))


def resolve_endpoint(endpoint: Optional[str]) -> Tuple[Optional[str], bool]:
  """(endpoint for client_options, whether it is local and so needs no credentials).

  The REST transport keeps an explicit http:// or https:// and prefixes https:// otherwise; a
  loopback host without a scheme gets http://, since local fakes and emulators are plain HTTP.
  """
  if not endpoint:
    return None, False
  if '://' in endpoint:
    parts = urlsplit(endpoint)
    return endpoint, parts.scheme == 'http' or parts.hostname in _LOOPBACK
  if urlsplit('//' + endpoint).hostname in _LOOPBACK:
    return 'http://' + endpoint, True
  return endpoint, False
