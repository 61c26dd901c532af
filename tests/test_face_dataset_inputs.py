"""face_dataset's inputs and dataset assembly: a PubFig-style URL list end to end (quirky list,
every download outcome, the accounting invariant), --input_format, folder input, the
content-hash split and balance, output names and index files, and face crops."""
import hashlib
import io
import json
import os
import random
import unicodedata

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.io import fileio
from apache_beam.pipeline import PipelineVisitor
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipelines import face_dataset
from pipelines.launch import counters
from tests.fake_image_server import FakeImageServer
from tests.fake_vision_api import FakeVisionApi, draw_face
from tests.tables import assert_written_tables_conform, read_table
from transforms import dataset_files, image_inputs, images, pubfig
from transforms.dataset_files import index_entry, index_texts, output_name
from transforms.dataset_split import TRAINING, VALIDATE, Balance, balance_rank, split_of
from transforms.face_crops import Candidate, FaceFilter, ImageItem, crop_face, overlap
from transforms.face_detect import DetectedFace, Detection
from transforms.image_inputs import ReadImageFiles, ReadUrlLists, folder_name, is_url_list

JOB = 'face_dataset'
FACE_BOX = (30, 20, 80, 75)  # where face_png paints the face the fake Vision server finds
LEFT_FACE, RIGHT_FACE = (4, 20, 54, 75), (64, 20, 114, 75)  # a group photo's two faces
SHA = 'abcdef0123456789' * 4


def md5_of(data: bytes) -> str:
  return hashlib.md5(data).hexdigest()


def face_png(seed: int, boxes=(FACE_BOX,)) -> bytes:
  """A 120 x 100 noise photo (its own pHash per seed) with frontal faces at `boxes`.
  Green stays >= 100 so no background pixel can pass for the magenta face marker."""
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, size=(100, 120, 3), dtype=np.uint8)
  pixels[..., 1] = rng.integers(100, 256, size=(100, 120), dtype=np.uint8)
  image = Image.fromarray(pixels, 'RGB')
  for box in boxes:
    draw_face(image, box)
  out = io.BytesIO()
  image.save(out, 'PNG')
  return out.getvalue()


def pixel_sha(data: bytes) -> str:
  return images.pixel_sha256(images.decode(data).image)


# --- 1. URL list end to end ----------------------------------------------------------------

@pytest.fixture(scope='module')
def url_list_run(tmp_path_factory):
  """One run of the job over a dev_urls.txt with every PubFig quirk and download outcome."""
  tmp = tmp_path_factory.mktemp('urls')
  with FakeImageServer() as server, FakeVisionApi() as vision:
    good = face_png(1)
    flaky = face_png(2)
    shared = face_png(3, (LEFT_FACE, RIGHT_FACE))
    server.add('/good.png', good, content_type='image/png')
    server.add('/flaky.png', flaky, content_type='image/png')
    server.fail('/flaky.png', 503, times=1)
    server.add('/wrong.png', face_png(4), content_type='image/png')
    server.add('/huge.png', b'x' * 10, content_length=10 ** 12)  # over the 20 MB cap
    server.page('/page.jpg')  # "image not found" HTML with a 200
    server.add('/nolabel.png', face_png(5), content_type='image/png')
    server.add('/shared.png', shared, content_type='image/png')
    server.add('/other.png', face_png(6), content_type='image/png')
    url = server.url
    lines = [
        '\ufeff# PubFig dev set urls, version 1.2',                                  # 1
        '#\tperson\timagenum\turl\trect\tmd5sum',                                   # 2
        '',                                                                         # 3
        'Abhishek Bachan\t1\t%s\t-12,-3,80,75\t%s' % (url('/good.png'), md5_of(good)),  # 4
        'Abhishek Bachan\t2\t%s\t25,15,85,80\t%s' % (url('/flaky.png'), md5_of(flaky)),  # 5
        'Alyssa Milano\t1\t%s\t1,2,30,40\t%s' % (url('/gone.png'), md5_of(good)),   # 6
        'Alyssa Milano\t2\t%s\t1,2,30,40\t%s' % (url('/wrong.png'), '0' * 32),      # 7
        'Alyssa Milano\t3\t%s\t1,2,30,40\t%s' % (url('/huge.png'), md5_of(good)),   # 8
        'Alyssa Milano\t4\t%s\t1,2,30,40\t%s' % (url('/page.jpg'), md5_of(good)),   # 9
        '# another header mid-file',                                                # 10
        '...\t1\t%s\t1,2,30,40\t%s' % (url('/nolabel.png'), md5_of(good)),          # 11
        # A group photo listed for both people in it: each rect picks that person's face.
        'Brad Pitt\t1\t%s\t2,15,56,80\t%s' % (url('/shared.png'), md5_of(shared)),  # 12
        'Cate Blanchett\t7\t%s\t62,15,116,80\t%s' % (url('/shared.png'), md5_of(shared)),  # 13
        'Brad Pitt\t3\t%s\t2,15,56,80\t%s' % (url('/shared.png'), md5_of(shared)),  # 14
        'Brad Pitt\t2\t%s\t90,0,119,30\t%s' % (url('/other.png'),  # 15: someone else's face
                                                md5_of(face_png(6))),
        '',                                                                         # 16
        'Zac Efron\t1\t%s\t1,2,3' % url('/zac.png'),  # 17: truncated, no final newline
    ]
    listing = tmp / 'dev_urls.txt'
    listing.write_bytes('\r\n'.join(lines).encode('utf-8'))
    out = tmp / 'out'
    face_dataset.run([
        '--input', str(listing), '--output', str(out), '--detector', 'vision',
        '--vision_endpoint', vision.endpoint, '--download_attempts', '2',
        '--download_timeout', '2', '--size', '32', '--max_faces', '2'],
        save_main_session=False)
    hits = {path: server.hits(path) for path in (
        '/good.png', '/flaky.png', '/gone.png', '/wrong.png', '/huge.png', '/page.jpg',
        '/nolabel.png', '/shared.png', '/other.png', '/zac.png')}
  with open(out / '_metrics.json', encoding='utf-8') as fh:
    metrics = json.load(fh)['counters']
  return dict(listing=str(listing), out=out, url=url, hits=hits, metrics=metrics,
              good=good, flaky=flaky, shared=shared)


def test_url_list_good_images_become_faces_with_list_ids_and_safe_labels(url_list_run):
  run = url_list_run
  where = run['listing']
  faces = sorted(read_table(run['out'], 'faces'), key=lambda r: r['image_id'])
  expected = [
      (where + ':12', run['url']('/shared.png'), 'Brad_Pitt', run['shared'], LEFT_FACE, 2),
      (where + ':13', run['url']('/shared.png'), 'Cate_Blanchett', run['shared'], RIGHT_FACE,
       2),
      (where + ':4', run['url']('/good.png'), 'Abhishek_Bachan', run['good'], FACE_BOX, 1),
      (where + ':5', run['url']('/flaky.png'), 'Abhishek_Bachan', run['flaky'], FACE_BOX, 1),
  ]
  assert [(r['image_id'], r['source'], r['label']) for r in faces] == [
      e[:3] for e in expected]
  for row, (_, _, label, data, face, count) in zip(faces, expected, strict=True):
    sha = pixel_sha(data)
    split = split_of(sha, 0.3)
    name = output_name(row['source'], sha)
    assert (row['sha256'], row['split'], row['detector'], row['faces']) == (
        sha, split, 'vision', count)
    assert (row['width'], row['height']) == (120, 100)
    box = (row['face_left'], row['face_top'], row['face_right'], row['face_bottom'])
    assert all(abs(a - b) <= 1 for a, b in zip(box, face, strict=True)), box  # JPEG upload
    assert row['output_path'] == str(run['out'] / split / label / (name + '.jpg'))
    with Image.open(row['output_path']) as crop:
      assert (crop.format, crop.size) == ('JPEG', (32, 32))
  assert_written_tables_conform(run['out'], JOB)


def test_url_list_rejects_say_why_and_point_at_the_list_line(url_list_run):
  run = url_list_run
  where, url = run['listing'], run['url']
  rejects = {r['image_id']: r for r in read_table(run['out'], 'rejects')}
  assert sorted(rejects) == sorted(where + ':%d' % n for n in (6, 7, 8, 9, 11, 14, 15))
  got = {n: (rejects[where + ':%d' % n]['source'], rejects[where + ':%d' % n]['label'],
             rejects[where + ':%d' % n]['reason'])
         for n in (6, 7, 8, 9, 11, 14, 15)}
  assert got == {
      6: (url('/gone.png'), 'Alyssa_Milano', 'dead_link'),
      7: (url('/wrong.png'), 'Alyssa_Milano', 'md5_mismatch'),
      8: (url('/huge.png'), 'Alyssa_Milano', 'too_large'),
      9: (url('/page.jpg'), 'Alyssa_Milano', 'dead_link'),
      11: (url('/nolabel.png'), None, 'bad_label'),
      14: (url('/shared.png'), 'Brad_Pitt', 'duplicate'),  # same person, same photo
      15: (url('/other.png'), 'Brad_Pitt', 'rect_mismatch'),
  }
  detail = {n: rejects[where + ':%d' % n]['detail'] for n in (6, 7, 8, 9, 11)}
  assert detail[6] == 'HTTP 404 Not Found'
  assert detail[7] == 'md5 %s, list says %s' % (md5_of(face_png(4)), '0' * 32)
  assert detail[8] == 'Content-Length %d is over the %d-byte cap' % (
      10 ** 12, images.MAX_BYTES)
  assert detail[9] == 'content type text/html, not an image'
  assert detail[11] == "label '...' has no letters or digits"
  assert rejects[where + ':14']['duplicate_of'] == where + ':12'
  assert rejects[where + ':14']['detail'] == 'exact duplicate of %s:12' % where
  assert rejects[where + ':15']['detail'] == (
      "no face overlaps the list's rect 90,0,119,30: best 0.00 of the smaller box < 0.5")
  assert all(rejects[where + ':%d' % n]['duplicate_of'] is None for n in (6, 7, 8, 9, 11))


def test_url_list_truncated_last_line_is_one_url_list_error(url_list_run):
  run = url_list_run
  errors = read_table(run['out'], 'errors')
  assert [(e['stage'], e['source'], e['payload']) for e in errors] == [
      ('url_list', run['listing'] + ':17', 'Zac Efron\t1\t%s\t1,2,3' % run['url']('/zac.png'))]
  assert errors[0]['error'] == ('line 17: expected 5 tab-separated fields (person, imagenum, '
                                'url, rect, md5sum), got 4 (truncated line?)')


def test_url_list_fetches_retries_once_and_never_fetches_a_bad_label(url_list_run):
  assert url_list_run['hits'] == {
      '/good.png': 1, '/flaky.png': 2, '/gone.png': 1, '/wrong.png': 1, '/huge.png': 1,
      '/page.jpg': 1, '/nolabel.png': 0, '/shared.png': 3, '/other.png': 1, '/zac.png': 0}


def test_url_list_accounting_invariant_and_counters(url_list_run):
  m = url_list_run['metrics']
  assert m['images_read'] == 12  # 17 lines: 3 headers and 2 blank ones are not images
  assert m['images_read'] == m['rows_faces'] + m['rows_rejects'] + m['errors']
  assert (m['rows_faces'], m['rows_rejects'], m['errors'], m['rows_errors']) == (4, 7, 1, 1)
  assert {k: v for k, v in m.items() if k.startswith(('rejects_', 'errors_'))} == {
      'rejects_dead_link': 2, 'rejects_md5_mismatch': 1, 'rejects_too_large': 1,
      'rejects_bad_label': 1, 'rejects_duplicate': 1, 'rejects_rect_mismatch': 1,
      'errors_url_list': 1}
  assert m['vision_images'] == 5  # the duplicate is dropped before detection


def test_url_list_index_files(url_list_run):
  run = url_list_run
  out = run['out']
  faces = read_table(out, 'faces')
  expected = index_texts([index_entry(r) for r in faces])
  for filename, text in expected.items():
    assert (out / filename).read_text(encoding='utf-8') == text
  assert (out / 'labels.txt').read_text(encoding='utf-8') == (
      'Abhishek_Bachan\nBrad_Pitt\nCate_Blanchett\n')
  listed = sorted(line.split(',')[0] for name in ('training_file.txt', 'validate_file.txt')
                  for line in (out / name).read_text(encoding='utf-8').splitlines())
  assert listed == sorted(os.path.relpath(r['output_path'], out) for r in faces)


def _url_list_file(tmp_path, entries, name='dev_urls.txt'):
  path = tmp_path / name
  path.write_text(''.join('%s\t%d\t%s\t25,15,85,80\t%s\n' % e for e in entries),
                  encoding='utf-8')
  return str(path)


def test_read_url_lists_size_cap_from_its_downloader(tmp_path):
  with FakeImageServer() as server:
    small = encode(Image.new('RGB', (40, 30), RED))
    big = face_png(11)
    assert len(small) <= 20_000 < len(big)
    server.add('/small.png', small, content_type='image/png')
    server.add('/big.png', big, content_type='image/png')
    server.add('/chunked.png', big, content_type='image/png', chunked=True)
    listing = _url_list_file(tmp_path, [
        ('Ann Lee', 1, server.url('/small.png'), md5_of(small)),
        ('Ann Lee', 2, server.url('/big.png'), md5_of(big)),
        ('Ann Lee', 3, server.url('/chunked.png'), md5_of(big))])
    downloader = pubfig.Downloader(max_bytes=20_000, timeout_s=2.0, backoff_s=0.01)
    with TestPipeline() as p:
      records, rejects, errors = p | ReadUrlLists(JOB, listing, downloader=downloader)
      assert_that(records | beam.Map(lambda r: (r.source, r.value, r.payload)), equal_to([
          (server.url('/small.png'),
           image_inputs.ImageMeta(listing + ':1', 'Ann_Lee', (25, 15, 85, 80)), small)]),
          label='images')
      assert_that(rejects, equal_to([
          image_inputs.reject_row(server.url('/big.png'), 'Ann_Lee', 'too_large',
                                  'Content-Length %d is over the 20000-byte cap' % len(big),
                                  image_id=listing + ':2'),
          image_inputs.reject_row(server.url('/chunked.png'), 'Ann_Lee', 'too_large',
                                  'body is over the 20000-byte cap',
                                  image_id=listing + ':3')]), label='rejects')
      assert_that(errors, equal_to([]), label='errors')


# --- 2. --input_format ---------------------------------------------------------------------

class _Reads(PipelineVisitor):
  def __init__(self):
    self.reads = []

  def enter_composite_transform(self, node):
    if node.full_label == 'FaceDataset/Read':
      self.reads.append(type(node.transform))


def _reader_of(argv):
  plan = face_dataset.build(argv, save_main_session=False)
  visitor = _Reads()
  plan.pipeline.visit(visitor)
  assert len(visitor.reads) == 1
  return visitor.reads[0]


@pytest.mark.parametrize('name, flag, reader', [
    ('dev_urls.txt', 'auto', ReadUrlLists),
    ('eval_urls.TSV', 'auto', ReadUrlLists),
    ('urls.txt', None, ReadUrlLists),  # auto is the default
    ('photo.jpg', 'auto', ReadImageFiles),
    ('urls.csv', 'auto', ReadImageFiles),
    ('urls.lst', 'url_list', ReadUrlLists),
    ('dev_urls.txt', 'images', ReadImageFiles),
])
def test_input_format_picks_the_reader(tmp_path, name, flag, reader):
  (tmp_path / name).write_bytes(b'')
  argv = ['--input', str(tmp_path / name), '--output', str(tmp_path / 'out')]
  if flag:
    argv += ['--input_format', flag]
  assert _reader_of(argv) is reader


def test_input_format_auto_on_a_folder_glob_reads_images(tmp_path):
  (tmp_path / 'Ann').mkdir()
  (tmp_path / 'Ann' / 'a.jpg').write_bytes(b'')
  argv = ['--input', str(tmp_path / '*' / '*'), '--output', str(tmp_path / 'out')]
  assert _reader_of(argv) is ReadImageFiles


@pytest.mark.parametrize('pattern, expected', [
    ('dev_urls.txt', True), ('gs://b/pubfig/eval_urls.txt', True), ('A.TXT', True),
    ('lists/*.tsv', True), ('photos/*/*', False), ('photos/*/*.jpg', False),
    ('urls.txt.gz', False), ('urls.csv', False)])
def test_is_url_list(pattern, expected):
  assert is_url_list(pattern) is expected


def test_forced_url_list_runs_end_to_end(tmp_path):
  with FakeImageServer() as server, FakeVisionApi() as vision:
    data = face_png(20)
    server.add('/a.png', data, content_type='image/png')
    listing = _url_list_file(tmp_path, [('Ann Lee', 1, server.url('/a.png'), md5_of(data))],
                             name='pubfig.list')
    out = tmp_path / 'out'
    face_dataset.run([
        '--input', listing, '--output', str(out), '--input_format', 'url_list',
        '--detector', 'vision', '--vision_endpoint', vision.endpoint, '--size', '16'],
        save_main_session=False)
  faces = read_table(out, 'faces')
  assert [(r['image_id'], r['label']) for r in faces] == [(listing + ':1', 'Ann_Lee')]
  assert read_table(out, 'rejects') == read_table(out, 'errors') == []


# --- 3. Folder input -----------------------------------------------------------------------

NFC_NAME = unicodedata.normalize('NFC', 'José Ñúñez')
NFD_NAME = unicodedata.normalize('NFD', 'José Ñúñez')


@pytest.fixture
def photo_root(tmp_path):
  assert NFC_NAME != NFD_NAME
  files = {}
  for folder, name, seed in ((NFC_NAME, 'a.png', 30), (NFD_NAME, 'b.png', 31),
                             ('Mary-Kate Olsen', 'c.png', 32), ('...', 'd.png', 33),
                             ('Mary-Kate Olsen', 'big.png', 34)):
    (tmp_path / folder).mkdir(exist_ok=True)
    path = tmp_path / folder / name
    path.write_bytes(face_png(seed) if name != 'big.png' else b'\0' * 40_000)
    files[(folder, name)] = str(path)
  return tmp_path, files


_READ_PATHS = []


def test_folder_input_labels_rejects_and_size_limit(photo_root, monkeypatch):
  root, files = photo_root
  real_read = fileio.ReadableFile.read

  def spy(self, *args, **kwargs):
    _READ_PATHS.append(self.metadata.path)
    return real_read(self, *args, **kwargs)

  monkeypatch.setattr(fileio.ReadableFile, 'read', spy)
  del _READ_PATHS[:]
  label = 'José_Ñúñez'
  assert unicodedata.is_normalized('NFC', label)
  p = TestPipeline()
  records, rejects, errors = p | ReadImageFiles(JOB, str(root / '*' / '*'), max_bytes=30_000,
                                                clock=lambda: 0.0)
  assert_that(records | beam.Map(lambda r: (r.source, r.value, md5_of(r.payload))), equal_to([
      (files[(NFC_NAME, 'a.png')],
       image_inputs.ImageMeta(files[(NFC_NAME, 'a.png')], label), md5_of(face_png(30))),
      (files[(NFD_NAME, 'b.png')],
       image_inputs.ImageMeta(files[(NFD_NAME, 'b.png')], label), md5_of(face_png(31))),
      (files[('Mary-Kate Olsen', 'c.png')],
       image_inputs.ImageMeta(files[('Mary-Kate Olsen', 'c.png')], 'Mary_Kate_Olsen'),
       md5_of(face_png(32)))]), label='images')
  bad = files[('...', 'd.png')]
  assert_that(rejects, equal_to([image_inputs.reject_row(
      bad, None, 'bad_label', "folder '...': label '...' has no letters or digits")]),
      label='rejects')
  big = files[('Mary-Kate Olsen', 'big.png')]
  assert_that(errors | beam.Map(lambda e: (e['job'], e['stage'], e['source'], e['error'])),
              equal_to([(JOB, 'read', big, 'image too large: 40000 bytes > 30000 (not read)')]),
              label='errors')
  result = p.run()
  result.wait_until_finish()
  values = counters(result, JOB)
  assert values['images_read'] == 5
  assert (values['rejects_bad_label'], values['errors'], values['errors_read']) == (1, 1, 1)
  assert big not in _READ_PATHS and bad not in _READ_PATHS
  assert len(_READ_PATHS) == 3


def test_folder_input_error_row_for_an_oversized_file_has_no_payload(tmp_path):
  (tmp_path / 'Ann').mkdir()
  (tmp_path / 'Ann' / 'big.jpg').write_bytes(b'\0' * 100)
  with TestPipeline() as p:
    _, _, errors = p | ReadImageFiles(JOB, str(tmp_path / '*' / '*'), max_bytes=10)
    assert_that(errors | beam.Map(lambda e: (e['payload'], e['payload_encoding'])),
                equal_to([(None, None)]))


@pytest.mark.parametrize('path, folder', [
    ('/photos/Ann Lee/IMG_1.jpg', 'Ann Lee'),
    ('photos/José Ñúñez/a.png', 'José Ñúñez'),
    ('a.jpg', ''),
    ('gs://bucket/photos/Ann/x.jpg', 'Ann'),
    ('gs://bucket/photos/Mary-Kate Olsen/x y.jpg', 'Mary-Kate Olsen'),
    ('gs://bucket/x.jpg', 'bucket'),
    ('s3://bucket/a/b/c/d.jpg', 'c'),
])
def test_folder_name(path, folder):
  assert folder_name(path) == folder


# --- 4. Split and balance ------------------------------------------------------------------

def _hashes(n, seed=7):
  rng = random.Random(seed)
  return ['%064x' % rng.getrandbits(256) for _ in range(n)]


def test_split_of_depends_on_the_hash_only():
  hashes = _hashes(200)
  first = {h: split_of(h, 0.3) for h in hashes}
  shuffled = list(hashes)
  random.Random(3).shuffle(shuffled)
  assert {h: split_of(h, 0.3) for h in shuffled} == first
  assert set(first.values()) == {TRAINING, VALIDATE}
  # Only the first 64 bits count: the rest of the hash never moves an image.
  assert all(split_of(h[:16] + '0' * 48, 0.3) == first[h] for h in hashes)


def test_split_of_validate_share_is_the_fraction():
  hashes = _hashes(2000, seed=11)
  share = sum(split_of(h, 0.3) == VALIDATE for h in hashes) / len(hashes)
  assert 0.27 <= share <= 0.33


def test_split_of_boundaries():
  hashes = _hashes(300, seed=5) + ['0' * 64, '8' + '0' * 63, 'ffffffffffff' + '0' * 52]
  assert {split_of(h, 0.0) for h in hashes} == {TRAINING}
  assert {split_of(h, 1.0) for h in hashes} == {VALIDATE}
  assert split_of('0' * 64, 0.0) == TRAINING
  assert split_of('0' * 64, 1e-12) == VALIDATE
  assert split_of('8' + '0' * 63, 0.5) == TRAINING  # exactly at the fraction: training
  assert split_of('7ffffffffffff000' + 'f' * 48, 0.5) == VALIDATE  # 2^-52 below it


def test_split_of_fraction_one_puts_even_the_largest_hash_in_validate():
  assert split_of('f' * 64, 1.0) == VALIDATE
  assert split_of('fffffffffffffc00' + '0' * 48, 1.0) == VALIDATE
  assert split_of('7fffffffffffffff' + '0' * 48, 0.5) == VALIDATE  # (2^63 - 1) / 2^64 < 0.5


@pytest.mark.parametrize('fraction', [-0.01, 1.01, -1, 2, float('nan'), float('inf')])
def test_split_of_refuses_fractions_outside_zero_one(fraction):
  with pytest.raises(ValueError, match='validate_fraction must be within'):
    split_of('0' * 64, fraction)


def test_balance_rank_is_a_second_hash_independent_of_the_split():
  h = SHA
  assert balance_rank(h) == hashlib.sha256(b'balance:' + h.encode('ascii')).hexdigest()
  assert balance_rank(h) != h and len(balance_rank(h)) == 64


def _candidate(label, n):
  sha = hashlib.sha256(('%s-%d' % (label, n)).encode()).hexdigest()
  source = 'gs://photos/%s/%d.jpg' % (label, n)
  item = ImageItem(sha, n, 100, 80, source, label, b'', 'JPEG', False)
  return Candidate(source, item, DetectedFace((10, 10, 60, 60), 0.0, 0.0, 0.0, 0.9), 1,
                   'vision')


def test_balance_caps_every_label_at_the_smallest_count():
  sizes = {'Ann': 7, 'Bob': 3, 'Cy': 4}
  candidates = [_candidate(label, n) for label, count in sizes.items() for n in range(count)]
  kept = []
  for label in sizes:
    own = [c for c in candidates if c.item.label == label]
    kept += sorted(own, key=lambda c: balance_rank(c.item.sha256))[:3]
  dropped = [c for c in candidates if c not in kept]
  assert len(kept) == 9 and len(dropped) == 5
  expected_rejects = [image_inputs.reject_row(
      c.item.source, c.item.label, 'balance',
      "label %s capped at 3 faces (the smallest label's count)" % c.item.label,
      image_id=c.image_id) for c in dropped]
  orders = [list(candidates), list(reversed(candidates))]
  random.Random(1).shuffle(orders[1])
  p = TestPipeline()
  for i, order in enumerate(orders):
    out, rejects = p | 'Create%d' % i >> beam.Create(order) | 'Balance%d' % i >> Balance(JOB)
    assert_that(out | 'Ids%d' % i >> beam.Map(lambda c: c.image_id),
                equal_to([c.image_id for c in kept]), label='kept%d' % i)
    assert_that(rejects, equal_to(expected_rejects), label='rejects%d' % i)
  result = p.run()
  result.wait_until_finish()
  values = counters(result, JOB)
  assert values['rejects_balance'] == 10  # 5 per Balance
  assert values['balance_cap'] == 6


def test_balance_with_equal_labels_keeps_everything():
  candidates = [_candidate(label, n) for label in ('Ann', 'Bob') for n in range(2)]
  with TestPipeline() as p:
    out, rejects = p | beam.Create(candidates) | Balance(JOB)
    assert_that(out | beam.Map(lambda c: c.image_id),
                equal_to([c.image_id for c in candidates]), label='kept')
    assert_that(rejects, equal_to([]), label='rejects')


# --- 5. Output names and index files -------------------------------------------------------

@pytest.mark.parametrize('source, name', [
    ('/photos/Ann/IMG_0001.JPG', 'IMG_0001-abcdef012345'),
    ('C:\\photos\\Ann\\img 1.jpg', 'img_1-abcdef012345'),
    ('gs://bucket/photos/Ann/x.y.jpg', 'x_y-abcdef012345'),
    ('gs://bucket/photos/Ann/portrait', 'portrait-abcdef012345'),
    ('http://img.example/p/My%20Photo%2C%201.jpg?size=large&x=%41', 'My_Photo_1-abcdef012345'),
    ('http://img.example/photo.php?id=5.jpg', 'photo-abcdef012345'),
    ('/photos/A/José María, 2001. (1).jpeg', 'José_María_2001_1-abcdef012345'),
    ('/photos/A/Jose\u0301 Mari\u0301a.jpg', 'José_María-abcdef012345'),  # NFD -> NFC
    ('/photos/A/李连杰 2.png', '李连杰_2-abcdef012345'),
    ('/photos/A/.jpg', 'abcdef0123456789'),
    ('/photos/A/---.jpg', 'abcdef0123456789'),
    ('http://img.example/', 'abcdef0123456789'),
    ('http://img.example/%2E%2E%2F.jpg', 'abcdef0123456789'),
    ('/photos/A/' + 'b' * 100 + '.jpg', 'b' * 60 + '-abcdef012345'),
    ('/photos/A/अभिषेक.jpg', 'अभिषेक-abcdef012345'),  # combining vowel signs are kept
    ('/photos/A/' + 'c' * 59 + ' d.jpg', 'c' * 59 + '-abcdef012345'),  # no '_' left at the cut
])
def test_output_name(source, name):
  assert output_name(source, SHA) == name


def test_output_name_is_one_safe_path_component():
  for source in ['/a/../../etc/passwd', 'http://h/%2e%2e%2f%2e%2e%2fx.jpg', 'C:\\a\\..\\b.jpg',
                 '/p/a,b\nc\t.jpg', '/p/' + 'ü' * 80 + '.jpg']:
    name = output_name(source, SHA)
    assert os.path.basename(name) == name and name not in ('.', '..')
    assert not set(name) & set('/\\,\n\r\t .'), (source, name)
    assert len(name.rsplit('-', 1)[0]) <= 60


def test_index_entry_and_relative_path():
  row = {'split': 'validate', 'label': 'Ann_Lee',
         'output_path': 'gs://bucket/out/validate/Ann_Lee/x-abcdef012345.jpg'}
  assert index_entry(row) == ('validate', 'validate/Ann_Lee/x-abcdef012345.jpg', 'Ann_Lee')
  windows = dict(row, output_path='C:\\out\\validate\\Ann_Lee\\x-abcdef012345.jpg')
  assert index_entry(windows) == index_entry(row)
  assert dataset_files.relative_path('training', 'Bo', 'n') == 'training/Bo/n.jpg'


def test_index_texts_exact_content():
  entries = [
      ('training', 'training/Bob/y-2.jpg', 'Bob'),
      ('validate', 'validate/Ann/x-1.jpg', 'Ann'),
      ('training', 'training/Ann/z-3.jpg', 'Ann'),
      ('training', 'training/Ann/a-4.jpg', 'Ann'),
      ('validate', 'validate/Cy/c-5.jpg', 'Cy'),
  ]
  assert index_texts(entries) == {
      'training_file.txt': ('training/Ann/a-4.jpg,Ann\ntraining/Ann/z-3.jpg,Ann\n'
                            'training/Bob/y-2.jpg,Bob\n'),
      'validate_file.txt': 'validate/Ann/x-1.jpg,Ann\nvalidate/Cy/c-5.jpg,Cy\n',
      'labels.txt': 'Ann\nBob\nCy\n',
  }
  assert index_texts(list(reversed(entries))) == index_texts(entries)


def test_index_texts_of_nothing_are_three_empty_files():
  assert index_texts([]) == {'training_file.txt': '', 'validate_file.txt': '',
                             'labels.txt': ''}


def test_write_index_with_no_faces_writes_three_empty_files(tmp_path):
  out = str(tmp_path / 'out')
  with TestPipeline() as p:
    faces = p | beam.Create([]).with_output_types(dict)
    written = faces | dataset_files.WriteIndex(out)
    assert_that(written, equal_to([[os.path.join(out, f) for f in (
        'training_file.txt', 'validate_file.txt', 'labels.txt')]]))
  for name in ('training_file.txt', 'validate_file.txt', 'labels.txt'):
    assert (tmp_path / 'out' / name).read_bytes() == b''


def test_write_index_with_faces(tmp_path):
  out = tmp_path / 'out'
  rows = [{'split': 'training', 'label': 'Bo', 'output_path': str(out / 'training/Bo/b-2.jpg')},
          {'split': 'training', 'label': 'Al', 'output_path': str(out / 'training/Al/a-1.jpg')},
          {'split': 'validate', 'label': 'Bo', 'output_path': str(out / 'validate/Bo/c-3.jpg')}]
  with TestPipeline() as p:
    _ = p | beam.Create(rows) | dataset_files.WriteIndex(str(out))
  assert (out / 'training_file.txt').read_text() == 'training/Al/a-1.jpg,Al\ntraining/Bo/b-2.jpg,Bo\n'
  assert (out / 'validate_file.txt').read_text() == 'validate/Bo/c-3.jpg,Bo\n'
  assert (out / 'labels.txt').read_text() == 'Al\nBo\n'


# --- 6. crop_face --------------------------------------------------------------------------

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(width, height, colours=(RED, GREEN, BLUE, WHITE)):
  """Top-left, top-right, bottom-left, bottom-right in `colours`, split at the middle."""
  pixels = np.zeros((height, width, 3), dtype=np.uint8)
  tl, tr, bl, br = colours
  pixels[:height // 2, :width // 2] = tl
  pixels[:height // 2, width // 2:] = tr
  pixels[height // 2:, :width // 2] = bl
  pixels[height // 2:, width // 2:] = br
  return Image.fromarray(pixels, 'RGB')


def encode(image, fmt='PNG', **kwargs):
  out = io.BytesIO()
  image.save(out, fmt, **kwargs)
  return out.getvalue()


def nearest(pixel):
  return min((RED, GREEN, BLUE, WHITE),
             key=lambda c: sum((int(a) - b) ** 2 for a, b in zip(pixel, c, strict=True)))


def dominant(pixels):
  counts = {}
  for pixel in pixels.reshape(-1, 3):
    colour = nearest(pixel)
    counts[colour] = counts.get(colour, 0) + 1
  return max(counts, key=counts.get), counts


def test_crop_face_clamps_at_the_border():
  data = encode(quadrants(200, 200))
  # Box partly outside the top-left corner; margin 0.5 grows it to -90..110, clamped to
  # 0..110 both ways: a 110 px square, 2.5 source px per crop px, quadrant edge at 40.
  jpeg = crop_face(data, (-40, -40, 60, 60), 0.5, 44)
  with Image.open(io.BytesIO(jpeg)) as crop:
    assert (crop.format, crop.size, crop.mode) == ('JPEG', (44, 44), 'RGB')
    pixels = np.asarray(crop)
  colour, counts = dominant(pixels)
  assert colour == RED and counts[RED] >= 0.75 * 44 * 44
  assert nearest(pixels[2, 2]) == RED and nearest(pixels[36, 36]) == RED
  assert nearest(pixels[2, 43]) == GREEN   # source (107, 5): top-right quadrant
  assert nearest(pixels[43, 2]) == BLUE    # source (5, 107): bottom-left
  assert nearest(pixels[43, 43]) == WHITE  # source (107, 107): bottom-right


def test_crop_face_box_wholly_inside_the_bottom_right_gives_that_colour():
  data = encode(quadrants(200, 160))
  jpeg = crop_face(data, (150, 110, 190, 150), 0.2, 24)
  with Image.open(io.BytesIO(jpeg)) as crop:
    assert crop.size == (24, 24)
    colour, counts = dominant(np.asarray(crop))
  assert (colour, counts[WHITE]) == (WHITE, 24 * 24)


@pytest.mark.parametrize('orientation, stored', [
    (6, Image.Transpose.ROTATE_90),   # shown rotated 90 degrees clockwise
    (8, Image.Transpose.ROTATE_270),  # shown rotated 90 degrees counter-clockwise
    (3, Image.Transpose.ROTATE_180),
])
def test_crop_face_applies_exif_orientation_before_cropping(orientation, stored):
  upright = quadrants(120, 80)  # TL red, TR green, BL blue, BR white, as displayed
  exif = Image.Exif()
  exif[0x0112] = orientation
  data = encode(upright.transpose(stored), 'JPEG', quality=95, exif=exif.tobytes())
  with Image.open(io.BytesIO(data)) as raw:
    assert raw.size == ((80, 120) if orientation in (6, 8) else (120, 80))
  # The upright top-right quadrant: green only once the orientation is applied.
  jpeg = crop_face(data, (70, 5, 110, 35), 0.0, 16)
  with Image.open(io.BytesIO(jpeg)) as crop:
    assert crop.size == (16, 16)
    colour, counts = dominant(np.asarray(crop))
  assert colour == GREEN and counts[GREEN] >= 0.9 * 16 * 16


def test_output_name_fits_a_file_name_whatever_the_script():
  source = '/p/' + '\U00020000' * 63 + '.jpg'  # 4-byte letters: 252 bytes, a legal name
  name = output_name(source, SHA)
  assert name == '\U00020000' * 30 + '-abcdef012345'
  assert len((name + '.jpg').encode('utf-8')) <= 255


# --- the list's rect picks the person's face -------------------------------------------------

def test_overlap_is_the_share_of_the_smaller_box():
  assert overlap((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
  assert overlap((0, 0, 10, 10), (-5, -5, 20, 20)) == 1.0  # one inside the other
  assert overlap((0, 0, 10, 10), (5, 0, 15, 10)) == 0.5
  assert overlap((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
  assert overlap((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0  # empty box


def test_face_filter_picks_the_face_in_the_rect_or_rejects_a_mismatch():
  left = DetectedFace((0, 0, 40, 40), None, None, None, 0.9)
  right = DetectedFace((60, 0, 120, 60), None, None, None, 0.8)  # the largest
  detection = Detection((left, right), (), 'vision')
  face_filter = FaceFilter(max_faces=2)
  assert face_filter.judge(detection) == (right, None)
  assert face_filter.judge(detection, (-5, -5, 35, 45)) == (left, None)
  face, (reason, detail) = face_filter.judge(detection, (40, 70, 60, 90))
  assert (face, reason) == (None, 'rect_mismatch')
  assert detail == ("no face overlaps the list's rect 40,70,60,90: best 0.00 of the smaller "
                    "box < 0.5")
  # The filter's own checks come first: two faces with max_faces 1.
  assert FaceFilter().judge(detection, (-5, -5, 35, 45))[1][0] == 'too_many_faces'
