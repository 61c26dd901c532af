"""Both face detectors and the step-4 filter: Haar on real photos (scikit-image fixtures in
tests/data/faces), Vision against the local fake server (boxes back in original pixels,
batching, retries, per-image errors), and every reject reason with its boundaries."""
import base64
import io
import math
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from tests.fake_vision_api import FACE_KINDS, FakeVisionApi, draw_face, draw_sunglasses
from transforms.face_detect import (
    DetectedFace, Detection, LocalDetector, VisionDetector, haar_confidence, prepare_upload,
    reject_reason, uploadable_as_is)
from transforms.vision_api import PermanentError

FACES = os.path.join(os.path.dirname(__file__), 'data', 'faces')

# Haar's box for the astronaut (OpenCV 4.14, defaults), measured: (177, 66, 272, 161). One
# step of the detector's 1.1 scale pyramid moves a ~95 px box by ~9 px, so allow 8.
ASTRONAUT_BOX = (177, 66, 272, 161)
BOX_TOLERANCE_PX = 8


def load(name):
  with Image.open(os.path.join(FACES, name)) as image:
    return image.convert('RGB')


@pytest.fixture(scope='module')
def local():
  detector = LocalDetector()
  detector.setup()
  yield detector
  detector.close()


@pytest.fixture(scope='module')
def astronaut():
  return load('astronaut.jpg')


def only_face(detection):
  assert isinstance(detection, Detection), detection
  assert len(detection.faces) == 1, detection
  return detection.faces[0]


# LocalDetector.

def test_local_finds_the_astronaut_face_upright_and_confident(local, astronaut):
  face = only_face(local.detect([astronaut])[0])
  assert all(abs(a - b) <= BOX_TOLERANCE_PX for a, b in zip(face.box, ASTRONAUT_BOX, strict=True))
  assert abs(face.roll) < 6       # measured 3.1: her head leans slightly
  assert face.pan is None and face.tilt is None
  assert face.confidence >= 0.5   # measured 0.86 (levelWeight 5.8)
  assert local.detect([astronaut])[0].labels == ()
  assert local.stats() == {}


def test_local_finds_no_face_in_the_cat_or_the_coffee(local):
  for result in local.detect([load('chelsea.jpg'), load('coffee.jpg')]):
    assert result == Detection((), (), 'local')


def test_local_roll_follows_the_rotation_clockwise_positive(local, astronaut):
  """Pillow's rotate(+15) turns the picture counter-clockwise: roll goes down by ~15."""
  upright = only_face(local.detect([astronaut])[0]).roll
  rotated = local.detect([astronaut.rotate(angle, Image.Resampling.BICUBIC, expand=True)
                          for angle in (-15, 15)])
  # Faces come best first; the rotated picture also has a weak false positive (~0.1-0.2).
  clockwise, counter = (r.faces[0] for r in rotated)
  assert abs(clockwise.roll - 15) < 5 and abs(clockwise.roll - upright - 15) < 3
  assert abs(counter.roll + 15) < 5 and abs(counter.roll - upright + 15) < 3
  for result in rotated:
    assert all(f.confidence < 0.5 for f in result.faces[1:])


def test_local_copes_with_tiny_grayscale_and_odd_inputs(local, astronaut):
  sixteen_bit = Image.fromarray(np.asarray(astronaut.convert('L')).astype(np.uint16) * 257)
  tiny, gray, rgba, deep, broken = local.detect([
      Image.new('RGB', (20, 20), (200, 150, 120)), astronaut.convert('L'),
      astronaut.convert('RGBA'), sixteen_bit, None])
  assert tiny == Detection((), (), 'local')
  assert only_face(gray) == only_face(rgba) == only_face(deep)
  assert only_face(gray).box == only_face(local.detect([astronaut])[0]).box
  assert isinstance(broken, Exception)
  assert local.detect([]) == []


def test_local_maps_boxes_of_a_big_photo_back_to_original_pixels(local, astronaut):
  """A 2048 px photo is searched at 1024 px: the box comes back at twice the size."""
  face = local.detect([astronaut.resize((2048, 2048), Image.Resampling.LANCZOS)])[0].faces[0]
  assert all(abs(a - 4 * b) <= 4 * BOX_TOLERANCE_PX
             for a, b in zip(face.box, ASTRONAUT_BOX, strict=True))
  assert face.confidence >= 0.5 and abs(face.roll) < 6


def test_local_detector_pickles_before_and_after_setup(local, astronaut):
  copy = pickle.loads(pickle.dumps(local))
  assert only_face(copy.detect([astronaut])[0]).box == only_face(local.detect([astronaut])[0]).box


def test_local_setup_says_which_cascade_is_missing(tmp_path, monkeypatch):
  import cv2
  monkeypatch.setattr(cv2.data, 'haarcascades', str(tmp_path))
  with pytest.raises(RuntimeError, match='haarcascade_frontalface_default.xml not found'):
    LocalDetector().setup()


def test_haar_confidence_is_monotone_and_bounded():
  values = [haar_confidence(w) for w in (-1000, -2, 0, 2, 3.5, 4, 5.8, 7.3, 12, 1000)]
  assert values == sorted(values) and 0.0 <= values[0] and values[-1] <= 1.0
  assert haar_confidence(4.0) == 0.5


# VisionDetector.

@pytest.fixture
def fake():
  with FakeVisionApi() as server:
    yield server


def vision(fake, **options):
  for key, value in (('initial_backoff_s', 0.001), ('max_backoff_s', 0.01), ('qps', 1000),
                     ('max_attempts', 3)):
    options.setdefault(key, value)
  detector = VisionDetector(endpoint=fake.endpoint, **options)
  detector.setup()
  return detector


def canvas(size=(3000, 2000), i=0):
  """A smooth gradient, different for each i, with no marker colours in it."""
  width, height = size
  gradient = Image.linear_gradient('L').resize(size)
  return Image.merge('RGB', (gradient, gradient.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
                             Image.new('L', size, (40 + 3 * i) % 120)))


# Odd coordinates, so rounding in the downscale shows.
PLANTED = [((137, 211, 611, 733), 'frontal'), ((1003, 97, 1421, 601), 'natural'),
           ((1789, 251, 2377, 811), 'rolled'), ((211, 1113, 713, 1601), 'turned'),
           ((1031, 1207, 1597, 1903), 'tilted'), ((2411, 1301, 2999, 1999), 'blurry')]


def close_to(box, expected, tolerance):
  return all(abs(a - b) <= tolerance for a, b in zip(box, expected, strict=True))


def test_vision_boxes_come_back_in_original_pixels_with_the_api_angles(fake):
  image = canvas()
  for box, kind in PLANTED:
    draw_face(image, box, kind)
  with_glasses = canvas(i=1)
  draw_face(with_glasses, (1201, 403, 1799, 1187))
  draw_sunglasses(with_glasses, (1201, 403, 1799, 1187))
  small = canvas((640, 480), i=2)
  draw_face(small, (101, 77, 301, 333))
  detector = vision(fake)
  many, glasses, unscaled = detector.detect([image, with_glasses, small])
  tolerance = 3000 / 1024 + 2  # 1 / scale + 2
  assert len(many.faces) == len(PLANTED)
  found = sorted(many.faces)
  for (box, kind), face in zip(sorted(PLANTED), found, strict=True):
    spec = FACE_KINDS[kind]
    assert close_to(face.box, box, tolerance), (kind, face.box, box)
    assert (face.roll, face.pan, face.tilt, face.confidence) == (
        spec.roll, spec.pan, spec.tilt, spec.confidence)
    assert None not in (face.roll, face.pan, face.tilt)  # omitted by the API = a real 0.0
  assert many.labels == ('face',) and many.detector == 'vision'
  assert close_to(only_face(glasses).box, (1201, 403, 1799, 1187), tolerance)
  assert glasses.labels == ('face', 'sunglasses')
  assert reject_reason(glasses) == ('label', "label 'sunglasses' is in reject_labels")
  assert close_to(only_face(unscaled).box, (101, 77, 301, 333), 2)  # sent unscaled, as JPEG
  assert [r.images for r in fake.requests] == [3]


def test_vision_batches_40_big_images_into_3_small_requests(fake, astronaut):
  """3000 x 2000 photos with detail down to the pixel (the astronaut tiled, not enlarged)."""
  photo = Image.new('RGB', (3000, 2000))
  for x in range(0, 3000, 512):
    for y in range(0, 2000, 512):
      photo.paste(astronaut, (x, y))
  batch, original_bytes = [], 0
  for i in range(40):
    image = photo.copy()
    draw_face(image, (100 + 60 * i, 300 + 20 * i, 600 + 60 * i, 900 + 20 * i))
    batch.append(image)
    out = io.BytesIO()
    image.save(out, 'JPEG', quality=90)
    original_bytes += len(base64.b64encode(out.getvalue()))  # as the API would take them
  detector = vision(fake)
  results = detector.detect(batch)
  assert all(len(r.faces) == 1 for r in results)
  assert [r.images for r in fake.requests] == [16, 16, 8]  # ceil(40 / 16) requests
  stats = detector.stats()
  assert (stats['images'], stats['requests'], stats['attempts']) == (40, 3, 3)
  uploaded = stats['bytes_uploaded']  # JSON bodies: what went over the wire
  assert uploaded == sum(r.body_bytes for r in fake.requests)
  assert uploaded * 4 < original_bytes, (uploaded, original_bytes)
  assert detector.stats() == {}  # reported once


def test_vision_retries_429_and_loses_nothing(fake):
  batch = []
  for i in range(20):
    image = canvas((1600, 1200), i)
    draw_face(image, (200 + 20 * i, 100, 700 + 20 * i, 700))
    batch.append(image)
  fake.fail(429, times=2)
  detector = vision(fake)
  results = detector.detect(batch)
  assert [len(r.faces) for r in results] == [1] * 20
  assert fake.statuses() == [429, 429, 200, 200]
  stats = detector.stats()
  assert (stats['requests'], stats['attempts'], stats['retries'], stats['annotated']) == (
      2, 4, 2, 20)


def test_vision_puts_an_exception_in_place_of_a_failed_image(fake):
  batch = []
  for i in range(4):
    image = canvas((800, 600), i)
    draw_face(image, (100, 100, 300, 340))
    batch.append(image)
  refused, _ = prepare_upload(batch[1])
  flaky, _ = prepare_upload(batch[2])
  fake.fail_image(refused, code=3, message='Bad image data.', times=None)
  fake.fail_image(flaky, code=14, times=1)  # transient: retried alone
  results = vision(fake).detect(batch[:3] + [None] + batch[3:])
  assert isinstance(results[1], PermanentError) and 'Bad image data' in str(results[1])
  assert isinstance(results[3], Exception)  # not an image: never sent
  for i in (0, 2, 4):
    assert close_to(only_face(results[i]).box, (100, 100, 300, 340), 2)
  assert [r.images for r in fake.requests] == [4, 1]


def test_one_vision_client_per_process_however_many_dofn_instances(fake):
  detector = VisionDetector(endpoint=fake.endpoint, qps=1000)
  copies = [pickle.loads(pickle.dumps(detector)) for _ in range(3)]
  for copy in copies:
    copy.setup()
  assert len({id(copy._client) for copy in copies}) == 1
  copies[0].detect([canvas((64, 48))])
  copies[1].detect([canvas((64, 48), 1)])
  assert copies[2].stats()['requests'] == 2
  assert copies[0].stats() == {}
  for copy in copies:
    copy.close()
  assert copies[0].stats() == {}


def test_upload_is_a_jpeg_at_most_max_px():
  data, size = prepare_upload(canvas((3000, 2000)).convert('RGBA'), 1024)
  with Image.open(io.BytesIO(data)) as image:
    assert (image.format, image.size, size) == ('JPEG', (1024, 683), (1024, 683))


# reject_reason.

def face(box=(0, 0, 100, 100), roll=0.0, pan=0.0, tilt=0.0, confidence=0.9):
  return DetectedFace(box, roll, pan, tilt, confidence)


def detection(*faces, labels=()):
  return Detection(tuple(faces), tuple(labels), 'test')


@pytest.mark.parametrize('found, reason', [
    (detection(), 'no_face'),
    (detection(face(), face()), 'too_many_faces'),
    (detection(face(roll=-20.5)), 'angle'),
    (detection(face(pan=30)), 'angle'),
    (detection(face(tilt=21)), 'angle'),
    (detection(face(), labels=('face', 'Sunglasses')), 'label'),
    (detection(face(box=(10, 10, 41, 200))), 'too_small'),
    (detection(face(confidence=0.49)), 'low_confidence'),
    (detection(face()), None),
])
def test_every_reject_reason(found, reason):
  result = reject_reason(found)
  assert (result and result[0]) == reason
  if result:
    assert result[1]


def test_reasons_are_checked_in_order():
  worst = face(box=(0, 0, 5, 5), roll=45, confidence=0.1)
  labels = ('sunglasses',)
  assert reject_reason(detection(worst, worst, labels=labels)) == (
      'low_confidence', 'confidence 0.1 < min_confidence=0.5')
  worst = worst._replace(confidence=0.9)
  assert reject_reason(detection(worst, worst, labels=labels))[0] == 'too_many_faces'
  assert reject_reason(detection(worst, labels=labels)) == (
      'angle', 'roll 45 beyond max_angle=20')
  assert reject_reason(detection(worst._replace(roll=0), labels=labels))[0] == 'label'
  assert reject_reason(detection(worst._replace(roll=0))) == (
      'too_small', 'face 5x5 px, min_face_px=32')


def test_a_weak_second_face_does_not_count():
  # Haar finds weak false faces beside a real one in rotated photos (0.13-0.22 here).
  assert reject_reason(detection(face(), face(confidence=0.2))) is None
  assert reject_reason(detection(face(roll=40), face(confidence=0.2)))[0] == 'angle'


def test_unknown_angles_pass_and_limits_themselves_pass():
  assert reject_reason(detection(face(roll=None, pan=None, tilt=None))) is None
  assert reject_reason(detection(face(roll=-20.0, pan=20.0, tilt=-20.0))) is None
  assert reject_reason(detection(face(box=(3, 4, 35, 36)))) is None  # exactly 32 x 32
  assert reject_reason(detection(face(box=(3, 4, 34, 36))))[0] == 'too_small'
  assert reject_reason(detection(face(confidence=0.5))) is None
  assert reject_reason(detection(face(roll=math.nextafter(20.0, 21.0))))[0] == 'angle'


def test_options_change_the_limits():
  two = detection(face(), face(confidence=0.3))
  assert reject_reason(two) is None                      # the weak one does not count
  assert reject_reason(two, min_confidence=0.3)[0] == 'too_many_faces'
  assert reject_reason(two, max_faces=2, min_confidence=0.3) is None
  assert reject_reason(detection(face(roll=30)), max_angle=30) is None
  hat = detection(face(), labels=('hat',))
  assert reject_reason(hat) is None
  assert reject_reason(hat, reject_labels=('HAT',))[0] == 'label'
  assert reject_reason(detection(face(box=(0, 0, 20, 20))), min_face_px=20) is None


def test_uploadable_as_is_needs_a_vision_format_stored_upright():
  assert uploadable_as_is('JPEG', False) and uploadable_as_is('PNG', False)
  assert not uploadable_as_is('JPEG', True)  # EXIF-rotated: stored sideways
  assert not uploadable_as_is('GIF', False) and not uploadable_as_is('TIFF', False)
