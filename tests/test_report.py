"""python -m pipelines.report over small, known outputs: every chart drawn from its rows, the
exact numbers in the tables under them, counters and errors listed, missing jobs and empty
tables said in words, and a page that references only files beside it.

KNOWN holds each job's rows (checked against schemas/ first) with the numbers they must give
in comments; tests/test_report_bigquery.py loads the same rows into the BigQuery emulator."""
import datetime
import json
import os
import struct
from html.parser import HTMLParser

import pytest
from PIL import Image

import schemas
from pipelines.report import __main__ as cli
from pipelines.report import (bigquery_source, build, charts, game, html, iot, rasters, sources,
                               timebins, timeseries)
from pipelines.report.sources import JOBS

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
W1, W2, W3 = '2026-01-01T10:00:00.000000Z', '2026-01-01T10:01:00.000000Z', \
    '2026-01-01T10:02:00.000000Z'


def _w(start, minutes=1):
  """window_start/window_end of a window starting at `start`."""
  begin = datetime.datetime.fromisoformat(start[:-1])
  end = begin + datetime.timedelta(minutes=minutes)
  return {'window_start': start, 'window_end': end.isoformat(timespec='microseconds') + 'Z'}


def _pane(index=None, timing=None):
  return {'pane_index': index, 'pane_timing': timing}


def _error(job, stage, error, n=0):
  return {'processing_time': '2026-01-01T12:00:0%d.000000Z' % n, 'job': job, 'stage': stage,
          'error': error, 'payload': '{"broken": %d' % n, 'payload_encoding': 'text',
          'attributes': None, 'source': 'input.json:%d' % (n + 1)}


def game_rows():
  """Funnel 4 -> 2 -> 1 -> 1 (latest pane of the window), three heatmap layers, scores by age,
  four sessions (one rewritten by a later pane)."""
  none = {'window_start': None, 'window_end': None, **_pane()}
  heat = [('player_move', 0, 0, 5), ('player_move', 1, 0, 3), ('player_move', -2, 1, 1),
          ('player_attack', 0, 0, 2), ('npc_die', 3, -1, 1)]
  funnel = [('started', 0, 3, 0, 'EARLY'), ('started', 0, 4, 1, 'ON_TIME'),
            ('moved', 1, 2, 1, 'ON_TIME'), ('attacked', 2, 1, 1, 'ON_TIME'),
            ('completed', 3, 1, 1, 'ON_TIME')]

  def session(sid, start, completed, pane=None):
    return {'start_time': start, 'session_id': sid, 'user_id': 'u-' + sid, 'age': 25,
            'age_group': 20, 'sex': None, 'end_time': None, 'duration_s': 60.0, 'score': 10,
            'moves': 3, 'attacks': 1, 'npc_kills': 0, 'completed': completed,
            **_pane(pane, None if pane is None else 'LATE')}
  return {
      'heatmap': [{'layer': layer, 'cell_x': x, 'cell_z': z, 'count': n, **none}
                  for layer, x, z, n in heat],
      'score_by_age': [
          {'age_group': 20, 'sessions': 3, 'avg_score': 400 / 3, 'min_score': 0,
           'max_score': 300, **none},
          {'age_group': 10, 'sessions': 1, 'avg_score': 250.0, 'min_score': 250,
           'max_score': 250, **none},
          {'age_group': None, 'sessions': 1, 'avg_score': None, 'min_score': None,
           'max_score': None, **none}],
      'funnel': [{'step': s, 'step_index': i, 'sessions': n, 'rate_from_start': None,
                  'rate_from_previous': None, **_w(W1, 60), **_pane(p, t)}
                 for s, i, n, p, t in funnel],
      'sessions': [session('s1', '2026-01-01T00:05:00.000000Z', True),
                   session('s2', '2026-01-01T00:20:00.000000Z', False),
                   session('s3', '2026-01-01T01:10:00.000000Z', True),
                   session('s4', '2026-01-01T01:15:00.000000Z', False, 0),
                   session('s4', '2026-01-01T01:15:00.000000Z', True, 1)],
      'events': [],
      'errors': [_error('game_analytics', 'parse_json', 'invalid JSON', 0),
                 _error('game_analytics', 'parse_json', 'invalid JSON', 1),
                 _error('game_analytics', 'decode_event', 'missing sessionid', 2)],
  }


def log_rows():
  """Two windows: requests INFO/ERROR with latency, stderr errors; server_errors 25 then 3
  with an alert over 20, and an alert on the built-in errors total (2 then 3) over 2."""
  def stats(start, log, severity, entries, errors, http, p50=None, p95=None, p99=None,
            top=None):
    return {'log_id': log, 'severity': severity, 'entries': entries, 'errors': errors,
            'http_requests': http, 'latency_p50_ms': p50, 'latency_p95_ms': p95,
            'latency_p99_ms': p99, 'latency_max_ms': top, **_w(start), **_pane()}
  requests = 'run.googleapis.com/requests'
  return {
      'log_metrics': [stats(W1, requests, 'INFO', 10, 0, 10, 20.0, 95.5, 120.0, 130.0),
                      stats(W1, requests, 'ERROR', 2, 2, 2, 300.0, 500.0, 510.0, 510.0),
                      stats(W2, requests, 'INFO', 8, 0, 8, 25.0, 80.25, 99.0, 99.0),
                      stats(W2, 'stderr', 'ERROR', 3, 3, 0)],
      'metric_counts': [{'metric': 'server_errors', 'count': 25, **_w(W1), **_pane()},
                        {'metric': 'server_errors', 'count': 3, **_w(W2), **_pane()}],
      'alerts': [{'metric': 'server_errors', 'condition': 'server_errors>20', 'value': 25.0,
                  'threshold': 20.0, **_w(W1), **_pane()},
                 {'metric': 'errors', 'condition': 'errors>2', 'value': 3.0, 'threshold': 2.0,
                  **_w(W2), **_pane()}],
      'log_entries': [],
      'errors': [],
  }


def iot_rows():
  """Three devices over three sliding windows; d1 fires `hot` at 10:01 and never clears."""
  def stat(start, device, metric, count, mean):
    return {'device_id': device, 'registry_id': 'r', 'metric': metric, 'count': count,
            'min': mean - 1, 'max': mean + 1, 'mean': mean, 'stddev': 0.5,
            'first_time': start, 'last_time': start, **_w(start, 5), **_pane()}
  rows = []
  for start, t1, h1, t2 in ((W1, 25.0, 40.0, 20.0), (W2, 31.0, 41.0, 20.0),
                            (W3, 32.0, 42.0, 21.0)):
    rows += [stat(start, 'd1', 'temperature', 10, t1), stat(start, 'd1', 'humidity', 10, h1),
             stat(start, 'd2', 'temperature', 5, t2)]
  rows.append(stat(W1, 'd3', 'temperature', 1, 22.0))
  return {
      'device_stats': rows,
      'alerts': [{'rule': 'hot', 'state': 'FIRING', 'device_id': 'd1', 'registry_id': 'r',
                  'metric': 'temperature', 'condition': 'temperature > 30 for 2 windows',
                  'value': 31.5, 'threshold': 30.0, 'command': '{"fan": "high"}', **_w(W2, 5)}],
      'readings': [],
      'bigtable_rows': [],
      'errors': [_error('iot_telemetry', 'decode_point', 'not line protocol')],
  }


def tweet_rows():
  """nova x: 4 then 2 tweets (average 0.25), recall: 1; top terms summed over windows."""
  def window(start, keyword, tweets, score, pos, neu, neg):
    return {'keyword': keyword, 'tweets': tweets, 'avg_score': score, 'avg_magnitude': 0.5,
            'positive': pos, 'neutral': neu, 'negative': neg, **_w(start), **_pane()}

  def term(start, keyword, rank, word, count):
    return {'keyword': keyword, 'rank': rank, 'term': word, 'count': count, **_w(start),
            **_pane()}
  return {
      'sentiment_by_window': [window(W1, 'nova x', 4, 0.5, 2, 1, 1),
                              window(W2, 'nova x', 2, -0.25, 0, 1, 1),
                              window(W1, 'recall', 1, -0.8, 0, 0, 1)],
      'top_terms': [term(W1, 'nova x', 1, 'battery', 3), term(W1, 'nova x', 2, 'fire', 1),
                    term(W2, 'nova x', 1, 'battery', 2), term(W2, 'nova x', 2, 'recall', 2),
                    term(W1, 'recall', 1, 'refund', 1)],
      'tweets': [],
      'errors': [],
  }


def face_rows(images_dir):
  """alice: 2 training + 1 validate crops on disk; bob: 1 crop in gs:// (not shown); rejects:
  2 no_face (one source missing), 1 duplicate."""
  def face(label, split, path):
    return {'image_id': path, 'source': path, 'label': label, 'split': split, 'face_left': 0,
            'face_top': 0, 'face_right': 10, 'face_bottom': 10, 'roll': None, 'pan': None,
            'tilt': None, 'confidence': 0.9, 'faces': 1, 'detector': 'local', 'width': 64,
            'height': 64, 'output_path': path, 'sha256': 'x', 'phash': 'y'}

  def reject(source, reason, duplicate_of=None):
    return {'image_id': source, 'source': source, 'label': 'alice', 'reason': reason,
            'detail': reason + ' detail', 'duplicate_of': duplicate_of}
  crops = {}
  for name, colour in (('a1', 'red'), ('a2', 'green'), ('a3', 'blue'), ('src1', 'gray'),
                       ('src2', 'yellow')):
    crops[name] = os.path.join(images_dir, name + '.jpg')
    Image.new('RGB', (64, 64), colour).save(crops[name])
  return {
      'faces': [face('alice', 'training', crops['a1']), face('alice', 'training', crops['a2']),
                face('alice', 'validate', crops['a3']),
                face('bob', 'training', 'gs://bucket/training/bob/b1.jpg')],
      'rejects': [reject(crops['src1'], 'no_face'), reject('/nonexistent/x.jpg', 'no_face'),
                  reject(crops['src2'], 'duplicate', crops['a1'])],
      'errors': [_error('face_dataset', 'decode', 'not an image')],
  }


def inference_rows():
  """alice 3 right + 1 as bob, bob 2 right: accuracy 5/6."""
  def prediction(i, label, truth, score):
    return {'inference_time': '2026-01-01T00:00:0%d.000000Z' % i, 'uri': '/x/img%d.jpg' % i,
            'label': label, 'score': score, 'top_k': '[]', 'true_label': truth, 'model': 'm'}
  evaluation = [('alice', 1.0, 0.75, 4, 3), ('bob', 0.666667, 1.0, 2, 3)]
  return {
      'confusion': [{'true_label': 'alice', 'predicted_label': 'alice', 'count': 3},
                    {'true_label': 'alice', 'predicted_label': 'bob', 'count': 1},
                    {'true_label': 'bob', 'predicted_label': 'bob', 'count': 2}],
      'evaluation': [{'label': label, 'precision': p, 'recall': r, 'support': s, 'predicted': n,
                      'images': 6, 'accuracy': 0.833333} for label, p, r, s, n in evaluation],
      'predictions': [prediction(0, 'alice', 'alice', 0.9), prediction(1, 'alice', 'alice', 0.8),
                      prediction(2, 'alice', 'alice', 0.95), prediction(3, 'bob', 'alice', 0.55),
                      prediction(4, 'bob', 'bob', 0.7), prediction(5, 'bob', 'bob', 0.99)],
      'errors': [],
  }


COUNTERS = {
    'game_analytics': {'records_read': 10, 'errors': 3, 'rows_sessions': 4},
    'log_analytics': {'records_read': 23, 'errors': 0},
    'iot_telemetry': {'readings_read': 50, 'errors': 1},
    'tweet_sentiment': {'records_read': 7, 'errors': 0},
    'face_dataset': {'images_read': 8, 'errors': 1},
    'image_inference': {'images_read': 6, 'num_inferences': 6},
}


def known_rows(images_dir):
  """{job: {table: rows}}, every row conforming to its schema."""
  out = {'game_analytics': game_rows(), 'log_analytics': log_rows(),
         'iot_telemetry': iot_rows(), 'tweet_sentiment': tweet_rows(),
         'face_dataset': face_rows(images_dir), 'image_inference': inference_rows()}
  for job, tables in out.items():
    for table, rows in tables.items():
      for row in rows:
        assert schemas.row_problems(job, table, row) == [], (job, table, row)
  return out


def write_output(root, rows, counters=None, jobs=JOBS):
  """The local layout: <root>/<job>/<table>/<table>-00000-of-00001.json + _metrics.json."""
  for job in jobs:
    for table, table_rows in rows[job].items():
      folder = os.path.join(str(root), job, table)
      os.makedirs(folder, exist_ok=True)
      with open(os.path.join(folder, table + '-00000-of-00001.json'), 'w') as fh:
        fh.writelines(json.dumps(r) + '\n' for r in table_rows)
    if counters is not None:
      with open(os.path.join(str(root), job, '_metrics.json'), 'w') as fh:
        json.dump({'counters': counters[job]}, fh)


# Reading the page back.

class Page(HTMLParser):
  """Tables (with their section), images, links and notes of a report page."""

  def __init__(self, path):
    super().__init__()
    self.path, self.section = str(path), None
    self.tables, self.images, self.links, self.notes, self.norows, self.paras = \
        [], [], [], [], [], []
    self._table = self._row = self._text = None
    self._p_class = None
    with open(path, encoding='utf-8') as fh:
      self.source = fh.read()
    self.feed(self.source)

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag == 'h2':
      self.section = attrs.get('id')
    elif tag == 'table':
      self._table = {'section': self.section, 'caption': '', 'headers': [], 'rows': []}
    elif tag == 'tr' and self._table is not None:
      self._row = []
    elif tag in ('td', 'th', 'caption', 'p'):
      self._text = []
      if tag == 'p':
        self._p_class = attrs.get('class')
    elif tag == 'img':
      self.images.append(attrs['src'])
    if 'href' in attrs:
      self.links.append(attrs['href'])

  def handle_data(self, data):
    if self._text is not None:
      self._text.append(data)

  def handle_endtag(self, tag):
    text = ''.join(self._text or [])
    if tag in ('td', 'th') and self._row is not None:
      self._row.append(text)
    elif tag == 'caption' and self._table is not None:
      self._table['caption'] = text
    elif tag == 'tr' and self._table is not None:
      if self._table['headers'] or not self._row:
        self._table['rows'].append(self._row)
      else:
        self._table['headers'] = self._row
      self._row = None
    elif tag == 'table' and self._table is not None:
      self.tables.append(self._table)
      self._table = None
    elif tag == 'p':
      {'note': self.notes, 'note skipped': self.notes, 'norows': self.norows}.get(
          self._p_class, self.paras).append((self.section, text))
    if tag in ('td', 'th', 'caption', 'p'):
      self._text = None

  def table(self, section, *headers):
    """The rows of the one table in `section` whose header row starts with `headers`."""
    found = [t for t in self.tables if t['section'] == section
             and tuple(t['headers'][:len(headers)]) == headers]
    assert len(found) == 1, (section, headers, [t['headers'] for t in self.tables
                                                if t['section'] == section])
    return [tuple(r) for r in found[0]['rows']]

  def texts(self, kind, section):
    return [text for s, text in getattr(self, kind) if s == section]


def assert_png(path, min_bytes=4000):
  with open(path, 'rb') as fh:
    data = fh.read()
  assert data[:8] == PNG_MAGIC, path
  width, height = struct.unpack('>II', data[16:24])
  assert width > 200 and height > 150 and len(data) > min_bytes, (path, width, height)


def assert_references_exist(page):
  """Every src/href is a file beside report.html, or an anchor on the page."""
  folder = os.path.dirname(page.path)
  for ref in page.images + page.links:
    if ref.startswith('#'):
      assert 'id="%s"' % ref[1:] in page.source, ref
    else:
      assert '/' not in ref and ':' not in ref, ref  # beside it, nothing fetched
      assert os.path.isfile(os.path.join(folder, ref)), ref
  assert '<script' not in page.source and 'http://' not in page.source.replace(
      'http://127.0.0.1', '')


EXPECTED_CHARTS = {
    'game_analytics': ['heatmaps', 'score_by_age', 'funnel', 'sessions'],
    'log_analytics': ['volume', 'latency', 'metrics'],
    'iot_telemetry': ['series'],
    'tweet_sentiment': ['volume', 'shares', 'terms'],
    'face_dataset': ['balance', 'contact_sheet', 'rejects', 'reject_samples'],
    'image_inference': ['precision_recall', 'confusion'],
}


def assert_known_numbers(page, with_counters=True):
  """What KNOWN's rows must give, section by section (shared with the BigQuery test)."""
  g = 'game_analytics'
  assert page.table(g, 'step', 'sessions') == [
      ('started', '4', '100.0%', '100.0%'), ('moved', '2', '50.0%', '50.0%'),
      ('attacked', '1', '25.0%', '50.0%'), ('completed', '1', '25.0%', '100.0%')]
  assert page.table(g, 'layer', 'cells with events') == [
      ('player_move', '3', '9', '(0, 0)', '5'), ('player_attack', '1', '2', '(0, 0)', '2'),
      ('npc_die', '1', '1', '(3, -1)', '1')]
  assert page.table(g, 'age group') == [('10–19', '1', '250.0', '250', '250'),
                                        ('20–29', '3', '133.3333', '0', '300'),
                                        ('unknown', '1', '—', '—', '—')]
  bins = page.table(g, 'bin start (UTC)')
  assert len(bins) == 15  # 5-minute bins from 00:05 to 01:15
  assert bins[0] == ('2026-01-01 00:05:00', '1', '1', '0')
  assert bins[3] == ('2026-01-01 00:20:00', '1', '0', '1')
  assert bins[-1] == ('2026-01-01 01:15:00', '1', '1', '0')  # s4's later pane: completed
  assert sum(int(b[1]) for b in bins) == 4
  assert page.table(g, 'stage', 'errors') == [('parse_json', '2'), ('decode_event', '1')]
  assert page.table(g, 'stage', 'error', 'count') == [
      ('parse_json', 'invalid JSON', '2'), ('decode_event', 'missing sessionid', '1')]
  samples = page.table(g, 'processing time')
  assert [s[1] for s in samples] == ['parse_json', 'parse_json', 'decode_event']
  assert samples[0][3] == '{"broken": 0'

  lg = 'log_analytics'
  assert page.table(lg, 'log', 'windows') == [
      ('run.googleapis.com/requests', '2', '20', '2', '10.0%', '20'),
      ('stderr', '1', '3', '3', '100.0%', '0')]
  assert page.table(lg, 'window start (UTC)', 'log', 'entries') == [
      ('2026-01-01 10:00:00', 'run.googleapis.com/requests', '12', '2'),
      ('2026-01-01 10:01:00', 'run.googleapis.com/requests', '8', '0'),
      ('2026-01-01 10:01:00', 'stderr', '3', '3')]
  assert page.table(lg, 'log · severity') == [
      ('run.googleapis.com/requests · ERROR', '1', '2', '300.0', '500.0', '510.0', '510.0'),
      ('run.googleapis.com/requests · INFO', '2', '18', '25.0', '95.5', '120.0', '130.0')]
  latency = page.table(lg, 'window start (UTC)', 'log', 'severity')
  assert ('2026-01-01 10:01:00', 'run.googleapis.com/requests', 'INFO', '8', '25.0', '80.25',
          '99.0', '99.0') in latency
  assert page.table(lg, 'metric', 'windows') == [('server_errors', '2', '28', '25', '1'),
                                                 ('errors', '2', '5', '3', '1')]
  assert page.table(lg, 'window start (UTC)', 'metric', 'condition') == [
      ('2026-01-01 10:00:00', 'server_errors', 'server_errors>20', '25.0', '20.0'),
      ('2026-01-01 10:01:00', 'errors', 'errors>2', '3.0', '2.0')]
  assert 'errors: no rows' in page.texts('norows', lg)

  it = 'iot_telemetry'
  assert page.table(it, 'device', 'metric', 'windows') == [
      ('d1', 'humidity', '3', '39.0', '43.0'), ('d1', 'temperature', '3', '24.0', '33.0'),
      ('d2', 'temperature', '3', '19.0', '22.0'), ('d3', 'temperature', '1', '21.0', '23.0')]
  assert page.table(it, 'window start (UTC)', 'window end (UTC)') == [
      ('2026-01-01 10:01:00', '2026-01-01 10:06:00', 'd1', 'hot', 'FIRING', 'temperature',
       'temperature > 30 for 2 windows', '31.5', '30.0')]
  assert page.table(it, 'device', '10:00', '10:01', '10:02') == [
      ('d1', '20', '20', '20'), ('d2', '5', '5', '5'), ('d3', '1', '0', '0')]

  tw = 'tweet_sentiment'
  assert page.table(tw, 'keyword', 'windows') == [('nova x', '2', '6', '0.25'),
                                                  ('recall', '1', '1', '-0.8')]
  assert page.table(tw, 'keyword', 'tweets', 'positive') == [
      ('nova x', '6', '2', '33.3%', '2', '33.3%', '2', '33.3%'),
      ('recall', '1', '0', '0.0%', '0', '0.0%', '1', '100.0%')]
  assert page.table(tw, 'keyword', 'rank') == [
      ('nova x', '1', 'battery', '5'), ('nova x', '2', 'recall', '2'),
      ('nova x', '3', 'fire', '1'), ('recall', '1', 'refund', '1')]

  fd = 'face_dataset'
  assert page.table(fd, 'label', 'training') == [('alice', '2', '1', '3'), ('bob', '1', '0', '1'),
                                                 ('total', '3', '1', '4')]
  assert page.table(fd, 'reason', 'images') == [('no_face', '2'), ('duplicate', '1')]
  notes = ' '.join(page.texts('notes', fd))
  assert '1 of 4 crops could not be shown' in notes
  assert '1 of 3 sample images could not be shown' in notes

  ii = 'image_inference'
  assert any('Accuracy: 83.3% (5 of 6 images' in p for p in page.texts('paras', ii))
  assert page.table(ii, 'label', 'support') == [('alice', '4', '3', '1.0', '0.75'),
                                                ('bob', '2', '3', '0.6667', '1.0')]
  assert page.table(ii, 'true \\ predicted') == [('alice', '3', '1'), ('bob', '0', '2')]
  assert page.table(ii, 'predictions')[0] == ('6', '6', '0.815', '0.55')
  assert page.table(ii, 'image', 'predicted')[0] == ('img3.jpg', 'bob', '0.55', 'alice')

  if with_counters:
    for job in JOBS:
      assert page.table(job, 'counter', 'value') == sorted(
          (k, str(v)) for k, v in COUNTERS[job].items())


@pytest.fixture(scope='module')
def known(tmp_path_factory):
  root = tmp_path_factory.mktemp('known')
  rows = known_rows(str(tmp_path_factory.mktemp('images')))
  write_output(root / 'output', rows, COUNTERS)
  path = build.build(sources.open_output_dir(str(root / 'output')), str(root / 'report'),
                     str(root / 'output'))
  return Page(path)


def test_numbers_in_the_tables_are_exact(known):
  assert_known_numbers(known)


def test_every_chart_is_a_png_drawn_from_the_rows(known):
  folder = os.path.dirname(known.path)
  expected = ['%s-%s.png' % (job, name) for job, names in EXPECTED_CHARTS.items()
              for name in names]
  assert sorted(known.images) == sorted(expected)
  assert sorted(f for f in os.listdir(folder) if f.endswith('.png')) == sorted(expected)
  for name in expected:
    assert_png(os.path.join(folder, name))


def test_page_references_only_files_beside_it(known):
  assert_references_exist(known)
  assert [link for link in known.links if link.startswith('#')] == ['#' + j for j in JOBS]


def test_every_job_is_reported_and_none_skipped(known):
  assert not [n for n in known.notes if n[1].startswith('Skipped')]
  assert known.norows == [('log_analytics', 'errors: no rows'),
                          ('tweet_sentiment', 'errors: no rows'),
                          ('image_inference', 'errors: no rows')]


def test_missing_jobs_are_skipped_with_a_note(tmp_path):
  rows = known_rows(str(tmp_path))
  write_output(tmp_path / 'out', rows, COUNTERS, jobs=['image_inference'])
  page = Page(build.build(sources.open_output_dir(str(tmp_path / 'out')),
                          str(tmp_path / 'report'), 'OUT'))
  for job in JOBS[:-1]:
    assert page.texts('notes', job) == ['Skipped: no %s output in OUT.' % job]
  assert page.table('image_inference', 'true \\ predicted') == [('alice', '3', '1'),
                                                               ('bob', '0', '2')]
  assert sorted(page.images) == ['image_inference-confusion.png',
                                 'image_inference-precision_recall.png']
  assert_references_exist(page)


def test_empty_tables_say_no_rows_instead_of_a_blank_chart(tmp_path):
  empty = {job: {table: [] for table in schemas.tables(job)} for job in JOBS}
  empty['face_dataset'].pop('rejects')  # a table whose folder is not there at all
  write_output(tmp_path / 'out', empty)
  page = Page(build.build(sources.open_output_dir(str(tmp_path / 'out')),
                          str(tmp_path / 'report'), 'OUT'))
  assert page.images == []
  assert not [f for f in os.listdir(tmp_path / 'report') if f.endswith('.png')]
  said = {(s, t) for s, t in page.norows}
  for section, table in (('game_analytics', 'heatmap'), ('game_analytics', 'funnel'),
                         ('game_analytics', 'sessions'), ('game_analytics', 'score_by_age'),
                         ('log_analytics', 'log_metrics'), ('log_analytics', 'metric_counts'),
                         ('log_analytics', 'alerts'), ('iot_telemetry', 'device_stats'),
                         ('tweet_sentiment', 'sentiment_by_window'),
                         ('tweet_sentiment', 'top_terms'), ('face_dataset', 'faces'),
                         ('face_dataset', 'rejects'), ('image_inference', 'predictions')):
    assert (section, '%s: no rows' % table) in said, (section, table)
  assert 'Tables not in this output (shown as empty): rejects.' in page.texts(
      'notes', 'face_dataset')
  assert page.texts('notes', 'game_analytics')[-1].startswith('No _metrics.json here')
  assert_references_exist(page)


def test_a_single_jobs_folder_is_accepted(tmp_path):
  write_output(tmp_path / 'out', known_rows(str(tmp_path)), COUNTERS, jobs=['game_analytics'])
  job_dir = tmp_path / 'my_run'
  os.rename(tmp_path / 'out' / 'game_analytics', job_dir)
  assert sources.find_job_dirs(str(job_dir)) == {'game_analytics': str(job_dir)}
  assert sources.find_job_dirs(str(tmp_path)) == {}


def test_rebuild_removes_the_charts_of_the_last_report(tmp_path):
  write_output(tmp_path / 'out', known_rows(str(tmp_path)), COUNTERS, jobs=['image_inference'])
  stale = tmp_path / 'report' / 'game_analytics-heatmaps.png'
  stale.parent.mkdir()
  stale.write_bytes(b'old')
  (tmp_path / 'report' / 'mine.png').write_bytes(b'not ours')
  build.build(sources.open_output_dir(str(tmp_path / 'out')), str(tmp_path / 'report'), 'OUT')
  assert not stale.exists() and (tmp_path / 'report' / 'mine.png').exists()


def test_cli_writes_the_report_where_asked(tmp_path, capsys):
  write_output(tmp_path / 'out', known_rows(str(tmp_path)), COUNTERS, jobs=['tweet_sentiment'])
  assert cli.main([str(tmp_path / 'out'), '--out', str(tmp_path / 'r')]) == 0
  assert 'r/report.html (1 of 6 jobs)' in capsys.readouterr().out
  page = Page(tmp_path / 'r' / 'report.html')
  assert page.table('tweet_sentiment', 'keyword', 'windows')[0] == ('nova x', '2', '6', '0.25')


def test_cli_default_out_is_inside_the_output_folder(tmp_path):
  write_output(tmp_path / 'out', known_rows(str(tmp_path)), COUNTERS, jobs=['log_analytics'])
  assert cli.main([str(tmp_path / 'out')]) == 0
  assert (tmp_path / 'out' / 'report' / 'report.html').exists()


def test_cli_on_a_folder_without_job_output_says_so(tmp_path):
  (tmp_path / 'empty').mkdir()
  assert cli.main([str(tmp_path / 'empty'), '--out', str(tmp_path / 'r')]) == 0
  page = Page(tmp_path / 'r' / 'report.html')
  assert page.notes[0] == (None, 'No job output found in %s: every section is skipped.'
                           % (tmp_path / 'empty'))
  assert len([n for n in page.notes if n[1].startswith('Skipped')]) == len(JOBS)


@pytest.mark.parametrize('argv, message', [
    (['/no/such/folder'], 'neither a folder nor PROJECT:DATASET'),
    (['p-1234:ds', '--table_prefix', 'nojob=x'], 'expected JOB=PREFIX'),
    (['p-1234:ds', '--bigquery_endpoint', 'localhost:9050'], 'http(s)://'),
])
def test_cli_usage_errors_exit_2(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_help_documents_prefixes_and_endpoint(capsys):
  with pytest.raises(SystemExit):
    cli.main(['--help'])
  text = capsys.readouterr().out
  for words in ('--table_prefix JOB=PREFIX', 'BIGQUERY_EMULATOR_HOST', 'PROJECT:DATASET',
                '`errors` rows are filtered', 'skipped with a note'):
    assert words in text


def test_table_prefix_option_parses_job_and_prefix():
  assert cli.table_prefix('iot_telemetry=iot_') == ('iot_telemetry', 'iot_')
  assert cli.table_prefix('log_analytics=') == ('log_analytics', '')


# The pure pieces.

def test_funnel_conversion_sums_windows_and_divides_by_the_step_before():
  steps = game.funnel_steps([
      {'step': 'started', 'step_index': 0, 'sessions': 6},
      {'step': 'started', 'step_index': 0, 'sessions': 2},
      {'step': 'moved', 'step_index': 1, 'sessions': 4},
      {'step': 'attacked', 'step_index': 2, 'sessions': 0},
      {'step': 'completed', 'step_index': 3, 'sessions': 0}])
  assert [(s['sessions'], s['from_start'], s['from_previous']) for s in steps] == [
      (8, 1.0, 1.0), (4, 0.5, 0.5), (0, 0.0, 0.0), (0, 0.0, None)]


def test_time_bins_fill_gaps_with_empty_bins():
  t0 = datetime.datetime(2026, 1, 1, 0, 0)
  assert timebins.bin_width_s(t0, t0 + datetime.timedelta(minutes=40)) == 60
  assert timebins.bin_width_s(t0, t0 + datetime.timedelta(hours=3)) == 300
  assert timebins.bin_width_s(t0, t0 + datetime.timedelta(days=3)) == 3 * 3600
  bins = timebins.count_by_bin([(t0, 'a'), (t0 + datetime.timedelta(minutes=12), 'b'),
                                (t0 + datetime.timedelta(minutes=14), 'b')], 300)
  assert bins == [(t0, {'a': 1}), (t0 + datetime.timedelta(minutes=5), {}),
                  (t0 + datetime.timedelta(minutes=10), {'b': 2})]
  assert timebins.width_text(300) == '5 minutes' and timebins.width_text(3600) == 'hour'


def test_alert_spans_run_from_firing_to_clearing():
  t = [datetime.datetime(2026, 1, 1, 0, m) for m in range(6)]

  def alert(i, state, device='d1'):
    return {'window_start': t[i], 'state': state, 'device_id': device, 'metric': 'temp',
            'rule': 'hot'}
  spans = iot.alert_spans([alert(1, 'FIRING'), alert(3, 'CLEARED'), alert(4, 'FIRING'),
                           alert(2, 'FIRING', 'd2')], end=t[5])
  assert [(s['device_id'], s['start'], s['end']) for s in spans] == [
      ('d1', t[1], t[3]), ('d1', t[4], t[5]), ('d2', t[2], t[5])]


def test_busiest_devices_then_alerted_ones():
  totals = [('a', 5), ('b', 9), ('c', 9), ('d', 1), ('e', 2)]
  assert iot.busiest_devices(totals, ['d'], n=2) == ['b', 'c', 'd']
  assert iot.busiest_devices(totals, ['d', 'e'], n=2, limit=3) == ['b', 'c', 'd']


def test_values_print_the_same_everywhere():
  assert [html.fmt(v) for v in (None, 3, 2.0, 133.33333333333334, 0.666667, True)] == [
      '—', '3', '2.0', '133.3333', '0.6667', 'true']
  assert html.fmt(datetime.datetime(2026, 1, 1, 10, 0, 0, 500000)) == '2026-01-01 10:00:00.5'
  assert (html.pct(1, 2), html.pct(1, 0), html.ratio_pct(0.915)) == ('50.0%', '—', '91.5%')


def test_lines_break_over_windows_without_rows():
  t = [datetime.datetime(2026, 1, 1, 0, m) for m in range(5)]
  xs, ys = timeseries.break_gaps([t[0], t[1], t[4]], [1, 2, 3], datetime.timedelta(minutes=1))
  assert xs == [t[0], t[1], t[2], t[4]]
  assert ys[:2] == [1, 2] and ys[2] != ys[2] and ys[3] == 3  # NaN breaks the line
  assert rasters.log_ticks(60) == [1, 2, 5, 10, 20, 50]


def test_prefix_is_found_from_the_jobs_own_tables():
  names = {'heatmap', 'funnel', 'alerts', 'iot_device_stats', 'iot_alerts', 'a_faces',
           'b_rejects'}
  assert bigquery_source.choose_prefix('game_analytics', names, None) == ('', [])
  assert bigquery_source.choose_prefix('iot_telemetry', names, None)[0] == 'iot_'
  assert bigquery_source.choose_prefix('log_analytics', names, None) == (None, [])
  prefix, notes = bigquery_source.choose_prefix('face_dataset', names, None)
  assert prefix == 'a_' and "'b_'" in notes[-1] and 'face_dataset=PREFIX' in notes[-1]
  assert bigquery_source.choose_prefix('face_dataset', names, 'b_') == ('b_', [])
  assert bigquery_source.choose_prefix('game_analytics', names, 'x_') == (None, [])


def test_bigquery_values_become_the_ndjson_layout():
  moment = datetime.datetime(2026, 1, 1, 11, 0, 0, 250000,
                             tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
  assert bigquery_source.json_value({'t': moment, 'k': ['a'], 'c': [{'t': moment}]}) == {
      't': '2026-01-01T10:00:00.250000Z', 'k': ['a'], 'c': [{'t': '2026-01-01T10:00:00.250000Z'}]}
  assert bigquery_source.split_dataset('example.com:proj:ds') == ('example.com:proj', 'ds')


def test_schema_types_map_to_duckdb():
  assert sources.duck_type({'name': 'k', 'type': 'STRING', 'mode': 'REPEATED'}) == 'VARCHAR[]'
  cells = next(f for f in schemas.fields('iot_telemetry', 'bigtable_rows')
               if f['name'] == 'cells')
  assert sources.duck_type(cells) == ('STRUCT("family" VARCHAR, "column" VARCHAR, '
                                      '"value" VARCHAR, "timestamp" TIMESTAMP)[]')


# A real job's output.

def test_report_over_a_real_game_analytics_run(tmp_path):
  """The bundled sample's first records through the job, then the report: its tables agree
  with the job's own rows and counters."""
  from pipelines import game_analytics
  sample = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'pipelines', 'samples', 'game_analytics', 'custom_producer.json')
  with open(sample, encoding='utf-8') as fh:
    lines = fh.read().splitlines()[:400]
  (tmp_path / 'in.json').write_text('\n'.join(lines) + '\n')
  out = tmp_path / 'output' / 'game_analytics'
  game_analytics.run(['--input', str(tmp_path / 'in.json'), '--output', str(out)],
                     save_main_session=False)
  page = Page(build.build(sources.open_output_dir(str(tmp_path / 'output')),
                          str(tmp_path / 'report'), 'sample'))
  from tests.tables import read_table
  funnel = sorted(read_table(out, 'funnel'), key=lambda r: r['step_index'])
  assert [(r[0], r[1]) for r in page.table('game_analytics', 'step', 'sessions')] == [
      (r['step'], str(r['sessions'])) for r in funnel]
  assert [r[3] for r in page.table('game_analytics', 'step', 'sessions')] == [
      html.ratio_pct(r['rate_from_previous']) for r in funnel]
  counters = json.loads((out / '_metrics.json').read_text())['counters']
  assert page.table('game_analytics', 'counter', 'value') == sorted(
      (k, str(v)) for k, v in counters.items())
  heat = read_table(out, 'heatmap')
  summary = page.table('game_analytics', 'layer', 'cells with events')
  assert sum(int(r[2]) for r in summary) == sum(r['count'] for r in heat)
  assert sum(int(r[1]) for r in page.table('game_analytics', 'bin start (UTC)')) == len(
      read_table(out, 'sessions'))
  for src in page.images:
    assert_png(os.path.join(os.path.dirname(page.path), src))
  assert_references_exist(page)


# Review fixes: each test failed before its fix.

def _report_of(tmp_path, job, tables):
  """The page built from `tables` ({table: rows}) as `job`'s only output."""
  rows = {job: {table: [] for table in schemas.tables(job)}}
  rows[job].update(tables)
  for table, table_rows in tables.items():
    for row in table_rows:
      assert schemas.row_problems(job, table, row) == [], (table, row)
  write_output(tmp_path / 'out', rows, jobs=[job])
  return Page(build.build(sources.open_output_dir(str(tmp_path / 'out')),
                          str(tmp_path / 'report'), 'OUT'))


def test_score_mean_leaves_out_windows_without_scores(tmp_path):
  """A window whose completed sessions have no score (avg_score null) adds its sessions to
  the count, not to the mean's weights: the mean stays 10, and min..max error bars hold."""
  def score(start, sessions, avg, low, high):
    return {'age_group': 20, 'sessions': sessions, 'avg_score': avg, 'min_score': low,
            'max_score': high, **_w(start), **_pane()}
  page = _report_of(tmp_path, 'game_analytics', {'score_by_age': [
      score(W1, 2, 10.0, 10, 10), score(W2, 3, None, None, None)]})
  assert page.table('game_analytics', 'age group') == [('20–29', '5', '10.0', '10', '10')]
  assert 'game_analytics-score_by_age.png' in page.images
  assert_png(os.path.join(os.path.dirname(page.path), 'game_analytics-score_by_age.png'),
             min_bytes=1000)


def test_bar_error_bars_below_zero_are_clamped(tmp_path):
  """A mean a rounding error below its min gives a tiny negative error: drawn as 0."""
  path = charts.bars(str(tmp_path / 'b.png'), 'bars', ['a', 'b'], [1.0, 2.0], 'x', 'y',
                     yerr=([-1e-12, 0.5], [0.5, -0.25]), annotations=['1.0', '2.0'])
  assert_png(path, min_bytes=1000)


def test_top_terms_come_from_each_windows_last_pane_only(tmp_path):
  """Each pane holds the window's whole top-N list: a term in an early pane's list but not
  in the last one is gone, even though no later row names it."""
  def term(start, keyword, rank, word, count, pane=None):
    return {'keyword': keyword, 'rank': rank, 'term': word, 'count': count, **_w(start),
            **_pane(pane, None if pane is None else ('EARLY' if pane == 0 else 'ON_TIME'))}
  page = _report_of(tmp_path, 'tweet_sentiment', {'top_terms': [
      term(W1, 'k', 1, 'stale', 5, 0), term(W1, 'k', 2, 'battery', 3, 0),
      term(W1, 'k', 1, 'battery', 9, 1), term(W1, 'k', 2, 'fire', 7, 1),
      term(W2, 'k', 1, 'battery', 1)]})
  assert page.table('tweet_sentiment', 'keyword', 'rank') == [
      ('k', '1', 'battery', '10'), ('k', '2', 'fire', '7')]


def test_the_same_device_id_in_two_registries_is_two_devices(tmp_path):
  """device_stats is keyed by registry, device and metric: both registries' d1 are kept
  (each at its latest pane) and told apart as registry/device."""
  def stat(registry, count, mean, pane):
    return {'device_id': 'd1', 'registry_id': registry, 'metric': 'temperature',
            'count': count, 'min': mean - 1, 'max': mean + 1, 'mean': mean, 'stddev': 0.5,
            'first_time': W1, 'last_time': W1, **_w(W1, 5), **_pane(pane, 'ON_TIME')}
  alert = {'rule': 'hot', 'state': 'FIRING', 'device_id': 'd1', 'registry_id': 'rb',
           'metric': 'temperature', 'condition': 'temperature > 30', 'value': 31.0,
           'threshold': 30.0, 'command': '{}', **_w(W1, 5)}
  page = _report_of(tmp_path, 'iot_telemetry', {
      'device_stats': [stat('ra', 1, 20.0, 0), stat('ra', 3, 21.0, 1),
                       stat('rb', 7, 31.0, 0)],
      'alerts': [alert]})
  it = 'iot_telemetry'
  assert page.table(it, 'device', 'metric', 'windows') == [
      ('ra/d1', 'temperature', '1', '20.0', '22.0'),
      ('rb/d1', 'temperature', '1', '30.0', '32.0')]
  assert page.table(it, 'device', '10:00') == [('ra/d1', '3'), ('rb/d1', '7')]
  assert [r[2] for r in page.table(it, 'window start (UTC)', 'window end (UTC)')] == ['rb/d1']
  assert 'iot_telemetry-series.png' in page.images


def test_dollar_signs_in_data_are_text_not_mathtext(tmp_path):
  """'$\\foo$' would be an unknown mathtext symbol at savefig: labels are plain text, and
  the tables show them verbatim."""
  keyword = '$\\foo$ <b>'
  window = {'keyword': keyword, 'tweets': 2, 'avg_score': 0.5, 'avg_magnitude': 0.5,
            'positive': 1, 'neutral': 1, 'negative': 0, **_w(W1), **_pane()}
  terms = [{'keyword': keyword, 'rank': i + 1, 'term': word, 'count': n, **_w(W1), **_pane()}
           for i, (word, n) in enumerate((('$GME', 2), ('$\\foo$', 1)))]
  page = _report_of(tmp_path, 'tweet_sentiment',
                    {'sentiment_by_window': [window], 'top_terms': terms})
  tw = 'tweet_sentiment'
  assert page.table(tw, 'keyword', 'rank') == [(keyword, '1', '$GME', '2'),
                                               (keyword, '2', '$\\foo$', '1')]
  assert page.table(tw, 'keyword', 'windows') == [(keyword, '1', '2', '0.5')]
  assert '$\\foo$ &lt;b&gt;' in page.source and '<b>' not in page.source
  assert sorted(page.images) == ['tweet_sentiment-shares.png', 'tweet_sentiment-terms.png',
                                 'tweet_sentiment-volume.png']
