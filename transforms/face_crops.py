"""face_dataset's image steps: decode and hash, detect and filter in batches, crop.

Memory is bounded by the batch, not by the photos: the detect step keeps only a working copy
of each image (at most the detector's `max_input_px`, 1024 by default, the size Vision gets
anyway), and the crop step decodes the original again, one image at a time, for the faces
that were kept. Re-decoding kept images costs a little CPU; holding sixteen 12-megapixel
photos per DoFn thread would cost gigabytes.

The original bytes, not pixels, travel between steps (through the duplicate and balance
shuffles): they are 10-50 times smaller than the decoded image and they are what a dead
letter must hold.
"""
import time
from typing import Iterable, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import face_detect, images
from transforms.deadletter import TryParDo, dead_letter
from transforms.face_detect import DetectedFace, Detection
from transforms.image_inputs import ERRORS, REJECTS, count_reject, reject_row
from transforms.records import Record


class ImageItem(NamedTuple):
  """A decoded image's identity and its original bytes. `sha256`, `phash`, `width` and
  `height` are what `image_dedupe.Duplicates` reads."""
  sha256: str
  phash: int
  width: int
  height: int
  source: str
  label: str
  data: bytes
  format: str
  exif_rotated: bool
  scope: str = ''  # duplicates are looked for within a scope: '' for folders, the label for lists
  list_rect: Optional[Tuple[int, int, int, int]] = None  # a URL list's box of the person


def item_record(item: ImageItem) -> Record:
  """The image as a dead letter: its bytes and where it came from."""
  return Record(item.data, item.source)


class _DecodeImage(beam.DoFn):
  """Record (bytes, ImageMeta) -> (image_id, ImageItem); RecordError for non-images."""

  def __init__(self, max_bytes: int):
    self._max_bytes = max_bytes

  def process(self, record: Record):
    decoded = images.decode(record.payload, max_bytes=self._max_bytes)
    meta = record.value
    listed = meta.list_rect is not None
    yield meta.image_id, ImageItem(
        images.pixel_sha256(decoded.image), images.phash(decoded.image), decoded.width,
        decoded.height, record.source, meta.label, record.payload, decoded.format,
        decoded.exif_rotated, meta.label if listed else '', meta.list_rect)


class DecodeImages(beam.PTransform):
  """Image Records -> ((image_id, ImageItem), error rows of stage `decode`)."""

  def __init__(self, job: str, max_bytes: int = images.MAX_BYTES, clock=time.time):
    super().__init__()
    self._job = job
    self._max_bytes = max_bytes
    self._clock = clock

  def expand(self, records):
    return records | 'Decode' >> TryParDo(_DecodeImage(self._max_bytes), self._job, 'decode',
                                          self._clock)


class FaceFilter(NamedTuple):
  """The step-4 checks (see `face_detect.reject_reason`)."""
  max_faces: int = 1
  max_angle: float = 20.0
  reject_labels: Tuple[str, ...] = ('sunglasses',)
  min_face_px: int = 32
  min_confidence: float = 0.5

  def reason(self, detection: Detection) -> Optional[Tuple[str, str]]:
    return face_detect.reject_reason(detection, self.max_faces, self.max_angle,
                                     self.reject_labels, self.min_face_px,
                                     self.min_confidence)

  def judge(self, detection: Detection, rect: Optional[Sequence[int]] = None
            ) -> Tuple[Optional[DetectedFace], Optional[Tuple[str, str]]]:
    """(the face to crop, None) or (None, (reason, detail)).

    The face is the largest confident one (with max_faces 1, the only one). With a URL
    list's `rect` (the person's face in the photo) it is the confident face overlapping the
    rect most, and a `rect_mismatch` reject when none covers at least MIN_RECT_OVERLAP of
    the smaller box: the detector found someone else, and the crop would carry the wrong
    person's label.
    """
    rejected = self.reason(detection)
    if rejected:
      return None, rejected
    faces = [f for f in detection.faces if f.confidence >= self.min_confidence]
    if rect is None:
      return min(faces, key=lambda f: (-_area(f.box), -f.confidence, f.box)), None
    best = min(faces, key=lambda f: (-overlap(f.box, rect), -f.confidence, f.box))
    share = overlap(best.box, rect)
    if share < MIN_RECT_OVERLAP:
      return None, (RECT_MISMATCH, 'no face overlaps the list\'s rect %s: best %.2f of the '
                    'smaller box < %g' % (','.join(str(v) for v in rect), share,
                                          MIN_RECT_OVERLAP))
    return best, None


RECT_MISMATCH = 'rect_mismatch'
MIN_RECT_OVERLAP = 0.5


def _area(box: Sequence[float]) -> float:
  left, top, right, bottom = box
  return max(0, right - left) * max(0, bottom - top)


def overlap(a: Sequence[float], b: Sequence[float]) -> float:
  """The intersection of two boxes as a share of the smaller one (0 when either is
  empty): detectors and lists frame a face differently, so IoU would punish a box that
  merely includes more forehead."""
  smaller = min(_area(a), _area(b))
  if smaller <= 0:
    return 0.0
  inter = (max(0, min(a[2], b[2]) - max(a[0], b[0]))
           * max(0, min(a[3], b[3]) - max(a[1], b[1])))
  return inter / smaller


class Candidate(NamedTuple):
  """An image whose detection passed the filter: the face to crop, in original pixels."""
  image_id: str
  item: ImageItem
  face: DetectedFace
  faces: int  # confident faces found
  detector: str


class _DetectBatch(beam.DoFn):
  """A batch of (image_id, ImageItem) -> Candidates, reject rows, error rows.

  One detector call per batch: the Vision detector sends it as one images:annotate request
  (up to 16 images and 10 MB), so request count and per-request overhead drop with it.
  """

  def __init__(self, job: str, detector, face_filter: FaceFilter, clock):
    self._job = job
    self._detector = detector
    self._filter = face_filter
    self._clock = clock
    self._detected = Metrics.counter(job, 'images_detected')

  def setup(self):
    self._detector.setup()

  def teardown(self):
    self._detector.close()

  def _error(self, stage: str, error: str, item: ImageItem):
    return beam.pvalue.TaggedOutput(ERRORS, dead_letter(
        self._job, stage, error, item_record(item), self._clock()))

  def process(self, batch: Iterable[Tuple[str, ImageItem]]):
    work = []  # (image_id, item, working copy)
    for image_id, item in batch:
      try:
        copy = self._working_copy(item)
      except Exception as e:  # decoded once already; a failure here is still this image's
        yield self._error('detect', 'cannot prepare image: %s: %s' % (type(e).__name__, e),
                          item)
        continue
      work.append((image_id, item, copy))
    if not work:
      return
    # A file whose pixels the working copy is, unscaled and upright, may be uploaded as is.
    originals = [item.data if copy.size == (item.width, item.height)
                 and face_detect.uploadable_as_is(item.format, item.exif_rotated) else None
                 for _, item, copy in work]
    results = self._detector.detect([copy for _, _, copy in work], originals)
    self._report_stats()
    for (image_id, item, copy), result in zip(work, results, strict=True):
      if isinstance(result, Exception):
        yield self._error('detect', '%s: %s' % (type(result).__name__, result), item)
        continue
      self._detected.inc()
      detection = face_detect.to_original(result, copy.size, (item.width, item.height))
      face, rejected = self._filter.judge(detection, item.list_rect)
      if rejected:
        reason, detail = rejected
        yield beam.pvalue.TaggedOutput(REJECTS, count_reject(self._job, reject_row(
            item.source, item.label, reason, detail, image_id=image_id)))
        continue
      confident = sum(1 for f in detection.faces if f.confidence >= self._filter.min_confidence)
      yield Candidate(image_id, item, face, confident, detection.detector)

  def _working_copy(self, item: ImageItem):
    image = images.decode(item.data, max_bytes=len(item.data)).image
    max_px = self._detector.max_input_px
    return image if max_px is None else images.downscale(image, max_px)[0]

  def _report_stats(self):
    for name, total in self._detector.stats().items():
      if total:
        Metrics.counter(self._job, '%s_%s' % (self._detector.name, name)).inc(total)


class DetectFaces(beam.PTransform):
  """(image_id, ImageItem) -> (Candidates, reject rows, error rows of stage `detect`)."""

  def __init__(self, job: str, detector, face_filter: FaceFilter = FaceFilter(),
               batch_size: int = 16, clock=time.time):
    super().__init__()
    self._fn = _DetectBatch(job, detector, face_filter, clock)
    self._batch_size = batch_size

  def expand(self, items):
    result = (
        items
        # Fixed-size batches (not Beam's adaptive ones, which start at 1): each is one
        # Vision request, so requests = ceil(images / batch_size) per bundle.
        | 'Batch' >> beam.BatchElements(min_batch_size=self._batch_size,
                                        max_batch_size=self._batch_size)
        | 'Detect' >> beam.ParDo(self._fn).with_outputs(REJECTS, ERRORS, main='candidates'))
    return result.candidates, result[REJECTS], result[ERRORS]


def crop_face(data: bytes, box: Sequence[float], margin: float, size: int,
              quality: int = 90) -> bytes:
  """The face of the image `data` as a size x size JPEG: the box grown by `margin` (x its
  width/height each side) and clamped to the image, squared about its centre, LANCZOS."""
  image = images.decode(data, max_bytes=len(data)).image  # its size was accepted already
  grown = images.crop_box(box, margin, image.width, image.height)
  return images.to_jpeg(images.crop_resize(image, grown, size), quality)

