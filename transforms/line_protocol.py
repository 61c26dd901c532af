"""Parse one line of InfluxDB line protocol, the text format IoT gateways and Telegraf send.

    weather,location=us-midwest temperature=82,humidity=40i,ok=t 1465839830100400200

A line becomes a typed Point, or a LineProtocolError whose message says what is wrong and at
which column, so a pipeline can dead-letter the line with a reason a person can act on. No
other exception escapes, whatever the input.

Follows the InfluxDB v2 line protocol reference:
  * measurement: `\\,` and `\\ ` unescape; tag keys, tag values and field keys also `\\=`.
    A backslash before any other character (another backslash included) is kept as is.
  * string field values: `\\"` and `\\\\` unescape; other backslashes are kept.
  * numbers: `1.5` float, `1i` int64, `1u` uint64; booleans t/true/f/false in three cases.
  * duplicate field keys: the last value wins, as in InfluxDB. Duplicate tag keys are an
    error: a tag names the series, and which of the two was meant cannot be known.
Runs of spaces or tabs between the three sections are tolerated, and surrounding whitespace
(a CRLF line end included) is ignored.

It runs once per message (benchmarks feed it 500k readings), so the usual line is split with
str methods, and only lines with backslashes, quotes, extra whitespace or errors take the
general scanner: one left-to-right pass, one precompiled regex search per token (character
classes only, so nothing can backtrack).
"""
import re
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

FieldValue = Union[float, int, bool, str]

INT64_MIN = -2**63
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_WHITESPACE = ' \t\r\n\x0b\x0c'   # ASCII only: stripping NBSP etc. would change names
_SEPARATOR = ' \t'

# The next character that ends (or escapes inside) each kind of token.
_MEASUREMENT_STOP = re.compile(r'[\\, \t]')
_KEY_STOP = re.compile(r'[\\,= \t]')
_TAG_VALUE_STOP = re.compile(r'[\\, \t]')
_STRING_STOP = re.compile(r'[\\"]')
_VALUE_END = re.compile(r'[, \t]')
_TOKEN_END = re.compile(r'[ \t]')

_MEASUREMENT_ESCAPES = ', '
_KEY_ESCAPES = ',= '

# Numbers exactly as line protocol writes them (ASCII digits, no '+', no '_', no hex, no nan).
_FLOAT_MATCH = re.compile(r'-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?').fullmatch
_INTEGER_MATCH = re.compile(r'-?[0-9]+').fullmatch

_TRUE = frozenset(('t', 'T', 'true', 'True', 'TRUE'))
_FALSE = frozenset(('f', 'F', 'false', 'False', 'FALSE'))

_SHOWN_CHARS = 40


class LineProtocolError(ValueError):
  """Not valid line protocol. `reason` says why, `column` (1-based) where, when known."""

  def __init__(self, reason: str, column: Optional[int] = None):
    self.reason = reason
    self.column = column
    super().__init__(reason if column is None else '%s at column %d' % (reason, column))

  def __reduce__(self):
    # Default pickling would rebuild from the formatted message and lose the column.
    return (type(self), (self.reason, self.column))


class Point(NamedTuple):
  measurement: str
  tags: Dict[str, str]                 # in the order the line has them
  fields: Dict[str, FieldValue]        # typed as written: 1.0 float, 1i int, t bool, "1" str
  timestamp_ns: Optional[int]          # None when the line has no timestamp


def is_comment_or_blank(line: str) -> bool:
  """True for lines a reader should skip rather than parse: blank or '#' comments."""
  text = line.lstrip(_WHITESPACE)
  return not text or text[0] == '#'


def parse_line(line: str) -> Point:
  """One line of line protocol -> Point. Raises LineProtocolError, never anything else."""
  if not isinstance(line, str):
    raise LineProtocolError('expected str, got %s' % type(line).__name__)
  text = line.strip(_WHITESPACE)
  if not text:
    raise LineProtocolError('empty line')
  point = _parse_plain(text)
  if point is not None:
    return point
  try:
    return _parse(text)
  except _Invalid as e:
    # Columns count in the caller's line, leading whitespace included.
    offset = len(line) - len(line.lstrip(_WHITESPACE))
    raise LineProtocolError(e.reason, offset + e.pos + 1) from None


def _parse_plain(text: str) -> Optional[Point]:
  """Fast path for the usual line: no backslash, quote or tab, single spaces. Plain splits.

  Returns None for any other line, valid or not; _parse then scans it and explains errors.
  Wherever this returns a Point, _parse returns the same one (the tests check that).
  """
  if '\\' in text or '"' in text or '\t' in text or '\n' in text:
    return None
  sections = text.split(' ')
  if len(sections) == 2:
    series, field_set = sections
    timestamp = None
  elif len(sections) == 3:
    series, field_set, raw = sections
    if not _INTEGER_MATCH(raw):
      return None
    timestamp = _bounded_int(raw, INT64_MIN, INT64_MAX)
    if timestamp is None:
      return None
  else:
    return None
  measurement, *tag_items = series.split(',')
  if not measurement or measurement[0] == '#':
    return None
  tags: Dict[str, str] = {}
  for item in tag_items:
    key, _, value = item.partition('=')
    if not key or not value or key in tags:
      return None
    tags[key] = value
  fields: Dict[str, FieldValue] = {}
  for item in field_set.split(','):
    key, _, raw = item.partition('=')
    if not key or not raw:
      return None
    try:
      fields[key] = _typed(raw)
    except ValueError:
      return None
  return Point(measurement, tags, fields, timestamp)


class _Invalid(Exception):
  """Internal: why, and the index in the stripped line; parse_line turns it into a column."""

  def __init__(self, reason: str, pos: int):
    super().__init__(reason)
    self.reason = reason
    self.pos = pos


def _parse(text: str) -> Point:
  """The scan itself, over a line already stripped of surrounding whitespace."""
  n = len(text)
  if not n:
    raise _Invalid('empty line', 0)
  if text[0] == '#':
    raise _Invalid('comment line', 0)
  newline = text.find('\n')
  if newline >= 0:
    raise _Invalid('line contains a newline', newline)

  measurement, pos = _name(text, 0, _MEASUREMENT_STOP, _MEASUREMENT_ESCAPES)
  if not measurement:
    raise _Invalid('missing measurement', 0)

  tags: Dict[str, str] = {}
  while pos < n and text[pos] == ',':
    key_pos = pos + 1
    key, pos = _name(text, key_pos, _KEY_STOP, _KEY_ESCAPES)
    if not key:
      raise _Invalid('empty tag key', key_pos)
    if pos >= n or text[pos] != '=':
      raise _Invalid("tag %s: missing '='" % _show(key), pos)
    value, pos = _name(text, pos + 1, _TAG_VALUE_STOP, _KEY_ESCAPES)
    if not value:
      raise _Invalid('tag %s: empty value' % _show(key), pos)
    if key in tags:
      raise _Invalid('duplicate tag %s' % _show(key), key_pos)
    tags[key] = value

  pos = _skip_separators(text, pos)
  if pos >= n:
    raise _Invalid('missing fields', pos)
  fields: Dict[str, FieldValue] = {}
  while True:
    key_pos = pos
    key, pos = _name(text, pos, _KEY_STOP, _KEY_ESCAPES)
    if not key:
      raise _Invalid('empty field key', key_pos)
    if pos >= n or text[pos] != '=':
      raise _Invalid("field %s: missing '='" % _show(key), pos)
    pos += 1
    if pos < n and text[pos] == '"':
      value, pos = _string(text, pos, key)
    else:
      match = _VALUE_END.search(text, pos)
      end = match.start() if match is not None else n
      raw = text[pos:end]
      if not raw:
        raise _Invalid('field %s: missing value' % _show(key), pos)
      try:
        value = _typed(raw)
      except ValueError as e:
        raise _Invalid('field %s: %s %s' % (_show(key), e, _show(raw)), pos) from None
      pos = end
    fields[key] = value   # a repeated key: the last value wins, as in InfluxDB
    if pos >= n or text[pos] != ',':
      break
    pos += 1

  pos = _skip_separators(text, pos)
  if pos >= n:
    return Point(measurement, tags, fields, None)
  match = _TOKEN_END.search(text, pos)
  end = match.start() if match is not None else n
  raw = text[pos:end]
  if not _INTEGER_MATCH(raw):
    raise _Invalid('invalid timestamp %s' % _show(raw), pos)
  timestamp = _bounded_int(raw, INT64_MIN, INT64_MAX)
  if timestamp is None:
    raise _Invalid('timestamp out of range %s' % _show(raw), pos)
  rest = _skip_separators(text, end)
  if rest < n:
    raise _Invalid('unexpected text after timestamp %s' % _show(text[rest:]), rest)
  return Point(measurement, tags, fields, timestamp)


def _name(text: str, pos: int, stop: re.Pattern, escapes: str) -> Tuple[str, int]:
  """An unquoted name from pos to its first unescaped delimiter: (unescaped, delimiter index)."""
  match = stop.search(text, pos)
  if match is None:
    return text[pos:], len(text)
  end = match.start()
  if text[end] != '\\':   # no backslash before the delimiter: the common case
    return text[pos:end], end
  parts: List[str] = []
  start = pos
  while match is not None and text[end] == '\\':
    escaped = text[end + 1:end + 2]
    if escaped and escaped in escapes:
      parts.append(text[start:end])
      start = end + 1                        # drop the backslash, keep what it escapes
      match = stop.search(text, end + 2)
    else:
      match = stop.search(text, end + 1)    # a literal backslash
    end = match.start() if match is not None else len(text)
  parts.append(text[start:end])
  return ''.join(parts), end


def _string(text: str, opening: int, key: str) -> Tuple[str, int]:
  """A double-quoted field value, which may hold spaces, commas and '=': (value, end)."""
  parts: List[str] = []
  start = search_from = opening + 1
  while True:
    match = _STRING_STOP.search(text, search_from)
    if match is None:
      raise _Invalid('field %s: unterminated string' % _show(key), opening)
    at = match.start()
    if text[at] == '"':
      break
    if text[at + 1:at + 2] in ('"', '\\'):
      parts.append(text[start:at])
      start = at + 1                         # drop the escaping backslash
      search_from = at + 2
    else:
      search_from = at + 1                   # a literal backslash
  parts.append(text[start:at])
  end = at + 1
  if end < len(text) and text[end] not in ', \t':
    raise _Invalid('field %s: unexpected %s after string' % (_show(key), _show(text[end])), end)
  return ''.join(parts), end


def _typed(raw: str) -> FieldValue:
  """An unquoted field value -> float, int or bool; ValueError(reason) when it is none."""
  last = raw[-1]
  if last == 'i' or last == 'u':
    if not _INTEGER_MATCH(raw, 0, len(raw) - 1):
      raise ValueError('invalid value')
    if last == 'i':
      value = _bounded_int(raw[:-1], INT64_MIN, INT64_MAX)
      if value is None:
        raise ValueError('integer out of range')
      return value
    if raw[0] == '-':
      raise ValueError('negative unsigned integer')
    value = _bounded_int(raw[:-1], 0, UINT64_MAX)
    if value is None:
      raise ValueError('unsigned integer out of range')
    return value
  if raw in _TRUE:
    return True
  if raw in _FALSE:
    return False
  if not _FLOAT_MATCH(raw):
    raise ValueError('invalid value')
  number = float(raw)
  if number - number != 0:   # inf: a literal too big for a double (nan cannot be written)
    raise ValueError('float out of range')
  return number


def _bounded_int(digits: str, low: int, high: int) -> Optional[int]:
  """int(digits) when within [low, high], else None, however many digits it has."""
  if len(digits) > 18:   # else it surely fits; this also keeps int() under its digit limit
    magnitude = digits.lstrip('-').lstrip('0')
    if len(magnitude) > 20:
      return None
    value = int(magnitude or '0')
    if digits[0] == '-':
      value = -value
  else:
    value = int(digits)
  return value if low <= value <= high else None


def _skip_separators(text: str, pos: int) -> int:
  while pos < len(text) and text[pos] in _SEPARATOR:
    pos += 1
  return pos


def _show(text: str) -> str:
  """Quote a key or value for an error message, cut short so messages stay short."""
  if len(text) > _SHOWN_CHARS:
    text = text[:_SHOWN_CHARS] + '...'
  return repr(text)
