"""A local Cloud Natural Language v1 REST server, so the real client can be tested offline.

Speaks the JSON the generated REST transport sends and parses (camelCase fields, enums as
numbers when the client asks with `$alt=json;enum-encoding=int`, as it always does), answers
failures with Google's error body, and scores text by a fixed rule the tests can compute
(`score_document`, `extract_entities`). Faults (`fail`, `latency_s`) and a request log (arrival
time, in-flight count) let tests see retries, concurrency and the rate limit from the server.
"""
import dataclasses
import re
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tests.fake_http import (
    STATUS_NAMES, FailureRule, FakeGoogleApi, HttpRequest, default_messages)

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

# Google's `error.message` for each HTTP status (STATUS_NAMES gives `error.status`).
DEFAULT_MESSAGES = default_messages('language.googleapis.com')

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


class FakeLanguageApi(FakeGoogleApi[RequestRecord]):
  """`with FakeLanguageApi() as fake: LanguageApi(endpoint=fake.endpoint)`."""
  service = 'language.googleapis.com'
  status_names = STATUS_NAMES
  default_messages = DEFAULT_MESSAGES

  def __init__(self, latency_s: float = 0.0, unsupported_languages: Sequence[str] = ('xx',),
               required_api_key: Optional[str] = None):
    super().__init__(latency_s, required_api_key)
    self.unsupported_languages = set(unsupported_languages)

  # Fault injection.
  def fail(self, status: int, times: Optional[int] = 1, match: Optional[str] = None,
           message: Optional[str] = None) -> None:
    """Answer `status` to the next `times` requests (None: all of them), or only to those whose
    content contains `match`. Rules are tried in the order they were added."""
    self._add_failure(FailureRule(status, times, match, message))

  # Serving.
  def _inspect(self, request: HttpRequest) -> Tuple[RequestRecord, Dict[str, Any]]:
    body = request.json
    document = body.get('document') if isinstance(body, dict) else None
    document = document if isinstance(document, dict) else {}
    record = RequestRecord(
        t=request.t, path=request.path, content=document.get('content'),
        language=document.get('language'), in_flight=0, api_key=request.api_key,
        authorization=request.headers.get('Authorization'), body=body, query=request.query)
    return record, document

  def _answer(self, request: HttpRequest, document: Dict[str, Any],
              headers: Dict[str, str]) -> Tuple[int, Dict[str, Any]]:
    method, path, body, query = request.method, request.path, request.json, request.query
    key_error = self._key_error(request.api_key)
    if key_error is not None:
      return key_error
    if path not in (SENTIMENT_PATH, ENTITIES_PATH) or method != 'POST':
      return self._error(404, 'Method not found.' if method == 'POST' else
                         'The requested URL %s was not found on this server.' % path)
    if body is None:
      return self._error(400, 'Invalid JSON payload received.')
    content = document.get('content')
    failure = self._take_failure(lambda match: content is not None and match in content)
    if failure is not None:
      return self._failed(failure, headers)
    if not content:
      return self._error(400, 'One of content, or gcs_content_uri must be set.')
    doc_type = document.get('type')
    if doc_type not in (1, 'PLAIN_TEXT', 2, 'HTML'):
      return self._error(400, 'Invalid document type.')
    language = document.get('language') or 'en'
    feature = 'document_sentiment' if path == SENTIMENT_PATH else 'entity'
    if language in self.unsupported_languages:
      return self._error(
          400, 'The language %s is not supported for %s analysis.' % (language, feature))
    encoding = body.get('encodingType', 0)
    encoding = ENCODING_TYPES.get(encoding, encoding) if isinstance(encoding, int) else encoding
    numeric = any('enum-encoding=int' in v for v in query.get('$alt', []))
    if path == SENTIMENT_PATH:
      return 200, _sentiment_response(content, language, encoding)
    return 200, _entities_response(content, language, encoding, numeric)


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
