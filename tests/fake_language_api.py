"""A local Cloud Natural Language v1 REST server, so the real client can be tested offline.

Speaks the JSON the generated REST transport sends and parses (camelCase fields, enums as
numbers when the client asks with `$alt=json;enum-encoding=int`, as it always does), answers
failures with Google's error body, and scores text by a fixed rule the tests can compute
(`score_document`, `extract_entities`). Faults (`fail`, `latency_s`) and a request log (arrival
time, in-flight count) let tests see retries, concurrency and the rate limit from the server.
"""
import dataclasses
import json
import re
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

SENTIMENT_PATH = '/v1/documents:analyzeSentiment'
ENTITIES_PATH = '/v1/documents:analyzeEntities'

POSITIVE = frozenset(
    'love loved loving great amazing awesome happy best excellent good nice fantastic '
    'wonderful perfect thanks thank fast fun like enjoy enjoyed brilliant'.split())
NEGATIVE = frozenset(
    'hate hated terrible awful bad worst fire burning recall recalled refund broken broke '
    'angry slow sad disappointed disappointing crash crashed died dead useless scam'.split())

# Names the fake recognises whatever their case, with the Entity.Type the real API gives them.
KNOWN_ENTITIES = {
    'google': 'ORGANIZATION', 'apple': 'ORGANIZATION', 'samsung': 'ORGANIZATION',
    'pixel': 'CONSUMER_GOOD', 'iphone': 'CONSUMER_GOOD', 'galaxy': 'CONSUMER_GOOD',
    'phone': 'CONSUMER_GOOD', 'battery': 'CONSUMER_GOOD', 'screen': 'CONSUMER_GOOD',
    'london': 'LOCATION', 'paris': 'LOCATION', 'support': 'OTHER', 'update': 'OTHER',
}

# Entity.Type / EntityMention.Type numbers (google/cloud/language_v1/types/language_service.py).
ENTITY_TYPE_NUMBERS = {
    'UNKNOWN': 0, 'PERSON': 1, 'LOCATION': 2, 'ORGANIZATION': 3, 'EVENT': 4, 'WORK_OF_ART': 5,
    'CONSUMER_GOOD': 6, 'OTHER': 7, 'PHONE_NUMBER': 9, 'ADDRESS': 10, 'DATE': 11,
    'NUMBER': 12, 'PRICE': 13}
MENTION_TYPE_NUMBERS = {'TYPE_UNKNOWN': 0, 'PROPER': 1, 'COMMON': 2}
ENCODING_TYPES = {0: 'NONE', 1: 'UTF8', 2: 'UTF16', 3: 'UTF32'}

# google.rpc.Code names Google puts in `error.status` for each HTTP status.
STATUS_NAMES = {
    400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
    404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 502: 'UNAVAILABLE',
    503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED'}
DEFAULT_MESSAGES = {
    400: 'Request contains an invalid argument.',
    401: 'Request had invalid authentication credentials.',
    403: 'The caller does not have permission',
    404: 'Requested entity was not found.',
    429: "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of "
         "service 'language.googleapis.com'.",
    500: 'Internal error encountered.',
    502: 'Bad Gateway',
    503: 'The service is currently unavailable.',
    504: 'Deadline expired before operation could complete.'}

_SENTENCE = re.compile(r'[^.!?]*[.!?]+|[^.!?]+$')
_WORD = re.compile(r"[A-Za-z][A-Za-z']*")


def _round(value: Fraction) -> int:
  """Nearest integer, halves away from zero."""
  whole = int(abs(value) + Fraction(1, 2))
  return whole if value >= 0 else -whole


def _tenths(value: Fraction) -> int:
  """value rounded to one decimal, in tenths."""
  return _round(value * 10)


def _sentence_spans(text: str) -> List[Tuple[str, int]]:
  """(sentence, begin offset in characters); the real API also keeps the final '.!?'."""
  spans = []
  for match in _SENTENCE.finditer(text):
    raw = match.group()
    stripped = raw.strip()
    if stripped:
      spans.append((stripped, match.start() + (len(raw) - len(raw.lstrip()))))
  return spans


def _sentence_tenths(sentence: str) -> Tuple[int, int]:
  words = [w.lower() for w in _WORD.findall(sentence)]
  pos = sum(w in POSITIVE for w in words)
  neg = sum(w in NEGATIVE for w in words)
  return _tenths(Fraction(pos - neg, pos + neg + 1)), _tenths(Fraction(pos + neg, pos + neg + 1))


def score_sentence(sentence: str) -> Tuple[float, float]:
  """(score, magnitude): (pos - neg) / (pos + neg + 1) and (pos + neg) / (pos + neg + 1)."""
  score, magnitude = _sentence_tenths(sentence)
  return score / 10, magnitude / 10


def score_document(text: str) -> Tuple[float, float, Tuple[Tuple[str, float, float], ...]]:
  """(score, magnitude, ((sentence, score, magnitude), ...)) exactly as the fake answers.

  Document score is the mean of the sentence scores, magnitude their sum: like the real API,
  magnitude grows with the amount of emotion while mixed text scores near 0.
  """
  spans = _sentence_spans(text)
  tenths = [_sentence_tenths(s) for s, _ in spans]
  score = _round(Fraction(sum(t[0] for t in tenths), len(tenths))) if tenths else 0
  magnitude = sum(t[1] for t in tenths)
  sentences = tuple((s, t[0] / 10, t[1] / 10) for (s, _), t in zip(spans, tenths, strict=True))
  return score / 10, magnitude / 10, sentences


def _entity_mentions(text: str) -> List[Dict[str, Any]]:
  """Grouped mentions in order of first appearance: known names, and other Capitalised words
  that do not start a sentence (type OTHER)."""
  groups: Dict[str, Dict[str, Any]] = {}
  for sentence, begin in _sentence_spans(text):
    for i, match in enumerate(_WORD.finditer(sentence)):
      word = match.group()
      key = word.lower()
      if key in KNOWN_ENTITIES:
        kind = KNOWN_ENTITIES[key]
      elif word[0].isupper() and i > 0 and word != 'I':
        kind = 'OTHER'
      else:
        continue
      group = groups.setdefault(key, {'name': word, 'type': kind, 'mentions': []})
      group['mentions'].append({
          'text': word, 'begin': begin + match.start(),
          'type': 'PROPER' if word[0].isupper() else 'COMMON'})
  return list(groups.values())


def extract_entities(text: str) -> List[Tuple[str, str, float]]:
  """[(name, type, salience)] as the fake answers: salience = share of all mentions (4 decimals),
  most salient first, ties in order of appearance."""
  groups = _entity_mentions(text)
  total = sum(len(g['mentions']) for g in groups)
  out = [(g['name'], g['type'], round(len(g['mentions']) / total, 4)) for g in groups]
  return sorted(out, key=lambda e: -e[2])  # stable: ties keep appearance order


def _offset(text: str, char_offset: int, encoding: str) -> int:
  """TextSpan.beginOffset in the unit the request's encodingType names (-1 for NONE)."""
  prefix = text[:char_offset]
  if encoding == 'UTF8':
    return len(prefix.encode('utf-8'))
  if encoding == 'UTF16':
    return len(prefix.encode('utf-16-le')) // 2
  if encoding == 'UTF32':
    return char_offset
  return -1


@dataclasses.dataclass
class RequestRecord:
  """One request as the server saw it; `status` is set when the answer is sent."""
  t: float                   # time.monotonic() at arrival
  path: str
  content: Optional[str]
  language: Optional[str]
  in_flight: int             # requests being served at arrival, this one included
  api_key: Optional[str]
  authorization: Optional[str]
  body: Optional[Dict[str, Any]]
  query: Dict[str, List[str]]
  status: Optional[int] = None


class _Failure:
  def __init__(self, status: int, times: Optional[int], match: Optional[str],
               message: Optional[str]):
    self.status, self.times, self.match, self.message = status, times, match, message


class _Server(ThreadingHTTPServer):
  daemon_threads = True
  request_queue_size = 128  # the default 5 drops SYNs under a burst of pooled connections
  fake: 'FakeLanguageApi'


class _Handler(BaseHTTPRequestHandler):
  protocol_version = 'HTTP/1.1'  # keep-alive, like the client's pooled connections expect
  disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK wait
  timeout = 30
  server: _Server

  def log_message(self, format, *args):  # quiet test output
    pass

  def do_POST(self):
    self.server.fake._serve(self)

  def do_GET(self):
    self.server.fake._serve(self)


class FakeLanguageApi:
  """`with FakeLanguageApi() as fake: LanguageApi(endpoint=fake.endpoint)`."""

  def __init__(self, latency_s: float = 0.0, unsupported_languages: Sequence[str] = ('xx',),
               required_api_key: Optional[str] = None):
    self.latency_s = latency_s
    self.unsupported_languages = set(unsupported_languages)
    self.required_api_key = required_api_key
    self._lock = threading.Lock()
    self._log: List[RequestRecord] = []
    self._failures: List[_Failure] = []
    self._in_flight = 0
    self._server: Optional[_Server] = None
    self._thread: Optional[threading.Thread] = None
    self.endpoint = ''

  def __enter__(self) -> 'FakeLanguageApi':
    self._server = _Server(('127.0.0.1', 0), _Handler)
    self._server.fake = self
    self.endpoint = 'http://127.0.0.1:%d' % self._server.server_address[1]
    self._thread = threading.Thread(
        target=self._server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    if self._server is not None:
      self._server.shutdown()
      self._server.server_close()
      self._thread.join(5)
      self._server = None

  # Fault injection.
  def fail(self, status: int, times: Optional[int] = 1, match: Optional[str] = None,
           message: Optional[str] = None) -> None:
    """Answer `status` to the next `times` requests (None: all of them), or only to those whose
    content contains `match`. Rules are tried in the order they were added."""
    with self._lock:
      self._failures.append(_Failure(status, times, match, message))

  def clear_failures(self) -> None:
    with self._lock:
      self._failures.clear()

  # Observation.
  @property
  def requests(self) -> List[RequestRecord]:
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
  def _take_failure(self, content: Optional[str]) -> Optional[_Failure]:
    with self._lock:
      for rule in self._failures:
        if rule.times is not None and rule.times <= 0:
          continue
        if rule.match is not None and (content is None or rule.match not in content):
          continue
        if rule.times is not None:
          rule.times -= 1
        return rule
    return None

  def _serve(self, handler: _Handler) -> None:
    arrived = time.monotonic()
    url = urlsplit(handler.path)
    query = parse_qs(url.query)
    length = int(handler.headers.get('Content-Length') or 0)
    raw = handler.rfile.read(length) if length else b''
    try:
      body = json.loads(raw) if raw else {}
    except ValueError:
      body = None
    document = body.get('document') if isinstance(body, dict) else None
    document = document if isinstance(document, dict) else {}
    content = document.get('content')
    api_key = handler.headers.get('x-goog-api-key') or (query.get('key') or [None])[0]
    with self._lock:
      self._in_flight += 1
      record = RequestRecord(
          t=arrived, path=url.path, content=content, language=document.get('language'),
          in_flight=self._in_flight, api_key=api_key,
          authorization=handler.headers.get('Authorization'), body=body, query=query)
      self._log.append(record)
    try:
      if self.latency_s:
        time.sleep(self.latency_s)
      try:
        status, payload = self._answer(handler.command, url.path, query, body, document, api_key)
      except Exception as exc:  # a fake bug must still answer like the API
        status, payload = _error(500, 'Internal error encountered: %r' % (exc,))
      record.status = status
      data = json.dumps(payload).encode('utf-8')
      try:
        handler.send_response(status)
        handler.send_header('Content-Type', 'application/json; charset=UTF-8')
        handler.send_header('Content-Length', str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
      except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client gave up (its timeout)
    finally:
      with self._lock:
        self._in_flight -= 1

  def _answer(self, method: str, path: str, query: Dict[str, List[str]], body: Any,
              document: Dict[str, Any], api_key: Optional[str]) -> Tuple[int, Dict[str, Any]]:
    if self.required_api_key is not None:
      if not api_key:
        return _error(403, 'Method doesn\'t allow unregistered callers (callers without '
                           'established identity). Please use API Key or other form of API '
                           'consumer identity to call this API.')
      if api_key != self.required_api_key:
        return _error(400, 'API key not valid. Please pass a valid API key.')
    if path not in (SENTIMENT_PATH, ENTITIES_PATH) or method != 'POST':
      return _error(404, 'Method not found.' if method == 'POST' else
                    'The requested URL %s was not found on this server.' % path)
    if body is None:
      return _error(400, 'Invalid JSON payload received.')
    failure = self._take_failure(document.get('content'))
    if failure is not None:
      return _error(failure.status, failure.message)
    content = document.get('content')
    if not content:
      return _error(400, 'One of content, or gcs_content_uri must be set.')
    doc_type = document.get('type')
    if doc_type not in (1, 'PLAIN_TEXT', 2, 'HTML'):
      return _error(400, 'Invalid document type.')
    language = document.get('language') or 'en'
    feature = 'document_sentiment' if path == SENTIMENT_PATH else 'entity'
    if language in self.unsupported_languages:
      return _error(400, 'The language %s is not supported for %s analysis.' % (language, feature))
    encoding = body.get('encodingType', 0)
    encoding = ENCODING_TYPES.get(encoding, encoding) if isinstance(encoding, int) else encoding
    numeric = any('enum-encoding=int' in v for v in query.get('$alt', []))
    if path == SENTIMENT_PATH:
      return 200, _sentiment_response(content, language, encoding)
    return 200, _entities_response(content, language, encoding, numeric)


def _error(status: int, message: Optional[str] = None) -> Tuple[int, Dict[str, Any]]:
  return status, {'error': {
      'code': status, 'message': message or DEFAULT_MESSAGES.get(status, 'Error'),
      'status': STATUS_NAMES.get(status, 'UNKNOWN')}}


def _sentiment_response(content: str, language: str, encoding: str) -> Dict[str, Any]:
  score, magnitude, sentences = score_document(content)
  spans = _sentence_spans(content)
  return {
      'documentSentiment': {'magnitude': magnitude, 'score': score},
      'language': language,
      'sentences': [
          {'text': {'content': text, 'beginOffset': _offset(content, begin, encoding)},
           'sentiment': {'magnitude': s_magnitude, 'score': s_score}}
          for (text, s_score, s_magnitude), (_, begin) in zip(sentences, spans, strict=True)]}


def _entities_response(content: str, language: str, encoding: str,
                       numeric: bool) -> Dict[str, Any]:
  groups = {g['name']: g for g in _entity_mentions(content)}
  entities = []
  for name, kind, salience in extract_entities(content):
    mentions = [
        {'text': {'content': m['text'], 'beginOffset': _offset(content, m['begin'], encoding)},
         'type': MENTION_TYPE_NUMBERS[m['type']] if numeric else m['type']}
        for m in groups[name]['mentions']]
    entities.append({
        'name': name, 'type': ENTITY_TYPE_NUMBERS[kind] if numeric else kind,
        'metadata': {}, 'salience': salience, 'mentions': mentions})
  return {'entities': entities, 'language': language}
