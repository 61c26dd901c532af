"""Face detectors for `face_dataset` behind one call, and the filter its step 4 applies.

`LocalDetector` (OpenCV's bundled Haar cascades, offline) and `VisionDetector` (Cloud Vision
through `transforms.vision_api`) both turn a batch of PIL images into one `Detection` per
image, or an Exception in its place, so the job dead-letters both backends the same way. Both
look at the image scaled to at most 1024 px on the long side (Vision's upload; Haar's working
copy) and report boxes in the ORIGINAL image's pixels. They follow the sentiment backends'
life cycle (`transforms.sentiment`): `setup()` in DoFn.setup, `detect(batch)`, `close()` in
DoFn.teardown, `stats()` for Beam counters.

`reject_reason` is the filter: one (reason, detail) per rejected detection, None to keep it.

Roll sign: Cloud Vision documents `rollAngle` only as "clockwise/anti-clockwise rotation ...
relative to the image vertical", range [-180, 180], without saying which sign is which.
`LocalDetector` measures roll in image coordinates (y down): the angle of the line from the
eye on the image's left to the eye on its right, so POSITIVE = the face turned CLOCKWISE as
seen on screen (its image-right eye lower). The filter compares |roll| only, so the two
backends agree where it matters even if Vision's sign were the other way.
"""
import io
import math
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from transforms import images
from transforms.shared_api import SharedApi

FACE_CASCADE = 'haarcascade_frontalface_default.xml'
EYE_CASCADE = 'haarcascade_eye.xml'
UPLOAD_JPEG_QUALITY = 90

# levelWeight -> confidence: logistic((w - MIDPOINT) / SCALE). Measured with OpenCV 4.14's
# frontal cascade at scale_factor=1.1, min_neighbors=5: the 100 faces of scikit-image's
# lfw_subset (25 px, enlarged to 100 px) gave weights from 1.8 (5th percentile 4.2, median
# 7.3; 97 found); false positives in its non-face photos 0.15 (cells) to 3.5 (Greek coins,
# heads in profile); the astronaut fixture 5.8. So 4.0 maps to 0.5, the astronaut to 0.86,
# those coins to <= 0.38, a median face to 0.96.
LEVEL_WEIGHT_MIDPOINT = 4.0
LEVEL_WEIGHT_SCALE = 1.0
EYE_FACE_PX = 160  # eyes are searched on the face scaled to at most this width: fast, stable


API_KEY_ENV = 'VISION_API_KEY'


class DetectedFace(NamedTuple):
  box: Tuple[int, int, int, int]  # (left, top, right, bottom), original pixels, exclusive
  roll: Optional[float]           # degrees; None = unknown
  pan: Optional[float]
  tilt: Optional[float]
  confidence: float               # [0, 1]


class Detection(NamedTuple):
  faces: Tuple[DetectedFace, ...]
  labels: Tuple[str, ...]  # lower-case
  detector: str            # 'local' or 'vision'


def _rgb_or_gray(image: Image.Image) -> Image.Image:
  """The image as RGB or L (what JPEG and OpenCV take); other modes via `images.to_rgb`."""
  return image if image.mode in ('RGB', 'L') else images.to_rgb(image)


def _working_copy(image: Image.Image, max_px: Optional[int]) -> Tuple[Image.Image, float]:
  """(copy at most max_px on the long side, scale); None: the image itself."""
  return (image, 1.0) if max_px is None else images.downscale(image, max_px)


def _clamped_box(box: Sequence[float], fx: float, fy: float, width: int, height: int
                 ) -> Tuple[int, int, int, int]:
  """A box of a scaled copy in the original's pixels (fx, fy = original / copy size)."""
  left, top, right, bottom = box
  return (min(max(round(left * fx), 0), width), min(max(round(top * fy), 0), height),
          min(max(round(right * fx), 0), width), min(max(round(bottom * fy), 0), height))


def to_original(detection: Detection, copy_size: Tuple[int, int],
                size: Tuple[int, int]) -> Detection:
  """A detection made on a scaled copy (`copy_size`) with its boxes in the pixels of the
  original (`size`), clamped to it."""
  (width, height), (copy_w, copy_h) = size, copy_size
  fx, fy = width / copy_w, height / copy_h
  return detection._replace(faces=tuple(
      face._replace(box=_clamped_box(face.box, fx, fy, width, height))
      for face in detection.faces))


def haar_confidence(level_weight: float) -> float:
  """A Haar detection's last-stage score (levelWeight) squashed into [0, 1], monotone.

  Haar cascades give no calibrated probability: this is only a ranking score scaled so
  that 0.5 separates the measured faces from the measured false positives (see
  LEVEL_WEIGHT_MIDPOINT); it moves with the cascade file and the detection parameters.
  """
  z = (float(level_weight) - LEVEL_WEIGHT_MIDPOINT) / LEVEL_WEIGHT_SCALE
  return round(1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0))), 4)


class LocalDetector:
  """OpenCV Haar cascades: offline, the default for bundled runs. Not thread-safe (OpenCV
  classifiers hold scratch state): one per DoFn instance, which Beam gives each thread.

  Faces come best first (by confidence). Pan and tilt are always None (a frontal cascade
  cannot measure them), and labels are () (Haar cannot tell sunglasses). Detection runs on a
  copy at most `max_detect_px` on the long side (None: full size): the astronaut enlarged to
  3000 x 3000 took 2.7 s at full size and gave 6 false positives, 0.5 s and 2 (weak) this
  way. Faces under ~24 px in that copy are missed, as Vision misses them on its upload.
  """

  name = 'local'

  def __init__(self, min_face_px: int = 32, scale_factor: float = 1.1, min_neighbors: int = 5,
               max_detect_px: Optional[int] = 1024):
    if min_face_px < 1 or scale_factor <= 1.0 or min_neighbors < 0:
      raise ValueError('need min_face_px >= 1, scale_factor > 1, min_neighbors >= 0')
    self.min_face_px = min_face_px
    self.scale_factor = scale_factor
    self.min_neighbors = min_neighbors
    self.max_detect_px = max_detect_px
    self._faces = None
    self._eyes = None

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_faces'] = state['_eyes'] = None  # classifiers don't pickle; setup() reloads
    return state

  def setup(self) -> None:
    import cv2
    folder = getattr(getattr(cv2, 'data', None), 'haarcascades', None)
    if not folder:
      raise RuntimeError('cv2.data.haarcascades is missing: install opencv-python-headless '
                         '(the wheel that bundles the Haar cascade files)')
    loaded = []
    for filename in (FACE_CASCADE, EYE_CASCADE):
      path = os.path.join(folder, filename)
      if not os.path.isfile(path):
        raise RuntimeError('Haar cascade %s not found in %s' % (filename, folder))
      classifier = cv2.CascadeClassifier(path)
      if classifier.empty():
        raise RuntimeError('Haar cascade %s could not be loaded' % path)
      loaded.append(classifier)
    self._faces, self._eyes = loaded

  def close(self) -> None:
    self._faces = self._eyes = None

  @property
  def max_input_px(self) -> Optional[int]:
    """Images at most this long are detected as they are (callers may downscale first)."""
    return self.max_detect_px

  def stats(self) -> dict:
    return {}

  def detect(self, batch: Sequence[Image.Image], originals: Optional[Sequence[Optional[bytes]]] = None
             ) -> List[Union[Detection, Exception]]:
    """`originals` is accepted for the detectors' common call and not needed here."""
    if self._faces is None:
      self.setup()
    out: List[Union[Detection, Exception]] = []
    for image in batch:
      try:
        out.append(self._one(image))
      except Exception as e:  # cv2.error, a broken image: that image's failure only
        out.append(e)
    return out

  def _one(self, image: Image.Image) -> Detection:
    image = _rgb_or_gray(image)
    width, height = image.size
    copy, scale = _working_copy(image, self.max_detect_px)
    gray = np.asarray(copy.convert('L'))
    min_px = max(1, math.ceil(self.min_face_px * scale))
    boxes, _, weights = self._faces.detectMultiScale3(
        gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
        minSize=(min_px, min_px), outputRejectLevels=True)
    fx, fy = width / copy.width, height / copy.height
    faces = []
    for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4).tolist(),
                                    np.asarray(weights).ravel().tolist(), strict=True):
      box = _clamped_box((x, y, x + w, y + h), fx, fy, width, height)
      faces.append(DetectedFace(box, self._roll(image, box), None, None,
                                haar_confidence(weight)))
    faces.sort(key=lambda f: (-f.confidence, f.box))
    return Detection(tuple(faces), (), self.name)

  def _roll(self, image: Image.Image, box: Tuple[int, int, int, int]) -> Optional[float]:
    """Degrees from the eye centres (see the module doc for the sign); None unless one eye is
    found in each half (left/right) of the face's upper half.

    The search covers the top 60% so a rolled face's lower eye still fits in the window;
    eyes whose centre lies below half the face are ignored (nostrils, mouth corners).
    """
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    if w < 2 or h < 2:
      return None
    region = image.crop((left, top, right, top + max(1, round(0.6 * h)))).convert('L')
    factor = min(1.0, EYE_FACE_PX / w)
    if factor < 1.0:
      region = region.resize((max(1, round(region.width * factor)),
                              max(1, round(region.height * factor))), Image.Resampling.BOX)
    fw, fh = w * factor, h * factor
    eyes, _, weights = self._eyes.detectMultiScale3(
        np.asarray(region), scaleFactor=1.05, minNeighbors=3,
        minSize=(max(1, round(fw / 10)),) * 2, maxSize=(max(2, round(fw / 2)),) * 2,
        outputRejectLevels=True)
    best = {}  # side -> (weight, centre)
    for (x, y, ew, eh), weight in zip(np.asarray(eyes).reshape(-1, 4).tolist(),
                                      np.asarray(weights).ravel().tolist(), strict=True):
      cx, cy = x + ew / 2.0, y + eh / 2.0
      if cy > fh / 2.0:
        continue
      side = cx >= fw / 2.0
      if side not in best or weight > best[side][0]:
        best[side] = (weight, (cx, cy))
    if len(best) < 2:
      return None
    (x0, y0), (x1, y1) = best[False][1], best[True][1]
    return round(math.degrees(math.atan2(y1 - y0, x1 - x0)), 2)


UPLOAD_AS_IS_FORMATS = ('JPEG', 'PNG')


def uploadable_as_is(fmt: str, exif_rotated: bool) -> bool:
  """Whether a file of this format can go to Vision as it is: a format the API reads
  whose stored pixels are the upright ones (an EXIF-rotated file is not: its boxes would
  come back in the stored orientation)."""
  return fmt in UPLOAD_AS_IS_FORMATS and not exif_rotated


def prepare_upload(image: Image.Image, max_px: int = 1024, original: Optional[bytes] = None
                   ) -> Tuple[bytes, Tuple[int, int]]:
  """(bytes to upload, their width and height): at most max_px on the long side.

  A JPEG of the image, or `original` -- the file the image was decoded from, if the caller
  vouches it is `uploadable_as_is` -- when the image needs no downscaling and the file is
  no bigger than the JPEG: re-encoding an already small photo at quality 90 makes it larger
  (16% on average in bench/face_dataset.py) and loses a little.
  """
  copy, scale = _working_copy(_rgb_or_gray(image), max_px)
  out = io.BytesIO()
  copy.save(out, 'JPEG', quality=UPLOAD_JPEG_QUALITY)
  if original is not None and scale == 1.0 and len(original) <= out.tell():
    return bytes(original), copy.size
  return out.getvalue(), copy.size


class VisionDetector:
  """Cloud Vision FACE_DETECTION + LABEL_DETECTION, one `VisionApi` per worker process
  (shared by every DoFn instance through `apache_beam.utils.shared`).

  `vision_api_options` go to `VisionApi` (endpoint, api_key, credentials, qps, retries...);
  `max_results` caps faces and labels per image (a label ranked below it is not seen).
  Angles the API leaves out are a real 0.0 (proto3 JSON drops zeros), never None.
  """

  name = 'vision'

  def __init__(self, max_upload_px: int = 1024, max_results: int = 10,
               api_key_env: Optional[str] = API_KEY_ENV, **vision_api_options):
    if max_upload_px < 1 or max_results < 1:
      raise ValueError('max_upload_px and max_results must be >= 1')
    self.max_upload_px = max_upload_px
    self.max_results = max_results
    from transforms.vision_api import VisionApi
    self._shared_api = SharedApi(VisionApi, vision_api_options, api_key_env)
    self._client = None

  def setup(self) -> None:
    self._client = self._shared_api.acquire()

  def close(self) -> None:
    self._client = None  # the shared client lives as long as the process

  @property
  def max_input_px(self) -> Optional[int]:
    """Images at most this long are uploaded as they are (callers may downscale first)."""
    return self.max_upload_px

  def stats(self) -> dict:
    """The process's Vision counts not reported yet (each count is reported once, whichever
    DoFn instance takes it)."""
    return self._client.take_stats() if self._client else {}

  def detect(self, batch: Sequence[Image.Image], originals: Optional[Sequence[Optional[bytes]]] = None
             ) -> List[Union[Detection, Exception]]:
    """`originals[i]`, when not None, is the file `batch[i]` was decoded from, pixels as
    they are (see `prepare_upload`): sent instead of a re-encode when that is smaller."""
    if self._client is None:
      self.setup()
    out: List[Union[Detection, Exception, None]] = [None] * len(batch)
    uploads, sent = [], []  # (original size, uploaded size) of each sent image
    originals = originals or [None] * len(batch)
    for i, (image, original) in enumerate(zip(batch, originals, strict=True)):
      try:
        data, size = prepare_upload(image, self.max_upload_px, original)
      except Exception as e:  # an image Pillow cannot convert: fail it alone
        out[i] = e
        continue
      uploads.append(data)
      sent.append((i, image.size, size))
    results = self._client.api.annotate(uploads, max_results=self.max_results)
    for (i, (width, height), (up_w, up_h)), result in zip(sent, results, strict=True):
      if isinstance(result, Exception):
        out[i] = result
        continue
      labels = tuple(description.lower() for description, _ in result.labels)
      faces = tuple(DetectedFace(f.box, f.roll, f.pan, f.tilt, f.confidence)
                    for f in result.faces)
      out[i] = to_original(Detection(faces, labels, self.name), (up_w, up_h), (width, height))
    return out


def _angle_text(value: float) -> str:
  return ('%.2f' % value).rstrip('0').rstrip('.')


def reject_reason(detection: Detection, max_faces: int = 1, max_angle: float = 20.0,
                  reject_labels: Sequence[str] = ('sunglasses',), min_face_px: int = 32,
                  min_confidence: float = 0.5) -> Optional[Tuple[str, str]]:
  """(reason, detail) for the first check the detection fails, None when it passes.

  Faces under min_confidence do not count: a weak false detection beside a real face (Haar
  finds them in rotated photos) must not reject the image as two faces. Checks, in order:
  `no_face`; `low_confidence` (faces found, none at min_confidence); `too_many_faces` (more
  than max_faces confident ones); `angle` (|roll|, |pan| or |tilt| above max_angle; None =
  unknown passes); `label` (a label equal to one of reject_labels, ignoring case);
  `too_small` (box's shorter side under min_face_px). Limits themselves pass. With
  max_faces > 1 every confident face must pass the per-face checks.
  """
  if not detection.faces:
    return 'no_face', 'no face found'
  faces = [face for face in detection.faces if face.confidence >= min_confidence]
  if not faces:
    best = max(face.confidence for face in detection.faces)
    return 'low_confidence', 'confidence %.4g < min_confidence=%g' % (best, min_confidence)
  if len(faces) > max_faces:
    return 'too_many_faces', '%d faces, max_faces=%d' % (len(faces), max_faces)
  for face in faces:
    over = ['%s %s' % (name, _angle_text(value))
            for name, value in (('roll', face.roll), ('pan', face.pan), ('tilt', face.tilt))
            if value is not None and abs(value) > max_angle]
    if over:
      return 'angle', '%s beyond max_angle=%s' % (', '.join(over), _angle_text(max_angle))
  rejected = {label.lower() for label in reject_labels}
  for label in detection.labels:
    if label.lower() in rejected:
      return 'label', 'label %r is in reject_labels' % label.lower()
  for face in faces:
    left, top, right, bottom = face.box
    if min(right - left, bottom - top) < min_face_px:
      return 'too_small', 'face %dx%d px, min_face_px=%d' % (right - left, bottom - top,
                                                             min_face_px)
  return None
