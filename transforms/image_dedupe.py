"""Duplicate images for `face_dataset`: exact copies by pixel hash, near copies by pHash.

Elements are `(image_id, info)`: `info` is any value with `sha256` (of the decoded pixels,
`images.pixel_sha256`), `phash` (64-bit, `images.phash`), `width` and `height`; `ImageInfo`
is the minimal one. Elements are passed through untouched, and image ids must be unique.
An optional `info.scope` (a string; default '') confines duplicates to images of the same
scope: face_dataset scopes URL-list entries by person, since one group photo listed for
two people is two different faces, not a duplicate.

Which copy is kept: `keep_rank`, the most pixels first (a downscaled copy loses detail,
never gains it), then the smallest id. It depends only on the group, never on input order
or bundling, so reruns keep the same images. Every transform returns a `(kept, rejects)`
tuple of PCollections; a reject is `(image_id, info, kept_id, detail)` where `kept_id` is
in `kept` and `detail` says how it matched (the job's reason is `duplicate`).

`ExactDuplicates` groups by `sha256`: it scales with the number of distinct hashes, and a
hot key (a thousand copies of a "photo not available" placeholder) is streamed in two
passes on one worker, holding only its best copy.

`NearDuplicates` never compares all pairs and never gathers the images:
1. Bands: each image sends `(band key, node)` for `max_distance + 1` bit bands of its pHash
   (`images.band_keys`; pigeonhole: two hashes within `max_distance` bits agree on a band).
   A node is `(-pixels, image_id, phash)`, small, and sorts in `keep_rank` order.
2. Buckets: a GroupByKey per band key. Within a bucket, images with an equal pHash are
   linked to their best-ranked copy (an edge each, O(n), no pairs: equal hashes are at
   equal distances from everything else), so a bucket of 100k blank images is cheap. The
   distinct hashes are compared pairwise with numpy. Past `max_bucket` distinct hashes each
   is compared with the first `max_bucket` only (O(n max_bucket), counted in
   `near_duplicate_buckets_capped` and logged): pairs outside those may be missed unless
   another band finds them. Edges `(a, b)`, a ranked first, go through `Distinct` (a pair
   that agrees on several bands is found in each).
3. Components: union-find over the edges in one CombineFn (partial forests per bundle,
   merged in one place). That is fine because edges scale with duplicates, not images, and
   every node is ~200 bytes: a few million duplicate images fit a worker. Past that (or if
   the bands are too narrow for the collection, as random hashes fill a w-bit bucket with
   N / 2^w strangers and the pairwise work grows as N^2 / 2^w; 13-bit bands are fine to a
   few million images), use a distributed connected-components (min-label propagation) and
   wider bands.
4. The component's best-ranked node is kept; every other member maps to
   `(kept_id, distance)`, and that map (again duplicates only) reaches the images as an
   AsDict side input. Groups are transitive: A~B and B~C group C with A even when C is more
   than `max_distance` from A; the detail reports C's actual distance to the kept image.

`Duplicates` runs both (exact first: cheaper, and it leaves one copy to band) and repoints
an exact copy whose kept image then turns out to be a near duplicate of another, so every
reject names an image that is kept. Chaining the two transforms by hand would not.

Bounded input only (face_dataset is a batch job; the grouping needs the whole set): an
unbounded PCollection raises ValueError. Counters: `duplicates_exact`, `duplicates_near`.
"""
import logging
from typing import Any, Dict, Iterable, List, NamedTuple, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from transforms.images import HASH_BITS, band_keys, hamming

DEFAULT_MAX_DISTANCE = 4
DEFAULT_MAX_BUCKET = 2000
REJECTS = 'rejects'
KEPT = 'kept'

Node = Tuple[int, str, int]  # (-pixels, image_id, phash): sorts in keep_rank order
Edge = Tuple[Node, Node]  # (a, b), a ranked before b


class ImageInfo(NamedTuple):
  sha256: str
  phash: int
  width: int
  height: int


def keep_rank(image_id: str, info: Any) -> Tuple[int, str]:
  """Sort key of a duplicate group, lowest kept: most pixels, then the smallest id."""
  return -(info.width * info.height), image_id


def scope_of(info: Any) -> str:
  return getattr(info, 'scope', '') or ''


def _node(image_id: str, info: Any) -> Node:
  return keep_rank(image_id, info) + (info.phash,)


def _require_bounded(pcoll, name: str) -> None:
  if not pcoll.is_bounded:
    raise ValueError('%s needs a bounded PCollection (the whole image set); got an '
                     'unbounded one' % name)


_BYTE_BITS = np.array([bin(i).count('1') for i in range(256)], dtype=np.uint8)


def _popcount_bytes(values: np.ndarray) -> np.ndarray:
  """Set bits of each uint64, for numpy < 2.0 (no `bitwise_count`)."""
  return _BYTE_BITS[values.view(np.uint8)].reshape(-1, 8).sum(axis=1)


_popcount = getattr(np, 'bitwise_count', _popcount_bytes)


def bucket_edges(nodes: Iterable[Node], max_distance: int, max_bucket: int,
                 equal_hashes: bool = True) -> Tuple[List[Edge], bool]:
  """(edges between nodes within max_distance bits, whether the bucket was capped).

  Equal hashes give star edges to their best copy (only with `equal_hashes`: equal hashes
  share every band, so one band is enough). Each distinct hash is then compared with the
  later ones, or, past `max_bucket` distinct hashes, only the first `max_bucket` are.
  """
  by_hash: Dict[int, List[Node]] = {}
  for node in nodes:
    by_hash.setdefault(node[2], []).append(node)
  edges: List[Edge] = []
  firsts = []
  for same in by_hash.values():
    same.sort()
    firsts.append(same[0])
    if equal_hashes:
      edges.extend((same[0], other) for other in same[1:])
  firsts.sort()
  hashes = np.array([node[2] for node in firsts], dtype=np.uint64)
  anchors = min(len(firsts) - 1, max_bucket)
  for i in range(anchors):
    close = np.flatnonzero(_popcount(hashes[i + 1:] ^ hashes[i]) <= max_distance)
    edges.extend((firsts[i], firsts[i + 1 + j]) for j in close.tolist())
  return edges, len(firsts) > max_bucket


class _BandMembers(beam.DoFn):

  def __init__(self, bands: int):
    self._bands = bands

  def process(self, element):
    image_id, info = element
    node = _node(image_id, info)
    scope = scope_of(info)
    for key in band_keys(info.phash, self._bands):
      yield (key + '@' + scope if scope else key), node


class _BucketEdges(beam.DoFn):

  def __init__(self, namespace: str, max_distance: int, max_bucket: int):
    self._max_distance = max_distance
    self._max_bucket = max_bucket
    self._capped = Metrics.counter(namespace, 'near_duplicate_buckets_capped')

  def process(self, keyed):
    key, nodes = keyed
    edges, capped = bucket_edges(nodes, self._max_distance, self._max_bucket,
                                 equal_hashes=key.startswith('b0:'))
    if capped:
      self._capped.inc()
      logging.warning('near-duplicate bucket %s is over %d distinct hashes: each was only '
                      'compared with the first %d', key, self._max_bucket, self._max_bucket)
    yield from edges


def _find(parent: Dict[Node, Node], node: Node) -> Node:
  parent.setdefault(node, node)
  while parent[node] != node:
    parent[node] = parent[parent[node]]  # path halving
    node = parent[node]
  return node


def _union(parent: Dict[Node, Node], a: Node, b: Node) -> None:
  a, b = _find(parent, a), _find(parent, b)
  if a != b:  # the better-ranked root wins, so a root is its component's kept image
    parent[max(a, b)] = min(a, b)


class _Components(beam.CombineFn):
  """Edges -> [(member_id, (kept_id, distance))] for every non-kept node, by union-find.

  The accumulator is a forest {node: parent}; its (node, parent) pairs are edges spanning
  the same components, which is how forests merge."""

  def create_accumulator(self) -> Dict[Node, Node]:
    return {}

  def add_input(self, parent, edge):
    _union(parent, *edge)
    return parent

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    out = next(accumulators)
    for parent in accumulators:
      for node, up in parent.items():
        _union(out, node, up)
    return out

  def extract_output(self, parent):
    out = []
    for node in list(parent):
      kept = _find(parent, node)
      if kept != node:
        out.append((node[1], (kept[1], hamming(node[2], kept[2]))))
    return sorted(out)


def _check_distance(max_distance: int, max_bucket: int) -> None:
  if not (isinstance(max_distance, int) and 0 <= max_distance < HASH_BITS):
    raise ValueError('max_distance must be 0..%d bits, got %r' % (HASH_BITS - 1, max_distance))
  if not (isinstance(max_bucket, int) and max_bucket >= 1):
    raise ValueError('max_bucket must be >= 1, got %r' % (max_bucket,))


class NearDuplicateEdges(beam.PTransform):
  """(image_id, info) -> distinct edges (a, b) of nodes within max_distance bits, a ranked
  first; a node is (-pixels, image_id, phash)."""

  def __init__(self, namespace: str, max_distance: int = DEFAULT_MAX_DISTANCE,
               max_bucket: int = DEFAULT_MAX_BUCKET):
    super().__init__()
    _check_distance(max_distance, max_bucket)
    self._namespace = namespace
    self._max_distance = max_distance
    self._max_bucket = max_bucket

  def expand(self, images):
    _require_bounded(images, 'NearDuplicateEdges')
    return (
        images
        | 'Bands' >> beam.ParDo(_BandMembers(self._max_distance + 1)).with_output_types(
            Tuple[str, Any])
        | 'Buckets' >> beam.GroupByKey()
        | 'Compare' >> beam.ParDo(
            _BucketEdges(self._namespace, self._max_distance, self._max_bucket))
        | 'Distinct' >> beam.Distinct())


class NearDuplicateGroups(beam.PTransform):
  """(image_id, info) -> (member_id, (kept_id, distance)) for each image a near duplicate
  group does not keep; few (duplicates only), fit for a side input."""

  def __init__(self, namespace: str, max_distance: int = DEFAULT_MAX_DISTANCE,
               max_bucket: int = DEFAULT_MAX_BUCKET):
    super().__init__()
    self._edges = NearDuplicateEdges(namespace, max_distance, max_bucket)

  def expand(self, images):
    return (
        images
        | 'Edges' >> self._edges
        | 'Components' >> beam.CombineGlobally(_Components())
        | 'Members' >> beam.FlatMap(lambda members: members))


class _KeepBestCopy(beam.DoFn):
  """(sha256, copies) -> the best-ranked copy; the others are rejects. Two passes over the
  copies (runners can re-iterate a group) so a hot key never sits in memory."""

  def __init__(self, namespace: str):
    self._duplicates = Metrics.counter(namespace, 'duplicates_exact')

  def process(self, keyed):
    _, copies = keyed
    best = best_rank = None
    for element in copies:
      rank = keep_rank(*element)
      if best is None or rank < best_rank:
        best, best_rank = element, rank
    yield best
    kept_id = best[0]
    skipped = False
    for image_id, info in copies:
      if image_id == kept_id and not skipped:
        skipped = True  # the kept copy itself (a repeated id would still be a reject)
        continue
      self._duplicates.inc()
      yield beam.pvalue.TaggedOutput(
          REJECTS, (image_id, info, kept_id, 'exact duplicate of %s' % kept_id))


class ExactDuplicates(beam.PTransform):
  """(image_id, info) -> (kept, rejects): one image per `info.sha256` (and scope), by
  `keep_rank`."""

  def __init__(self, namespace: str):
    super().__init__()
    self._namespace = namespace

  def expand(self, images):
    _require_bounded(images, 'ExactDuplicates')
    result = (
        images
        | 'BySha256' >> beam.Map(lambda e: (scope_of(e[1]) + '@' + e[1].sha256, e))
        .with_output_types(
            Tuple[str, Any])
        | 'Group' >> beam.GroupByKey()
        | 'KeepBest' >> beam.ParDo(_KeepBestCopy(self._namespace)).with_outputs(
            REJECTS, main=KEPT))
    return result[KEPT], result[REJECTS]


class _SplitNear(beam.DoFn):

  def __init__(self, namespace: str):
    self._duplicates = Metrics.counter(namespace, 'duplicates_near')

  def process(self, element, kept_of):
    image_id, info = element
    found = kept_of.get(image_id)
    if found is None:
      yield element
      return
    kept_id, distance = found
    self._duplicates.inc()
    yield beam.pvalue.TaggedOutput(REJECTS, (
        image_id, info, kept_id, 'near duplicate of %s (%d bits)' % (kept_id, distance)))


def _split_near(images, groups, namespace: str):
  result = images | 'SplitNear' >> beam.ParDo(
      _SplitNear(namespace), beam.pvalue.AsDict(groups)).with_outputs(REJECTS, main=KEPT)
  return result[KEPT], result[REJECTS]


class NearDuplicates(beam.PTransform):
  """(image_id, info) -> (kept, rejects): one image per group of pHashes linked by
  distances <= max_distance bits (transitively), by `keep_rank`."""

  def __init__(self, namespace: str, max_distance: int = DEFAULT_MAX_DISTANCE,
               max_bucket: int = DEFAULT_MAX_BUCKET):
    super().__init__()
    self._namespace = namespace
    self._groups = NearDuplicateGroups(namespace, max_distance, max_bucket)

  def expand(self, images):
    _require_bounded(images, 'NearDuplicates')
    groups = images | 'Groups' >> self._groups
    return _split_near(images, groups, self._namespace)


def _repoint(reject, kept_of):
  """An exact copy of an image that a near group did not keep -> a reject of that group's."""
  image_id, info, exact_id, detail = reject
  found = kept_of.get(exact_id)
  if found is None:
    return reject
  kept_id, distance = found  # the copy has the pixels, so the pHash, of exact_id
  return image_id, info, kept_id, '%s, which is a near duplicate of %s (%d bits)' % (
      detail, kept_id, distance)


class Duplicates(beam.PTransform):
  """(image_id, info) -> (kept, rejects): exact, then near duplicates; every reject's
  kept_id is a kept image."""

  def __init__(self, namespace: str, max_distance: int = DEFAULT_MAX_DISTANCE,
               max_bucket: int = DEFAULT_MAX_BUCKET):
    super().__init__()
    self._namespace = namespace
    self._exact = ExactDuplicates(namespace)
    self._groups = NearDuplicateGroups(namespace, max_distance, max_bucket)

  def expand(self, images):
    _require_bounded(images, 'Duplicates')
    distinct, exact_rejects = images | 'Exact' >> self._exact
    groups = distinct | 'NearGroups' >> self._groups
    kept, near_rejects = _split_near(distinct, groups, self._namespace)
    exact_rejects = exact_rejects | 'Repoint' >> beam.Map(
        _repoint, beam.pvalue.AsDict(groups))
    return kept, (exact_rejects, near_rejects) | 'Rejects' >> beam.Flatten()
