"""Benchmark: the face_dataset job on the DirectRunner against a sequential script of the
same steps (local detector), and its Vision backend's requests and upload bytes against
sending the original files one per request.

    python bench/face_dataset.py [--images 2000 | --quick] [--labels 10] [--seed 1]
        [--no_in_memory] [--workdir DIR] [--keep]

Why: face_dataset is Beam so it can run on Dataflow over a large collection, but it is also
run locally. This measures what the DirectRunner with two worker processes gives over the
obvious script on the same machine, and what deduplicating, downscaling and batching save in
Vision requests and upload bytes. The local detector (OpenCV Haar, looking down to 24 px on
a copy at most 1024 px long) costs about 0.2-0.4 s an image on one core and dominates: on a
2-core machine the default 2,000 images take about 25 minutes in all (generation 1.5, each
of the three local-detector runs 7-8, Vision 2); --no_in_memory skips one of those runs,
--quick takes about 3 minutes.

Input: `--images` (default 2000; --quick: 200) photos generated here, deterministically from
--seed, into `<root>/<label>/photo_NNNNN.jpg|png` over --labels folders, derived from the
public-domain / CC0 photos in tests/data/faces/ (astronaut: a face; chelsea, coffee: none)
and pipelines/samples/photos/ (grace_hopper: a face; camera: a cameraman the frontal cascade
does not find). The mix, for N images:

* 2 corrupt files: a JPEG cut in its pixel data, and an HTML 404 page named .jpg (errors);
* round(5% N) exact duplicates of a unique image: half byte-for-byte copies, half the same
  pixels re-saved as PNG (the job's pixel sha256 matches both);
* round(5% N) near duplicates: half resized to 50-80% and re-encoded, half re-encoded at
  JPEG quality 45-60 (pHash within the job's 4 bits, counted in the printed mix);
* the rest unique: 10% no-face scenes (random crops of the cat, coffee and cameraman
  photos, turned up to 8 degrees), 90% face photos: a portrait (a crop around the face of
  the astronaut or Grace Hopper, 1.6-4x the face box, less where the photo is smaller, face
  off centre, turned up to 8 degrees) covering 50-100% of the frame's shorter side, pasted
  at a random place over a crop of a no-face photo (crops of two portraits alone repeat
  their pHashes within a few bits after a few hundred). Then for all: frames 480-1600 px on
  the long side, aspect 3:4 to 4:3, mirrored half the time, brightness/contrast/saturation
  jitter, 5% grayscale, sensor-like noise, JPEG quality 70-95. Each unique image is at least
  10 pHash bits from every other one (redrawn otherwise), so the only duplicates are the
  planted ones. Files are numbered in a shuffled order and duplicates
  sit in random labels, so a copy may sort before its original.

Measured (timings are reported, never asserted):

1. The job, `--detector local`, in-process DirectRunner with `--direct_num_workers 2
   --direct_running_mode multi_processing`, and (for reference; --no_in_memory skips it)
   with `--direct_num_workers 1 --direct_running_mode in_memory`: images/s = images read /
   wall seconds, start-up included, and CPU seconds (this process and its finished child
   processes, i.e. Beam's workers). OpenCV runs detectMultiScale on its own thread pool
   (cv2.getNumThreads(), the CPU count by default), so even the sequential script uses more
   than one core: its CPU/wall shows how much.
2. A sequential script over the same files, one image at a time in sorted path order, with
   the job's library functions and default options: read, `images.decode`, `pixel_sha256`,
   `phash`; duplicates as a simple script finds them (a dict of kept sha256s, and a list of
   kept pHashes each compared with `images.hamming`: the first image seen of a group is kept,
   where the job keeps the one with the most pixels); `images.downscale` of the decoded image
   to the detector's 1024 px and `LocalDetector.detect([one image])` (decoded once where the
   job decodes again for its working copy), `face_detect.to_original`, the job's
   `FaceFilter.judge` (`face_detect.reject_reason`), `dataset_split.split_of`, `crop_face` (which
   decodes the original again, as the job does), the crop JPEG written, and the index files
   (`dataset_files.index_texts`). Its counts and accepted images are compared with the
   job's: accepted sha256 sets, and, where they differ, duplicate groups (the union of both
   sides' `duplicate_of` links), to tell a different kept copy from a different decision.
3. Vision, against tests/fake_vision_api.py's local server (in this process) on a second
   set: the same images with a face marker (`draw_face`, mostly frontal, a few of the other
   kinds and some with `draw_sunglasses`) painted where the face is. The job with `--detector
   vision --vision_qps 1000` (same 2-process runner): requests per image and request bytes
   uploaded per image, from the server's log (checked against the job's vision_* counters);
   versus a loop sending every original file, one per request, as base64 in the JSON body
   (`VisionApi.annotate([original bytes])`, the same client, so the same JSON envelope).
   Also, for a sample of 200 unique images, `face_detect.prepare_upload` (the job's upload:
   at most --max_upload_px 1024, JPEG quality 90) against the original file size, by long
   side up to and over 1024 px: re-encoding a small photo can make it bigger.

Exit status 1 when a check fails: the job's images_read != faces + rejects + errors, the
2-process and in-process jobs disagree, the server's log disagrees with the job's counters,
or the job and the loop decide differently on a duplicate group where both kept the same
copy. The JSON report is `bench_face_dataset.json` in the work directory.
"""
import argparse
import glob
import io
import json
import logging
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ['PYTHONPATH'] = os.pathsep.join(  # Beam's worker processes import the project too
    p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)

import cv2  # noqa: E402  (opencv-python-headless: the local detector's)
import numpy as np  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402

from bench.common import (MULTI, beam_in_process, beam_subprocess, compare,  # noqa: E402
                          environment, finish, rows, timed)
from pipelines import face_dataset as job  # noqa: E402
from tests.fake_vision_api import FakeVisionApi, draw_face, draw_sunglasses  # noqa: E402
from transforms import dataset_files, dataset_split, face_detect, images, pubfig  # noqa: E402
from transforms.deadletter import RecordError  # noqa: E402
from transforms.face_crops import FaceFilter, crop_face  # noqa: E402
from transforms.vision_api import VisionApi  # noqa: E402

GENERATOR_VERSION = 3  # bump when the images change: --workdir reuses a matching set
SOURCE_PHOTOS = tuple(os.path.join(ROOT, 'tests', 'data', 'faces', name)
                      for name in ('astronaut.jpg', 'chelsea.jpg', 'coffee.jpg')) + tuple(
    os.path.join(ROOT, 'pipelines', 'samples', 'photos', name)
    for name in ('grace_hopper.jpg', 'camera.png'))
CORRUPT = 2
MIN_IMAGES = 20
EXACT_SHARE = NEAR_SHARE = 0.05
SCENE_SHARE = 0.10
MIN_LONG_PX, MAX_LONG_PX = 480, 1600
MIN_APART_BITS = 10  # unique images are at least this far apart in pHash
MAX_REDRAWS = 30
INPUT_GLOB = ('*', '*')
IN_MEMORY = ['--direct_num_workers=1', '--direct_running_mode=in_memory']
VISION_QPS = 1000
UPLOAD_SAMPLE = 200
# Vision face markers: (kind or 'sunglasses', share of face images)
VISION_KINDS = (('frontal', 0.85), ('natural', 0.05), ('rolled', 0.03), ('turned', 0.02),
                ('blurry', 0.02), ('sunglasses', 0.03))
HTML_404 = (b'<!doctype html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not '
            b'Found</h1><p>The requested URL was not found on this server.</p></body></html>\n')
FACE_FIELDS = ('label', 'split', 'face_left', 'face_top', 'face_right', 'face_bottom', 'roll',
               'confidence', 'faces', 'sha256', 'width', 'height')


# --- the generated photos -------------------------------------------------------------------

class Source:
  """A source photo: its pixels reflected past every edge (crops never show black corners)
  and its face box (None: a scene)."""

  def __init__(self, path, image, face):
    self.path = path
    self.name = os.path.basename(path)
    self.width, self.height = image.size
    self.face = face
    self.padded = Image.fromarray(np.pad(np.asarray(image), (
        (self.height, self.height), (self.width, self.width), (0, 0)), mode='reflect'))


_SOURCES = []  # set before the generator's worker processes fork


def load_sources():
  """The source photos, with the face the local detector finds at 0.5 or above."""
  detector = face_detect.LocalDetector(min_face_px=job.HAAR_WINDOW_PX)
  detector.setup()
  sources = []
  for path in SOURCE_PHOTOS:
    with Image.open(path) as im:
      image = images.to_rgb(im)
    faces = [f for f in detector.detect([image])[0].faces if f.confidence >= 0.5]
    sources.append(Source(path, image, faces[0].box if faces else None))
  detector.close()
  return sources


def plan(n, labels, seed, sources):
  """Every file to write: (name, label, what) where what is ('unique', index, spec),
  ('exact', unique index, 'copy'|'png'), ('near', unique index, 'resized'|'requality') or
  ('corrupt', 'cut'|'html')."""
  rnd = random.Random(seed)
  exact, near = round(EXACT_SHARE * n), round(NEAR_SHARE * n)
  uniques = n - CORRUPT - exact - near
  if uniques < 10:
    raise ValueError('--images must be at least %d' % (CORRUPT + 10 + exact + near))
  faces = [i for i, s in enumerate(sources) if s.face is not None]
  scenes = [i for i, s in enumerate(sources) if s.face is None]
  scene_count = round(SCENE_SHARE * uniques)
  kinds = [k for k, _ in VISION_KINDS]
  weights = [w for _, w in VISION_KINDS]
  whats = []
  for i in range(uniques):
    scene = i < scene_count
    spec = {'source': rnd.choice(scenes if scene else faces), 'seed': rnd.getrandbits(32),
            'marker': None if scene else rnd.choices(kinds, weights)[0]}
    whats.append(('unique', i, spec))
  originals = rnd.sample(range(uniques), exact + near)
  whats += [('exact', u, 'copy' if j % 2 == 0 else 'png') for j, u in enumerate(originals[:exact])]
  whats += [('near', u, 'resized' if j % 2 == 0 else 'requality')
            for j, u in enumerate(originals[exact:])]
  whats += [('corrupt', 'cut'), ('corrupt', 'html')]
  order = list(range(len(whats)))
  rnd.shuffle(order)
  files = []
  for number, w in enumerate(order):
    what = whats[w]
    label = 'label_%02d' % (what[1] % labels if what[0] == 'unique' else rnd.randrange(labels))
    ext = 'png' if what[0] == 'exact' and what[2] == 'png' else 'jpg'
    files.append(('photo_%05d.%s' % (number, ext), label, what))
  return files


def _jpeg(image, quality):
  out = io.BytesIO()
  image.save(out, 'JPEG', quality=quality)
  return out.getvalue()


def _png(data):
  out = io.BytesIO()
  images.decode(data).image.save(out, 'PNG')
  return out.getvalue()


def _scene_crop(source, rnd, aspect):
  """(centre x, y, width, height) of a random 40-100% crop of `source` with this aspect."""
  share = rnd.uniform(0.4, 1.0)
  cw = min(source.width, source.height * aspect) * share
  ch = cw / aspect
  return (rnd.uniform(cw / 2, source.width - cw / 2), rnd.uniform(ch / 2, source.height - ch / 2),
          cw, ch)


def _render_crop(source, cx, cy, cw, ch, angle, width, height):
  """The cw x ch frame centred on (cx, cy) of the source, turned `angle` degrees about its
  centre, scaled to width x height: turned at the source's resolution on a larger region of
  the reflected photo (no empty corners), then cut and scaled."""
  half_w, half_h = cw * 0.65 + 2, ch * 0.65 + 2
  px, py = cx + source.width, cy + source.height  # in the padded photo
  box = (max(int(px - half_w), 0), max(int(py - half_h), 0),
         min(int(px + half_w) + 1, source.padded.width),
         min(int(py + half_h) + 1, source.padded.height))
  fx, fy = px - box[0], py - box[1]
  region = source.padded.crop(box).rotate(angle, Image.Resampling.BICUBIC, center=(fx, fy))
  return region.resize((width, height), Image.Resampling.BICUBIC, box=(
      max(fx - cw / 2, 0), max(fy - ch / 2, 0), min(fx + cw / 2, region.width),
      min(fy + ch / 2, region.height)))


def render(spec, attempt):
  """(photo JPEG, photo with a face marker JPEG, settings) of one unique image.

  A face photo is a portrait (a crop around the source's face, turned) covering 50-100% of
  the frame's shorter side at a random place over a background (a crop of a no-face
  photo): two face photos alone, cropped every way, give too few distinct pictures (their
  pHashes meet within a few bits after a few hundred crops). A scene is a crop of a no-face
  photo. Then jitter, noise and JPEG for both."""
  source = _SOURCES[spec['source']]
  rnd = random.Random(spec['seed'] * 1000 + attempt)
  aspect = rnd.uniform(0.75, 4 / 3)
  long_px = rnd.randint(MIN_LONG_PX, MAX_LONG_PX)
  width, height = (long_px, round(long_px / aspect)) if aspect >= 1 else \
      (round(long_px * aspect), long_px)
  if source.face is None:
    cx, cy, cw, ch = _scene_crop(source, rnd, aspect)
    image = _render_crop(source, cx, cy, cw, ch, rnd.uniform(-8, 8), width, height)
    face = None
  else:
    scenes = [s for s in _SOURCES if s.face is None]
    back = scenes[rnd.randrange(len(scenes))]
    image = _render_crop(back, *_scene_crop(back, rnd, aspect), 0.0, width, height)
    if rnd.random() < 0.5:
      image = ImageOps.mirror(image)
    left, top, right, bottom = source.face
    side = max(right - left, bottom - top)
    factor, portrait_aspect = rnd.uniform(1.6, 4.0), rnd.uniform(0.75, 4 / 3)
    cw, ch = side * factor * portrait_aspect ** 0.5, side * factor / portrait_aspect ** 0.5
    shrink = min(1.0, source.width / cw, source.height / ch)  # within the photo: the
    cw, ch = cw * shrink, ch * shrink  # reflections past its edges would repeat the face
    fcx, fcy = (left + right) / 2, (top + bottom) / 2
    cx = min(max(fcx - rnd.uniform(-0.4, 0.4) * max(cw - side, 0), cw / 2),
             source.width - cw / 2)
    cy = min(max(fcy - rnd.uniform(-0.4, 0.4) * max(ch - side, 0), ch / 2),
             source.height - ch / 2)
    angle = rnd.uniform(-8, 8)
    scale = rnd.uniform(0.5, 1.0) * min(width, height) / max(cw, ch)
    pw, ph = round(cw * scale), round(ch * scale)
    x0, y0 = rnd.randint(0, width - pw), rnd.randint(0, height - ph)
    image.paste(_render_crop(source, cx, cy, cw, ch, angle, pw, ph), (x0, y0))
    dx, dy = (fcx - cx) * scale, (fcy - cy) * scale  # the face centre, turned with the crop
    a = np.radians(angle)
    face = (x0 + pw / 2 + dx * np.cos(a) + dy * np.sin(a),
            y0 + ph / 2 - dx * np.sin(a) + dy * np.cos(a), 0.4 * side * scale)
  mirrored = rnd.random() < 0.5
  if mirrored:
    image = ImageOps.mirror(image)
  image = ImageEnhance.Brightness(image).enhance(rnd.uniform(0.75, 1.25))
  image = ImageEnhance.Contrast(image).enhance(rnd.uniform(0.75, 1.25))
  gray = rnd.random() < 0.05
  image = image.convert('L').convert('RGB') if gray else ImageEnhance.Color(image).enhance(
      rnd.uniform(0.6, 1.4))
  noise = rnd.randint(2, 8)  # sensor-like noise: photos do not compress like upscaled pixels
  pixels = np.asarray(image).astype(np.int16)
  pixels += np.random.default_rng(rnd.getrandbits(32)).integers(
      -noise, noise + 1, size=pixels.shape, dtype=np.int16)
  image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
  quality = rnd.randint(70, 95)
  marked = image.copy()
  if face is not None:
    x, y, half = face
    x = width - x if mirrored else x
    marker = (max(round(x - half), 0), max(round(y - half), 0), min(round(x + half), width),
              min(round(y + half), height))
    kind = spec['marker']
    draw_face(marked, marker, 'frontal' if kind == 'sunglasses' else kind)
    if kind == 'sunglasses':
      draw_sunglasses(marked, marker)
  settings = {'size': [width, height], 'quality': quality, 'mirrored': mirrored, 'gray': gray,
              'noise': noise}
  return _jpeg(image, quality), _jpeg(marked, quality), settings


def make_copy(data, how, rnd):
  """A duplicate of the file `data`: exact ('copy', 'png') or near ('resized', 'requality')."""
  if how == 'copy':
    return data
  if how == 'png':
    return _png(data)
  image = images.decode(data).image
  if how == 'resized':
    factor = rnd.uniform(0.5, 0.8)
    image = image.resize((round(image.width * factor), round(image.height * factor)),
                         Image.Resampling.LANCZOS)
    return _jpeg(image, rnd.randint(80, 92))
  return _jpeg(image, rnd.randint(45, 60))


COPY_SALT = {'copy': 1, 'png': 2, 'resized': 3, 'requality': 4}


def _write(work, label, name, photo, marked):
  for folder, data in (('photos', photo), ('marked', marked)):
    path = os.path.join(work, folder, label, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as fh:
      fh.write(data)


def make_unique(task):
  """Writes one unique image and its duplicates into both sets; returns (index, the photo's
  pHash, its settings, {name: (file bytes, pHash distance to the photo)})."""
  work, index, spec, attempt, (name, label), copies = task
  photo, marked, settings = render(spec, attempt)
  ph = images.phash(images.decode(photo).image)
  _write(work, label, name, photo, marked)
  written = {name: (len(photo), 0)}
  for copy_name, copy_label, how in copies:
    seed = (spec['seed'] * 1000 + attempt) * 10 + COPY_SALT[how]
    copy = make_copy(photo, how, random.Random(seed))
    _write(work, copy_label, copy_name, copy, make_copy(marked, how, random.Random(seed)))
    written[copy_name] = (len(copy), images.hamming(ph, images.phash(images.decode(copy).image)))
  return index, ph, settings, written


def _too_close(hashes):
  """Indices of unique images within MIN_APART_BITS of an earlier one."""
  values = np.array(hashes, dtype=np.uint64)
  return [i for i in range(1, len(values))
          if (np.bitwise_count(values[:i] ^ values[i]) < MIN_APART_BITS).any()]


def generate(work, n, labels, seed, sources):
  """Writes both sets (photos/ and marked/ under `work`); returns the manifest. Reuses the
  sets already there when their manifest matches."""
  params = {'images': n, 'labels': labels, 'seed': seed, 'generator': GENERATOR_VERSION,
            'sources': [s.name for s in sources]}
  manifest_path = os.path.join(work, 'manifest.json')
  if os.path.isfile(manifest_path):
    with open(manifest_path, encoding='utf-8') as fh:
      manifest = json.load(fh)
    if manifest.get('params') == params and os.path.isdir(os.path.join(work, 'marked')):
      print('reusing the images generated in %s (same parameters)' % work)
      return manifest
  for folder in ('photos', 'marked'):
    shutil.rmtree(os.path.join(work, folder), ignore_errors=True)
  files = plan(n, labels, seed, sources)
  uniques = {what[1]: (name, label, what[2]) for name, label, what in files
             if what[0] == 'unique'}
  order = sorted(uniques)
  copies = {i: [] for i in uniques}
  for name, label, what in files:
    if what[0] in ('exact', 'near'):
      copies[what[1]].append((name, label, what[2]))
  attempts = dict.fromkeys(uniques, 0)
  results = {}
  _SOURCES[:] = sources
  with ProcessPoolExecutor(os.cpu_count(),
                           mp_context=multiprocessing.get_context('fork')) as pool:
    todo = order
    while todo:
      tasks = [(work, i, uniques[i][2], attempts[i], uniques[i][:2], copies[i]) for i in todo]
      for result in pool.map(make_unique, tasks, chunksize=4):
        results[result[0]] = result
      todo = [order[i] for i in _too_close([results[i][1] for i in order])]
      for i in todo:
        attempts[i] += 1
        if attempts[i] > MAX_REDRAWS:
          raise RuntimeError('cannot draw image %d %d bits from the others' % (i, MIN_APART_BITS))
  sizes = {}
  for _, _, _, written in results.values():
    sizes.update(written)
  cut = render(uniques[order[0]][2], MAX_REDRAWS + 1)  # an image not in the set, cut short
  entries = []
  for name, label, what in files:
    entry = {'path': '%s/%s' % (label, name), 'kind': what[0]}
    if what[0] == 'unique':
      _, ph, settings, _ = results[what[1]]
      spec = what[2]
      entry.update(source=sources[spec['source']].name,
                   scene=sources[spec['source']].face is None, marker=spec['marker'],
                   redraws=attempts[what[1]], phash='%016x' % ph, **settings)
    elif what[0] in ('exact', 'near'):
      entry.update(how=what[2], of='%s/%s' % (uniques[what[1]][1], uniques[what[1]][0]),
                   distance=sizes[name][1])
    elif what[1] == 'cut':
      entry.update(how='JPEG cut at 40% of its bytes')
      _write(work, label, name, cut[0][:len(cut[0]) * 2 // 5], cut[1][:len(cut[1]) * 2 // 5])
      sizes[name] = (len(cut[0]) * 2 // 5, None)
    else:
      entry.update(how='HTML 404 page')
      _write(work, label, name, HTML_404, HTML_404)
      sizes[name] = (len(HTML_404), None)
    entry['bytes'] = sizes[name][0]
    entries.append(entry)
  manifest = {'params': params, 'files': entries, 'mix': mix(entries)}
  with open(manifest_path, 'w', encoding='utf-8') as fh:
    json.dump(manifest, fh, indent=1)
  return manifest


def mix(entries):
  """What the set holds, counted from its manifest."""
  uniques = [e for e in entries if e['kind'] == 'unique']
  sizes = [max(e['size']) for e in uniques]
  near = [e for e in entries if e['kind'] == 'near']
  return {
      'files': len(entries), 'unique': len(uniques),
      'unique_faces': sum(not e['scene'] for e in uniques),
      'unique_scenes': sum(e['scene'] for e in uniques),
      'exact_duplicates': Counter(e['how'] for e in entries if e['kind'] == 'exact'),
      'near_duplicates': Counter(e['how'] for e in near),
      'near_within_4_bits': sum(e['distance'] <= 4 for e in near),
      'corrupt': sum(e['kind'] == 'corrupt' for e in entries),
      'sources': Counter(e['source'] for e in uniques),
      'markers': Counter(e['marker'] for e in uniques if e['marker']),
      'long_side_px': [min(sizes), round(sum(sizes) / len(sizes)), max(sizes)],
      'megabytes': round(sum(e['bytes'] for e in entries) / 1e6, 1),
      'redrawn': sum(1 for e in uniques if e['redraws']),
  }


def describe(manifest, root, gen_s):
  m = manifest['mix']
  print('input: %s/*/* (%d labels; generated in %.0f s, %.0f MB)' % (
      root, manifest['params']['labels'], gen_s, m['megabytes']))
  print('  %d files: %d unique (%d with a face, %d no-face scenes), %d exact duplicates (%s), '
        '%d near duplicates (%s; %d within 4 pHash bits), %d corrupt' % (
            m['files'], m['unique'], m['unique_faces'], m['unique_scenes'],
            sum(m['exact_duplicates'].values()), ', '.join(
                '%d %s' % (v, k) for k, v in sorted(m['exact_duplicates'].items())),
            sum(m['near_duplicates'].values()), ', '.join(
                '%d %s' % (v, k) for k, v in sorted(m['near_duplicates'].items())),
            m['near_within_4_bits'], m['corrupt']))
  low, mean, high = m['long_side_px']
  print('  unique images from %s; long side %d-%d px (mean %d); %d redrawn to stay %d bits '
        'from the others' % (', '.join('%s x%d' % kv for kv in sorted(m['sources'].items())),
                             low, high, mean, m['redrawn'], MIN_APART_BITS))


# --- the sequential script ------------------------------------------------------------------

def job_options(extra=()):
  return PipelineOptions(list(extra)).view_as(job.FaceDatasetOptions)


def sequential(root, out, opts):
  """The job's steps, one image at a time. Returns {'faces', 'rejects', 'errors'} rows
  (faces: the job's columns that matter here)."""
  shutil.rmtree(out, ignore_errors=True)
  detector = job.detector_from_options(opts)
  detector.setup()
  face_filter = FaceFilter(opts.max_faces, opts.max_angle, tuple(
      part.strip().lower() for part in opts.reject_labels.split(',') if part.strip()),
      opts.min_face_px, opts.min_confidence)
  seen_sha, seen_phash = {}, []  # kept images: sha256 -> path; [(phash, path)]
  faces, rejects, errors, index = [], [], [], []

  def reject(path, label, reason, detail, duplicate_of=None):
    rejects.append({'image_id': path, 'label': label, 'reason': reason, 'detail': detail,
                    'duplicate_of': duplicate_of})

  for path in sorted(glob.glob(os.path.join(root, *INPUT_GLOB))):
    label = pubfig.safe_label(os.path.basename(os.path.dirname(path)))
    with open(path, 'rb') as fh:
      data = fh.read()
    try:
      decoded = images.decode(data, max_bytes=opts.max_image_bytes)
    except RecordError as e:
      errors.append({'source': path, 'stage': 'decode', 'error': str(e)})
      continue
    sha, ph = images.pixel_sha256(decoded.image), images.phash(decoded.image)
    if sha in seen_sha:
      reject(path, label, job.DUPLICATE, 'exact duplicate', seen_sha[sha])
      continue
    near = next(((kept, d) for h, kept in seen_phash
                 if (d := images.hamming(h, ph)) <= opts.near_duplicate_distance), None)
    if near:
      reject(path, label, job.DUPLICATE, 'near duplicate (%d bits)' % near[1], near[0])
      continue
    seen_sha[sha] = path
    seen_phash.append((ph, path))
    copy, _ = images.downscale(decoded.image, detector.max_input_px)
    result = detector.detect([copy])[0]
    if isinstance(result, Exception):
      errors.append({'source': path, 'stage': 'detect', 'error': repr(result)})
      continue
    detection = face_detect.to_original(result, copy.size, (decoded.width, decoded.height))
    face, rejected = face_filter.judge(detection)  # folder input: no list rect
    if rejected:
      reject(path, label, *rejected)
      continue
    split = dataset_split.split_of(sha, opts.validate_fraction)
    jpeg = crop_face(data, face.box, opts.crop_margin, opts.size, opts.jpeg_quality)
    relative = dataset_files.relative_path(split, label, dataset_files.output_name(path, sha))
    target = os.path.join(out, *relative.split('/'))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, 'wb') as fh:
      fh.write(jpeg)
    index.append((split, relative, label))
    left, top, right, bottom = face.box
    faces.append({
        'image_id': path, 'label': label, 'split': split, 'face_left': left, 'face_top': top,
        'face_right': right, 'face_bottom': bottom, 'roll': face.roll,
        'confidence': face.confidence, 'sha256': sha, 'width': decoded.width,
        'height': decoded.height, 'output_path': target,
        'faces': sum(1 for f in detection.faces if f.confidence >= opts.min_confidence)})
  for filename, text in dataset_files.index_texts(index).items():
    with open(os.path.join(out, filename), 'w', encoding='utf-8') as fh:
      fh.write(text)
  detector.close()
  return {'faces': faces, 'rejects': rejects, 'errors': errors}


# --- the job --------------------------------------------------------------------------------

def cpu_seconds():
  """CPU time of this process and its finished children (Beam's worker processes)."""
  own, children = resource.getrusage(resource.RUSAGE_SELF), \
      resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(usage, name, fn, *args):
  """(wall seconds, result) of fn(*args); usage[name] gets the wall and CPU seconds and the
  1-minute load average after it (above the CPU count: other work shared the machine)."""
  cpu = cpu_seconds()
  seconds, result = timed(fn, *args)
  usage[name] = {'seconds': seconds, 'cpu_seconds': cpu_seconds() - cpu,
                 'load_1min_after': os.getloadavg()[0]}
  return seconds, result


def run_job(path, out, extra, details, name, usage):
  """Seconds of one in-process run (a subprocess if in-process multi-processing fails)."""
  try:
    seconds, _ = measured(usage, name, beam_in_process, job, path, out, extra)
    details[name] = 'in-process, ' + ' '.join(extra)
  except Exception as e:  # noqa: BLE001
    if '--direct_running_mode=multi_processing' not in extra:
      raise
    print('in-process multi_processing failed (%r); running it as a subprocess' % e)
    shutil.rmtree(out, ignore_errors=True)
    seconds, _ = measured(usage, name, beam_subprocess, job, path, out, extra)
    details[name] = 'subprocess `python -m pipelines %s`, %s' % (job.JOB, ' '.join(extra))
  return seconds


def counters(out):
  with open(os.path.join(out, '_metrics.json'), encoding='utf-8') as fh:
    return json.load(fh)['counters']


def job_tables(out):
  return {table: list(rows(out, table)) for table in ('faces', 'rejects', 'errors')}


def outcome_counts(tables):
  """faces, rejects by reason, errors: what a run decided, from its rows."""
  found = Counter({'faces': len(tables['faces']), 'errors': len(tables['errors'])})
  found.update('reject ' + r['reason'] for r in tables['rejects'])
  return found


def identity_problems(name, found):
  total = sum(found.get(k, 0) for k in ('rows_faces', 'rows_rejects', 'errors'))
  if found.get('images_read') != total:
    return ['%s: images_read %s != rows_faces + rows_rejects + errors = %d'
            % (name, found.get('images_read'), total)]
  return []


# --- job against the script -----------------------------------------------------------------

def groups(*rejects):
  """image id -> its duplicate group's id (the smallest id in it): the union of every
  duplicate_of link on either side."""
  parent = {}

  def find(x):
    parent.setdefault(x, x)
    while parent[x] != x:
      parent[x] = parent[parent[x]]
      x = parent[x]
    return x

  for table in rejects:
    for r in table:
      if r['reason'] == job.DUPLICATE and r.get('duplicate_of'):
        a, b = find(r['image_id']), find(r['duplicate_of'])
        if a != b:
          parent[max(a, b)] = min(a, b)
  return find


def agreement(job_out, script):
  """The job's decisions against the script's: counts, accepted sha256s, decisions per
  duplicate group, faces rows by image_id. Returns the report."""
  jt = job_tables(job_out)
  find = groups(jt['rejects'], script['rejects'])
  decided = ({}, {})  # per side: group -> sorted [(image_id, outcome)] of its kept images
  for side, table in enumerate((jt, script)):
    for r in table['faces']:
      decided[side].setdefault(find(r['image_id']), []).append((r['image_id'], 'face'))
    for r in table['rejects']:
      if r['reason'] != job.DUPLICATE:
        decided[side].setdefault(find(r['image_id']), []).append((r['image_id'], r['reason']))
  kinds, examples = Counter(), {}
  for group in sorted(set(decided[0]) | set(decided[1])):
    mine, theirs = sorted(decided[0].get(group, [])), sorted(decided[1].get(group, []))
    if mine == theirs:
      kind = 'same'
    elif [i for i, _ in mine] == [i for i, _ in theirs]:
      kind = 'unexplained: same kept image, another outcome'
    else:
      accepted = ('face' in {o for _, o in mine}, 'face' in {o for _, o in theirs})
      kind = {(True, True): 'other kept copy, both accepted',
              (False, False): 'other kept copy, both rejected',
              (True, False): 'other kept copy, job accepted',
              (False, True): 'other kept copy, script accepted'}[accepted]
    kinds[kind] += 1
    examples.setdefault(kind, [mine, theirs])
  job_faces = {r['image_id']: r for r in jt['faces']}
  script_faces = {r['image_id']: r for r in script['faces']}
  result, rows_differ = compare(job_faces, script_faces, FACE_FIELDS, (), 0)
  job_sha = {r['sha256'] for r in jt['faces']}
  script_sha = {r['sha256'] for r in script['faces']}
  return {
      'counts': {'job': dict(outcome_counts(jt)), 'sequential': dict(outcome_counts(script))},
      'accepted_sha256': {'job': len(job_sha), 'sequential': len(script_sha),
                          'both': len(job_sha & script_sha)},
      'groups': dict(kinds), 'group_examples': {k: v for k, v in examples.items()
                                                if k != 'same'},
      'unexplained': sum(v for k, v in kinds.items() if k.startswith('unexplained')),
      'faces_rows_by_image_id': dict(result), 'faces_row_examples': [
          [key, {c: v if isinstance(v, str) else list(v) for c, v in diff.items()}]
          for key, diff in rows_differ]}


def print_agreement(a, root):
  print('\njob (2 procs) against the sequential script:')
  names = sorted(set(a['counts']['job']) | set(a['counts']['sequential']),
                 key=lambda k: (k != 'faces', k == 'errors', k))
  print('  %-26s %8s %11s' % ('outcome', 'job', 'sequential'))
  for key in names:
    print('  %-26s %8s %11s' % (key, a['counts']['job'].get(key, 0),
                                a['counts']['sequential'].get(key, 0)))
  s = a['accepted_sha256']
  print('  accepted images (distinct sha256): job %d, sequential %d, in both %d'
        % (s['job'], s['sequential'], s['both']))
  print('  duplicate groups (images linked by either side\'s duplicate_of; a lone image is a '
        'group): %s' % ', '.join('%s %d' % kv for kv in sorted(a['groups'].items())))
  for kind, (mine, theirs) in sorted(a['group_examples'].items()):
    show = lambda kept: [(os.path.relpath(i, root), o) for i, o in kept]  # noqa: E731
    print('    e.g. %s: job %s, script %s' % (kind, show(mine), show(theirs)))
  r = a['faces_rows_by_image_id']
  print('  faces rows of the same image_id (%s): %d equal, %d differ; %d job only, %d script '
        'only' % ('/'.join(FACE_FIELDS), r.get('match', 0), r.get('mismatch', 0),
                  r.get('only_reference', 0), r.get('only_other', 0)))
  for key, diff in a['faces_row_examples']:
    if 'row' not in diff:
      print('    e.g. %s: %s' % (os.path.relpath(key, root), diff))
  if a['unexplained']:
    print('  UNEXPLAINED: %d groups with the same kept image and another outcome'
          % a['unexplained'])
  elif set(a['groups']) != {'same'}:
    print('  every difference is which copy a duplicate group keeps: the job keeps the one '
          'with the most pixels (then the smallest path), the script the first it reads (the '
          'smallest path), so where a smaller near copy sorts first the script keeps it, and '
          'crops and detections come from that copy')


# --- Vision ---------------------------------------------------------------------------------

def log_figures(fake):
  log = fake.requests
  return {'requests': len(log), 'body_bytes': sum(r.body_bytes for r in log),
          'images': sum(r.images for r in log), 'statuses': dict(Counter(r.status for r in log)),
          'max_images_per_request': max((r.images for r in log), default=0)}


def naive_vision(root, endpoint):
  """Every file's original bytes, one images:annotate request each; returns outcomes."""
  client = VisionApi(endpoint=endpoint, qps=VISION_QPS)
  outcome = Counter()
  with client:
    for path in sorted(glob.glob(os.path.join(root, *INPUT_GLOB))):
      with open(path, 'rb') as fh:
        result = client.annotate([fh.read()])[0]
      outcome['error' if isinstance(result, Exception) else
              'faces' if result.faces else 'no faces'] += 1
  return dict(outcome), client.stats.snapshot()


def vision_runs(root, out, n, details, usage):
  """The job and the naive loop against one local server. Returns the figures, problems."""
  problems = []
  figures = {}
  with FakeVisionApi() as fake:
    extra = ['--detector', 'vision', '--vision_endpoint', fake.endpoint, '--vision_qps',
             str(VISION_QPS)] + MULTI
    seconds = run_job(os.path.join(root, *INPUT_GLOB), out, extra, details, 'vision', usage)
    log = log_figures(fake)
    found = counters(out)
    problems += identity_problems('vision', found)
    sent = found.get('vision_images', 0)
    figures['job'] = dict(log, seconds=seconds, images_sent=sent, counters={
        k: v for k, v in found.items() if k.startswith(('vision_', 'duplicates', 'rows_',
                                                        'images_', 'errors', 'rejects_'))})
    if log['requests'] != found.get('vision_attempts') or \
        log['body_bytes'] != found.get('vision_bytes_uploaded'):
      problems.append('vision: the server saw %d requests and %d bytes, the job counted %s '
                      'attempts and %s bytes' % (log['requests'], log['body_bytes'],
                                                 found.get('vision_attempts'),
                                                 found.get('vision_bytes_uploaded')))
    fake.reset_log()
    seconds, (outcome, stats) = measured(usage, 'vision_naive', naive_vision, root,
                                         fake.endpoint)
    figures['naive'] = dict(log_figures(fake), seconds=seconds, images_sent=n,
                            outcome=outcome, client=stats)
  for side in figures.values():
    side['requests_per_image'] = side['requests'] / n
    side['bytes_per_image'] = side['body_bytes'] / n
    side['bytes_per_image_sent'] = side['body_bytes'] / max(side['images_sent'], 1)
    side['images_per_s'] = n / side['seconds']
  return figures, problems


def upload_sizes(root, manifest, sample, max_px):
  """Upload bytes (`face_detect.prepare_upload`, what the job sends per image) against the
  original file's, for up to `sample` unique images, by long side up to / over max_px."""
  uniques = [e for e in manifest['files'] if e['kind'] == 'unique']
  picked = random.Random(0).sample(uniques, min(sample, len(uniques)))
  buckets = {}
  for entry in picked:
    with open(os.path.join(root, *entry['path'].split('/')), 'rb') as fh:
      data = fh.read()
    upload, _ = face_detect.prepare_upload(images.decode(data).image, max_px)
    key = 'long side <= %d' % max_px if max(entry['size']) <= max_px else \
        'long side > %d' % max_px
    bucket = buckets.setdefault(key, {'images': 0, 'original_bytes': 0, 'upload_bytes': 0})
    bucket['images'] += 1
    bucket['original_bytes'] += len(data)
    bucket['upload_bytes'] += len(upload)
  return buckets


def print_vision(v, n, mean_file_bytes):
  job_, naive = v['job'], v['naive']
  print('\nVision (local fake server; per image = per image read, %d):' % n)
  line = '%-46s %9s %9s %14s %12s %12s %8s'
  print(line % ('', 'requests', 'req/image', 'bytes uploaded', 'bytes/image', 'images sent',
                'max/req'))
  for label, s in (('job: deduplicated, downscaled <=1024, batched', job_),
                   ('naive: every original, one per request', naive)):
    print('%-46s %9d %9.3f %14d %12.0f %12d %8d' % (
        label, s['requests'], s['requests_per_image'], s['body_bytes'], s['bytes_per_image'],
        s['images_sent'], s['max_images_per_request']))
  print('naive / job: %.1fx the requests, %.2fx the bytes uploaded (%.2fx per image sent: '
        'downscaling and re-encoding alone)' % (
            naive['requests'] / max(job_['requests'], 1),
            naive['body_bytes'] / max(job_['body_bytes'], 1),
            naive['bytes_per_image_sent'] / max(job_['bytes_per_image_sent'], 1)))
  print('(bytes = JSON request bodies as the server received them, base64 included; the '
        'original files average %.0f bytes; statuses job %s, naive %s)' % (
            mean_file_bytes, job_['statuses'], naive['statuses']))
  print('images/s: job %.1f (the whole job: read, decode, dedupe, detect, crops; %.1f s), '
        'naive loop %.1f (read and annotate only; %.1f s)' % (
            job_['images_per_s'], job_['seconds'], naive['images_per_s'], naive['seconds']))
  print('upload vs original file, a sample of unique images (JPEG quality %d uploads):'
        % face_detect.UPLOAD_JPEG_QUALITY)
  for key, b in sorted(v['upload_sample'].items()):
    print('  %-20s %4d images: original %7.0f bytes, upload %7.0f bytes (%.2fx)' % (
        key, b['images'], b['original_bytes'] / b['images'], b['upload_bytes'] / b['images'],
        b['upload_bytes'] / b['original_bytes']))


# --- report ---------------------------------------------------------------------------------

RUN_LABELS = {'local_mp': 'job, Beam DirectRunner 2 procs (multi_processing)',
              'local_1': 'job, Beam DirectRunner 1 worker (in_memory)',
              'sequential': 'sequential script, one image at a time'}


def print_table(usage, n):
  script = usage['sequential']['seconds']
  print('\n%-50s %8s %9s %10s %8s %9s' % ('local detector', 'seconds', 'images/s',
                                          'vs script', 'CPU s', 'CPU/wall'))
  for name, label in RUN_LABELS.items():
    if name in usage:
      u = usage[name]
      print('%-50s %8.1f %9.2f %9.2fx %8.1f %9.2f' % (
          label, u['seconds'], n / u['seconds'], script / u['seconds'], u['cpu_seconds'],
          u['cpu_seconds'] / u['seconds']))
  print('(images/s = images read / wall seconds, start-up included; vs script = the '
        'script\'s seconds / these; CPU s = this process and its worker processes, user + '
        'system: OpenCV\'s detectMultiScale runs on %d threads by itself, so CPU/wall above 1 '
        'in the script is OpenCV\'s own parallelism)' % cv2.getNumThreads())


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--images', type=int, default=2000, help='files to generate (default '
                      '2000)')
  parser.add_argument('--quick', action='store_true', help='--images 200')
  parser.add_argument('--labels', type=int, default=10)
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--no_in_memory', action='store_true',
                      help='skip the reference run with one in-process worker')
  parser.add_argument('--workdir', help='default: a new temporary directory; images generated '
                      'there before with the same parameters are reused')
  parser.add_argument('--keep', action='store_true', help='keep the images and the outputs')
  args = parser.parse_args(argv)
  n = 200 if args.quick else args.images
  if n < MIN_IMAGES or args.labels < 1:
    parser.error('--images must be at least %d and --labels at least 1' % MIN_IMAGES)
  start = time.perf_counter()
  work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='bench_face_dataset_'))
  os.makedirs(work, exist_ok=True)
  out = lambda name: os.path.join(work, 'out', name)  # noqa: E731
  photos, marked = os.path.join(work, 'photos'), os.path.join(work, 'marked')
  logging.getLogger('apache_beam.runners.portability').setLevel(logging.ERROR)

  sources = load_sources()
  gen_s, manifest = timed(generate, work, n, args.labels, args.seed, sources)
  describe(manifest, photos, gen_s)
  print('  sources: %s' % ', '.join('%s (%s)' % (s.name, 'face %s' % (s.face,) if s.face
                                                  else 'no face') for s in sources))
  mean_bytes = sum(e['bytes'] for e in manifest['files']) / n

  problems, details = [], {}
  usage = {'before': {'load_1min': os.getloadavg()[0]}}
  pattern = os.path.join(photos, *INPUT_GLOB)
  local = ['--detector', 'local']
  run_job(pattern, out('local_mp'), local + MULTI, details, 'local_mp', usage)
  found = {'local_mp': counters(out('local_mp'))}
  problems += identity_problems('local_mp', found['local_mp'])
  if not args.no_in_memory:
    run_job(pattern, out('local_1'), local + IN_MEMORY, details, 'local_1', usage)
    found['local_1'] = counters(out('local_1'))
    problems += identity_problems('local_1', found['local_1'])
    mp_faces = {r['image_id']: r for r in rows(out('local_mp'), 'faces')}
    one_faces = {r['image_id']: r for r in rows(out('local_1'), 'faces')}
    same, _ = compare(mp_faces, one_faces, FACE_FIELDS, (), 0)
    if same['match'] != len(mp_faces) or len(one_faces) != len(mp_faces) or \
        found['local_1'] != found['local_mp']:
      problems.append('the 2-process and in-process jobs differ: %s' % dict(same))
  _, script = measured(usage, 'sequential', sequential, photos, out('sequential'),
                       job_options(local))
  agreement_report = agreement(out('local_mp'), script)
  if agreement_report['unexplained']:
    problems.append('job and script decide %d duplicate groups differently with the same '
                    'kept image' % agreement_report['unexplained'])

  vision, vision_problems = vision_runs(marked, out('vision'), n, details, usage)
  problems += vision_problems
  vision['upload_sample'] = upload_sizes(marked, manifest, UPLOAD_SAMPLE,
                                         job_options().max_upload_px)

  print('\nface_dataset counters, --detector local, 2 procs:')
  for key, value in found['local_mp'].items():
    print('  %-32s %8d' % (key, value))
  print_agreement(agreement_report, photos)
  print_table(usage, n)
  print('(2 procs: %s)' % details['local_mp'])
  print_vision(vision, n, mean_bytes)
  env = environment()
  print('machine: %(cpu_count)d CPUs (%(machine)s, %(cpu)s); python %(python)s, apache_beam '
        '%(apache_beam)s' % env)
  print('1-minute load average before the runs and after each (above %d: other work shared '
        'the CPUs): %s' % (env['cpu_count'], ', '.join(
            '%s %.1f' % (k, u.get('load_1min', u.get('load_1min_after'))) for k, u in
            usage.items())))

  report = {
      'images': n, 'labels': args.labels, 'seed': args.seed, 'generate_seconds': gen_s,
      'mix': manifest['mix'], 'sources': [
          {'name': s.name, 'face': s.face} for s in sources],
      'runs': {k: dict(u, label=RUN_LABELS.get(k, k), images_per_s=n / u['seconds'])
               for k, u in usage.items() if 'seconds' in u},
      'speed_vs_sequential': {k: usage['sequential']['seconds'] / usage[k]['seconds']
                              for k in RUN_LABELS if k in usage},
      'load_1min_before': usage['before']['load_1min'], 'run_modes': details,
      'counters': found, 'job_vs_sequential': agreement_report,
      'vision': vision, 'vision_naive_over_job': {
          'requests': vision['naive']['requests'] / max(vision['job']['requests'], 1),
          'bytes': vision['naive']['body_bytes'] / max(vision['job']['body_bytes'], 1)},
      'environment': dict(env, opencv=cv2.__version__, opencv_threads=cv2.getNumThreads()),
      'problems': problems}
  if not args.keep:
    shutil.rmtree(photos, ignore_errors=True)
    shutil.rmtree(marked, ignore_errors=True)
  finish(work, 'face_dataset', report, os.path.join(work, 'manifest.json'),
         lambda _: os.path.join(work, 'out'), args.keep, start)
  if problems:
    print('FAILED:\n  ' + '\n  '.join(problems))
  return 1 if problems else 0


if __name__ == '__main__':
  sys.exit(main())
