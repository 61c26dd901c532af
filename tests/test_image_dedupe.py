"""Duplicate images: exact copies by pixel hash, near copies by pHash band buckets, one kept per
group by rank whatever the input order, and every reject naming the image that was kept."""
import io
import random
import time
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image, ImageDraw

from transforms import image_dedupe, images
from transforms.image_dedupe import (Duplicates, ExactDuplicates, ImageInfo, NearDuplicateEdges,
                                     NearDuplicates, bucket_edges, keep_rank)

NS = 'face_dataset'


def image(image_id, phash, width=100, height=100, sha=None):
  """An element; distinct pixels (sha256) unless `sha` says otherwise."""
  return image_id, ImageInfo(sha or 'px-' + image_id, phash, width, height)


def node(element):
  image_id, info = element
  return -(info.width * info.height), image_id, info.phash


def flip(h, bits):
  for bit in bits:
    h ^= 1 << bit
  return h


def far_hashes(n, seed=1):
  """n random 64-bit hashes, every two at least 20 bits apart: unrelated pictures."""
  rng = random.Random(seed)
  out = []
  while len(out) < n:
    h = rng.getrandbits(64)
    if all(images.hamming(h, o) >= 20 for o in out):
      out.append(h)
  return out


def band_top_bits(bands):
  """The highest bit of each of `band_keys`' bands: flipping k of them leaves the hashes
  sharing only the other bands (the pigeonhole's worst case)."""
  base, extra = divmod(64, bands)
  tops, shift = [], 64
  for index in range(bands):
    tops.append(shift - 1)
    shift -= base + (1 if index < extra else 0)
  for index, bit in enumerate(tops):
    moved = [x != y for x, y in zip(images.band_keys(0, bands),
                                    images.band_keys(1 << bit, bands), strict=True)]
    assert moved == [i == index for i in range(bands)]
  return tops


def run(elements, transform, kept, rejects):
  """Runs `transform` over `elements`, asserting the kept ids and the rejects as
  (id, kept_id, detail), and that every info comes out untouched; returns the counters of
  namespace NS."""
  infos = dict(elements)
  p = TestPipeline()
  kept_out, rejects_out = p | beam.Create(elements) | transform
  assert_that(kept_out | beam.Map(lambda e: e[0] if e[1] == infos[e[0]] else e),
              equal_to(kept), label='Kept')
  assert_that(rejects_out | beam.Map(
      lambda r: (r[0], r[2], r[3]) if r[1] == infos[r[0]] else r), equal_to(rejects),
      label='Rejects')
  result = p.run()
  result.wait_until_finish()
  return {c.key.metric.name: c.committed
          for c in result.metrics().query(MetricsFilter().with_namespace(NS))['counters']}


# --- rank and pure helpers -------------------------------------------------------------------

def test_keep_rank_prefers_more_pixels_then_the_smallest_id():
  small, big = ImageInfo('s', 0, 10, 10), ImageInfo('s', 0, 20, 10)
  assert keep_rank('z', big) < keep_rank('a', small)
  assert keep_rank('a', small) < keep_rank('b', small)
  ranked = sorted([('b', small), ('z', big), ('a', small), ('c', ImageInfo('s', 0, 5, 30))],
                  key=lambda e: keep_rank(*e))
  assert [e[0] for e in ranked] == ['z', 'c', 'a', 'b']


def test_equal_hashes_link_to_their_best_copy_without_comparing_pairs():
  blank = 1 << 63
  nodes = [(-100, 'blank-%05d' % i, blank) for i in range(20_000)]
  random.Random(3).shuffle(nodes)
  start = time.monotonic()
  edges, capped = bucket_edges(nodes, 4, 10)
  assert time.monotonic() - start < 2.0
  assert not capped  # one distinct hash
  assert len(edges) == 19_999
  assert {a for a, _ in edges} == {(-100, 'blank-00000', blank)}
  assert bucket_edges(nodes, 4, 10, equal_hashes=False) == ([], False)


def test_a_bucket_over_max_bucket_compares_with_its_first_hashes_only():
  base = far_hashes(1)[0]
  nodes = [(-100, 'n%02d' % k, flip(base, [k])) for k in range(30)]  # all 2 bits apart
  edges, capped = bucket_edges(nodes, 4, 100)
  assert not capped and len(edges) == 30 * 29 // 2
  edges, capped = bucket_edges(list(reversed(nodes)), 4, 10)
  assert capped
  assert len(edges) == sum(29 - i for i in range(10))
  assert {a[1] for a, _ in edges} == {'n%02d' % k for k in range(10)}  # the best-ranked
  assert all(a < b for a, b in edges)


def test_numpy_popcount_fallback_matches_python():
  rng = random.Random(5)
  values = [rng.getrandbits(64) for _ in range(200)] + [0, (1 << 64) - 1]
  counts = image_dedupe._popcount_bytes(np.array(values, dtype=np.uint64))
  assert counts.tolist() == [v.bit_count() for v in values]


def test_partial_components_merge_to_the_same_groups():
  fn = image_dedupe._Components()
  a, b, c, d, e = ((-100, x, i) for i, x in enumerate('abcde'))
  left = fn.add_input(fn.add_input(fn.create_accumulator(), (b, c)), (d, e))
  right = fn.add_input(fn.create_accumulator(), (a, d))
  merged = fn.extract_output(fn.merge_accumulators([left, right, fn.create_accumulator()]))
  whole = fn.create_accumulator()
  for edge in [(a, d), (d, e), (b, c)]:
    whole = fn.add_input(whole, edge)
  assert merged == fn.extract_output(whole) == [
      ('c', ('b', images.hamming(1, 2))), ('d', ('a', images.hamming(0, 3))),
      ('e', ('a', images.hamming(0, 4)))]


@pytest.mark.parametrize('kwargs', [{'max_distance': -1}, {'max_distance': 64},
                                    {'max_distance': 4.0}, {'max_bucket': 0}])
def test_bad_parameters_are_refused(kwargs):
  with pytest.raises(ValueError):
    NearDuplicates(NS, **kwargs)


def test_unbounded_input_is_refused():
  p = TestPipeline()
  stream = p | TestStream().add_elements([image('a', 1)])
  for transform in (ExactDuplicates(NS), NearDuplicates(NS), Duplicates(NS)):
    with pytest.raises(ValueError, match='bounded'):
      _ = stream | transform


# --- exact duplicates ------------------------------------------------------------------------

def test_exact_groups_of_one_two_and_three_keep_the_best_ranked():
  elements = [
      image('solo', 1, sha='s1'),
      image('pair-a', 2, 50, 50, sha='s2'),
      image('pair-b', 2, 100, 100, sha='s2'),  # more pixels beats the smaller id
      image('tri-c', 3, sha='s3'), image('tri-a', 3, sha='s3'), image('tri-b', 3, sha='s3'),
  ]
  counters = run(elements, ExactDuplicates(NS), ['pair-b', 'solo', 'tri-a'], [
      ('pair-a', 'pair-b', 'exact duplicate of pair-b'),
      ('tri-b', 'tri-a', 'exact duplicate of tri-a'),
      ('tri-c', 'tri-a', 'exact duplicate of tri-a')])
  assert counters == {'duplicates_exact': 3}


# --- near duplicates -------------------------------------------------------------------------

@pytest.mark.parametrize('max_distance', [4, 1])
def test_near_pairs_within_max_distance_are_grouped_and_one_more_bit_is_not(max_distance):
  bases = far_hashes(max_distance + 3, seed=max_distance)
  tops = band_top_bits(max_distance + 1)
  elements, expected = [], []
  for d in range(max_distance + 1):  # d bits spread over d bands: one band left in common
    elements += [image('d%d-a' % d, bases[d]),
                 image('d%d-b' % d, flip(bases[d], tops[:d]), 90, 90)]
    expected.append(('d%d-b' % d, 'd%d-a' % d, 'near duplicate of d%d-a (%d bits)' % (d, d)))
  spread = flip(bases[-2], tops)  # max + 1 bits, one in every band: not even a candidate
  clustered = flip(bases[-1], range(max_distance + 1))  # shares bands, too far
  elements += [image('far-a', bases[-2]), image('far-b', spread),
               image('close-a', bases[-1]), image('close-b', clustered)]
  assert images.hamming(bases[-2], spread) == images.hamming(bases[-1], clustered) \
      == max_distance + 1
  random.Random(0).shuffle(elements)
  counters = run(elements, NearDuplicates(NS, max_distance),
                 ['d%d-a' % d for d in range(max_distance + 1)]
                 + ['close-a', 'close-b', 'far-a', 'far-b'], expected)
  assert counters == {'duplicates_near': max_distance + 1}


def test_a_chain_is_one_group_reporting_distances_to_the_kept_image_and_groups_stay_apart():
  a, g, h, lone = far_hashes(4, seed=2)
  b = flip(a, [60, 45, 30, 15])  # 4 bits from a
  c = flip(b, [61, 46, 31, 16])  # 4 bits from b, 8 from a: grouped through b
  elements = [image('a', a, 100, 100), image('b', b, 100, 100), image('c', c, 200, 100),
              image('g1', g, 50, 50), image('g2', flip(g, [0]), 60, 60),
              image('h1', h), image('h2', flip(h, [5, 6])), image('h3', flip(h, [40])),
              image('lone', lone)]
  counters = run(elements, NearDuplicates(NS), ['c', 'g2', 'h1', 'lone'], [
      ('a', 'c', 'near duplicate of c (8 bits)'),
      ('b', 'c', 'near duplicate of c (4 bits)'),
      ('g1', 'g2', 'near duplicate of g2 (1 bits)'),
      ('h2', 'h1', 'near duplicate of h1 (2 bits)'),
      ('h3', 'h1', 'near duplicate of h1 (1 bits)')])
  assert counters == {'duplicates_near': 5}


def test_a_pair_found_in_several_bands_is_one_edge():
  x, y = far_hashes(2, seed=6)
  elements = [image('x1', x), image('x2', flip(x, [0]), 50, 50),  # 4 bands in common
              image('y1', y), image('y2', y)]  # the same hash: all 5 bands
  p = TestPipeline()
  edges = p | beam.Create(elements) | NearDuplicateEdges(NS)
  assert_that(edges, equal_to([(node(elements[0]), node(elements[1])),
                               (node(elements[2]), node(elements[3]))]))
  p.run().wait_until_finish()


def test_the_output_does_not_depend_on_input_order():
  a, b, c = far_hashes(3, seed=8)
  elements = [
      image('e3', a, sha='same'), image('e1', a, sha='same'), image('e2', a, sha='same'),
      image('n-b', flip(b, [1, 2])), image('n-a', b), image('n-c', flip(b, [1, 2, 3, 4])),
      image('t2', c, 64, 64), image('t1', flip(c, [9]), 64, 64),
  ]
  expected_kept = ['e1', 'n-a', 't1']
  expected_rejects = [('e2', 'e1', 'exact duplicate of e1'),
                      ('e3', 'e1', 'exact duplicate of e1'),
                      ('n-b', 'n-a', 'near duplicate of n-a (2 bits)'),
                      ('n-c', 'n-a', 'near duplicate of n-a (4 bits)'),
                      ('t2', 't1', 'near duplicate of t1 (1 bits)')]
  p = TestPipeline()
  for seed in (1, 2):
    order = list(elements)
    random.Random(seed).shuffle(order)
    kept, rejects = (p | 'Create%d' % seed >> beam.Create(order)
                     | 'Dedupe%d' % seed >> Duplicates(NS))
    assert_that(kept | 'Ids%d' % seed >> beam.Map(lambda e: e[0]), equal_to(expected_kept),
                label='Kept%d' % seed)
    assert_that(rejects | 'Short%d' % seed >> beam.Map(lambda r: (r[0], r[2], r[3])),
                equal_to(expected_rejects), label='Rejects%d' % seed)
  p.run().wait_until_finish()


def test_a_big_bucket_of_one_hash_stays_fast_and_keeps_the_biggest():
  blank = 1 << 63  # what every flat image hashes to
  width = {i: 100 + (i * 37) % 500 for i in range(500)}  # all different
  elements = [image('blank-%03d' % i, blank, width[i], 100) for i in range(500)]
  other = far_hashes(2, seed=9)[1]
  elements += [image('other', other), image('other-copy', flip(other, [3]), 10, 10)]
  best = 'blank-%03d' % max(width, key=width.get)
  start = time.monotonic()
  counters = run(elements, NearDuplicates(NS), [best, 'other'], [
      ('blank-%03d' % i, best, 'near duplicate of %s (0 bits)' % best)
      for i in range(500) if 'blank-%03d' % i != best
  ] + [('other-copy', 'other', 'near duplicate of other (1 bits)')])
  assert time.monotonic() - start < 10
  assert counters == {'duplicates_near': 500}


def test_capped_buckets_are_counted_and_still_group_through_the_first_hashes():
  base = far_hashes(1, seed=10)[0]
  elements = [image('n%02d' % k, flip(base, [k]), 100 + k, 100) for k in range(30)]
  counters = run(elements, NearDuplicates(NS, max_bucket=10), ['n29'], [
      ('n%02d' % k, 'n29', 'near duplicate of n29 (2 bits)') for k in range(29)])
  # One of bits 0..29 flipped each: bands 0 and 1 (bits 63..38) put all 30 in one bucket;
  # the shared bucket of band 2 (bits 37..25) holds the 25 not flipped there, band 3's
  # (24..12) 17, band 4's (11..0) 18: five buckets over 10.
  assert counters == {'duplicates_near': 29, 'near_duplicate_buckets_capped': 5}


# --- exact then near -------------------------------------------------------------------------

def test_an_exact_copy_of_a_near_duplicate_names_the_image_finally_kept():
  h, lone = far_hashes(2, seed=11)
  elements = [image('big', flip(h, [7, 8]), 200, 200),
              image('small-1', h, 100, 100, sha='small'),
              image('small-2', h, 100, 100, sha='small'),
              image('lone', lone, sha='lone'), image('lone-copy', lone, sha='lone')]
  counters = run(elements, Duplicates(NS), ['big', 'lone'], [
      ('lone-copy', 'lone', 'exact duplicate of lone'),
      ('small-1', 'big', 'near duplicate of big (2 bits)'),
      ('small-2', 'big', 'exact duplicate of small-1, which is a near duplicate of big '
       '(2 bits)')])
  assert counters == {'duplicates_exact': 2, 'duplicates_near': 1}


def _scene(seed, size=(320, 240)):
  rng = np.random.default_rng(seed)
  w, h = size
  yy, xx = np.mgrid[0:h, 0:w]
  ramp = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / max(w, h)
  arr = np.stack([ramp * rng.uniform(60, 200) + rng.uniform(30, 90) for _ in range(3)], -1)
  im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), 'RGB')
  draw = ImageDraw.Draw(im)
  for _ in range(10):
    x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
    box = [x0, y0, x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h]
    fill = tuple(int(v) for v in rng.integers(0, 256, 3))
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
  return im


def _encoded(im, fmt, **kwargs):
  out = io.BytesIO()
  im.save(out, fmt, **kwargs)
  return out.getvalue()


def _info(data):
  decoded = images.decode(data)
  return ImageInfo(images.pixel_sha256(decoded.image), images.phash(decoded.image),
                   decoded.width, decoded.height)


def test_end_to_end_a_resized_re_encoded_copy_is_caught_and_another_photo_is_not():
  photo = _scene(1)
  files = {
      'ann/photo.png': _encoded(photo, 'PNG'),
      'ann/photo-copy.bmp': _encoded(photo, 'BMP'),  # same pixels, other bytes
      'ann/thumb.jpg': _encoded(photo.resize((160, 120), Image.Resampling.LANCZOS), 'JPEG',
                                quality=75),
      'bob/other.png': _encoded(_scene(2), 'PNG'),
  }
  infos = {name: _info(data) for name, data in files.items()}
  original, thumb = infos['ann/photo.png'], infos['ann/thumb.jpg']
  assert infos['ann/photo-copy.bmp'] == original
  assert thumb.sha256 != original.sha256
  distance = images.hamming(thumb.phash, original.phash)
  assert distance <= 4
  assert images.hamming(infos['bob/other.png'].phash, original.phash) > 16
  # The BMP and PNG tie on pixels; the smaller id is kept.
  kept = ['ann/photo-copy.bmp', 'bob/other.png']
  counters = run(sorted(infos.items()), Duplicates(NS), kept, [
      ('ann/photo.png', 'ann/photo-copy.bmp', 'exact duplicate of ann/photo-copy.bmp'),
      ('ann/thumb.jpg', 'ann/photo-copy.bmp',
       'near duplicate of ann/photo-copy.bmp (%d bits)' % distance)])
  assert counters == {'duplicates_exact': 1, 'duplicates_near': 1}


# --- scopes ----------------------------------------------------------------------------------

class ScopedInfo(NamedTuple):
  sha256: str
  phash: int
  width: int
  height: int
  scope: str


def test_duplicates_are_only_looked_for_within_a_scope():
  """One group photo listed for two people is two faces; listed twice for one, a duplicate."""
  base, other = far_hashes(2, seed=3)
  elements = [
      ('brad:1', ScopedInfo('group', base, 100, 100, 'brad')),
      ('cate:1', ScopedInfo('group', base, 100, 100, 'cate')),   # same pixels, other person
      ('brad:2', ScopedInfo('group', base, 100, 100, 'brad')),   # exact, same person
      ('cate:2', ScopedInfo('resized', flip(base, [3]), 50, 50, 'cate')),  # near, same person
      ('brad:3', ScopedInfo('resized', flip(base, [3]), 50, 50, 'dave')),  # near, nobody else
      ('solo', ScopedInfo('solo', other, 100, 100, '')),
  ]
  counters = run(elements, Duplicates(NS), ['brad:1', 'cate:1', 'brad:3', 'solo'], [
      ('brad:2', 'brad:1', 'exact duplicate of brad:1'),
      ('cate:2', 'cate:1', 'near duplicate of cate:1 (1 bits)')])
  assert counters == {'duplicates_exact': 1, 'duplicates_near': 1}
