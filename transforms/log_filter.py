"""Log-based metric filters: a subset of the Cloud Logging query language, run in Beam.

https://cloud.google.com/logging/docs/view/logging-query-language. A filter is parsed once,
when the job starts, so a typo fails `--metric` there (FilterError, with the column) and not
halfway through a run; `Filter.matches` then never raises: a missing field, or a value that
cannot be read as the compared type, makes that comparison false, as in Logging itself.

Precedence is Logging's, not SQL's: NOT (or `-`) binds tightest, then OR, then AND, and
juxtaposition means AND, so `a OR NOT b AND NOT c OR d` is `(a OR (NOT b)) AND ((NOT c) OR d)`.
"""
import operator
import re
import unicodedata
import urllib.parse
from typing import Any, Iterable, Iterator, Optional, Tuple

from transforms import timestamps
from transforms.cloud_logging import SEVERITIES

MAX_LENGTH = 20000  # Logging's own limit on a query
_MAX_DEPTH = 100  # nested parentheses and NOTs: evaluation stays far from the recursion limit


# LogEntry's fields -> their known children (None: any), so that a misspelt field stops the
# job at start-up instead of quietly counting nothing.
_FIELDS = dict.fromkeys(['logName', 'timestamp', 'receiveTimestamp', 'severity', 'insertId',
                         'trace', 'spanId', 'traceSampled', 'textPayload'], frozenset())
_FIELDS.update(dict.fromkeys(['jsonPayload', 'protoPayload', 'labels', 'metadata',
                              'errorGroups', 'operation', 'sourceLocation', 'split']))
_FIELDS['resource'] = frozenset(['type', 'labels'])
_FIELDS['httpRequest'] = frozenset([
    'requestMethod', 'requestUrl', 'requestSize', 'status', 'responseSize', 'userAgent',
    'remoteIp', 'serverIp', 'referer', 'latency', 'cacheLookup', 'cacheHit',
    'cacheValidatedWithOriginServer', 'cacheFillBytes', 'protocol'])

_TIME_FIELDS = (('timestamp',), ('receiveTimestamp',))
_OPS = ('=', '!=', '<', '<=', '>', '>=', ':', '=~', '!~')
_ORDER = {'=': operator.eq, '!=': operator.ne, '<': operator.lt, '<=': operator.le,
          '>': operator.gt, '>=': operator.ge, ':': operator.eq}
_NEGATED = {'!=': '=', '!~': '=~'}
_KEYWORDS = ('AND', 'OR', 'NOT')
_SPACE = re.compile(r'(?:\s|--[^\n]*)*')  # `--` starts a comment, as in Logging
_OP_CHARS = re.compile(r'[=<>!~:]+')
_SEGMENT = re.compile(r'[^\s.()"=<>!~:,*\\-][^\s.()"=<>!~:,*\\]*')
_PLAIN = re.compile(r'[A-Za-z_@][A-Za-z0-9_@]*')
_BARE = re.compile(r'[^\s()"=<>!~:,]+')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_ESCAPE = re.compile(r'\\(.)', re.S)
_ESCAPES = {'"': '"', '\\': '\\', 'n': '\n', 't': '\t', 'r': '\r'}
_NUMBER = re.compile(r'[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?')
_DURATION = re.compile(r'([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(ns|us|ms|s|m|h)')
_UNITS = {'ns': 1e-9, 'us': 1e-6, 'ms': 1e-3, 's': 1.0, 'm': 60.0, 'h': 3600.0}
_METRIC_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


class FilterError(ValueError):
  """A filter that cannot be used: what is wrong and where (1-based column)."""

  def __init__(self, reason: str, text: Optional[str] = None, column: Optional[int] = None):
    self.reason, self.text, self.column = reason, text, column
    super().__init__(reason if text is None else '%s at column %d in: %s' % (reason, column, text))


def _fold(text: str) -> str:
  """NFKC case folding: Logging compares strings ignoring case (regexes excepted)."""
  return unicodedata.normalize('NFKC', unicodedata.normalize('NFKC', text).casefold())


def _number(text: str):
  """An int or float, or None; exports write int64 fields such as responseSize as strings."""
  if not _NUMBER.fullmatch(text):
    return None
  try:
    return int(text) if text.lstrip('+-').isdigit() else float(text)
  except ValueError:  # more digits than int() will read
    return None


def _seconds(text: str) -> Optional[float]:
  """A duration such as '0.005192s' or '250ms' in seconds, or None."""
  match = _DURATION.fullmatch(text)
  return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def _level(value: Any):
  """A severity's level from a name in any case or a number; None if it is neither."""
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return value
  if isinstance(value, str):
    name = value.strip().upper()
    return SEVERITIES[name] if name in SEVERITIES else _number(name)
  return None


def _spread(values: Iterable[Any], objects: bool = False) -> Iterator[Any]:
  """Values with nested lists (and dicts, if `objects`) spread out; cycles are cut."""
  stack, seen = list(values), set()
  while stack:
    value = stack.pop()
    if not (isinstance(value, list) or (objects and isinstance(value, dict))):
      yield value
    elif id(value) not in seen:
      seen.add(id(value))
      stack.extend(value.values() if isinstance(value, dict) else value)


def _resolve(entry: Any, path: Tuple[str, ...]) -> list:
  """Every value at `path`: lists on the way fan out, as Logging does for arrays."""
  nodes = [entry]
  for key in path:
    nodes = [node[key] for node in _spread(nodes) if isinstance(node, dict) and key in node]
  return nodes


def _quoted(text: str) -> str:
  return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


def _field(path: Tuple[str, ...]) -> str:
  return '.'.join(s if _PLAIN.fullmatch(s) else _quoted(s) for s in path)


class Comparison:
  """FIELD OP VALUE. Each reading of VALUE is worked out once, here, and a comparison is
  false when the entry lacks the field or holds a value of another type."""

  def __init__(self, path: Tuple[str, ...], op: str, text: str = '', quoted: bool = False):
    self.path, self.op, self.text = path, op, text
    self.null = not quoted and text == 'NULL_VALUE'
    self.folded, self.number, self.seconds = _fold(text), _number(text), _seconds(text)
    self.boolean = {'true': True, 'false': False}.get(text.lower())
    self.regex = self.level = self.instant = None
    if path in _TIME_FIELDS and op not in (':*', '=~', '!~', ':') and not self.null:
      try:  # compare instants, not spellings (3 to 9 fraction digits, offsets)
        self.instant = timestamps.parse_rfc3339_micros(text)
      except ValueError:
        raise FilterError('%s is not a timestamp like "2026-11-26T10:00:00Z"' % (
            _quoted(text))) from None
    if op in ('=~', '!~'):
      try:
        self.regex = re.compile(text)
      except (re.error, OverflowError, ValueError) as e:
        raise FilterError('bad regular expression %s: %s' % (_quoted(text), e)) from None
    elif path == ('severity',) and op != ':*' and not self.null:
      self.level = _level(text)
      if self.level is None:
        raise FilterError('unknown severity %s, expected a number or one of %s' % (
            _quoted(text), ' '.join(SEVERITIES)))

  def __str__(self):
    if self.op == ':*':
      return _field(self.path) + ':*'
    value = 'NULL_VALUE' if self.null else _quoted(self.text)
    return '%s %s %s' % (_field(self.path), self.op, value)

  def matches(self, entry: Any) -> bool:
    found = _resolve(entry, self.path)
    if self.path == ('severity',) and all(v is None for v in found):
      found = ['DEFAULT']  # LogEntry's default severity
    if self.op == ':*':
      return any(v is not None for v in found)
    if self.null:  # NULL_VALUE: only = and != mean anything
      return self.op in ('=', '!=') and any((v is None) == (self.op == '=') for v in found)
    values = list(_spread(found))
    if self.path == ('logName',):  # exported log ids are %2F-encoded: either spelling matches
      values += [urllib.parse.unquote(v) for v in values if isinstance(v, str)]
      if self.op in _NEGATED:  # neither spelling may match
        return bool(values) and not any(self._test(v, _NEGATED[self.op]) for v in values)
    return any(self._test(v, self.op) for v in values)

  def _test(self, value: Any, op: str) -> bool:
    if isinstance(value, dict) and self.seconds is not None and value and \
        set(value) <= {'seconds', 'nanos'}:  # a Duration in its object form
      try:
        seconds = int(value.get('seconds', 0)) + int(value.get('nanos', 0)) / 1e9
      except (TypeError, ValueError):
        return False
      return _ORDER[op](seconds, self.seconds) if op in _ORDER else False
    if isinstance(value, dict):  # an object "has" a value if any value inside it does
      return op == ':' and any(self._test(v, op) for v in _spread([value], objects=True))
    if value is None:
      return False
    if self.regex is not None:  # strings only, case-sensitive, unanchored (a search)
      return isinstance(value, str) and (self.regex.search(value) is None) == (op == '!~')
    if op == ':' and isinstance(value, str) and self.level is None:
      return self.folded in _fold(value)
    pair = self._pair(value)
    return pair is not None and _ORDER[op](*pair)

  def _pair(self, value: Any):
    """(entry side, query side) as one comparable type, or None if there is none."""
    if self.level is not None:
      level = _level(value)
      return None if level is None else (level, self.level)
    if self.instant is not None:
      try:
        return timestamps.parse_rfc3339_micros(value), self.instant
      except (TypeError, ValueError, AttributeError):
        return None
    if isinstance(value, bool):
      return None if self.boolean is None else (value, self.boolean)
    if isinstance(value, (int, float)):
      return None if self.number is None else (value, self.number)
    if not isinstance(value, str):
      return None
    for read, wanted in ((_seconds, self.seconds), (_number, self.number)):
      got = None if wanted is None else read(value)
      if got is not None:
        return got, wanted
    return _fold(value), self.folded


class Junction:
  """AND or OR over children; AND of nothing is the empty filter, which matches all."""

  def __init__(self, word: str, children: list):
    self.word, self.children = word, children

  def matches(self, entry: Any) -> bool:
    return (all if self.word == 'AND' else any)(c.matches(entry) for c in self.children)

  def __str__(self):
    return (' %s ' % self.word).join(_grouped(c) for c in self.children)


class Not:

  def __init__(self, child):
    self.child = child

  def matches(self, entry: Any) -> bool:
    return not self.child.matches(entry)

  def __str__(self):
    return 'NOT ' + _grouped(self.child)


def _grouped(node) -> str:
  return '(%s)' % node if isinstance(node, Junction) else str(node)


class Filter:
  """A parsed filter; `str()` gives the source back and `root` the tree."""

  def __init__(self, text: str, root):
    self.text, self.root = text, root

  def matches(self, entry: Any) -> bool:
    return bool(self.root.matches(entry))

  def __str__(self):
    return self.text

  def __repr__(self):
    return 'Filter(%r)' % self.text


class _Parser:
  """Recursive descent over the text itself, so that every error knows its column."""

  def __init__(self, text: str):
    self.text, self.pos, self.depth = text, 0, 0

  def error(self, reason: str, pos: Optional[int] = None) -> FilterError:
    return FilterError(reason, self.text, (self.pos if pos is None else pos) + 1)

  def peek(self) -> str:
    """The next character after spaces and comments, or '' at the end."""
    self.pos = _SPACE.match(self.text, self.pos).end()
    return self.text[self.pos:self.pos + 1]

  def found(self) -> str:
    return repr(self.word()) if self.peek() else 'end of filter'

  def word(self) -> str:
    match = _BARE.match(self.text, self.pos) or _OP_CHARS.match(self.text, self.pos)
    return match.group() if match else self.text[self.pos]

  def keyword(self, word: str) -> bool:
    self.peek()
    end = self.pos + len(word)
    after = self.text[end:end + 1]
    if not self.text.startswith(word, self.pos) or not (after in '("' or after.isspace()):
      return False
    self.pos = end
    return True

  def parse(self):
    if not self.peek():
      return Junction('AND', [])
    node = self.conjunction(self.comparison)
    if self.peek():  # only a stray ')' ends the top level early
      raise self.error('unexpected %r' % self.word())
    return node

  def conjunction(self, leaf):
    """AND, written or implied by juxtaposition: the loosest operator."""
    items = [self.disjunction(leaf)]
    while self.peek() not in ('', ')'):
      self.keyword('AND')
      items.append(self.disjunction(leaf))
    return items[0] if len(items) == 1 else Junction('AND', items)

  def disjunction(self, leaf):
    """OR binds tighter than AND in Logging."""
    items = [self.unary(leaf)]
    while self.keyword('OR'):
      items.append(self.unary(leaf))
    return items[0] if len(items) == 1 else Junction('OR', items)

  def unary(self, leaf):
    """NOT or `-` (not before a number), a parenthesised group, or a leaf."""
    self.peek()
    start, self.depth = self.pos, self.depth + 1
    if self.depth > _MAX_DEPTH:
      raise self.error('nested more than %d deep' % _MAX_DEPTH)
    if self.keyword('NOT'):
      node = Not(self.unary(leaf))
    elif self.peek() == '-' and not _NUMBER.match(self.text, self.pos):
      self.pos += 1
      node = Not(self.unary(leaf))
    elif self.peek() == '(':
      self.pos += 1
      node = self.group(leaf, start)
    else:
      node = leaf()
    self.depth -= 1
    return node

  def group(self, leaf, start: int):
    if self.peek() == ')':
      raise self.error('empty parentheses')
    node = self.conjunction(leaf)
    if self.peek() != ')':
      raise self.error("unclosed '('", start)
    self.pos += 1
    return node

  def comparison(self):
    """FIELD OP VALUE, FIELD OP (VALUE OR VALUE ...) or FIELD:*."""
    path = self.path()
    match = _OP_CHARS.match(self.text, self.pos) if self.peek() else None
    if not match:
      hint = ' (AND, OR and NOT are upper case)' if self.word().upper() in _KEYWORDS else ''
      raise self.error('expected an operator (%s) after %s, found %s%s' % (
          ' '.join(_OPS), _field(path), self.found(), hint))
    op = match.group()
    if op not in _OPS:
      raise self.error('unknown operator %r' % op)
    self.pos = match.end()
    if op == ':' and self.peek() == '*':
      self.pos += 1
      return Comparison(path, ':*')
    if self.peek() == '(':  # applied to each value, e.g. resource.type = ("a" OR "b")
      self.pos += 1
      return self.group(lambda: self.operand(path, op), self.pos - 1)
    return self.operand(path, op)

  def path(self) -> Tuple[str, ...]:
    self.peek()
    start, segments = self.pos, []
    while True:
      if self.text.startswith('"', self.pos) and segments:
        segments.append(self.string())
      else:
        match = _SEGMENT.match(self.text, self.pos)
        if not match:
          raise self.error('a bare value (global search) is not supported' if self.peek() == '"'
                           else 'expected a field name, found %s' % self.found())
        segments.append(match.group())
        self.pos = match.end()
      if not self.text.startswith('.', self.pos):
        break
      self.pos += 1
    if len(segments) == 1 and segments[0].upper() in _KEYWORDS:
      hint = '' if segments[0] in _KEYWORDS else ' (AND, OR and NOT are upper case)'
      raise self.error('unexpected %r%s' % (segments[0], hint), start)
    children = _FIELDS.get(segments[0], ())
    if segments[0] not in _FIELDS or (
        len(segments) > 1 and children is not None and segments[1] not in children):
      known = segments[:2] if segments[0] in _FIELDS else segments[:1]
      raise self.error('unknown field %s (not in LogEntry)' % _field(known), start)
    return tuple(segments)

  def string(self) -> str:
    match = _STRING.match(self.text, self.pos)
    if not match:
      raise self.error('unterminated string')
    self.pos = match.end()
    return _ESCAPE.sub(lambda e: _ESCAPES.get(e.group(1), e.group()), match.group(1))

  def operand(self, path, op):
    self.peek()
    start = self.pos
    quoted = self.peek() == '"'
    if quoted:
      text = self.string()
    else:
      match = _BARE.match(self.text, self.pos)
      if not match or match.group() in _KEYWORDS:
        raise self.error('missing value after %s%s' % (_field(path), op))
      text, self.pos = match.group(), match.end()
    try:
      return Comparison(path, op, text, quoted)
    except FilterError as e:
      raise self.error(e.reason, start) from None


def parse_filter(text: str) -> Filter:
  """A filter, checked now so that a bad one stops the job at start-up; '' matches all."""
  if len(text) > MAX_LENGTH:
    raise FilterError('filter longer than %d characters' % MAX_LENGTH)
  return Filter(text, _Parser(text).parse())


def parse_metric(spec: str) -> Tuple[str, Filter]:
  """`NAME=FILTER` from --metric; the first '=' separates, since FILTER may hold more."""
  name, sep, text = spec.partition('=')
  name = name.strip()
  if not sep or not name:
    raise FilterError('expected NAME=FILTER, got %r' % spec)
  if not _METRIC_NAME.fullmatch(name):
    raise FilterError('bad metric name %r in %r: letters, digits and _, not starting with a '
                      'digit' % (name, spec))
  if not text.strip():
    raise FilterError('metric %s has an empty filter' % name)
  try:
    return name, parse_filter(text)
  except FilterError as e:
    raise FilterError('metric %s: %s' % (name, e.reason), e.text, e.column) from None
