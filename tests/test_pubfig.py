"""PubFig URL lists: line quirks of the real files, safe labels, and every download outcome
against a local image host (no network)."""
import gzip
import hashlib
import os
import pickle
import socket
import threading
import time

import pytest

from tests.fake_image_server import FakeImageServer, make_image
from transforms import pubfig
from transforms.deadletter import RecordError
from transforms.pubfig import (
    DEAD_LINK, MD5_MISMATCH, TOO_LARGE, Download, Downloader, UrlEntry, backoff_wait_s,
    download, label_for, numbered_lines, parse_line, retry_after_s, safe_label)

MD5 = '0123456789abcdef0123456789abcdef'
# Fast settings: short timeouts and backoff, so the whole file runs in a few seconds.
FAST = dict(timeout_s=2.0, backoff_s=0.01, max_wait_s=1.0)


def md5_of(data: bytes) -> str:
  return hashlib.md5(data).hexdigest()


@pytest.fixture
def server():
  with FakeImageServer() as s:
    yield s


# --- parse_line ----------------------------------------------------------------------------

def test_parse_line_reads_a_crlf_data_line():
  line = 'Abhishek Bachan\t1\thttp://example.com/a.jpg\t155,53,250,148\t%s\r\n' % MD5
  assert parse_line(line, 3) == UrlEntry(
      'Abhishek Bachan', 1, 'http://example.com/a.jpg', (155, 53, 250, 148), MD5, 3)


@pytest.mark.parametrize('line', [
    '# version 1.2', '# version 1.2\r\n', '#\tperson\timagenum\turl\trect\tmd5sum\r\n',
    '  # indented header', '', '\n', '\r\n', '   \t  \r\n'])
def test_parse_line_skips_headers_and_blank_lines(line):
  assert parse_line(line, 1) is None


def test_parse_line_keeps_negative_rect_values():
  line = 'Adam Sandler\t12\thttps://x.org/p.jpg\t-12,-3,80,95\t%s' % MD5
  assert parse_line(line, 1).rect == (-12, -3, 80, 95)


def test_parse_line_keeps_names_urls_and_lowercases_md5():
  url = 'http://bilder.example.de/José María/foto 1.jpg?size=large&x=%C3%A9'
  entry = parse_line('José María Aznar\t7\t%s\t1,2,30,40\t%s\r' % (url, MD5.upper()), 9)
  assert (entry.person, entry.url, entry.md5, entry.line) == ('José María Aznar', url, MD5, 9)


def test_parse_line_strips_spaces_around_fields():
  entry = parse_line(' Aaron Eckhart \t 2 \t http://a.b/c.jpg \t 1, 2, 30, 40 \t %s \r\n' % MD5, 1)
  assert entry == UrlEntry('Aaron Eckhart', 2, 'http://a.b/c.jpg', (1, 2, 30, 40), MD5, 1)


def test_parse_line_ignores_a_byte_order_mark():
  assert parse_line('\ufeff# version 1.2', 1) is None
  assert parse_line('\ufeffA B\t1\thttp://a.b/c.jpg\t1,2,3,4\t%s' % MD5, 1).person == 'A B'


GOOD = ['Aaron Eckhart', '1', 'http://a.b/c.jpg', '1,2,30,40', MD5]


def _with(**fields):
  assert set(fields) <= set(pubfig.FIELDS)
  values = dict(zip(pubfig.FIELDS, GOOD, strict=True), **fields)
  return '\t'.join(values[f] for f in pubfig.FIELDS)


@pytest.mark.parametrize('line, message', [
    ('\t'.join(GOOD[:3]), 'expected 5 tab-separated fields'),  # truncated: no rect, no md5
    ('\t'.join(GOOD[:4]), 'truncated line?'),
    ('\t'.join(GOOD + ['extra']), 'got 6'),
    ('Aaron Eckhart 1 http://a.b/c.jpg 1,2,30,40 ' + MD5, 'got 1'),  # spaces, not tabs
    (_with(person=''), 'empty person'),
    (_with(imagenum='x'), 'imagenum'),
    (_with(imagenum='-1'), 'imagenum'),
    (_with(imagenum='1.5'), 'imagenum'),
    (_with(url='ftp://a.b/c.jpg'), 'not an http(s) URL'),
    (_with(url='a.b/c.jpg'), 'not an http(s) URL'),
    (_with(url='http:///c.jpg'), 'not an http(s) URL'),
    (_with(url='http://[::1/c.jpg'), 'not a valid URL'),
    (_with(url='http://a.b/c\x00.jpg'), 'control characters'),
    (_with(rect='1,2,30'), 'rect'),
    (_with(rect='1,2,a,40'), 'rect'),
    (_with(rect='1;2;30;40'), 'rect'),
    (_with(rect='30,2,1,40'), 'no area'),
    (_with(rect='1,40,30,40'), 'no area'),
    (_with(md5sum=MD5[:31]), 'md5sum'),
    (_with(md5sum=MD5 + '0'), 'md5sum'),
    (_with(md5sum=MD5[:31] + 'g'), 'md5sum'),
    (_with(md5sum=''), 'md5sum'),
])
def test_parse_line_refuses_malformed_data_lines(line, message):
  with pytest.raises(RecordError, match='line 7: ') as e:
    parse_line(line + '\r\n', 7)
  assert message in str(e.value)


def test_a_real_looking_file_with_every_quirk():
  text = ('\ufeff# version 1.2\r\n'
          '# person\timagenum\turl\trect\tmd5sum\r\n'
          '\r\n'
          'Abhishek Bachan\t1\thttp://a.example/1.jpg\t-5,53,250,148\t%s\r\n'
          'Zinédine Zidane\t2\thttp://b.example/2.jpg?w=1\t1,2,30,40\t%s\r\n'
          '\r\n'
          'Zinédine Zidane\t3\thttp://b.example/3.jpg\t1,2,30,40\t0123' % (MD5, MD5.upper()))
  results = []
  for number, line in numbered_lines(text):
    try:
      results.append(parse_line(line, number))
    except RecordError as e:
      results.append(str(e))
  assert results == [
      None, None, None,
      UrlEntry('Abhishek Bachan', 1, 'http://a.example/1.jpg', (-5, 53, 250, 148), MD5, 4),
      UrlEntry('Zinédine Zidane', 2, 'http://b.example/2.jpg?w=1', (1, 2, 30, 40), MD5, 5),
      None,
      "line 7: md5sum '0123' is not 32 hex digits"]


def test_a_file_that_ends_with_a_newline_has_a_blank_last_line():
  lines = list(numbered_lines('# h\nA B\t1\thttp://a.b/c.jpg\t1,2,3,4\t%s\n' % MD5))
  assert [n for n, _ in lines] == [1, 2, 3]
  assert parse_line(lines[-1][1], 3) is None


def test_numbered_lines_splits_on_line_feeds_only():
  text = 'A\u2028B\t1\tu\x85v\nC\x0cD\r\nE'
  assert list(numbered_lines(text, start=10)) == [
      (10, 'A\u2028B\t1\tu\x85v'), (11, 'C\x0cD\r'), (12, 'E')]


# --- safe_label ----------------------------------------------------------------------------

@pytest.mark.parametrize('name, label', [
    ('Abhishek Bachan', 'Abhishek_Bachan'),
    ('José María', 'José_María'),
    ('Jose\u0301 Mari\u0301a', 'José_María'),  # decomposed (macOS folder names): NFC
    ("Shaquille O'Neal", 'Shaquille_O_Neal'),
    ('  Mary-Kate   Olsen. ', 'Mary_Kate_Olsen'),
    ('50 Cent', '50_Cent'),
    ('../etc', 'etc'),
    ('a/b\\c', 'a_b_c'),
    ('Smith, John\nJr', 'Smith_John_Jr'),
    ('__init__', 'init'),
    ('李连杰', '李连杰'),
    ('अभिषेक बच्चन', 'अभिषेक_बच्चन'),  # vowel signs are combining marks: kept
    ('Ольга Куриленко', 'Ольга_Куриленко'),
    ('x' * 100, 'x' * 100),
    ('李' * 85, '李' * 85),  # 255 UTF-8 bytes
])
def test_safe_label(name, label):
  assert safe_label(name) == label


@pytest.mark.parametrize('name', [
    '', '.', '..', '../..', '___', ' - ', '\u200b', '😀', 'x' * 101, '李' * 86, None, b'Ann'])
def test_safe_label_refuses_names_with_nothing_usable_or_too_long(name):
  with pytest.raises(RecordError, match='label'):
    safe_label(name)


def test_label_for_is_safe_label():
  assert label_for is safe_label


def test_every_label_is_one_path_component_safe_in_index_lines():
  names = ['a' + chr(c) + 'b' for c in range(0x20, 0x250)] + [
      '..%2F', 'C:\\x', '/abs/path', 'a\x00b', 'a\tb', 'a,b', 'a\u2028b']
  for name in names:
    label = safe_label(name)
    assert label not in ('.', '..') and os.path.basename(label) == label
    assert not set(label) & set('/\\,\n\r\t\x00 .'), (name, label)


# --- download: outcomes --------------------------------------------------------------------

def test_download_returns_the_body(server):
  data = server.add_image('/a.jpg', seed=1)
  assert download(server.url('/a.jpg'), **FAST) == Download(data, None, '', 200, 1)


def test_download_checks_the_md5_in_any_case(server):
  data = server.add_image('/a.jpg', seed=2)
  assert download(server.url('/a.jpg'), md5_of(data), **FAST).data == data
  assert download(server.url('/a.jpg'), md5_of(data).upper(), **FAST).data == data


def test_download_md5_mismatch_is_a_reject_without_retries(server):
  data = server.add_image('/a.jpg', seed=3)
  got = download(server.url('/a.jpg'), MD5, **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, MD5_MISMATCH, 200, 1)
  assert got.detail == 'md5 %s, list says %s' % (md5_of(data), MD5)
  assert server.hits('/a.jpg') == 1


@pytest.mark.parametrize('status', [404, 410, 403, 400])
def test_download_client_errors_are_dead_links_at_once(server, status):
  server.add_image('/gone.jpg')
  server.fail('/gone.jpg', status, times=None)
  got = download(server.url('/gone.jpg'), **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, DEAD_LINK, status, 1)
  assert got.detail.startswith('HTTP %d' % status) and 'transient' not in got.detail
  assert server.hits('/gone.jpg') == 1


def test_download_unknown_path_is_a_dead_link(server):
  got = download(server.url('/nothing.jpg'), **FAST)
  assert (got.reject, got.status, got.attempts, got.detail) == (
      DEAD_LINK, 404, 1, 'HTTP 404 Not Found')


def test_download_retries_server_errors_then_succeeds(server):
  data = server.add_image('/flaky.jpg', seed=4)
  server.fail('/flaky.jpg', 500, times=2)
  got = download(server.url('/flaky.jpg'), md5_of(data), **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (data, None, 200, 3)
  assert server.statuses('/flaky.jpg') == [500, 500, 200]


def test_download_server_errors_past_the_last_attempt_are_a_transient_dead_link(server):
  server.add_image('/down.jpg')
  server.fail('/down.jpg', 503, times=None)
  got = download(server.url('/down.jpg'), **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, DEAD_LINK, 503, 3)
  assert got.detail == 'transient failure, gave up after 3 attempts: HTTP 503 Service Unavailable'
  assert server.hits('/down.jpg') == 3


def test_download_max_attempts_one_means_no_retry(server):
  server.fail('/down.jpg', 502, times=None)
  got = download(server.url('/down.jpg'), **dict(FAST, max_attempts=1))
  assert (got.attempts, server.hits('/down.jpg')) == (1, 1)
  assert got.detail.startswith('transient failure, gave up after 1 attempt: HTTP 502')


def test_download_501_is_not_retried(server):
  server.fail('/x.jpg', 501, times=None)
  assert download(server.url('/x.jpg'), **FAST).attempts == 1


def test_download_waits_as_long_as_retry_after_asks(server):
  data = server.add_image('/busy.jpg', seed=5)
  server.fail('/busy.jpg', 429, times=1, retry_after=1)
  waits = []
  got = download(server.url('/busy.jpg'), sleep=waits.append,
                 **dict(FAST, max_wait_s=30.0))
  assert (got.data, got.attempts) == (data, 2)
  assert server.statuses('/busy.jpg') == [429, 200]
  assert len(waits) == 1 and 1.0 <= waits[0] <= 1.02  # Retry-After over the 0.01 s backoff


def test_download_gives_up_at_once_when_retry_after_is_over_max_wait(server):
  server.add_image('/busy.jpg')
  server.fail('/busy.jpg', 429, times=None, retry_after=3600)
  waits = []
  got = download(server.url('/busy.jpg'), sleep=waits.append, **FAST)
  assert (got.reject, got.status, got.attempts, waits) == (DEAD_LINK, 429, 1, [])
  assert 'transient' in got.detail and 'asked to wait 3600 s' in got.detail


def test_download_backs_off_exponentially_between_attempts(server):
  server.fail('/down.jpg', 500, times=None)
  waits = []
  got = download(server.url('/down.jpg'), sleep=waits.append, max_attempts=4, backoff_s=0.1,
                 timeout_s=2.0)
  assert got.attempts == 4 and len(waits) == 3
  for n, wait in enumerate(waits):
    assert 0.05 * 2 ** n <= wait <= 0.15 * 2 ** n


def test_download_slow_server_times_out_and_is_retried(server):
  server.add_image('/slow.jpg', delay_s=1.0)
  started = time.monotonic()
  got = download(server.url('/slow.jpg'), **dict(FAST, timeout_s=0.2, max_attempts=2))
  assert time.monotonic() - started < 0.9
  assert (got.data, got.reject, got.status, got.attempts) == (None, DEAD_LINK, None, 2)
  assert got.detail == 'transient failure, gave up after 2 attempts: timed out'


def test_download_body_that_stalls_past_the_timeout_is_retried(server):
  data = make_image(17, size=(128, 128))
  server.add('/stall.jpg', data, piece_bytes=len(data) // 2, trickle_s=0.6)
  got = download(server.url('/stall.jpg'), **dict(FAST, timeout_s=0.2, max_attempts=2))
  assert (got.reject, got.status, got.attempts) == (DEAD_LINK, 200, 2)
  assert got.detail == 'transient failure, gave up after 2 attempts: timed out'


def test_download_body_shorter_than_its_content_length_is_retried(server):
  server.add('/short.jpg', b'x' * 500, content_length=600)
  got = download(server.url('/short.jpg'), **FAST)
  assert (got.reject, got.status, got.attempts) == (DEAD_LINK, 200, 3)
  assert got.detail == ('transient failure, gave up after 3 attempts: '
                        'connection broken mid-response')


def test_download_decodes_gzip_and_checks_the_md5_of_the_file(server):
  data = make_image(18)
  server.add('/gz.jpg', gzip.compress(data), headers={'Content-Encoding': 'gzip'})
  assert download(server.url('/gz.jpg'), md5_of(data), **FAST).data == data


def test_download_cap_counts_decoded_bytes(server):  # a gzip bomb is refused
  server.add('/bomb.jpg', gzip.compress(bytes(10_000_000)), headers={'Content-Encoding': 'gzip'})
  got = download(server.url('/bomb.jpg'), max_bytes=100_000, **FAST)
  assert (got.reject, got.detail) == (TOO_LARGE, 'body is over the 100000-byte cap')


def test_download_deadline_stops_a_trickling_body(server):
  server.add('/trickle.jpg', make_image(6, size=(256, 256)), piece_bytes=64, trickle_s=0.02)
  started = time.monotonic()
  got = download(server.url('/trickle.jpg'), deadline_s=0.3, **dict(FAST, max_attempts=1))
  assert time.monotonic() - started < 1.0
  assert (got.reject, got.status, got.attempts) == (DEAD_LINK, 200, 1)
  assert got.detail == 'transient failure, gave up after 1 attempt: took longer than 0.3 s'


def test_download_refuses_a_content_length_over_the_cap_before_reading(server):
  server.add('/big.jpg', b'x' * 1001)
  got = download(server.url('/big.jpg'), max_bytes=1000, **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, TOO_LARGE, 200, 1)
  assert got.detail == 'Content-Length 1001 is over the 1000-byte cap'


def test_download_believes_a_huge_content_length_without_waiting_for_it(server):
  server.add('/liar.jpg', b'x' * 10, content_length=10 ** 12)
  started = time.monotonic()
  got = download(server.url('/liar.jpg'), **FAST)
  assert (got.reject, time.monotonic() - started < 1.0) == (TOO_LARGE, True)


def test_download_stops_reading_a_chunked_body_past_the_cap(server):
  server.add('/endless.jpg', b'y' * 4096, endless=True)  # chunked, no Content-Length, no end
  got = download(server.url('/endless.jpg'), max_bytes=100_000, **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, TOO_LARGE, 200, 1)
  assert got.detail == 'body is over the 100000-byte cap'


def test_download_body_exactly_at_the_cap_is_fine(server):
  server.add('/fits.jpg', b'z' * 1000, chunked=True)
  server.add('/fits2.jpg', b'z' * 1000)
  assert download(server.url('/fits.jpg'), max_bytes=1000, **FAST).data == b'z' * 1000
  assert download(server.url('/fits2.jpg'), max_bytes=1000, **FAST).data == b'z' * 1000


@pytest.mark.parametrize('content_type', [
    'text/plain', 'application/json', 'application/xhtml+xml; charset=utf-8', 'TEXT/HTML'])
def test_download_other_error_page_types_are_dead_links(server, content_type):
  server.add('/photo.jpg', b'{"error": "not found"}', content_type=content_type)
  got = download(server.url('/photo.jpg'), **FAST)
  assert (got.reject, got.attempts) == (DEAD_LINK, 1) and 'not an image' in got.detail


def test_download_html_page_with_200_is_a_dead_link(server):
  server.page('/photo.jpg')
  got = download(server.url('/photo.jpg'), **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, DEAD_LINK, 200, 1)
  assert got.detail == 'content type text/html, not an image'


@pytest.mark.parametrize('content_type', [
    None, 'application/octet-stream', 'image/pjpeg', 'image/svg+xml', 'binary/octet-stream'])
def test_download_accepts_images_sent_with_odd_content_types(server, content_type):
  data = make_image(7)
  server.add('/odd', data, content_type=content_type)
  assert download(server.url('/odd'), md5_of(data), **FAST).data == data


def test_download_empty_body_is_a_dead_link(server):
  server.add('/empty.jpg', b'')
  got = download(server.url('/empty.jpg'), **FAST)
  assert (got.reject, got.detail, got.attempts) == (DEAD_LINK, 'empty body', 1)


def test_download_follows_a_redirect_chain(server):
  data = server.add_image('/final.jpg', seed=8)
  server.redirect('/r1', server.url('/r2'), status=301)
  server.redirect('/r2', '/r3', status=307)  # relative Location
  server.redirect('/r3', '//127.0.0.1:%d/final.jpg' % int(server.base.rsplit(':', 1)[1]))
  got = download(server.url('/r1'), md5_of(data), **FAST)
  assert (got.data, got.status, got.attempts) == (data, 200, 1)
  assert [h.path for h in server.log] == ['/r1', '/r2', '/r3', '/final.jpg']


def test_download_redirect_loop_is_a_dead_link(server):
  server.redirect('/loop', '/loop')
  got = download(server.url('/loop'), max_redirects=3, **FAST)
  assert (got.reject, got.status, got.attempts, got.detail) == (
      DEAD_LINK, 302, 1, 'more than 3 redirects')
  assert server.hits('/loop') == 4


def test_download_redirect_to_a_dead_link(server):
  server.redirect('/moved.jpg', '/gone.jpg', status=301)
  got = download(server.url('/moved.jpg'), **FAST)
  assert (got.reject, got.status, got.attempts) == (DEAD_LINK, 404, 1)


def test_download_redirect_to_another_scheme_is_a_dead_link(server):
  server.redirect('/ftp.jpg', 'ftp://files.example/a.jpg')
  got = download(server.url('/ftp.jpg'), **FAST)
  assert (got.reject, got.status, got.attempts) == (DEAD_LINK, 302, 1)
  assert 'not an http(s) URL' in got.detail


def test_download_does_not_read_redirect_bodies(server):
  data = server.add_image('/final.jpg', seed=9)
  server.redirect('/r', '/final.jpg', body=b'moved ' * 1000, endless=True)
  started = time.monotonic()
  assert download(server.url('/r'), max_bytes=10_000, **FAST).data == data
  assert time.monotonic() - started < 1.0


def test_download_retries_a_connection_reset_mid_body(server):
  data = server.add_image('/reset.jpg', seed=10, size=(128, 128))
  server.reset('/reset.jpg', after_bytes=100, times=1)
  got = download(server.url('/reset.jpg'), md5_of(data), **FAST)
  assert (got.data, got.attempts) == (data, 2)


def test_download_connection_reset_every_time_is_a_transient_dead_link(server):
  server.add_image('/reset.jpg', seed=11, size=(128, 128))
  server.reset('/reset.jpg', after_bytes=100, times=None)
  got = download(server.url('/reset.jpg'), **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, DEAD_LINK, 200, 3)
  assert got.detail == ('transient failure, gave up after 3 attempts: '
                        'connection broken mid-response')


def test_download_connection_refused_is_retried_then_a_dead_link():
  with socket.socket() as s:  # a port nobody listens on
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  got = download('http://127.0.0.1:%d/a.jpg' % port, **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, DEAD_LINK, None, 3)
  assert got.detail == 'transient failure, gave up after 3 attempts: connection refused'


def test_download_dns_failure_is_a_dead_link_at_once(monkeypatch):
  real = socket.getaddrinfo
  calls = []

  def getaddrinfo(host, *args, **kwargs):
    if host == 'photos.invalid':
      calls.append(host)
      raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    return real(host, *args, **kwargs)

  monkeypatch.setattr(socket, 'getaddrinfo', getaddrinfo)
  got = download('http://photos.invalid/a.jpg', **FAST)
  assert (got.data, got.reject, got.status, got.attempts, got.detail) == (
      None, DEAD_LINK, None, 1, 'DNS lookup failed')
  assert calls == ['photos.invalid']


@pytest.mark.parametrize('url', ['not a url', 'ftp://a.b/c.jpg', 'http://', 'http://a b\x01/'])
def test_download_bad_urls_are_dead_links_not_exceptions(url):
  got = download(url, **FAST)
  assert (got.data, got.reject, got.status, got.attempts) == (None, DEAD_LINK, None, 0)
  assert got.detail.startswith('url ')


def test_download_unicode_path_and_query_string(server):
  data = server.add_image('/José María/foto 1.jpg', seed=12)
  got = download(server.url('/José María/foto 1.jpg?size=large'), md5_of(data), **FAST)
  assert got.data == data
  assert server.log[0].path == '/José María/foto 1.jpg'


def test_download_uses_a_given_session_and_leaves_it_open(server):
  data = server.add_image('/a.jpg', seed=13)
  session = pubfig.new_session()
  try:
    for _ in range(3):
      assert download(server.url('/a.jpg'), session=session, **FAST).data == data
  finally:
    session.close()
  assert len({h.client_port for h in server.log}) == 1  # one kept-alive connection


# --- helpers -------------------------------------------------------------------------------

def test_backoff_wait_is_exponential_jittered_floored_and_capped():
  assert backoff_wait_s(1, 0.5, rand=lambda: 0.0) == 0.25
  assert backoff_wait_s(3, 0.5, rand=lambda: 1.0) == 3.0
  assert backoff_wait_s(1, 0.5, retry_after_s=2.0, rand=lambda: 0.5) == 2.0
  assert backoff_wait_s(10, 0.5, max_wait_s=30.0, rand=lambda: 0.5) == 30.0


def test_retry_after_reads_seconds_and_http_dates():
  now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
  assert retry_after_s('120', now) == 120.0
  assert retry_after_s('Tue, 14 Nov 2023 22:14:20 GMT', now) == 60.0
  assert retry_after_s('Tue, 14 Nov 2023 22:00:00 GMT', now) == 0.0  # in the past
  assert retry_after_s('soon', now) is None
  assert retry_after_s(None, now) is None


@pytest.mark.parametrize('status, transient', [
    (408, True), (429, True), (500, True), (502, True), (503, True), (504, True),
    (501, False), (505, False), (404, False), (410, False), (400, False)])
def test_is_transient_status(status, transient):
  assert pubfig.is_transient_status(status) is transient


# --- Downloader ----------------------------------------------------------------------------

def test_download_many_keeps_input_order_and_runs_concurrently(server):
  entries, expected = [], []
  for i in range(12):
    if i % 5 == 3:
      entries.append(UrlEntry('P', i, server.url('/gone%d.jpg' % i), (0, 0, 1, 1), MD5, i))
      expected.append(None)
      continue
    data = server.add_image('/%d.jpg' % i, seed=100 + i, delay_s=0.15)
    entries.append(UrlEntry('P', i, server.url('/%d.jpg' % i), (0, 0, 1, 1), md5_of(data), i))
    expected.append(data)
  entries[0] = entries[0]._replace(md5=MD5)  # a mismatch in the mix
  expected[0] = None
  started = time.monotonic()
  with Downloader(**FAST) as downloader:
    results = downloader.download_many(entries, max_concurrency=4)
  elapsed = time.monotonic() - started
  assert [r.data for r in results] == expected
  assert [r.reject for r in results] == [
      MD5_MISMATCH if i == 0 else DEAD_LINK if i % 5 == 3 else None for i in range(12)]
  assert 2 <= server.max_in_flight <= 4
  assert elapsed < 1.2  # one at a time: 10 delayed images, 1.5 s


def test_download_many_takes_bare_urls_and_empty_input(server):
  data = server.add_image('/a.jpg', seed=14)
  downloader = Downloader(**FAST)
  assert downloader.download_many([]) == []
  assert downloader.download_many([server.url('/a.jpg')]) == [Download(data, None, '', 200, 1)]
  downloader.close()


def test_downloader_reuses_pooled_connections(server):
  data = server.add_image('/a.jpg', seed=15)
  with Downloader(**FAST) as downloader:
    for _ in range(5):
      assert downloader.download(server.url('/a.jpg')).data == data
  assert len({h.client_port for h in server.log}) == 1


def test_downloader_pickles_without_its_session_and_works_after(server):
  data = server.add_image('/a.jpg', seed=16)
  downloader = Downloader(**FAST).setup()
  copy = pickle.loads(pickle.dumps(downloader))
  downloader.close()
  assert copy.max_attempts == 3 and copy._session is None
  assert copy.download(server.url('/a.jpg')).data == data
  copy.close()


def test_downloader_is_safe_to_share_between_threads(server):
  images = {i: server.add_image('/%d.jpg' % i, seed=200 + i, delay_s=0.02) for i in range(8)}
  results = {}
  with Downloader(**FAST) as downloader:

    def run(t):
      results[t] = downloader.download_many([server.url('/%d.jpg' % i) for i in range(8)], 4)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(3)]
    for t in threads:
      t.start()
    for t in threads:
      t.join(10)
  assert all([r.data for r in results[t]] == [images[i] for i in range(8)] for t in range(3))
