"""What the local HTTP fakes share: a threaded server on 127.0.0.1, a request log with the
in-flight count at arrival, the observations tests make on that log, fault rules, and (for
the Google REST fakes) JSON bodies and Google's error answers.

A fake subclasses `FakeHttpServer` (or `FakeGoogleApi`) and implements `_inspect` (what its
log record holds) and `_reply` (or `_answer`: how one request is served):

    with FakeSomething() as fake:
      client(endpoint=fake.endpoint)
      assert fake.statuses() == [200]
"""
import dataclasses
import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Generic, List, Optional, Self, Tuple, TypeVar
from urllib.parse import parse_qs, urlsplit

JSON_CONTENT_TYPE = 'application/json; charset=UTF-8'

# google.rpc.Code names Google puts in `error.status` for each HTTP status.
STATUS_NAMES = {
    400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
    404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 502: 'UNAVAILABLE',
    503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED'}


def default_messages(service: str) -> Dict[int, str]:
  """Google's `error.message` for each HTTP status, for `service` ('vision.googleapis.com')."""
  return {
      400: 'Request contains an invalid argument.',
      401: 'Request had invalid authentication credentials.',
      403: 'The caller does not have permission',
      404: 'Requested entity was not found.',
      429: "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of "
           "service '%s'." % service,
      500: 'Internal error encountered.',
      502: 'Bad Gateway',
      503: 'The service is currently unavailable.',
      504: 'Deadline expired before operation could complete.'}


class HttpRequest:
  """One request as read off the wire; `t` is time.monotonic() at arrival."""

  def __init__(self, handler: BaseHTTPRequestHandler):
    self.t = time.monotonic()
    self.method = handler.command
    url = urlsplit(handler.path)
    self.path = url.path
    self.query = parse_qs(url.query)
    self.headers = handler.headers
    length = int(handler.headers.get('Content-Length') or 0)
    self.raw = handler.rfile.read(length) if length else b''

  @functools.cached_property
  def json(self) -> Any:
    """The body as JSON: {} when empty, None when it is not JSON."""
    try:
      return json.loads(self.raw) if self.raw else {}
    except ValueError:
      return None

  @property
  def api_key(self) -> Optional[str]:
    """The API key, from the x-goog-api-key header or the `key` query parameter."""
    return self.headers.get('x-goog-api-key') or (self.query.get('key') or [None])[0]


@dataclasses.dataclass
class Reply:
  status: int
  body: Any  # bytes are sent as they are, anything else as JSON
  content_type: str = JSON_CONTENT_TYPE
  headers: Dict[str, str] = dataclasses.field(default_factory=dict)  # sent after the above

  def data(self) -> bytes:
    return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode('utf-8')


@dataclasses.dataclass
class FailureRule:
  """Answer `status` to the next `times` requests (None: all) that `match` picks (None: any)."""
  status: int
  times: Optional[int]
  match: Optional[str]
  message: Optional[str]
  retry_after: Optional[float] = None


def use_once(rule: Any) -> bool:
  """Counts one use of `rule` (anything with `times`, None meaning no limit); False, and
  nothing counted, when it is used up."""
  if rule.times is not None:
    if rule.times <= 0:
      return False
    rule.times -= 1
  return True


class _Server(ThreadingHTTPServer):
  daemon_threads = True
  request_queue_size = 128  # the default 5 drops SYNs under a burst of pooled connections
  fake: 'FakeHttpServer'


class _Handler(BaseHTTPRequestHandler):
  protocol_version = 'HTTP/1.1'  # keep-alive, like the clients' pooled connections expect
  disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK wait
  timeout = 30
  server: _Server

  def log_message(self, format, *args):  # quiet test output
    pass

  def do_POST(self):
    self.server.fake._serve(self)

  def do_GET(self):
    self.server.fake._serve(self)


Record = TypeVar('Record')  # a dataclass with (at least) t, in_flight and status


def serve_in_thread(fake: Any, server_class, handler_class) -> Tuple[Any, threading.Thread, str]:
  """Start `server_class` on 127.0.0.1 (a free port) with `fake` as its `.fake`, serving in
  a daemon thread; returns (server, thread, 'http://127.0.0.1:PORT')."""
  server = server_class(('127.0.0.1', 0), handler_class)
  server.fake = fake
  thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05},
                            daemon=True)
  thread.start()
  return server, thread, 'http://127.0.0.1:%d' % server.server_address[1]


def stop_serving(server, thread: threading.Thread) -> None:
  server.shutdown()
  server.server_close()
  thread.join(5)


class FakeHttpServer(Generic[Record]):
  """A local server, started by `with`, at `endpoint` ('http://127.0.0.1:PORT').

  Subclasses implement `_inspect` (the log record of one request, and what serving it needs)
  and `_reply` (the answer). Each request is logged on arrival with the number of requests
  then being served, this one included (`in_flight`), waits `latency_s`, and gets its record's
  `status` when the answer is sent.
  """

  def __init__(self, latency_s: float = 0.0):
    self.latency_s = latency_s
    self._lock = threading.Lock()
    self._log: List[Record] = []
    self._failures: List[FailureRule] = []
    self._in_flight = 0
    self._server: Optional[_Server] = None
    self._thread: Optional[threading.Thread] = None
    self.endpoint = ''

  def __enter__(self) -> Self:
    self._server, self._thread, self.endpoint = serve_in_thread(self, _Server, _Handler)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._server is not None:
      stop_serving(self._server, self._thread)
      self._server = None

  # Fault rules (subclasses' `fail` adds them).
  def _add_failure(self, rule: FailureRule) -> None:
    with self._lock:
      self._failures.append(rule)

  def clear_failures(self) -> None:
    with self._lock:
      self._failures.clear()

  def _take_failure(self, matches: Callable[[str], bool]) -> Optional[FailureRule]:
    """The first rule not used up whose `match` is None or `matches(match)`, counted a use."""
    with self._lock:
      for rule in self._failures:
        if rule.times is not None and rule.times <= 0:
          continue  # used up: its match is not even tried
        if rule.match is None or matches(rule.match):
          use_once(rule)
          return rule
    return None

  # Observation.
  @property
  def requests(self) -> List[Record]:
    with self._lock:
      return list(self._log)

  def reset_log(self) -> None:
    with self._lock:
      self._log.clear()

  def statuses(self) -> List[Optional[int]]:
    return [r.status for r in self.requests]

  def max_in_flight(self) -> int:
    return max((r.in_flight for r in self.requests), default=0)

  def max_in_window(self, window_s: float = 1.0) -> int:
    """Most arrivals in any half-open window [t, t + window_s)."""
    times = sorted(r.t for r in self.requests)
    best, lo = 0, 0
    for hi, t in enumerate(times):
      while times[lo] <= t - window_s:
        lo += 1
      best = max(best, hi - lo + 1)
    return best

  # Serving.
  def _inspect(self, request: HttpRequest) -> Tuple[Record, Any]:
    """(the log record, whatever `_reply` needs from parsing the request). The record's
    `in_flight` is set when it is logged; it runs outside the lock."""
    raise NotImplementedError

  def _reply(self, request: HttpRequest, parsed: Any) -> Reply:
    raise NotImplementedError

  def _serve(self, handler: _Handler) -> None:
    request = HttpRequest(handler)
    record, parsed = self._inspect(request)
    with self._lock:
      self._in_flight += 1
      record.in_flight = self._in_flight
      self._log.append(record)
    try:
      if self.latency_s:
        time.sleep(self.latency_s)
      reply = self._reply(request, parsed)
      record.status = reply.status
      data = reply.data()
      try:
        handler.send_response(reply.status)
        handler.send_header('Content-Type', reply.content_type)
        handler.send_header('Content-Length', str(len(data)))
        for name, value in reply.headers.items():
          handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
      except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client gave up (its timeout)
    finally:
      with self._lock:
        self._in_flight -= 1


class FakeGoogleApi(FakeHttpServer[Record]):
  """A Google REST API: JSON answers, errors in Google's body, an optional required API key.

  Subclasses set `service`, `status_names` and `default_messages`, and implement `_answer`
  ((status, JSON payload); it may add response headers to `headers`). An exception there is
  answered 500 like the API would.
  """
  service = ''  # 'vision.googleapis.com'
  status_names: Dict[int, str] = STATUS_NAMES
  default_messages: Dict[int, str] = {}
  invalid_key_reason: Optional[str] = None  # the ErrorInfo reason sent with a wrong API key

  def __init__(self, latency_s: float = 0.0, required_api_key: Optional[str] = None):
    super().__init__(latency_s)
    self.required_api_key = required_api_key

  def _error(self, status: int, message: Optional[str] = None,
             reason: Optional[str] = None) -> Tuple[int, Dict[str, Any]]:
    error: Dict[str, Any] = {
        'code': status, 'message': message or self.default_messages.get(status, 'Error'),
        'status': self.status_names.get(status, 'UNKNOWN')}
    if reason:
      error['details'] = [{'@type': 'type.googleapis.com/google.rpc.ErrorInfo',
                           'reason': reason, 'domain': 'googleapis.com',
                           'metadata': {'service': self.service}}]
    return status, {'error': error}

  def _key_error(self, api_key: Optional[str]) -> Optional[Tuple[int, Dict[str, Any]]]:
    """The error for a missing or wrong API key when one is required, else None."""
    if self.required_api_key is None:
      return None
    if not api_key:
      return self._error(403, "Method doesn't allow unregistered callers (callers without "
                              'established identity). Please use API Key or other form of API '
                              'consumer identity to call this API.')
    if api_key != self.required_api_key:
      return self._error(400, 'API key not valid. Please pass a valid API key.',
                         reason=self.invalid_key_reason)
    return None

  def _failed(self, rule: FailureRule, headers: Dict[str, str]) -> Tuple[int, Dict[str, Any]]:
    """The answer a fault rule gives."""
    if rule.retry_after is not None:
      headers['Retry-After'] = '%g' % rule.retry_after
    return self._error(rule.status, rule.message)

  def _answer(self, request: HttpRequest, parsed: Any,
              headers: Dict[str, str]) -> Tuple[int, Dict[str, Any]]:
    raise NotImplementedError

  def _reply(self, request: HttpRequest, parsed: Any) -> Reply:
    headers: Dict[str, str] = {}
    try:
      status, payload = self._answer(request, parsed, headers)
    except Exception as exc:  # a fake bug must still answer like the API
      status, payload = self._error(500, 'Internal error encountered: %r' % (exc,))
    return Reply(status, payload, headers=headers)
