"""PubFig-style URL lists for `face_dataset`: parse the lines, name the labels, fetch the images.

Pure pieces, no Beam. A list line is `person<TAB>imagenum<TAB>url<TAB>rect<TAB>md5sum`;
`#` lines are headers. Real files have CRLF endings, a byte-order mark, blank lines, a
missing final newline and a truncated last line: `parse_line` skips headers and blank lines,
strips the line ending, and raises `RecordError` (with the line number) for a line it cannot
use, so the job makes it an error row instead of guessing.

`safe_label` (alias `label_for`) turns a person's name, or the parent folder of an image-glob
input, into one path component that cannot escape the output directory.

`download` fetches one image and never raises for network trouble: the dataset's URLs are
a decade old and many are dead, so a link that fails is a *reject* (`dead_link`,
`md5_mismatch`, `too_large`), not an error. Transient trouble (429, 5xx, timeouts, refused or
reset connections) is retried a bounded number of times with exponential backoff and jitter;
if it is still failing after the last attempt the URL counts as dead for this run too
(`dead_link`, with a detail that says it was transient). `Downloader` shares one pooled
session between the threads of a DoFn.
"""
import contextlib
import email.utils
import hashlib
import http.client
import random
import re
import socket
import ssl
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri

from transforms.deadletter import RecordError

# --- URL list lines ---------------------------------------------------------------------

FIELDS = ('person', 'imagenum', 'url', 'rect', 'md5sum')
Rect = Tuple[int, int, int, int]

_INT = re.compile(r'[0-9]+')
_RECT_PART = re.compile(r'\s*(-?[0-9]+)\s*')
_MD5 = re.compile(r'[0-9a-fA-F]{32}')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


class UrlEntry(NamedTuple):
  person: str  # the name as written in the list ("Abhishek Bachan"); see `label_for`
  imagenum: int
  url: str
  rect: Rect  # x0, y0, x1, y1: the list's face box in the original image's pixels
  md5: str  # lower-case hex
  line: int  # the line number given to `parse_line`, so a reject points back at the file


def numbered_lines(text: str, start: int = 1) -> Iterator[Tuple[int, str]]:
  """(line number, line) for every line of `text`, split on LF only.

  `str.splitlines` would also split on U+0085, U+2028, form feeds and the like, which can
  sit inside a name or URL; CR is left for `parse_line` to strip.
  """
  for number, line in enumerate(text.split('\n'), start):
    if number == start:
      line = line.lstrip('\ufeff')  # byte-order mark that editors on Windows add
    yield number, line


def parse_line(line: str, line_no: int) -> Optional[UrlEntry]:
  """One list line -> a `UrlEntry`; None for `#` headers and blank lines.

  Raises `RecordError` for a data line that is not exactly five fields with an integer
  image number, an http(s) URL, a four-integer rect with some area and a 32-hex md5. A
  truncated last line fails here (too few fields, or a cut md5) rather than fetching an
  image it cannot verify.
  """
  line = line.rstrip('\r\n').lstrip('\ufeff')
  if not line.strip() or line.lstrip().startswith('#'):
    return None
  fields = [f.strip() for f in line.split('\t')]
  if len(fields) != len(FIELDS):
    raise RecordError('line %d: expected %d tab-separated fields (%s), got %d%s' % (
        line_no, len(FIELDS), ', '.join(FIELDS), len(fields),
        ' (truncated line?)' if len(fields) < len(FIELDS) else ''))
  person, imagenum, url, rect, md5 = fields
  if not person:
    raise RecordError('line %d: empty person' % line_no)
  if not _INT.fullmatch(imagenum):
    raise RecordError('line %d: imagenum %r is not a non-negative integer' % (line_no, imagenum))
  _check_url(url, 'line %d: url' % line_no)
  if not _MD5.fullmatch(md5):
    raise RecordError('line %d: md5sum %r is not 32 hex digits' % (line_no, md5))
  return UrlEntry(person, int(imagenum), url, parse_rect(rect, line_no), md5.lower(), line_no)


def parse_rect(text: str, line_no: int = 0) -> Rect:
  """`x0,y0,x1,y1` -> ints. Values may be negative (a face cut by the image border), but the
  box must have some area: an inverted or empty one means the line is corrupt."""
  parts = text.split(',')
  matches = [_RECT_PART.fullmatch(p) for p in parts]
  if len(parts) != 4 or not all(matches):
    raise RecordError('line %d: rect %r is not four integers x0,y0,x1,y1' % (line_no, text))
  x0, y0, x1, y1 = (int(m.group(1)) for m in matches)
  if x1 <= x0 or y1 <= y0:
    raise RecordError('line %d: rect %r has no area (needs x0 < x1 and y0 < y1)' % (line_no, text))
  return x0, y0, x1, y1


def _check_url(url: str, what: str) -> None:
  """http(s) with a host; no control characters (urllib3 refuses them anyway). Non-ASCII is
  allowed: requests percent-encodes the path and IDNA-encodes the host."""
  if _CONTROL.search(url):
    raise RecordError('%s %r contains control characters' % (what, url))
  try:
    parts = urlsplit(url)
    host = parts.hostname
  except ValueError as e:  # bad IPv6 literal, bad port
    raise RecordError('%s %r is not a valid URL: %s' % (what, url, e)) from None
  if parts.scheme.lower() not in ('http', 'https') or not host:
    raise RecordError('%s %r is not an http(s) URL with a host' % (what, url))


# --- labels ------------------------------------------------------------------------------

MAX_LABEL_CHARS = 100
MAX_LABEL_BYTES = 255  # NAME_MAX of ext4 and most file systems, counted in UTF-8


def safe_label(name: str) -> str:
  """A person's name or an input folder's name -> a label that is one safe path component.

  NFC-normalised (a decomposed "José" from a macOS folder and a composed one from the list
  are the same label); letters, digits and combining marks are kept in any script (marks
  carry the vowels of Devanagari and other scripts); every run of anything else -- spaces,
  punctuation, `/`, `\\`, `.`, commas and newlines -- becomes one `_`, and `_` is stripped
  from both ends. So no label contains a separator or is `.`/`..`, and labels are safe in
  `path,label` index lines: `../etc` becomes `etc` (nothing is left that could escape) and
  only a name with nothing usable left (`..`, `''`, `-`) is refused. Distinct names can
  meet (`Mary-Kate Olsen` and `Mary Kate Olsen` are both `Mary_Kate_Olsen`); that is the
  point. Case is kept. Refused too: labels over 100 characters or 255 UTF-8 bytes.
  """
  if not isinstance(name, str):
    raise RecordError('label %r is not text' % (name,))
  out: List[str] = []
  for ch in unicodedata.normalize('NFC', name):
    if unicodedata.category(ch)[0] in 'LNM':
      out.append(ch)
    elif out and out[-1] != '_':
      out.append('_')
  label = ''.join(out).strip('_')
  if not label or label in ('.', '..'):
    raise RecordError('label %r has no letters or digits' % (name,))
  if len(label) > MAX_LABEL_CHARS or len(label.encode('utf-8')) > MAX_LABEL_BYTES:
    raise RecordError('label %r is longer than %d characters or %d bytes' % (
        label, MAX_LABEL_CHARS, MAX_LABEL_BYTES))
  return label


label_for = safe_label


# --- downloads ---------------------------------------------------------------------------

DEAD_LINK = 'dead_link'
MD5_MISMATCH = 'md5_mismatch'
TOO_LARGE = 'too_large'
REJECT_REASONS = (DEAD_LINK, MD5_MISMATCH, TOO_LARGE)

MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 10
CHUNK_BYTES = 64 * 1024
USER_AGENT = 'face-dataset/1.0 (image fetcher; python-requests)'
HEADERS = {'User-Agent': USER_AGENT, 'Accept': 'image/*,*/*;q=0.5'}
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# Error pages, not images: a dead link's "not found" page is often served with a 200. Other
# types pass, image/* always (image/svg+xml too), since old servers send images as
# application/octet-stream or nothing at all; the decode step turns whatever is not an image
# into an error row.
_MARKUP_TYPE = re.compile(r'(text/.*|.*[/+](html|xml|json|javascript))', re.IGNORECASE)


class Download(NamedTuple):
  data: Optional[bytes]  # the body; None when rejected
  reject: Optional[str]  # None, or one of REJECT_REASONS
  detail: str  # why, for the rejects table ('' when fetched)
  status: Optional[int]  # the last HTTP status seen; None when no response came back
  attempts: int  # attempts made (redirect hops inside one do not count); 0: URL refused


def is_transient_status(status: int) -> bool:
  """Worth asking again: timeouts, throttling, server trouble (not 501/505: permanent)."""
  return status in (408, 425, 429) or (500 <= status <= 599 and status not in (501, 505))


class _Session(requests.Session):
  """A Session that never follows or reads redirects itself.

  Even with `allow_redirects=False`, `requests.Session.send` reads the whole body of a
  redirect response (to prepare `Response.next`), with no size limit; `download` follows
  redirects itself, bounded, without reading their bodies.
  """

  def get_redirect_target(self, resp):
    return None


def new_session(pool_size: int = 16) -> requests.Session:
  """A session for `download`: pooled keep-alive connections, no transport-level retries
  (`download` retries, with backoff), our User-Agent."""
  session = _Session()
  adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
  session.mount('http://', adapter)
  session.mount('https://', adapter)
  session.headers.update(HEADERS)
  return session


class _Give(NamedTuple):
  """One attempt's outcome: final (a Download to return) or transient (retry if allowed)."""
  download: Download
  transient: bool = False
  retry_after_s: Optional[float] = None


class _DeadlineExceeded(Exception):
  pass


def download(url: str, md5: Optional[str] = None, timeout_s: float = 10.0,
             max_bytes: int = MAX_BYTES, max_attempts: int = 3, backoff_s: float = 0.5,
             session: Optional[requests.Session] = None, *, max_wait_s: float = 30.0,
             deadline_s: float = 60.0, max_redirects: int = MAX_REDIRECTS,
             sleep: Callable[[float], None] = time.sleep) -> Download:
  """Fetch one image. Never raises for network trouble: failures are `Download.reject`s.

  - `timeout_s`: connect timeout, and the longest wait for any bytes once connected.
    `deadline_s` bounds one whole attempt (redirects and body), so a server that trickles
    a byte at a time cannot hold a worker thread.
  - `max_bytes`: a Content-Length over it is refused before reading; otherwise reading stops
    as soon as the body passes it (chunked bodies too). Counted after content decoding.
  - retries: up to `max_attempts` attempts on 408/425/429/5xx, timeouts and refused or broken
    connections, waiting `backoff_s * 2**(n-1)` times a random 0.5..1.5 (at least what a
    Retry-After header asks, at most `max_wait_s`). A Retry-After over `max_wait_s` ends the
    retries at once. 4xx, DNS failures, TLS errors, bad URLs, error pages served as HTML,
    md5 mismatches and too-large bodies are final at the first attempt.
  - `md5`: hex digest of the body, any case.
  - redirects: followed up to `max_redirects` hops per attempt, http(s) only; their bodies
    are not read. Use a session from `new_session` (a plain `requests.Session` works, but it
    reads every redirect body whole).
  """
  try:
    _check_url(url, 'url')
  except RecordError as e:  # nothing to send
    return _dead(str(e))
  own = session is None
  if own:
    session = new_session(pool_size=1)
  try:
    attempts = 0
    while True:
      attempts += 1
      give = _attempt(session, url, md5, timeout_s, max_bytes, deadline_s, max_redirects)
      result = give.download._replace(attempts=attempts)
      if not give.transient:
        return result
      gave_up = 'transient failure, gave up after %d attempt%s: %s' % (
          attempts, '' if attempts == 1 else 's', result.detail)
      if attempts >= max_attempts:
        return result._replace(detail=gave_up)
      if give.retry_after_s is not None and give.retry_after_s > max_wait_s:
        return result._replace(detail='%s (server asked to wait %.0f s, more than %g s)' % (
            gave_up, give.retry_after_s, max_wait_s))
      sleep(backoff_wait_s(attempts, backoff_s, give.retry_after_s, max_wait_s))
  finally:
    if own:
      session.close()


def backoff_wait_s(attempt: int, backoff_s: float, retry_after_s: Optional[float] = None,
                   max_wait_s: float = 30.0, rand: Callable[[], float] = random.random) -> float:
  """Seconds to wait after failed attempt `attempt` (1-based): exponential with jitter, so
  workers that failed together do not come back together; never less than Retry-After."""
  wait = backoff_s * 2 ** (attempt - 1) * (0.5 + rand())
  if retry_after_s is not None:
    wait = max(wait, retry_after_s)
  return min(wait, max_wait_s)


def retry_after_s(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
  """A Retry-After header (delay-seconds or an HTTP date) -> seconds from now, or None."""
  if not value:
    return None
  value = value.strip()
  if value.isdigit():
    return float(value)
  try:
    when = email.utils.parsedate_to_datetime(value)
  except (TypeError, ValueError, IndexError):
    return None
  if when.tzinfo is None:
    when = when.replace(tzinfo=timezone.utc)
  now = time.time() if now is None else now
  return max(0.0, when.timestamp() - now)


def _dead(detail: str, status: Optional[int] = None) -> Download:
  return Download(None, DEAD_LINK, detail, status, 0)


def _attempt(session: requests.Session, url: str, md5: Optional[str], timeout_s: float,
             max_bytes: int, deadline_s: float, max_redirects: int) -> _Give:
  deadline = time.monotonic() + deadline_s
  status = None
  current = url
  try:
    for _ in range(max_redirects + 1):
      response = session.get(current, stream=True, timeout=(timeout_s, timeout_s),
                             allow_redirects=False)
      with contextlib.closing(response):
        status = response.status_code
        location = requests.Session.get_redirect_target(session, response)
        if status in _REDIRECT_STATUSES and location:
          current = urljoin(current, requote_uri(location))
          _check_url(current, 'redirect to')
          if time.monotonic() > deadline:
            raise _DeadlineExceeded()
          continue
        return _answer(response, md5, max_bytes, deadline)
    return _Give(_dead('more than %d redirects' % max_redirects, status))
  except RecordError as e:
    return _Give(_dead(str(e), status))
  except _DeadlineExceeded:
    return _Give(_dead('took longer than %g s' % deadline_s, status), transient=True)
  except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException,
          OSError, ValueError) as e:
    transient, detail = classify_error(e)
    return _Give(_dead(detail, status), transient=transient)


def _answer(response: requests.Response, md5: Optional[str], max_bytes: int,
            deadline: float) -> _Give:
  """The final (non-redirect) response -> the body or a reject."""
  status = response.status_code
  if not 200 <= status <= 299:
    detail = 'HTTP %d %s' % (status, response.reason or '')
    if is_transient_status(status):
      return _Give(_dead(detail.strip(), status), transient=True,
                   retry_after_s=retry_after_s(response.headers.get('Retry-After')))
    return _Give(_dead(detail.strip(), status))
  content_type = response.headers.get('Content-Type', '').split(';')[0].strip()
  if not content_type.lower().startswith('image/') and _MARKUP_TYPE.fullmatch(content_type):
    return _Give(_dead('content type %s, not an image' % content_type, status))
  declared = response.headers.get('Content-Length', '')
  if declared.strip().isdigit() and int(declared) > max_bytes:
    return _Give(Download(None, TOO_LARGE, 'Content-Length %s is over the %d-byte cap' % (
        declared.strip(), max_bytes), status, 0))
  digest = hashlib.md5(usedforsecurity=False)
  chunks: List[bytes] = []
  size = 0
  raw = response.raw
  while True:
    # read1: whatever has arrived (up to a chunk), so the deadline is checked as bytes trickle
    chunk = raw.read1(CHUNK_BYTES, decode_content=True)
    if not chunk:
      break
    size += len(chunk)
    if size > max_bytes:
      return _Give(Download(None, TOO_LARGE, 'body is over the %d-byte cap' % max_bytes,
                            status, 0))
    digest.update(chunk)
    chunks.append(chunk)
    if time.monotonic() > deadline:
      raise _DeadlineExceeded()
  if not size:
    return _Give(_dead('empty body', status))
  if md5 is not None and digest.hexdigest() != md5.strip().lower():
    return _Give(Download(None, MD5_MISMATCH, 'md5 %s, list says %s' % (
        digest.hexdigest(), md5.strip().lower()), status, 0))
  return _Give(Download(b''.join(chunks), None, '', status, 0))


def _causes(exc: BaseException) -> Iterator[BaseException]:
  """`exc` and what it wraps: requests wraps urllib3, which wraps socket errors, through
  `args`, `.reason` (MaxRetryError) and `__cause__`/`__context__`."""
  seen, todo = set(), [exc]
  while todo and len(seen) < 32:
    e = todo.pop(0)
    if id(e) in seen:
      continue
    seen.add(id(e))
    yield e
    todo.extend(a for a in getattr(e, 'args', ()) if isinstance(a, BaseException))
    for attr in ('reason', '__cause__', '__context__'):
      inner = getattr(e, attr, None)
      if isinstance(inner, BaseException):
        todo.append(inner)


def classify_error(exc: BaseException) -> Tuple[bool, str]:
  """A network exception -> (transient?, short detail). Order matters: urllib3's
  NewConnectionError (refused, DNS) is a subclass of its ConnectTimeoutError."""
  causes = list(_causes(exc))

  def has(*types) -> bool:
    return any(isinstance(c, types) for c in causes)

  if has(urllib3.exceptions.NameResolutionError, socket.gaierror):
    return False, 'DNS lookup failed'
  if has(ConnectionRefusedError):
    return True, 'connection refused'
  if has(requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError):
    return False, 'TLS error'
  if has(requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
         requests.exceptions.InvalidSchema, urllib3.exceptions.LocationParseError):
    return False, 'invalid URL'
  if has(requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError):
    return False, 'undecodable Content-Encoding'
  if (has(requests.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)
      or any(isinstance(c, urllib3.exceptions.ConnectTimeoutError)
             and not isinstance(c, urllib3.exceptions.NewConnectionError) for c in causes)):
    return True, 'timed out'
  if has(ConnectionResetError, BrokenPipeError, http.client.IncompleteRead,
         http.client.RemoteDisconnected, urllib3.exceptions.ProtocolError,
         requests.exceptions.ChunkedEncodingError):
    return True, 'connection broken mid-response'
  if has(requests.ConnectionError, urllib3.exceptions.NewConnectionError, ConnectionError):
    return True, 'connection failed'
  if has(UnicodeError, ValueError):
    return False, 'invalid URL'
  return False, '%s' % type(exc).__name__


class Downloader:
  """One pooled, thread-safe fetcher per worker: build it in `DoFn.setup()` (or lazily).

  The session (urllib3's pools are thread-safe; the session is never changed after it is
  built) is created on first use under a lock and dropped when pickled, so a Downloader can
  sit in a DoFn's constructor.
  """

  def __init__(self, timeout_s: float = 10.0, max_bytes: int = MAX_BYTES,
               max_attempts: int = 3, backoff_s: float = 0.5, max_wait_s: float = 30.0,
               deadline_s: float = 60.0, max_redirects: int = MAX_REDIRECTS,
               pool_size: int = 16):
    self.timeout_s = timeout_s
    self.max_bytes = max_bytes
    self.max_attempts = max_attempts
    self.backoff_s = backoff_s
    self.max_wait_s = max_wait_s
    self.deadline_s = deadline_s
    self.max_redirects = max_redirects
    self.pool_size = pool_size
    self._lock = threading.Lock()
    self._session: Optional[requests.Session] = None

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_lock'] = None
    state['_session'] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def setup(self) -> 'Downloader':
    self._get_session()
    return self

  def close(self) -> None:
    with self._lock:
      session, self._session = self._session, None
    if session is not None:
      session.close()

  teardown = close

  def __enter__(self) -> 'Downloader':
    return self.setup()

  def __exit__(self, *exc_info) -> None:
    self.close()

  def _get_session(self) -> requests.Session:
    with self._lock:
      if self._session is None:
        self._session = new_session(self.pool_size)
      return self._session

  def download(self, url: str, md5: Optional[str] = None) -> Download:
    return download(url, md5, timeout_s=self.timeout_s, max_bytes=self.max_bytes,
                    max_attempts=self.max_attempts, backoff_s=self.backoff_s,
                    session=self._get_session(), max_wait_s=self.max_wait_s,
                    deadline_s=self.deadline_s, max_redirects=self.max_redirects)

  def download_many(self, entries: Iterable[Union[UrlEntry, str]],
                    max_concurrency: int = 8) -> List[Download]:
    """Fetch `entries` (UrlEntry, checked against its md5, or bare URLs) on up to
    `max_concurrency` threads; results in input order. Concurrency above `pool_size` works
    but opens connections that are not kept."""
    entries = list(entries)
    if not entries:
      return []

    def one(entry: Union[UrlEntry, str]) -> Download:
      if isinstance(entry, str):
        return self.download(entry)
      return self.download(entry.url, entry.md5)

    workers = max(1, min(max_concurrency, len(entries)))
    if workers == 1:
      return [one(e) for e in entries]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix='pubfig-download') as pool:
      return list(pool.map(one, entries))

