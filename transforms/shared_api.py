"""One remote-API client per worker process, shared by every DoFn instance in it.

Dataflow runs a DoFn instance per harness thread; a client each would multiply the
connections and, worse, the client-side rate limit. `beam.utils.shared` keeps one per
process and configuration. The API key is read from the environment on the worker, so it
never enters the pickled job graph.
"""
import os
import threading
from typing import Any, Dict, Optional

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
