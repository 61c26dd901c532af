"""Split a text stream into JSON records the way people actually save them.

Newline-delimited JSON (LF or CRLF, blank lines), one pretty-printed value, a top-level array
of records, or concatenated values (`{..}{..}`) all come out as one chunk per record. The
splitter only finds record boundaries; it never decides validity, so a corrupt record (a
line cut in two by a stray newline, a truncated value) becomes exactly one chunk that the
parse step dead-letters, and its neighbours are untouched.

It works a line at a time with constant memory per record, so multi-GB NDJSON files stream.
"""
import json
import re
from typing import Any, Iterable, Iterator, List, NamedTuple, Optional

# Between records: the next token. Inside a record: structure and string starts only.
# Inside a string: quotes and escapes.
_TOKEN = re.compile(r'\S')
_STRUCTURE = re.compile(r'[{}\[\]"]')
_IN_STRING = re.compile(r'["\\]')
_SCALAR_END = re.compile(r'[\s,\]\[{}]')

DEFAULT_MAX_RECORD_CHARS = 64 * 1024 * 1024
MAX_DEPTH = 100
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]')


def loads(text: str) -> Any:
  """json.loads, refusing values nested deeper than MAX_DEPTH (ValueError). Deeper values
  exhaust the stack when parsed, pickled between steps or walked, and no real record is."""
  if text.count('{') + text.count('[') > MAX_DEPTH and _nesting(text) > MAX_DEPTH:
    raise ValueError('JSON nested deeper than %d levels' % MAX_DEPTH)
  try:
    return json.loads(text)
  except RecursionError as e:  # unreachable after the check; kept as a guard
    raise ValueError('JSON nested too deeply') from e


def _nesting(text: str) -> int:
  """The deepest bracket nesting outside strings (strings are matched whole)."""
  depth = deepest = 0
  for match in _NESTING.finditer(text):
    token = match.group()
    if token in '[{':
      depth += 1
      deepest = max(deepest, depth)
    elif token in ']}':
      depth -= 1
  return deepest


class Chunk(NamedTuple):
  text: str
  line: int                 # 1-based line where the record starts
  value: Any = None         # parsed value when the fast path already parsed it
  parsed: bool = False
  error: Optional[str] = None  # set when the splitter itself knows it is corrupt


class JsonStreamSplitter:
  """Feed lines (with or without line ends); get record chunks back."""

  def __init__(self, max_record_chars: int = DEFAULT_MAX_RECORD_CHARS):
    self._max = max_record_chars
    self._line_no = 0
    self._in_array = False
    self._reset_chunk()

  def _reset_chunk(self):
    self._parts: List[str] = []
    self._size = 0
    self._depth = 0
    self._in_string = False
    self._start_line = 0

  @property
  def _pending(self) -> bool:
    return bool(self._parts)

  def feed(self, line: str) -> Iterator[Chunk]:
    self._line_no += 1
    line = line.rstrip('\r\n')
    if self._line_no == 1 and line.startswith('\ufeff'):
      line = line[1:]
    if not self._pending:
      if not self._in_array:
        fast = self._fast_path(line)
        if fast is not None:
          if fast.text:
            yield fast
          return
    elif line.startswith('{') and (self._in_string or self._complete_object(line)):
      # A record starting at column 0 while another is unfinished (cut inside a string,
      # or followed by a whole NDJSON record): the unfinished one was truncated. Close it
      # so it cannot swallow this and the following records. A bare '{' line outside a
      # string is just an unindented pretty-printed object continuing.
      yield self._flush('truncated record (a new record starts on line %d)' % self._line_no)
    yield from self._scan(line)
    if self._pending:
      self._parts.append('\n')
      if self._size > self._max:
        yield self._flush('record exceeds %d characters' % self._max)

  def close(self) -> Iterator[Chunk]:
    if self._pending:
      yield self._flush(None)

  def _fast_path(self, line: str) -> Optional[Chunk]:
    """NDJSON lines parse in C; only irregular input pays for the scanner."""
    stripped = line.strip()
    if not stripped:
      return Chunk('', self._line_no)
    if stripped[0] == '{' and stripped[-1] == '}':
      try:
        value = loads(stripped)
      except ValueError:
        return None  # the parse step says why
      return Chunk(stripped, self._line_no, value, True)
    return None

  @staticmethod
  def _complete_object(line: str) -> bool:
    stripped = line.strip()
    if not stripped.endswith('}'):
      return False
    try:
      return isinstance(loads(stripped), dict)
    except ValueError:
      return False

  def _flush(self, error: Optional[str]) -> Chunk:
    chunk = Chunk(''.join(self._parts).strip(), self._start_line, error=error)
    self._reset_chunk()
    return chunk

  def _scan(self, line: str) -> Iterator[Chunk]:
    pos = 0
    seg_start = 0 if self._pending else None
    n = len(line)
    while pos < n:
      if self._in_string:
        m = _IN_STRING.search(line, pos)
        if m is None:
          pos = n
          break
        pos = m.end()
        if m.group() == '\\':
          pos += 1
          continue
        self._in_string = False
        if self._depth == 0:  # a top-level string scalar ends here
          yield self._end(line, seg_start, pos)
          seg_start = None
        continue
      between = self._depth == 0 and not self._pending
      m = (_TOKEN if between else _STRUCTURE).search(line, pos)
      if m is None:
        break
      ch = m.group()
      at = m.start()
      pos = m.end()
      if between:
        if ch == '[' and not self._in_array:
          self._in_array = True
          continue
        if ch == ',':
          continue
        if self._in_array and ch == ']':
          self._in_array = False
          continue
        seg_start = at
        self._start_line = self._line_no
        self._parts = ['']  # mark pending
        if ch in '{[':
          self._depth = 1
        elif ch == '"':
          self._in_string = True
        else:
          # A bare scalar or garbage: it runs to the next delimiter.
          end = _SCALAR_END.search(line, at + 1)
          pos = end.start() if end else n
          if not self._in_array:
            pos = n  # outside an array, a garbage line is one record
          yield self._end(line, seg_start, pos)
          seg_start = None
        continue
      if ch in '{[':
        self._depth += 1
      elif ch in '}]':
        self._depth -= 1
        if self._depth == 0:
          yield self._end(line, seg_start, pos)
          seg_start = None
      elif ch == '"':
        self._in_string = True
    if self._pending and seg_start is not None:
      part = line[seg_start:]
      self._parts.append(part)
      self._size += len(part)

  def _end(self, line: str, seg_start: int, pos: int) -> Chunk:
    self._parts.append(line[seg_start:pos])
    return self._flush(None)


def split_json_records(lines: Iterable[str],
                       max_record_chars: int = DEFAULT_MAX_RECORD_CHARS) -> Iterator[Chunk]:
  splitter = JsonStreamSplitter(max_record_chars)
  for line in lines:
    yield from splitter.feed(line)
  yield from splitter.close()
