"""A local Cloud Vision v1 REST server (`POST /v1/images:annotate`) for offline tests.

Answers with the real JSON field names and, like the real API (proto3 JSON), leaves out every
zero-valued field: a vertex at x=0 is `{"y": 10}`, an image with nothing found is `{}`.

Detection is a fixed rule on the decoded pixels, so tests and sample generators plant what the
fake will find (`draw_face`, `draw_sunglasses`):

- a face is a solid MAGENTA (255, 0, 255) rectangle at least 4 x 4 px; its fdBoundingPoly is
  the rectangle (right/bottom are exclusive edges: left + width), its boundingPoly the
  rectangle grown 20% of its width left and right, 45% of its height up and 10% down (a
  framed head, clamped to the image). Keep faces 2 px apart or they merge.
- the face's kind comes from a badge: a solid rectangle over the middle half of the face
  (width/4 in from each side) whose colour picks a row of FACE_KINDS (angles, confidence).
  No badge (all magenta) is 'frontal'. The colour read is the median of the face's central
  quarter, matched to the nearest kind, so it survives JPEG and downscaling.
- a CYAN (0, 255, 255) area of at least 16 px anywhere (the eye band `draw_sunglasses` paints
  inside a face, say) adds the label 'Sunglasses'; any face adds the label 'Face'.
- bytes Pillow cannot decode get the per-image error `{"code": 3, "message": "Bad image data."}`.

Exact answers for unit tests: `respond(image, response)` sends a fixed AnnotateImageResponse
for that image, as given. Faults: `fail` (whole request: HTTP status), `fail_image` (one
image's `error`), `latency_s`, `required_api_key`; `requests` logs what arrived.
"""
import base64
import binascii
import dataclasses
import hashlib
import io
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from tests import fake_http
from tests.fake_http import FailureRule, FakeGoogleApi, HttpRequest, use_once

ANNOTATE_PATH = '/v1/images:annotate'
MAX_IMAGES = 16
MAX_REQUEST_BYTES = 10 * 1024 * 1024

MAGENTA = (255, 0, 255)
CYAN = (0, 255, 255)
MIN_MARKER_PX = 4


class FaceKind(NamedTuple):
  badge: Tuple[int, int, int]
  roll: float = 0.0
  pan: float = 0.0
  tilt: float = 0.0
  confidence: float = 0.98


FACE_KINDS: Dict[str, FaceKind] = {
    'frontal': FaceKind(MAGENTA),                              # passes every filter
    'natural': FaceKind((255, 255, 255), roll=-7.5, pan=12.25, tilt=3.5, confidence=0.87),
    'rolled': FaceKind((255, 255, 0), roll=30.0),              # yellow badge
    'turned': FaceKind((0, 255, 0), pan=-40.0),                # green badge
    'tilted': FaceKind((0, 0, 255), tilt=25.0),                # blue badge
    'blurry': FaceKind((0, 0, 0), confidence=0.3),             # black badge
}

LANDMARKS = (  # (type, x, y as fractions of the face box, z as a fraction of its width)
    ('LEFT_EYE', 0.3, 0.4, 0.0), ('RIGHT_EYE', 0.7, 0.4, 0.0),
    ('MIDPOINT_BETWEEN_EYES', 0.5, 0.4, -0.05), ('NOSE_TIP', 0.5, 0.6, -0.15),
    ('MOUTH_CENTER', 0.5, 0.8, -0.02))

LABELS = {  # description: (mid, score)
    'Face': ('/m/0dzct', 0.97),
    'Sunglasses': ('/m/017ftj', 0.93),
}

STATUS_NAMES = {**fake_http.STATUS_NAMES, 413: 'INVALID_ARGUMENT'}
DEFAULT_MESSAGES = fake_http.default_messages('vision.googleapis.com')
RPC_CODE_NAMES = {3: 'INVALID_ARGUMENT', 4: 'DEADLINE_EXCEEDED', 8: 'RESOURCE_EXHAUSTED',
                  13: 'INTERNAL', 14: 'UNAVAILABLE'}


def content_sha256(image: Union[bytes, str]) -> str:
  """The key `fail`, `fail_image`, `respond` and the request log use: sha256 hex of the
  image bytes (a 64-digit hex string is taken as already hashed)."""
  if isinstance(image, str):
    return image
  return hashlib.sha256(image).hexdigest()


# Planting markers.

def draw_face(image: Image.Image, box: Tuple[int, int, int, int], kind: str = 'frontal') -> None:
  """Paints a face the fake detects at `box` (left, top, right, bottom; right/bottom
  exclusive) with the angles and confidence of FACE_KINDS[kind]."""
  left, top, right, bottom = box
  draw = ImageDraw.Draw(image)
  draw.rectangle((left, top, right - 1, bottom - 1), fill=MAGENTA)
  w, h = right - left, bottom - top
  badge = FACE_KINDS[kind].badge
  if badge != MAGENTA:
    draw.rectangle((left + w // 4, top + h // 4, right - w // 4 - 1, bottom - h // 4 - 1),
                   fill=badge)


def draw_sunglasses(image: Image.Image, box: Tuple[int, int, int, int]) -> None:
  """Paints a cyan eye band inside the face at `box` (clear of its edges and badge)."""
  left, top, right, bottom = box
  w, h = right - left, bottom - top
  ImageDraw.Draw(image).rectangle(
      (left + round(w * 0.15), top + round(h * 0.1), right - round(w * 0.15) - 1,
       top + round(h * 0.22) - 1), fill=CYAN)


# Detection.

class FaceSpec(NamedTuple):
  box: Tuple[int, int, int, int]  # the marker: fdBoundingPoly
  kind: str
  roll: float
  pan: float
  tilt: float
  confidence: float


def _blobs(mask: np.ndarray) -> List[Tuple[int, int, int, int]]:
  """Bounding boxes (left, top, right, bottom; exclusive) of the mask's blobs, in raster order
  of their first pixel: grow a box from that pixel while any mask pixel touches its sides."""
  mask = mask.copy()
  height, width = mask.shape
  boxes = []
  while True:
    first = int(mask.argmax())
    if not mask.flat[first]:
      return boxes
    top, left = divmod(first, width)
    bottom, right = top + 1, left + 1
    grown = True
    while grown:
      grown = False
      lo, hi = max(left - 1, 0), min(right + 1, width)
      if top > 0 and mask[top - 1, lo:hi].any():
        top -= 1
        grown = True
      if bottom < height and mask[bottom, lo:hi].any():
        bottom += 1
        grown = True
      lo, hi = max(top - 1, 0), min(bottom + 1, height)
      if left > 0 and mask[lo:hi, left - 1].any():
        left -= 1
        grown = True
      if right < width and mask[lo:hi, right].any():
        right += 1
        grown = True
    mask[top:bottom, left:right] = False
    boxes.append((left, top, right, bottom))


def _kind(pixels: np.ndarray, box: Tuple[int, int, int, int]) -> str:
  left, top, right, bottom = box
  w, h = right - left, bottom - top
  centre = pixels[top + (3 * h) // 8:top + max((5 * h) // 8, (3 * h) // 8 + 1),
                  left + (3 * w) // 8:left + max((5 * w) // 8, (3 * w) // 8 + 1)]
  colour = np.median(centre.reshape(-1, 3), axis=0)
  return min(FACE_KINDS, key=lambda k: float(np.sum((colour - FACE_KINDS[k].badge) ** 2)))


def detect(image: Image.Image) -> Tuple[List[FaceSpec], List[str]]:
  """(faces, label descriptions) the fake finds in `image`, by the rules in the module doc."""
  pixels = np.asarray(image.convert('RGB')).astype(np.int16)
  r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
  faces = []
  for box in _blobs((r >= 200) & (g <= 80) & (b >= 200)):
    if box[2] - box[0] < MIN_MARKER_PX or box[3] - box[1] < MIN_MARKER_PX:
      continue
    kind = _kind(pixels, box)
    spec = FACE_KINDS[kind]
    faces.append(FaceSpec(box, kind, spec.roll, spec.pan, spec.tilt, spec.confidence))
  labels = ['Face'] if faces else []
  if int(((r <= 80) & (g >= 200) & (b >= 200)).sum()) >= MIN_MARKER_PX ** 2:
    labels.append('Sunglasses')
  return faces, sorted(labels, key=lambda d: -LABELS[d][1])


def _proto3(value: Any) -> Any:
  """Drops zero-valued scalars and empty lists from message fields, as proto3 JSON does;
  messages themselves stay (`{}` in a list, or an empty position)."""
  if isinstance(value, dict):
    return {k: _proto3(v) for k, v in value.items()
            if not (v is None or v == [] or (not isinstance(v, dict) and not v))}
  if isinstance(value, list):
    return [_proto3(v) for v in value]
  return value


def _poly(left: float, top: float, right: float, bottom: float) -> Dict[str, Any]:
  return {'vertices': [{'x': int(x), 'y': int(y)} for x, y in
                       ((left, top), (right, top), (right, bottom), (left, bottom))]}


def face_annotation(face: FaceSpec, width: int, height: int) -> Dict[str, Any]:
  """The FaceAnnotation the fake sends for `face` in a width x height image."""
  left, top, right, bottom = face.box
  w, h = right - left, bottom - top
  head = (max(0, round(left - 0.2 * w)), max(0, round(top - 0.45 * h)),
          min(width, round(right + 0.2 * w)), min(height, round(bottom + 0.1 * h)))
  likely = 'VERY_UNLIKELY'
  return _proto3({
      'boundingPoly': _poly(*head),
      'fdBoundingPoly': _poly(left, top, right, bottom),
      'landmarks': [{'type': name, 'position': {'x': left + fx * w, 'y': top + fy * h,
                                                'z': fz * w}}
                    for name, fx, fy, fz in LANDMARKS],
      'rollAngle': face.roll, 'panAngle': face.pan, 'tiltAngle': face.tilt,
      'detectionConfidence': face.confidence,
      'landmarkingConfidence': round(face.confidence * 0.8, 4),
      'joyLikelihood': likely, 'sorrowLikelihood': likely, 'angerLikelihood': likely,
      'surpriseLikelihood': likely, 'underExposedLikelihood': likely,
      'blurredLikelihood': 'LIKELY' if face.kind == 'blurry' else likely,
      'headwearLikelihood': likely})


def annotate_image(content: bytes, features: Dict[str, int]) -> Dict[str, Any]:
  """The AnnotateImageResponse for one image: `features` maps type -> maxResults."""
  try:
    with Image.open(io.BytesIO(content)) as image:
      image.load()
      width, height = image.size
      faces, labels = detect(image)
  except Exception:  # Pillow raises many kinds for bad data
    return {'error': {'code': 3, 'message': 'Bad image data.'}}
  response: Dict[str, Any] = {}
  if 'FACE_DETECTION' in features:
    response['faceAnnotations'] = [face_annotation(f, width, height)
                                   for f in faces[:features['FACE_DETECTION']]]
  if 'LABEL_DETECTION' in features:
    response['labelAnnotations'] = [
        {'mid': LABELS[d][0], 'description': d, 'score': LABELS[d][1],
         'topicality': LABELS[d][1]} for d in labels[:features['LABEL_DETECTION']]]
  return _proto3(response)


# The server.

@dataclasses.dataclass
class RequestRecord:
  """One request as the server saw it; `status` is set when the answer is sent."""
  t: float                    # time.monotonic() at arrival
  path: str
  query: Dict[str, List[str]]
  api_key: Optional[str]
  authorization: Optional[str]
  body_bytes: int
  images: int
  image_sha256: Tuple[str, ...]
  features: Tuple[Tuple[str, Optional[int]], ...]  # of the first image's request
  in_flight: int
  status: Optional[int] = None


@dataclasses.dataclass
class _ImageFailure:
  code: int
  message: str
  times: Optional[int]


class FakeVisionApi(FakeGoogleApi[RequestRecord]):
  """`with FakeVisionApi() as fake: VisionApi(endpoint=fake.endpoint)`."""
  service = 'vision.googleapis.com'
  status_names = STATUS_NAMES
  default_messages = DEFAULT_MESSAGES
  invalid_key_reason = 'API_KEY_INVALID'

  def __init__(self, latency_s: float = 0.0, required_api_key: Optional[str] = None,
               max_images: int = MAX_IMAGES, max_request_bytes: int = MAX_REQUEST_BYTES):
    super().__init__(latency_s, required_api_key)
    self.max_images = max_images
    self.max_request_bytes = max_request_bytes
    self._image_failures: Dict[str, _ImageFailure] = {}
    self._responses: Dict[str, Dict[str, Any]] = {}

  # Canned answers and fault injection.
  def respond(self, image: Union[bytes, str], response: Dict[str, Any]) -> None:
    """Answer `response` (an AnnotateImageResponse, sent as given) for this image."""
    with self._lock:
      self._responses[content_sha256(image)] = response

  def fail(self, status: int, times: Optional[int] = 1, match: Union[bytes, str, None] = None,
           message: Optional[str] = None, retry_after: Optional[float] = None) -> None:
    """Answer HTTP `status` to the next `times` requests (None: all), or only to those holding
    the image `match` (bytes or sha256). Rules are tried in the order they were added."""
    self._add_failure(FailureRule(
        status, times, None if match is None else content_sha256(match), message, retry_after))

  def fail_image(self, image: Union[bytes, str], code: int = 14,
                 message: str = 'Service temporarily unavailable.',
                 times: Optional[int] = 1) -> None:
    """Give this image the per-image `error` {code, message} the next `times` times."""
    with self._lock:
      self._image_failures[content_sha256(image)] = _ImageFailure(code, message, times)

  def clear_failures(self) -> None:
    with self._lock:
      self._failures.clear()
      self._image_failures.clear()

  # Serving.
  def _take_image_failure(self, sha: str) -> Optional[_ImageFailure]:
    with self._lock:
      rule = self._image_failures.get(sha)
      return rule if rule is not None and use_once(rule) else None

  def _inspect(self, request: HttpRequest) -> Tuple[RequestRecord, Any]:
    body = request.json
    items = body.get('requests') if isinstance(body, dict) else None
    items = items if isinstance(items, list) else []
    contents: List[Optional[bytes]] = []
    for item in items:
      image = item.get('image') if isinstance(item, dict) else None
      content = image.get('content') if isinstance(image, dict) else None
      try:
        contents.append(base64.b64decode(content, validate=True)
                        if isinstance(content, str) else None)
      except (binascii.Error, ValueError):
        contents.append(None)
    shas = tuple(content_sha256(c) for c in contents if c is not None)
    first = items[0] if items and isinstance(items[0], dict) else {}
    features = tuple((f.get('type'), f.get('maxResults'))
                     for f in first.get('features') or () if isinstance(f, dict))
    record = RequestRecord(
        t=request.t, path=request.path, query=request.query, api_key=request.api_key,
        authorization=request.headers.get('Authorization'), body_bytes=len(request.raw),
        images=len(items), image_sha256=shas, features=features, in_flight=0)
    return record, (items, contents, shas)

  def _answer(self, request: HttpRequest, parsed: Any,
              headers: Dict[str, str]) -> Tuple[int, Dict[str, Any]]:
    items, contents, shas = parsed
    key_error = self._key_error(request.api_key)
    if key_error is not None:
      return key_error
    if request.path != ANNOTATE_PATH or request.method != 'POST':
      return self._error(404, 'The requested URL %s was not found on this server.'
                         % request.path)
    if len(request.raw) > self.max_request_bytes:
      return self._error(400, 'Request payload size exceeds the limit: %d bytes.'
                         % self.max_request_bytes)
    if not isinstance(request.json, dict):
      return self._error(400, 'Invalid JSON payload received.')
    failure = self._take_failure(lambda match: match in shas)
    if failure is not None:
      return self._failed(failure, headers)
    if not items:
      return self._error(400, 'No requests specified.')
    if len(items) > self.max_images:
      return self._error(400, 'Too many images per request. Max is %d.' % self.max_images)
    for i, item in enumerate(items):
      image = item.get('image') if isinstance(item, dict) else None
      content = image.get('content') if isinstance(image, dict) else None
      if isinstance(content, str) and contents[i] is None:
        return self._error(400, "Invalid value at 'requests[%d].image.content' (TYPE_BYTES), "
                           'Base64 decoding failed for "%s"' % (i, content[:32]))
    return 200, {'responses': [self._annotate(item, content)
                               for item, content in zip(items, contents, strict=True)]}

  def _annotate(self, item: Any, content: Optional[bytes]) -> Dict[str, Any]:
    if content is None:
      return {'error': {'code': 3, 'message': 'No image present.'}}
    sha = content_sha256(content)
    failure = self._take_image_failure(sha)
    if failure is not None:
      return {'error': {'code': failure.code, 'message': failure.message}}
    with self._lock:
      canned = self._responses.get(sha)
    if canned is not None:
      return canned
    features: Dict[str, int] = {}
    for feature in item.get('features') or ():
      if isinstance(feature, dict) and feature.get('type'):
        features[feature['type']] = int(feature.get('maxResults') or 10)
    if not features:
      return {'error': {'code': 3, 'message': 'No feature specified.'}}
    return annotate_image(content, features)
