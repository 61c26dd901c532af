"""A local HTTP image host for download tests: generated images at paths, and the faults of
real photo hosts (dead links, flaky servers, throttling, slow or endless bodies, resets).

    with FakeImageServer() as server:
      data = server.add_image('/a.jpg', seed=1)
      server.fail('/a.jpg', 503, times=2)        # two 503s, then the image
      download(server.url('/a.jpg'))

Routes are looked up by the percent-decoded path, with the query string first, then without,
so `/José.jpg` and `/Jos%C3%A9.jpg` are one route. A path with no route answers 404.
Faults added with `fail` / `reset` are used up in the order they were added, before the route.
Every request is logged (`hits`, `log`). `max_in_flight` is the most requests the server held
at once between reading them and starting to answer (delays included), so it never counts a
request the client has already seen the answer to: it is a lower bound on the client's
concurrency, never an overcount.
"""
import dataclasses
import io
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image

from tests.fake_http import serve_in_thread, stop_serving

ENDLESS_LIMIT = 256 * 1024 * 1024  # an "endless" body stops here if the client never hangs up


def make_image(seed: int = 0, size: Tuple[int, int] = (64, 48), fmt: str = 'JPEG') -> bytes:
  """A small noise image, different for every seed, encoded in memory."""
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
  out = io.BytesIO()
  Image.fromarray(pixels, 'RGB').save(out, fmt)
  return out.getvalue()


@dataclasses.dataclass
class Route:
  body: bytes = b''
  content_type: Optional[str] = 'image/jpeg'
  status: int = 200
  headers: Dict[str, str] = dataclasses.field(default_factory=dict)
  chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
  content_length: Optional[int] = None  # declared length when it should differ from the body
  endless: bool = False  # chunked body that repeats `body` until the client hangs up
  delay_s: float = 0.0  # before the status line
  trickle_s: float = 0.0  # between body pieces
  piece_bytes: int = 16 * 1024


@dataclasses.dataclass
class _Fault:
  status: Optional[int]  # None: a connection reset
  times: Optional[int]
  retry_after: Optional[str] = None
  reset_after: int = 0


@dataclasses.dataclass
class Hit:
  path: str
  status: Optional[int]  # the status line sent (set before the client can see it); None: reset
  started: float
  ended: float = 0.0
  client_port: int = 0  # one port per client connection: kept-alive requests share it
  answered: bool = False


class _Server(ThreadingHTTPServer):
  daemon_threads = True
  request_queue_size = 128
  fake: 'FakeImageServer'

  def handle_error(self, request, client_address):  # clients hang up on purpose here
    pass


class _Handler(BaseHTTPRequestHandler):
  protocol_version = 'HTTP/1.1'
  disable_nagle_algorithm = True
  timeout = 10
  server: _Server

  def log_message(self, format, *args):
    pass

  def do_GET(self):
    self.server.fake._serve(self)


class FakeImageServer:

  def __init__(self):
    self._lock = threading.Lock()
    self._routes: Dict[str, Route] = {}
    self._faults: Dict[str, List[_Fault]] = {}
    self._log: List[Hit] = []
    self._in_flight = 0
    self.max_in_flight = 0
    self._server: Optional[_Server] = None
    self._thread: Optional[threading.Thread] = None
    self.base = ''

  def __enter__(self) -> 'FakeImageServer':
    self._server, self._thread, self.base = serve_in_thread(self, _Server, _Handler)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._server is not None:
      stop_serving(self._server, self._thread)
      self._server = None

  def url(self, path: str) -> str:
    return self.base + path

  # Content.
  def add(self, path: str, body: bytes = b'', content_type: Optional[str] = 'image/jpeg',
          **route) -> str:
    """Serve `body` at `path` (Route fields as keywords); returns the URL."""
    with self._lock:
      self._routes[unquote(path)] = Route(body=body, content_type=content_type, **route)
    return self.url(path)

  def add_image(self, path: str, seed: int = 0, size: Tuple[int, int] = (64, 48),
                fmt: str = 'JPEG', **route) -> bytes:
    """Serve a generated image at `path`; returns its bytes."""
    data = make_image(seed, size, fmt)
    self.add(path, data, content_type=Image.MIME[fmt], **route)
    return data

  def page(self, path: str, html: str = '<html><body>Image not found</body></html>',
           status: int = 200) -> str:
    """An HTML page, as photo hosts send for a dead link (often with a 200)."""
    return self.add(path, html.encode('utf-8'), content_type='text/html; charset=utf-8',
                    status=status)

  def redirect(self, path: str, to: str, status: int = 302, **route) -> str:
    """`path` answers `status` with Location `to` (relative or absolute)."""
    route.setdefault('body', b'moved')
    return self.add(path, content_type='text/plain', status=status,
                    headers={'Location': to}, **route)

  # Faults, used before the route, in the order added.
  def fail(self, path: str, status: int, times: Optional[int] = 1,
           retry_after: Union[str, float, None] = None) -> None:
    """Answer `status` to the next `times` requests for `path` (None: forever)."""
    with self._lock:
      self._faults.setdefault(unquote(path), []).append(_Fault(
          status, times, None if retry_after is None else str(retry_after)))

  def reset(self, path: str, after_bytes: int = 100, times: Optional[int] = 1) -> None:
    """Send the headers (full Content-Length) and `after_bytes` of the body, then reset the
    connection (RST), the next `times` times."""
    with self._lock:
      self._faults.setdefault(unquote(path), []).append(
          _Fault(None, times, reset_after=after_bytes))

  # Observation.
  @property
  def log(self) -> List[Hit]:
    with self._lock:
      return list(self._log)

  def hits(self, path: str) -> int:
    path = unquote(path)
    return sum(1 for h in self.log if h.path == path)

  def statuses(self, path: str) -> List[Optional[int]]:
    path = unquote(path)
    return [h.status for h in self.log if h.path == path]

  # Serving.
  def _take(self, key: str) -> Tuple[Optional[_Fault], Optional[Route]]:
    with self._lock:
      fault = None
      for rule in self._faults.get(key, ()):
        if rule.times is None or rule.times > 0:
          if rule.times is not None:
            rule.times -= 1
          fault = rule
          break
      return fault, self._routes.get(key)

  def _serve(self, h: _Handler) -> None:
    parts = urlsplit(h.path)
    key = unquote(parts.path) + ('?' + unquote(parts.query) if parts.query else '')
    with self._lock:
      if key not in self._routes and key not in self._faults:
        key = unquote(parts.path)
      hit = Hit(key, None, time.monotonic(), client_port=h.client_address[1])
      self._log.append(hit)
      self._in_flight += 1
      self.max_in_flight = max(self.max_in_flight, self._in_flight)
    try:
      fault, route = self._take(key)
      if route is not None and route.delay_s:
        time.sleep(route.delay_s)
      if fault is not None and fault.status is not None:
        headers = {'Retry-After': fault.retry_after} if fault.retry_after is not None else {}
        self._send(h, hit, fault.status, b'error %d' % fault.status, 'text/plain', headers)
      elif route is None:
        self._send(h, hit, 404, b'not found', 'text/plain', {})
      else:
        self._send_route(h, hit, route, fault)
    except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
      h.close_connection = True
    finally:
      self._answering(hit)
      hit.ended = time.monotonic()

  def _answering(self, hit: Hit) -> None:
    with self._lock:
      if not hit.answered:
        hit.answered = True
        self._in_flight -= 1

  def _send(self, h: _Handler, hit: Hit, status: int, body: bytes,
            content_type: Optional[str], headers: Dict[str, str]) -> None:
    self._answering(hit)
    h.send_response(status)
    hit.status = status
    if content_type:
      h.send_header('Content-Type', content_type)
    for name, value in headers.items():
      h.send_header(name, value)
    h.send_header('Content-Length', str(len(body)))
    h.end_headers()
    h.wfile.write(body)

  def _send_route(self, h: _Handler, hit: Hit, route: Route, fault: Optional[_Fault]) -> None:
    self._answering(hit)
    h.send_response(route.status)
    hit.status = route.status if fault is None else None
    if route.content_type:
      h.send_header('Content-Type', route.content_type)
    for name, value in route.headers.items():
      h.send_header(name, value)
    chunked = route.chunked or route.endless
    if chunked:
      h.send_header('Transfer-Encoding', 'chunked')
    else:
      length = len(route.body) if route.content_length is None else route.content_length
      h.send_header('Content-Length', str(length))
    h.end_headers()
    if fault is not None:  # a reset mid-body
      h.wfile.write(route.body[:fault.reset_after])
      time.sleep(0.02)  # let the bytes leave before the RST
      _reset(h)
      return
    sent = 0
    body = (route.body or b'\0') if route.endless else route.body
    while True:
      for start in range(0, len(body), route.piece_bytes):
        piece = body[start:start + route.piece_bytes]
        h.wfile.write(b'%x\r\n%s\r\n' % (len(piece), piece) if chunked else piece)
        sent += len(piece)
        if route.trickle_s:
          time.sleep(route.trickle_s)
      if not route.endless or sent >= ENDLESS_LIMIT:
        break
    if chunked:
      h.wfile.write(b'0\r\n\r\n')
    elif route.content_length is not None and route.content_length != len(route.body):
      h.close_connection = True  # a short body: the client sees the connection end early


def _reset(h: _Handler) -> None:
  """Close the connection with an RST (SO_LINGER 0), not a clean FIN."""
  h.close_connection = True
  h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
  h.rfile.close()  # the makefile holds a reference; the socket closes with the last one
  h.connection.close()
