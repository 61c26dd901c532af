"""Cloud Vision API (v1) face and label detection for Beam DoFns: batched, rate-limited, retried.

Built on `google-api-python-client` with its bundled (static) discovery document, so building
the client needs no network. One `VisionApi` per worker process (build it in `DoFn.setup()`);
it is safe to share between threads: each thread gets its own HTTP connection, since httplib2
connections are not thread-safe.

`annotate(images)` packs images into as few `images:annotate` calls as the API allows (at most
`max_batch_images` images and `max_request_bytes` of JSON body each) and returns one result per
image, in input order: an `Annotation`, or a `PermanentError` / `RetriesExhausted` (the error
classes of `transforms.shared_api`, so jobs dead-letter both APIs the same way) in its place.

Every HTTP attempt, retries included, first takes a token from the instance's `RateLimiter`.
The library's own retry is off (`execute(num_retries=0)`): it would resend outside the limiter.
Left to the transports: httplib2 resends once when a kept-alive connection turns out to be
stale, and google-auth-httplib2 resends once after refreshing an expired token on a 401.

A 400 on a batch of several images is resent as two halves, recursively: one image the API
refuses (undecodable base64, too large, ...) then fails alone instead of taking up to 15 good
images with it, at a cost of at most 2n - 1 requests for n images. A 400 about the request
itself (an invalid API key) and 401/403/404 fail the whole batch at once.
"""
import base64
import errno
import json
import random
import ssl
import threading
import time
from http.client import HTTPException
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import google.auth
import google.auth.credentials
import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from transforms.shared_api import (
    ApiError, ApiStats, PermanentError, RateLimiter, RetriesExhausted, resolve_endpoint)

__all__ = ['Annotation', 'Face', 'Landmark', 'PermanentError', 'RetriesExhausted', 'Vertex',
           'VisionApi', 'VisionStats', 'parse_response']

SCOPES = ('https://www.googleapis.com/auth/cloud-platform',)
DEFAULT_FEATURES = ('FACE_DETECTION', 'LABEL_DETECTION')
MAX_BATCH_IMAGES = 16                  # the API refuses more images per images:annotate call
MAX_REQUEST_BYTES = 10 * 1024 * 1024   # the API's JSON request size limit

Box = Tuple[int, int, int, int]  # (left, top, right, bottom) in pixels


class Vertex(NamedTuple):
  x: int
  y: int


class Landmark(NamedTuple):
  type: str  # LEFT_EYE, RIGHT_EYE, NOSE_TIP, ...
  x: float
  y: float
  z: float


class Face(NamedTuple):
  """One detected face, in the pixels of the image as uploaded.

  `box` is `fdBoundingPoly` (the skin, tight) when present, else `boundingPoly` (the head,
  framed), else (0, 0, 0, 0). Angles in degrees; the API omits zeros, so missing reads 0.0.
  """
  box: Box
  bounding_box: Optional[Box]  # boundingPoly
  roll: float = 0.0
  pan: float = 0.0
  tilt: float = 0.0
  confidence: float = 0.0
  landmarks: Tuple[Landmark, ...] = ()

  def scaled(self, fx: float, fy: float) -> 'Face':
    """The face in another scale of the image (original / uploaded size), e.g. to map boxes
    found on a downscaled upload back to the original."""
    def box(b):
      return None if b is None else (
          round(b[0] * fx), round(b[1] * fy), round(b[2] * fx), round(b[3] * fy))
    return self._replace(
        box=box(self.box), bounding_box=box(self.bounding_box),
        landmarks=tuple(m._replace(x=m.x * fx, y=m.y * fy, z=m.z * fx) for m in self.landmarks))


class Annotation(NamedTuple):
  faces: List[Face]
  labels: List[Tuple[str, float]]  # (description, score), as the API orders them
  error: Optional[str] = None       # the image's own `error` status, if any
  error_code: Optional[int] = None  # its google.rpc.Code


# google.rpc.Code of a per-image error -> the HTTP status it stands for. 4, 8, 13 and 14 are
# worth another try; the rest say something about the image.
_RPC_TO_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 11: 400,
                12: 501, 13: 500, 14: 503, 16: 401}
_TRANSIENT_RPC_CODES = frozenset((4, 8, 13, 14))
TRANSIENT_STATUSES = frozenset((408, 429, 500, 502, 503, 504))
# 400/413 on several images may come from one of them: split the batch and find out.
_SPLIT_STATUSES = frozenset((400, 413))
# OSErrors googleapiclient's own retry treats as transient (http.py _retry_request), plus
# unreachable networks.
_TRANSIENT_ERRNOS = frozenset((
    errno.ETIMEDOUT, errno.EPIPE, errno.ECONNABORTED, errno.ECONNREFUSED, errno.ECONNRESET,
    errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL))


def is_transient_transport_error(exc: BaseException) -> bool:
  """Connection refused/reset, socket timeouts, TLS failures, DNS failures, truncated answers:
  what httplib2 raises when no HTTP answer came back."""
  if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, HTTPException,
                      httplib2.ServerNotFoundError, auth_exceptions.TransportError)):
    return True
  return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


def _int(value: Any) -> int:
  try:
    return int(value or 0)
  except (TypeError, ValueError):
    return 0


def _float(value: Any) -> float:
  try:
    return float(value or 0.0)
  except (TypeError, ValueError):
    return 0.0


def parse_vertices(poly: Any) -> List[Vertex]:
  """A BoundingPoly's vertices; a missing x or y is 0 (proto3 JSON omits zeros)."""
  vertices = poly.get('vertices') if isinstance(poly, dict) else None
  return [Vertex(_int(v.get('x')), _int(v.get('y')))
          for v in vertices or () if isinstance(v, dict)]


def poly_box(poly: Any) -> Optional[Box]:
  """(left, top, right, bottom) around a BoundingPoly; None without vertices."""
  vertices = parse_vertices(poly)
  if not vertices:
    return None
  xs = [v.x for v in vertices]
  ys = [v.y for v in vertices]
  return min(xs), min(ys), max(xs), max(ys)


def parse_face(face: Dict[str, Any]) -> Face:
  bounding = poly_box(face.get('boundingPoly'))
  box = poly_box(face.get('fdBoundingPoly')) or bounding or (0, 0, 0, 0)
  landmarks = []
  for mark in face.get('landmarks') or ():
    if not isinstance(mark, dict):
      continue
    pos = mark.get('position') if isinstance(mark.get('position'), dict) else {}
    landmarks.append(Landmark(str(mark.get('type') or 'UNKNOWN_LANDMARK'), _float(pos.get('x')),
                              _float(pos.get('y')), _float(pos.get('z'))))
  return Face(box=box, bounding_box=bounding, roll=_float(face.get('rollAngle')),
              pan=_float(face.get('panAngle')), tilt=_float(face.get('tiltAngle')),
              confidence=_float(face.get('detectionConfidence')), landmarks=tuple(landmarks))


def parse_response(response: Any) -> Annotation:
  """One AnnotateImageResponse. `{}` (nothing found) is no faces and no labels."""
  if not isinstance(response, dict):
    return Annotation([], [], 'not an AnnotateImageResponse: %r' % (response,)[:200], 13)
  faces = [parse_face(f) for f in response.get('faceAnnotations') or () if isinstance(f, dict)]
  labels = [(str(e.get('description') or ''), _float(e.get('score')))
            for e in response.get('labelAnnotations') or () if isinstance(e, dict)]
  error = response.get('error')
  if isinstance(error, dict) and (error.get('code') or error.get('message')):
    code = _int(error.get('code')) or 2  # UNKNOWN
    return Annotation(faces, labels, str(error.get('message') or 'error %d' % code), code)
  return Annotation(faces, labels)


class VisionStats(ApiStats):
  """Thread-safe counters for Beam metrics, read with `snapshot()` or as attributes.

  requests: image groups sent with their own retry budget (batches, halves of a split batch);
  attempts: HTTP calls; retries: attempts after a transient failure; bytes_uploaded: request
  bodies of every attempt, i.e. what went over the wire.
  """

  FIELDS = ('images', 'requests', 'attempts', 'retries', 'splits', 'bytes_uploaded',
            'annotated', 'faces', 'permanent_failures', 'exhausted')


def _b64_len(n: int) -> int:
  return 4 * ((n + 2) // 3)


class VisionApi:
  """Vision v1 `images:annotate` for one worker process; safe to share between threads.

  Credentials: `credentials` if given, else `api_key` if given (sent as `key=`), else none
  for a local endpoint (http:// or loopback), else Application Default Credentials. Each
  request gets `max_attempts` attempts with exponential backoff (full jitter) from
  `initial_backoff_s` doubling up to `max_backoff_s` (longer if the server's Retry-After says
  so, up to `max_backoff_s`); `timeout_s` bounds each socket operation of an attempt.
  """

  def __init__(self, endpoint: Optional[str] = None, api_key: Optional[str] = None,
               qps: float = 10, max_attempts: int = 6, initial_backoff_s: float = 0.2,
               max_backoff_s: float = 20, timeout_s: float = 60,
               max_batch_images: int = MAX_BATCH_IMAGES,
               max_request_bytes: int = MAX_REQUEST_BYTES, credentials=None):
    if api_key and credentials is not None:
      raise ValueError('api_key and credentials are mutually exclusive')
    if max_attempts < 1 or max_batch_images < 1:
      raise ValueError('max_attempts and max_batch_images must be >= 1')
    endpoint, self.local = resolve_endpoint(endpoint)
    if endpoint and '://' not in endpoint:
      endpoint = 'https://' + endpoint  # googleapiclient uses api_endpoint verbatim as base
    self.endpoint = endpoint
    self.api_key = api_key
    self.qps = qps
    self.max_attempts = max_attempts
    self.initial_backoff_s = initial_backoff_s
    self.max_backoff_s = max_backoff_s
    self.timeout_s = timeout_s
    self.max_batch_images = max_batch_images
    self.max_request_bytes = max_request_bytes
    self.credentials = credentials
    self._init_runtime()

  def _init_runtime(self) -> None:
    self.stats = VisionStats()
    self.rate_limiter = RateLimiter(self.qps)
    self._lock = threading.Lock()
    self._local = threading.local()
    self._service = None
    self._auth = None       # the credentials requests are signed with, if any
    self._https: List[Any] = []

  # A DoFn holding an unconnected instance pickles; the client, connections and counters don't.
  def __getstate__(self) -> Dict[str, Any]:
    state = dict(self.__dict__)
    for name in ('stats', 'rate_limiter', '_lock', '_local', '_service', '_auth', '_https'):
      state.pop(name, None)
    return state

  def __setstate__(self, state: Dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._init_runtime()

  def __enter__(self) -> 'VisionApi':
    self.connect()
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def connect(self) -> None:
    """Builds the client from the bundled discovery document (from DoFn.setup); idempotent.

    The client is given its own `http`, so googleapiclient never looks credentials up itself:
    we decide (no ADC lookup for a local endpoint) and sign with google-auth-httplib2.
    """
    with self._lock:
      if self._service is not None:
        return
      if self.credentials is not None:
        self._auth = google.auth.credentials.with_scopes_if_required(self.credentials, SCOPES)
      elif not self.api_key and not self.local:
        self._auth, _ = google.auth.default(scopes=SCOPES)
      self._service = discovery.build(
          'vision', 'v1', http=self._new_http(), developerKey=self.api_key or None,
          client_options={'api_endpoint': self.endpoint} if self.endpoint else None,
          static_discovery=True, cache_discovery=False)

  def _new_http(self) -> Any:
    http = httplib2.Http(timeout=self.timeout_s)
    if self._auth is not None:
      http = google_auth_httplib2.AuthorizedHttp(self._auth, http=http)
    self._https.append(http)
    return http

  def _http(self) -> Any:
    http = getattr(self._local, 'http', None)
    if http is None:
      with self._lock:
        http = self._local.http = self._new_http()
    return http

  def _drop_http(self) -> None:
    """After a transport error the connection may hold half a request or an unread answer."""
    http = getattr(self._local, 'http', None)
    self._local.http = None
    if http is not None:
      with self._lock:
        if http in self._https:
          self._https.remove(http)
      http.close()

  def close(self) -> None:
    """Closes every thread's connections (from DoFn.teardown)."""
    with self._lock:
      https, self._https = self._https, []
      self._service = None
      self._local = threading.local()
    for http in https:
      http.close()

  @staticmethod
  def request_entry(content_b64: str, features: Sequence[str], max_results: int
                    ) -> Dict[str, Any]:
    """One AnnotateImageRequest."""
    return {'image': {'content': content_b64},
            'features': [{'type': f, 'maxResults': max_results} for f in features]}

  @classmethod
  def entry_overhead(cls, features: Sequence[str], max_results: int) -> int:
    """JSON bytes of one AnnotateImageRequest besides its base64: googleapiclient serialises
    with json.dumps, which escapes nothing in base64, so sizes are exact, not estimates."""
    return len(json.dumps(cls.request_entry('', features, max_results)))

  @staticmethod
  def body_bytes(entry_sizes: Sequence[int]) -> int:
    """JSON bytes of `{"requests": [e1, e2, ...]}` from its entries' sizes."""
    return len('{"requests": []}') + sum(entry_sizes) + 2 * max(len(entry_sizes) - 1, 0)

  def annotate(self, images: Sequence[bytes], features: Sequence[str] = DEFAULT_FEATURES,
               max_results: int = 10) -> List[Union[Annotation, ApiError]]:
    """Annotations for `images` (encoded JPEG/PNG/... bytes) in input order, with a
    PermanentError or RetriesExhausted in place of each image that got none.

    Images are packed in input order, a new request starting when the next image would pass
    `max_batch_images` or `max_request_bytes`; one too large for a request of its own fails
    without being sent.
    """
    features = tuple(features)
    results: List[Any] = [None] * len(images)
    self.stats.add('images', len(images))
    if not images:
      return []
    self.connect()
    overhead = self.entry_overhead(features, max_results)
    empty = self.body_bytes([])
    entries: Dict[int, Dict[str, Any]] = {}
    batch: List[int] = []
    batch_bytes = 0  # body bytes of `batch` less the empty body
    for i, image in enumerate(images):
      if not isinstance(image, (bytes, bytearray, memoryview)):
        self._fail(results, [i], PermanentError(
            'image %d: expected bytes, got %s' % (i, type(image).__name__), 0, None))
        continue
      size = overhead + _b64_len(len(image))
      if empty + size > self.max_request_bytes:
        self._fail(results, [i], PermanentError(
            'image %d: %d bytes make a request of %d bytes, more than max_request_bytes=%d'
            % (i, len(image), empty + size, self.max_request_bytes), 0, None))
        continue
      grown = batch_bytes + size + (2 if batch else 0)
      if batch and (len(batch) >= self.max_batch_images or empty + grown > self.max_request_bytes):
        self._send(batch, entries, results)
        entries.clear()
        batch, grown = [], size
      entries[i] = self.request_entry(
          base64.b64encode(image).decode('ascii'), features, max_results)
      batch.append(i)
      batch_bytes = grown
    if batch:
      self._send(batch, entries, results)
    return results

  def _fail(self, results: List[Any], indices: Sequence[int], error: ApiError) -> None:
    kind = 'exhausted' if isinstance(error, RetriesExhausted) else 'permanent_failures'
    self.stats.add(kind, len(indices))
    for i in indices:
      results[i] = error

  def _backoff(self, attempt: int, retry_after: Optional[float] = None) -> None:
    delay = random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1)))
    if retry_after:
      delay = min(self.max_backoff_s, max(delay, retry_after))
    if delay > 0:
      time.sleep(delay)

  def _execute(self, indices: Sequence[int], entries: Dict[int, Dict[str, Any]]) -> Any:
    """One rate-limited HTTP attempt."""
    body = {'requests': [entries[i] for i in indices]}
    request = self._service.images().annotate(body=body)
    self.rate_limiter.acquire()
    self.stats.add('attempts')
    self.stats.add('bytes_uploaded', len(request.body))
    try:
      return request.execute(http=self._http(), num_retries=0)
    except HttpError:
      raise
    except Exception:
      self._drop_http()
      raise

  def _send(self, indices: List[int], entries: Dict[int, Dict[str, Any]], results: List[Any]) -> None:
    """Sends one group of images until each has an answer or the budget is spent."""
    self.stats.add('requests')
    pending = list(indices)
    attempt = 0
    while pending:
      attempt += 1
      noun = 'attempt' if attempt == 1 else 'attempts'
      where = 'images:annotate of %d image(s)' % len(pending)
      try:
        response = self._execute(pending, entries)
      except HttpError as exc:
        status = exc.resp.status
        message = '%s failed after %d %s: HTTP %d: %s' % (where, attempt, noun, status,
                                                          exc.reason)
        if status in TRANSIENT_STATUSES:
          if attempt < self.max_attempts:
            self.stats.add('retries')
            self._backoff(attempt, _retry_after(exc))
            continue
          self._fail(results, pending, _chained(RetriesExhausted(message, attempt, status), exc))
          return
        if status in _SPLIT_STATUSES and len(pending) > 1 and not _about_the_request(exc):
          self.stats.add('splits')
          half = len(pending) // 2
          self._send(pending[:half], entries, results)
          self._send(pending[half:], entries, results)
          return
        self._fail(results, pending, _chained(PermanentError(message, attempt, status), exc))
        return
      except Exception as exc:  # no HTTP answer, or one we could not use
        message = '%s failed after %d %s: %s: %s' % (where, attempt, noun, type(exc).__name__,
                                                     exc)
        if is_transient_transport_error(exc):
          if attempt < self.max_attempts:
            self.stats.add('retries')
            self._backoff(attempt)
            continue
          self._fail(results, pending, _chained(RetriesExhausted(message, attempt, None), exc))
          return
        self._fail(results, pending, _chained(PermanentError(message, attempt, None), exc))
        return
      responses = response.get('responses') if isinstance(response, dict) else None
      if not isinstance(responses, list) or len(responses) != len(pending):
        got = len(responses) if isinstance(responses, list) else None
        self._fail(results, pending, PermanentError(
            '%s: expected %d responses, got %s' % (where, len(pending), got), attempt, None))
        return
      again = []
      for i, raw in zip(pending, responses, strict=True):
        annotation = parse_response(raw)
        if annotation.error is None:
          results[i] = annotation
          self.stats.add('annotated')
          self.stats.add('faces', len(annotation.faces))
          continue
        code = annotation.error_code
        message = 'image %d: error %s: %s (after %d %s)' % (i, code, annotation.error, attempt,
                                                           noun)
        http_code = _RPC_TO_HTTP.get(code)
        if code in _TRANSIENT_RPC_CODES and attempt < self.max_attempts:
          again.append(i)
        elif code in _TRANSIENT_RPC_CODES:
          self._fail(results, [i], RetriesExhausted(message, attempt, http_code))
        else:
          self._fail(results, [i], PermanentError(message, attempt, http_code))
      if again:  # resend only the images the API could not do this time
        self.stats.add('retries')
        self._backoff(attempt)
      pending = again


def _chained(error: ApiError, cause: BaseException) -> ApiError:
  error.__cause__ = cause
  return error


def _retry_after(exc: HttpError) -> Optional[float]:
  try:
    return max(0.0, float(exc.resp.get('retry-after')))
  except (TypeError, ValueError):
    return None  # absent, or an HTTP date: our own backoff will do


def _about_the_request(exc: HttpError) -> bool:
  """A 400 that no image caused: the API key is invalid, expired or blocked."""
  details = exc.error_details if isinstance(exc.error_details, list) else []
  reasons = ' '.join(str(d.get('reason', '')) for d in details if isinstance(d, dict))
  return 'API_KEY' in reasons or 'API key' in str(exc.reason)
