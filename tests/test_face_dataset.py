"""face_dataset end to end on the DirectRunner: folder globs of synthetic images (Pillow)
through the Vision detector against the local fake (tests/fake_vision_api.py) or the local
Haar detector, written tables read back and checked row by row, crops, index files and
`_metrics.json` counters; plus the job's start-up checks."""
import base64
import glob
import io
import json
import os
import re
import shutil
import struct
import types
import zlib

import numpy as np
import pytest
from PIL import Image

from pipelines import face_dataset, launch
from pipelines.face_dataset import JOB
from tests import fake_vision_api
from tests.fake_vision_api import FACE_KINDS, FakeVisionApi, draw_face, draw_sunglasses
from tests.tables import assert_written_tables_conform, read_table
from transforms import dataset_split, images
from transforms.face_detect import prepare_upload, uploadable_as_is

FACES_DIR = os.path.join(os.path.dirname(__file__), 'data', 'faces')
ASTRONAUT_BOX = (177, 66, 272, 161)  # Haar's box, as measured in tests/test_face_detect.py
BOX_TOLERANCE_PX = 8
# Boxes on 16 px boundaries survive the JPEG upload exactly (whole 4:2:0 MCUs).
FACE = (96, 64, 192, 176)
SIZE = 64


# Synthetic images.

def canvas(seed, size=(320, 240)):
  """Blurred random blocks: a distinct pHash for each seed, and no channel above 170, so no
  marker colour (magenta, cyan) anywhere."""
  rng = np.random.default_rng(seed)
  grid = rng.integers(50, 170, size=(6, 8, 3), dtype=np.uint8)
  return Image.fromarray(grid, 'RGB').resize(size, Image.Resampling.BILINEAR)


def face_image(seed, box=FACE, kind='frontal', size=(320, 240)):
  image = canvas(seed, size)
  draw_face(image, box, kind)
  return image


def encode(image, fmt='PNG', **kwargs):
  out = io.BytesIO()
  image.save(out, fmt, **kwargs)
  return out.getvalue()


def put(root, label, name, data):
  """Writes `data` (bytes, or an image saved as PNG) to root/label/name; returns its path."""
  if isinstance(data, Image.Image):
    data = encode(data)
  folder = os.path.join(str(root), label)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, name)
  with open(path, 'wb') as fh:
    fh.write(data)
  return path


def png_header(width, height):
  """A PNG whose IHDR claims width x height RGB, with one tiny IDAT: a bomb's header."""
  def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
  ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64))
          + chunk(b'IEND', b''))


def pixel_sha(data):
  return images.pixel_sha256(images.decode(data).image)


def upload_of(data, max_px=1024):
  """The bytes the Vision detector uploads for this file (what `respond` is keyed on)."""
  decoded = images.decode(data)
  as_is = uploadable_as_is(decoded.format, decoded.exif_rotated)
  return prepare_upload(decoded.image, max_px, data if as_is else None)[0]


# Running the job.

def run_job(input_glob, out, *flags):
  face_dataset.run(['--input', input_glob, '--output', str(out), '--direct_num_workers', '1',
                    *flags], save_main_session=False)
  with open(os.path.join(str(out), '_metrics.json'), encoding='utf-8') as fh:
    return json.load(fh)['counters']


def vision_flags(fake, *more):
  return ('--detector', 'vision', '--vision_endpoint', fake.endpoint, '--vision_qps', '1000',
          *more)


def tables(out):
  return {table: read_table(out, table) for table in ('faces', 'rejects', 'errors')}


def check_accounting(out, counters):
  """images_read = faces + rejects + errors, from the counters and from the tables."""
  rows = tables(out)
  assert counters.get('rows_faces', 0) == len(rows['faces'])
  assert counters.get('rows_rejects', 0) == len(rows['rejects'])
  assert counters.get('rows_errors', 0) == counters.get('errors', 0) == len(rows['errors'])
  assert counters['images_read'] == (counters.get('rows_faces', 0)
                                     + counters.get('rows_rejects', 0)
                                     + counters.get('errors', 0))
  assert_written_tables_conform(out, JOB)


def index_lines(out, filename):
  with open(os.path.join(str(out), filename), encoding='utf-8') as fh:
    return fh.read().splitlines()


def check_index_files(out):
  """The index files list exactly the crops written (relative paths, sorted) and the
  faces rows; labels.txt the sorted labels of the faces."""
  faces = read_table(out, 'faces')
  for split, filename in (('training', 'training_file.txt'), ('validate', 'validate_file.txt')):
    lines = index_lines(out, filename)
    on_disk = sorted(os.path.relpath(p, str(out)).replace(os.sep, '/')
                     for p in glob.glob(os.path.join(str(out), split, '*', '*.jpg')))
    assert lines == sorted(lines)
    assert [line.split(',')[0] for line in lines] == on_disk
    expected = sorted('%s,%s' % (os.path.relpath(r['output_path'], str(out)).replace(os.sep, '/'),
                                 r['label']) for r in faces if r['split'] == split)
    assert lines == expected
    for line in lines:
      path, label = line.split(',')
      assert path.startswith('%s/%s/' % (split, label)) and not os.path.isabs(path)
  assert index_lines(out, 'labels.txt') == sorted({r['label'] for r in faces})


def crop_size(path):
  with Image.open(path) as crop:
    return crop.format, crop.size


# The fake Vision server, shared by the module.

@pytest.fixture(scope='module')
def vision_server():
  with FakeVisionApi() as server:
    yield server


@pytest.fixture
def fake(vision_server):
  vision_server.clear_failures()
  vision_server.reset_log()
  yield vision_server
  vision_server.clear_failures()
  vision_server.reset_log()


class UploadSizes:
  """Records (width, height) of every image the fake annotates, from the uploaded bytes."""

  def __init__(self, monkeypatch):
    self.sizes = []
    original = fake_vision_api.annotate_image

    def annotate(content, features):
      with Image.open(io.BytesIO(content)) as image:
        self.sizes.append(image.size)
      return original(content, features)
    monkeypatch.setattr(fake_vision_api, 'annotate_image', annotate)


# One run over every case a single image can show (module-scoped: it is run once).

# Canned answers in proto3 JSON, where zeros are left out: a vertex on the left edge has no
# `x` ({"y": 16}), the one at (0, 0) is {}, angles of 0 are absent.
RAW_NO_X = {'faceAnnotations': [{
    'fdBoundingPoly': {'vertices': [{'y': 16}, {'x': 112, 'y': 16}, {'x': 112, 'y': 144},
                                    {'x': 16, 'y': 144}]},
    'boundingPoly': {'vertices': [{'x': 2, 'y': 2}, {'x': 130, 'y': 2}, {'x': 130, 'y': 160},
                                  {'x': 2, 'y': 160}]},
    'rollAngle': 5.5, 'detectionConfidence': 0.91}]}
RAW_ORIGIN = {'faceAnnotations': [{
    'fdBoundingPoly': {'vertices': [{}, {'x': 96, 'y': 16}, {'x': 96, 'y': 128},
                                    {'x': 16, 'y': 128}]},
    'detectionConfidence': 0.75}]}


@pytest.fixture(scope='module')
def main_run(vision_server, tmp_path_factory):
  fake = vision_server
  fake.clear_failures()
  fake.reset_log()
  root = tmp_path_factory.mktemp('photos')
  out = tmp_path_factory.mktemp('dataset')
  p = {}
  data = {}

  def add(key, label, name, image_or_bytes):
    payload = encode(image_or_bytes) if isinstance(image_or_bytes, Image.Image) \
        else image_or_bytes
    data[key] = payload
    p[key] = put(root, label, name, payload)

  # Accepted.
  add('frontal', 'alice', 'frontal.png', face_image(1))
  add('natural', 'alice', 'natural.png', face_image(2, kind='natural'))
  add('corner', 'bob', 'corner.png', face_image(3, box=(0, 0, 64, 64)))
  big = canvas(4, (3000, 2000))
  draw_face(big, (1200, 800, 1260, 860))
  add('big', 'bob', 'big.jpg', encode(big, 'JPEG', quality=90))
  upright = face_image(5, box=(32, 48, 128, 176), size=(240, 320))
  exif = Image.Exif()
  exif[0x0112] = 6  # stored turned 90 degrees: "rotate 90 clockwise to view"
  add('exif', 'bob', 'exif.jpg', encode(upright.transpose(Image.Transpose.ROTATE_90), 'JPEG',
                                         quality=95, exif=exif.tobytes()))
  add('raw_no_x', 'carol', 'raw_no_x.png', canvas(6))  # no magenta: only the canned answers
  add('raw_origin', 'carol', 'raw_origin.png', canvas(21))  # have faces
  # Every filter reason.
  add('no_face', 'dave', 'empty.png', canvas(7))
  add('low_confidence', 'dave', 'blurry.png', face_image(8, kind='blurry'))
  two = canvas(9)
  draw_face(two, (32, 48, 112, 144))
  draw_face(two, (176, 48, 256, 144))
  add('too_many_faces', 'dave', 'two.png', two)
  add('rolled', 'dave', 'rolled.png', face_image(10, kind='rolled'))
  add('turned', 'dave', 'turned.png', face_image(11, kind='turned'))
  add('tilted', 'dave', 'tilted.png', face_image(12, kind='tilted'))
  glasses = face_image(13)
  draw_sunglasses(glasses, FACE)
  add('label', 'dave', 'glasses.png', glasses)
  add('too_small', 'dave', 'small.png', face_image(14, box=(96, 96, 144, 112)))
  add('empty_answer', 'dave', 'canned_empty.png', face_image(15))  # a face, but `{}` answered
  add('dots', '...', 'dots.png', face_image(16))
  add('dashes', '--', 'dashes.png', face_image(17))
  # Duplicates: the same pixels as PNG and BMP (a tie in pixels: the smaller path is kept),
  # a 70% copy; and two exact copies of a 70% copy of another image, whose kept copy is
  # itself a near duplicate of the original (the other copy is repointed to the original).
  original = face_image(18)
  add('dup_png', 'erin', 'b_orig.png', original)
  add('dup_bmp', 'erin', 'a_copy.bmp', encode(original, 'BMP'))
  add('dup_small', 'erin', 'c_small.png', original.resize((224, 168), Image.Resampling.LANCZOS))
  other = face_image(19)
  small_other = encode(other.resize((224, 168), Image.Resampling.LANCZOS))
  add('rep_big', 'erin', 'x_big.png', other)
  add('rep_small1', 'erin', 'y_small.png', small_other)
  add('rep_small2', 'erin', 'z_small.png', small_other)
  # Not images.
  add('truncated', 'frank', 'truncated.jpg', encode(face_image(20), 'JPEG')[:2000])
  add('text', 'frank', 'text.jpg', b'this is not a picture\n')
  add('empty', 'frank', 'empty.jpg', b'')
  add('bomb', 'frank', 'bomb.png', png_header(9000, 8000))

  fake.respond(upload_of(data['raw_no_x']), RAW_NO_X)
  fake.respond(upload_of(data['raw_origin']), RAW_ORIGIN)
  fake.respond(upload_of(data['empty_answer']), {})
  with pytest.MonkeyPatch.context() as monkeypatch:
    uploads = UploadSizes(monkeypatch)
    counters = run_job(os.path.join(str(root), '*', '*'), out,
                       *vision_flags(fake, '--crop_margin', '0.5', '--size', str(SIZE)))
  result = types.SimpleNamespace(
      root=root, out=out, path=p, data=data, counters=counters, uploads=uploads.sizes,
      requests=fake.requests, **tables(out))
  result.face = {r['image_id']: r for r in result.faces}
  result.reject = {r['image_id']: r for r in result.rejects}
  fake.reset_log()
  return result


def test_every_filter_reason_is_a_reject_with_its_detail(main_run):
  p = main_run.path
  got = {k: (main_run.reject[p[k]]['label'], main_run.reject[p[k]]['reason'],
             main_run.reject[p[k]]['detail'], main_run.reject[p[k]]['duplicate_of'])
         for k in ('no_face', 'low_confidence', 'too_many_faces', 'rolled', 'turned', 'tilted',
                   'label', 'too_small', 'empty_answer', 'dots', 'dashes')}
  assert got == {
      'no_face': ('dave', 'no_face', 'no face found', None),
      'low_confidence': ('dave', 'low_confidence', 'confidence 0.3 < min_confidence=0.5', None),
      'too_many_faces': ('dave', 'too_many_faces', '2 faces, max_faces=1', None),
      'rolled': ('dave', 'angle', 'roll 30 beyond max_angle=20', None),
      'turned': ('dave', 'angle', 'pan -40 beyond max_angle=20', None),
      'tilted': ('dave', 'angle', 'tilt 25 beyond max_angle=20', None),
      'label': ('dave', 'label', "label 'sunglasses' is in reject_labels", None),
      'too_small': ('dave', 'too_small', 'face 48x16 px, min_face_px=32', None),
      'empty_answer': ('dave', 'no_face', 'no face found', None),
      'dots': (None, 'bad_label', "folder '...': label '...' has no letters or digits", None),
      'dashes': (None, 'bad_label', "folder '--': label '--' has no letters or digits", None),
  }
  for key in got:
    assert main_run.reject[p[key]]['source'] == p[key]
  c = main_run.counters
  assert (c['rejects_no_face'], c['rejects_low_confidence'], c['rejects_too_many_faces'],
          c['rejects_angle'], c['rejects_label'], c['rejects_too_small'],
          c['rejects_bad_label']) == (2, 1, 1, 3, 1, 1, 2)


def test_accepted_faces_have_exact_boxes_angles_and_crops(main_run):
  p, out = main_run.path, str(main_run.out)
  natural = FACE_KINDS['natural']
  expected = {
      'frontal': ('alice', FACE, 0.0, 0.0, 0.0, 0.98, 320, 240),
      'natural': ('alice', FACE, natural.roll, natural.pan, natural.tilt, natural.confidence,
                  320, 240),
      'corner': ('bob', (0, 0, 64, 64), 0.0, 0.0, 0.0, 0.98, 320, 240),
      'exif': ('bob', (32, 48, 128, 176), 0.0, 0.0, 0.0, 0.98, 240, 320),
      'raw_no_x': ('carol', (0, 16, 112, 144), 5.5, 0.0, 0.0, 0.91, 320, 240),
      'raw_origin': ('carol', (0, 0, 96, 128), 0.0, 0.0, 0.0, 0.75, 320, 240),
      'dup_bmp': ('erin', FACE, 0.0, 0.0, 0.0, 0.98, 320, 240),
      'rep_big': ('erin', FACE, 0.0, 0.0, 0.0, 0.98, 320, 240),
  }
  assert set(main_run.face) == {p[k] for k in list(expected) + ['big']}
  for key, (label, box, roll, pan, tilt, confidence, width, height) in expected.items():
    row = main_run.face[p[key]]
    assert (row['label'], (row['face_left'], row['face_top'], row['face_right'],
                           row['face_bottom']),
            row['roll'], row['pan'], row['tilt'], row['confidence'], row['width'],
            row['height']) == (label, box, roll, pan, tilt, confidence, width, height), key
    assert (row['source'], row['faces'], row['detector']) == (p[key], 1, 'vision'), key
  for path, row in main_run.face.items():
    data = main_run.data[next(k for k, v in main_run.path.items() if v == path)]
    decoded = images.decode(data)
    sha = images.pixel_sha256(decoded.image)
    assert row['sha256'] == sha
    assert row['phash'] == images.phash_hex(images.phash(decoded.image))
    assert row['split'] == dataset_split.split_of(sha, 0.3)
    stem = os.path.basename(path).rsplit('.', 1)[0]
    assert row['output_path'] == os.path.join(out, row['split'], row['label'],
                                              '%s-%s.jpg' % (stem, sha[:12]))
    assert crop_size(row['output_path']) == ('JPEG', (SIZE, SIZE))


def test_a_big_photo_is_uploaded_downscaled_and_its_box_mapped_back(main_run):
  """3000 x 2000 with a 60 px face: 20 px in the 1024 px upload, 60 px in the row, so it
  passes min_face_px=32, which is about the original's pixels."""
  row = main_run.face[main_run.path['big']]
  upload = upload_of(main_run.data['big'])
  with Image.open(io.BytesIO(upload)) as sent:
    assert sent.size == (1024, 683)
    (found,), _ = fake_vision_api.detect(sent)
  fx, fy = 3000 / 1024, 2000 / 683
  left, top, right, bottom = found.box
  expected = (round(left * fx), round(top * fy), round(right * fx), round(bottom * fy))
  box = (row['face_left'], row['face_top'], row['face_right'], row['face_bottom'])
  assert box == expected
  assert all(abs(a - b) <= 3000 / 1024 + 2 for a, b in zip(box, (1200, 800, 1260, 860),
                                                           strict=True)), box
  assert (row['width'], row['height'], row['roll'], row['confidence']) == (3000, 2000, 0.0,
                                                                           0.98)
  assert crop_size(row['output_path']) == ('JPEG', (SIZE, SIZE))
  assert (1024, 683) in main_run.uploads
  assert max(max(size) for size in main_run.uploads) == 1024


def test_duplicates_point_at_the_kept_image(main_run):
  p = main_run.path
  decoded = {k: images.decode(main_run.data[k]).image for k in ('dup_bmp', 'dup_small',
                                                                  'rep_big', 'rep_small1')}
  near = images.hamming(images.phash(decoded['dup_bmp']), images.phash(decoded['dup_small']))
  near_rep = images.hamming(images.phash(decoded['rep_big']),
                            images.phash(decoded['rep_small1']))
  assert near <= 4 and near_rep <= 4
  got = {k: (main_run.reject[p[k]]['label'], main_run.reject[p[k]]['reason'],
             main_run.reject[p[k]]['detail'], main_run.reject[p[k]]['duplicate_of'])
         for k in ('dup_png', 'dup_small', 'rep_small1', 'rep_small2')}
  assert got == {
      'dup_png': ('erin', 'duplicate', 'exact duplicate of %s' % p['dup_bmp'], p['dup_bmp']),
      'dup_small': ('erin', 'duplicate', 'near duplicate of %s (%d bits)' % (p['dup_bmp'], near),
                    p['dup_bmp']),
      'rep_small1': ('erin', 'duplicate', 'near duplicate of %s (%d bits)' % (
          p['rep_big'], near_rep), p['rep_big']),
      'rep_small2': ('erin', 'duplicate', 'exact duplicate of %s, which is a near duplicate of '
                     '%s (%d bits)' % (p['rep_small1'], p['rep_big'], near_rep), p['rep_big']),
  }
  assert p['dup_bmp'] in main_run.face and p['rep_big'] in main_run.face
  c = main_run.counters
  assert (c['duplicates_exact'], c['duplicates_near'], c['rejects_duplicate']) == (2, 2, 4)
  # Only the 18 decoded, distinct images reach the detector (28 less 2 bad labels, 4 bad
  # images and 4 duplicates).
  assert c['vision_images'] == c['images_detected'] == 18


def test_vision_answers_without_zeros_are_read_as_proto3(main_run):
  """A vertex without x (or without x and y) is at 0, fdBoundingPoly wins over boundingPoly,
  missing angles are 0.0, not null; `{}` for an image with a face is no_face (see above)."""
  got = {}
  for key in ('raw_no_x', 'raw_origin'):
    row = main_run.face[main_run.path[key]]
    got[key] = (row['face_left'], row['face_top'], row['face_right'], row['face_bottom'],
                row['roll'], row['pan'], row['tilt'], row['confidence'], row['faces'])
  assert got == {'raw_no_x': (0, 16, 112, 144, 5.5, 0.0, 0.0, 0.91, 1),
                 'raw_origin': (0, 0, 96, 128, 0.0, 0.0, 0.0, 0.75, 1)}


def test_a_face_in_the_corner_is_cropped_clamped(main_run):
  """(0, 0, 64, 64) grown by 0.5 each side is (-32, -32, 96, 96): clamped to (0, 0, 96, 96)."""
  row = main_run.face[main_run.path['corner']]
  assert (row['face_left'], row['face_top'], row['face_right'], row['face_bottom']) == (
      0, 0, 64, 64)
  with open(row['output_path'], 'rb') as fh:
    crop = fh.read()
  assert crop == images.to_jpeg(images.crop_resize(
      images.decode(main_run.data['corner']).image, (0, 0, 96, 96), SIZE), 90)


def test_an_exif_rotated_photo_is_measured_upright(main_run):
  row = main_run.face[main_run.path['exif']]
  assert (row['width'], row['height']) == (240, 320)
  assert (row['face_left'], row['face_top'], row['face_right'], row['face_bottom']) == (
      32, 48, 128, 176)
  assert (240, 320) in main_run.uploads  # the upright picture is what Vision saw
  # The crop comes from the upright picture too: the box grown by 0.5 and clamped is
  # (0, 0, 176, 240), squared to (0, 0, 240, 240). (56, 80) is in the upright face, not in
  # the stored one (x 48-176, y 112-208); (160, 190) the other way round.
  with Image.open(row['output_path']) as crop:
    crop = crop.convert('RGB')
    inside = crop.getpixel((round(56 * SIZE / 240), round(80 * SIZE / 240)))
    outside = crop.getpixel((round(160 * SIZE / 240), round(190 * SIZE / 240)))
  assert inside[0] >= 200 and inside[1] <= 80 and inside[2] >= 200, inside
  assert max(outside) <= 180, outside


def test_bad_images_are_decode_errors_with_the_file(main_run):
  p, data = main_run.path, main_run.data
  by_source = {r['source']: r for r in main_run.errors}
  assert set(by_source) == {p[k] for k in ('truncated', 'text', 'empty', 'bomb')}
  for row in main_run.errors:
    assert (row['job'], row['stage'], row['attributes']) == (JOB, 'decode', None)
  errors = {k: (by_source[p[k]]['error'], by_source[p[k]]['payload'],
                by_source[p[k]]['payload_encoding']) for k in ('truncated', 'text', 'empty',
                                                               'bomb')}
  b64 = {k: base64.b64encode(data[k]).decode('ascii') for k in ('truncated', 'bomb')}
  assert errors == {
      'truncated': ('corrupt image: OSError: image file is truncated (0 bytes not processed)',
                    b64['truncated'], 'base64'),
      # Text files (and an empty one) are valid UTF-8: the payload is the text itself.
      'text': ('not an image: text (22 bytes)', 'this is not a picture\n', 'text'),
      'empty': ('not an image: empty file', '', 'text'),
      'bomb': ('decompression bomb: PNG of 9000x8000 = 72000000 pixels > 64000000',
               b64['bomb'], 'base64'),
  }
  c = main_run.counters
  assert (c['errors'], c['errors_decode']) == (4, 4)


def test_every_image_is_accounted_for_and_tables_conform(main_run):
  c = main_run.counters
  assert c['images_read'] == len(main_run.path) == 28
  assert (c['rows_faces'], c['rows_rejects'], c['errors']) == (9, 15, 4)
  check_accounting(main_run.out, c)
  check_index_files(main_run.out)


# Batching, retries and failures.

def test_batches_of_16_and_retried_429_503_lose_nothing(fake, tmp_path, monkeypatch):
  n = 35
  for i in range(n):
    put(tmp_path / 'in', 'p%d' % (i % 3), 'img%02d.png' % i, face_image(100 + i))
  fake.fail(429, times=1)
  fake.fail(503, times=1)
  uploads = UploadSizes(monkeypatch)
  out = tmp_path / 'out'
  c = run_job(str(tmp_path / 'in' / '*' / '*'), out, *vision_flags(
      fake, '--detect_batch_size', '16', '--max_upload_px', '160'))
  sent = [r.images for r in fake.requests]
  assert [r.status for r in fake.requests] == [429, 503, 200, 200, 200]
  assert sent[0] == sent[1] == sent[2]  # the same request, retried
  assert sorted(sent[2:]) == [3, 16, 16]  # ceil(35 / 16) requests, none over 16
  assert sum(r.images for r in fake.requests if r.status == 200) == n
  assert uploads.sizes == [(160, 120)] * n
  assert (c['vision_requests'], c['vision_attempts'], c['vision_retries'],
          c['vision_images'], c['vision_annotated'], c['vision_faces']) == (3, 5, 2, n, n, n)
  assert (c['images_read'], c['images_detected'], c['rows_faces']) == (n, n, n)
  assert 'errors' not in c and 'rows_rejects' not in c
  faces = read_table(out, 'faces')
  for row in faces:  # found at half size: 2 px of slack each way
    box = (row['face_left'], row['face_top'], row['face_right'], row['face_bottom'])
    assert all(abs(a - b) <= 2 + 2 for a, b in zip(box, FACE, strict=True)), box
  check_accounting(out, c)
  check_index_files(out)


def test_a_permanent_vision_failure_makes_error_rows_of_stage_detect(fake, tmp_path):
  paths = {put(tmp_path / 'in', 'gina', 'img%d.png' % i, face_image(200 + i)): i
           for i in range(3)}
  put(tmp_path / 'in', 'gina', 'broken.jpg', b'\xff\xd8\xff\xe0 cut')
  fake.fail(503, times=None)
  out = tmp_path / 'out'
  c = run_job(str(tmp_path / 'in' / '*' / '*'), out,
              *vision_flags(fake, '--vision_max_attempts', '2'))
  assert [r.status for r in fake.requests] == [503, 503]
  errors = read_table(out, 'errors')
  detect = {r['source']: r for r in errors if r['stage'] == 'detect'}
  assert set(detect) == set(paths)
  for path, row in detect.items():
    with open(path, 'rb') as fh:
      assert (row['payload'], row['payload_encoding']) == (
          base64.b64encode(fh.read()).decode('ascii'), 'base64')
    assert re.fullmatch(r'RetriesExhausted: images:annotate of 3 image\(s\) failed after 2 '
                        r'attempts: HTTP 503: The service is currently unavailable\.',
                        row['error']), row['error']
  assert [r['stage'] for r in errors].count('decode') == 1
  assert (c['vision_requests'], c['vision_attempts'], c['vision_retries'],
          c['vision_exhausted']) == (1, 2, 1, 3)
  assert (c['images_read'], c['errors'], c['errors_detect'], c['errors_decode']) == (4, 4, 3, 1)
  assert 'rows_faces' not in c and 'images_detected' not in c
  check_accounting(out, c)
  check_index_files(out)  # written, and empty
  assert index_lines(out, 'labels.txt') == []


# Split and balance.

def split_set(tmp_path, name, seeds_by_name):
  for filename, (label, seed) in seeds_by_name.items():
    put(tmp_path / name, label, filename, face_image(seed))
  return str(tmp_path / name / '*' / '*')


SPLIT_SEEDS = [('hana', 300 + i) for i in range(5)] + [('ivan', 310 + i) for i in range(5)]


def test_the_split_follows_the_pixels_not_names_or_order(fake, tmp_path):
  first = {'img%d.png' % i: spec for i, spec in enumerate(SPLIT_SEEDS)}
  second = {'z%d.png' % (len(SPLIT_SEEDS) - i): spec for i, spec in enumerate(SPLIT_SEEDS)}
  mappings = []
  for name, files in (('one', first), ('two', second)):
    out = tmp_path / ('out_' + name)
    c = run_job(split_set(tmp_path, name, files), out, *vision_flags(fake))
    faces = read_table(out, 'faces')
    assert len(faces) == len(SPLIT_SEEDS)
    mappings.append({r['sha256']: (r['split'], r['label']) for r in faces})
    check_accounting(out, c)
    check_index_files(out)
  assert mappings[0] == mappings[1]
  assert all(split == dataset_split.split_of(sha, 0.3)
             for sha, (split, _) in mappings[0].items())
  assert {split for split, _ in mappings[0].values()} == {'training', 'validate'}
  assert index_lines(tmp_path / 'out_one', 'labels.txt') == ['hana', 'ivan']


@pytest.mark.parametrize('fraction, split', [('0', 'training'), ('1', 'validate')])
def test_validate_fraction_0_and_1_put_everything_in_one_split(fake, tmp_path, fraction,
                                                                split):
  files = {'img%d.png' % i: spec for i, spec in enumerate(SPLIT_SEEDS[:4])}
  out = tmp_path / 'out'
  c = run_job(split_set(tmp_path, 'in', files), out,
              *vision_flags(fake, '--validate_fraction', fraction))
  faces = read_table(out, 'faces')
  assert [r['split'] for r in faces] == [split] * 4
  other = 'validate_file.txt' if split == 'training' else 'training_file.txt'
  assert index_lines(out, other) == []
  assert len(index_lines(out, split + '_file.txt')) == 4
  assert glob.glob(os.path.join(str(out), 'training' if split == 'validate' else 'validate',
                                '*', '*')) == []
  check_accounting(out, c)
  check_index_files(out)


def test_balance_keeps_the_smallest_balance_ranks(fake, tmp_path):
  shas = {}
  for i in range(5):
    shas[put(tmp_path / 'in', 'A', 'a%d.png' % i, face_image(400 + i))] = None
  for i in range(2):
    shas[put(tmp_path / 'in', 'B', 'b%d.png' % i, face_image(410 + i))] = None
  for path in shas:
    with open(path, 'rb') as fh:
      shas[path] = pixel_sha(fh.read())
  out = tmp_path / 'out'
  c = run_job(str(tmp_path / 'in' / '*' / '*'), out, *vision_flags(fake, '--balance'))
  a_paths = sorted((p for p in shas if '/A/' in p), key=lambda p: dataset_split.balance_rank(
      shas[p]))
  faces = {r['image_id']: r['label'] for r in read_table(out, 'faces')}
  assert faces == {**{p: 'A' for p in a_paths[:2]},
                   **{p: 'B' for p in shas if '/B/' in p}}
  rejects = sorted((r['image_id'], r['label'], r['reason'], r['detail'], r['duplicate_of'])
                   for r in read_table(out, 'rejects'))
  assert rejects == sorted(
      (p, 'A', 'balance', "label A capped at 2 faces (the smallest label's count)", None)
      for p in a_paths[2:])
  assert (c['balance_cap'], c['rejects_balance'], c['rows_faces']) == (2, 3, 4)
  check_accounting(out, c)
  check_index_files(out)


def test_near_duplicate_distance_0_groups_equal_hashes_and_minus_1_turns_it_off(fake,
                                                                                 tmp_path):
  original = face_image(600)
  same = put(tmp_path / 'in', 'jack', 'b_orig.png', original)
  kept = put(tmp_path / 'in', 'jack', 'a_copy.bmp', encode(original, 'BMP'))
  small = put(tmp_path / 'in', 'jack', 'c_small.png',
              original.resize((224, 168), Image.Resampling.LANCZOS))
  out = tmp_path / 'out0'
  c = run_job(str(tmp_path / 'in' / '*' / '*'), out,
              *vision_flags(fake, '--near_duplicate_distance', '0'))
  rejects = sorted((r['image_id'], r['detail']) for r in read_table(out, 'rejects'))
  assert rejects == [(same, 'exact duplicate of %s' % kept),
                     (small, 'near duplicate of %s (0 bits)' % kept)]
  assert (c['duplicates_exact'], c['duplicates_near']) == (1, 1)
  out = tmp_path / 'off'
  c = run_job(str(tmp_path / 'in' / '*' / '*'), out,
              *vision_flags(fake, '--near_duplicate_distance', '-1'))
  rejects = [(r['image_id'], r['detail']) for r in read_table(out, 'rejects')]
  assert rejects == [(same, 'exact duplicate of %s' % kept)]
  assert sorted(r['image_id'] for r in read_table(out, 'faces')) == [kept, small]
  assert (c['duplicates_exact'], c.get('duplicates_near', 0)) == (1, 0)


# The local detector.

def test_local_detector_on_the_fixture_photos(tmp_path):
  for name in ('astronaut.jpg', 'chelsea.jpg', 'coffee.jpg'):  # label: the photo's name
    folder = tmp_path / 'in' / name.split('.')[0]
    folder.mkdir(parents=True)
    shutil.copy(os.path.join(FACES_DIR, name), str(folder / name))
  out = tmp_path / 'out'
  c = run_job(str(tmp_path / 'in' / '*' / '*'), out, '--size', '32')
  (face,) = read_table(out, 'faces')
  box = (face['face_left'], face['face_top'], face['face_right'], face['face_bottom'])
  assert all(abs(a - b) <= BOX_TOLERANCE_PX for a, b in zip(box, ASTRONAUT_BOX, strict=True))
  assert (face['label'], face['detector'], face['pan'], face['tilt'], face['faces'],
          face['width'], face['height']) == ('astronaut', 'local', None, None, 1, 512, 512)
  assert face['roll'] is not None and abs(face['roll']) < 6  # both eyes found
  assert 0.5 <= face['confidence'] <= 1
  assert crop_size(face['output_path']) == ('JPEG', (32, 32))
  rejects = sorted((r['label'], r['reason'], r['detail']) for r in read_table(out, 'rejects'))
  assert rejects == [('chelsea', 'no_face', 'no face found'),
                     ('coffee', 'no_face', 'no face found')]
  assert not any(k.startswith('vision_') for k in c)
  check_accounting(out, c)
  check_index_files(out)


# Options.

@pytest.mark.parametrize('flags, message', [
    (['--input', '{tmp}/nothing/*/*'], "--input '{tmp}/nothing/*/*' matches no files"),
    (['--output', 'my-project:faces'], '--output must be a directory'),
    (['--streaming'], 'face_dataset is a batch job'),
    (['--input', 'projects/p/subscriptions/s'], 'not BigQuery or Pub/Sub'),
    (['--jpeg_quality', '99'], '--jpeg_quality must be 1-95'),
    (['--near_duplicate_distance', '40'], '--near_duplicate_distance must be -1 (off) or 0-10 bits, got 40'),
    (['--size', '4'], '--size must be at least 8 pixels, got 4'),
    (['--input_table', 'p:d.t'], 'not BigQuery or Pub/Sub'),
])
def test_bad_options_exit_2_before_running(tmp_path, capsys, flags, message):
  put(tmp_path / 'in', 'x', 'x.png', face_image(500))
  flags = [f.replace('{tmp}', str(tmp_path)) for f in flags]
  argv = ['--input', str(tmp_path / 'in' / '*' / '*'), '--output', str(tmp_path / 'out')]
  assert launch.main(JOB, face_dataset.run, argv + flags) == 2
  err = capsys.readouterr().err
  assert err.startswith('face_dataset: error: ') and message.replace(
      '{tmp}', str(tmp_path)) in err, err
  assert not os.path.exists(str(tmp_path / 'out'))


def test_a_pubsub_input_is_refused_for_what_it_is(tmp_path, capsys):
  argv = ['--input', 'projects/p/subscriptions/s', '--output', str(tmp_path / 'out')]
  assert launch.main(JOB, face_dataset.run, argv) == 2
  assert 'not BigQuery or Pub/Sub' in capsys.readouterr().err


def test_help_lists_the_job_flags(capsys):
  with pytest.raises(SystemExit) as exit_info:
    face_dataset.run(['--help'])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for flag in ('--input_format', '--detector', '--max_faces', '--max_angle', '--reject_labels',
               '--min_face_px', '--min_confidence', '--crop_margin', '--size', '--jpeg_quality',
               '--validate_fraction', '--balance', '--near_duplicate_distance',
               '--detect_batch_size', '--max_upload_px', '--vision_endpoint', '--vision_qps',
               '--vision_max_attempts', '--input', '--output', '--api_key'):
    assert re.search(r'(^|\s)%s\b' % re.escape(flag), text), flag


# The bundled sample: what `make run` and `python -m pipelines.face_dataset` process.

def test_the_bundled_sample_ends_as_its_manifest_says(tmp_path):
  sample = face_dataset.SAMPLE_INPUT.rstrip('*/')  # .../samples/face_dataset
  with open(os.path.join(sample, 'manifest.json'), encoding='utf-8') as fh:
    manifest = json.load(fh)['images']
  out = tmp_path / 'out'
  face_dataset.run(['--output', str(out), '--balance'], save_main_session=False)
  with open(os.path.join(str(out), '_metrics.json'), encoding='utf-8') as fh:
    c = json.load(fh)['counters']

  def key(path):
    return os.path.relpath(path, sample).replace(os.sep, '/')

  outcome = {key(r['image_id']): r['reason'] for r in read_table(out, 'rejects')}
  outcome.update({key(r['source']): 'error' for r in read_table(out, 'errors')})
  faces = {key(r['image_id']): r for r in read_table(out, 'faces')}
  outcome.update({name: 'face' for name in faces})
  balanced = {name for name, reason in outcome.items() if reason == 'balance'}
  # 11 Collins faces and 10 Hopper faces: --balance cuts Collins to 10.
  assert len(balanced) == 1 and c['balance_cap'] == 10
  expected = {name: entry['expect'] for name, entry in manifest.items()}
  assert {n: ('face' if n in balanced else r) for n, r in outcome.items()} == expected
  for name, row in faces.items():
    assert [row['face_left'], row['face_top'], row['face_right'],
            row['face_bottom']] == manifest[name]['face_box']
  duplicate_of = {key(r['image_id']): key(r['duplicate_of'])
                  for r in read_table(out, 'rejects') if r['reason'] == 'duplicate'}
  assert duplicate_of == {n: e['duplicate_of'] for n, e in manifest.items()
                          if e['expect'] == 'duplicate'}
  assert c['images_read'] == len(manifest) == c['rows_faces'] + c['rows_rejects'] + c['errors']
  assert sorted(open(out / 'labels.txt').read().split()) == ['eileen_collins', 'grace_hopper']
  index = [line.split(',') for name in ('training_file.txt', 'validate_file.txt')
           for line in open(out / name).read().splitlines()]
  assert sorted(label for _, label in index) == ['eileen_collins'] * 10 + ['grace_hopper'] * 10
  for path, _ in index:
    with Image.open(out / path) as crop:
      assert crop.size == (96, 96) and crop.format == 'JPEG'
  assert_written_tables_conform(str(out), JOB)


def test_input_inside_output_is_refused_before_anything_is_deleted(tmp_path, capsys):
  out = tmp_path / 'out'
  crop = put(out, 'training', 'ann.png', face_image(500))  # out/training/ann.png
  argv = ['--input', str(out / '*' / '*'), '--output', str(out)]
  assert launch.main(JOB, face_dataset.run, argv) == 2
  assert '--input must not be inside --output' in capsys.readouterr().err
  assert os.path.exists(crop)


def test_small_files_go_to_vision_as_they_are_unless_a_re_encode_is_smaller(fake, tmp_path):
  """A JPEG already under --max_upload_px is sent as is when that is smaller than the
  quality-90 re-encode; a lossless PNG (bigger), an EXIF-rotated JPEG (stored sideways) and a
  photo that must be downscaled are re-encoded."""
  small_jpeg = encode(face_image(800), 'JPEG', quality=60)
  png = encode(face_image(801))
  exif = Image.Exif()
  exif[0x0112] = 6
  rotated = encode(face_image(802).transpose(Image.Transpose.ROTATE_90), 'JPEG', quality=60,
                   exif=exif)
  big = encode(face_image(803, box=(480, 320, 640, 480), size=(1600, 1200)), 'JPEG',
               quality=60)
  files = {'a_small.jpg': small_jpeg, 'b_lossless.png': png, 'c_rotated.jpg': rotated,
           'd_big.jpg': big}
  for name, data in files.items():
    put(tmp_path / 'in', 'ann', name, data)
  c = run_job(str(tmp_path / 'in' / '*' / '*'), tmp_path / 'out', *vision_flags(fake))
  sent = {sha for r in fake.requests for sha in r.image_sha256}
  as_is = {name for name, data in files.items() if fake_vision_api.content_sha256(data) in sent}
  assert as_is == {'a_small.jpg'}
  assert {upload_of(data) == data for data in files.values()} == {True, False}
  assert upload_of(small_jpeg) == small_jpeg and upload_of(png) != png
  assert len(upload_of(png)) < len(png)
  assert c['vision_images'] == 4 and c['rows_faces'] == 4
