"""VisionApi against a local server speaking the Vision v1 REST API: parsing of real response
shapes (zero fields omitted), batching by count and by bytes, retries, per-image and
per-request errors, the rate limit and credentials as the server sees them."""
import base64
import io
import json
import math
import pickle
import socket
import threading
import time

import google.auth
import numpy as np
import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.oauth2 import credentials as oauth2_credentials
from googleapiclient.errors import HttpError
from PIL import Image

from tests.fake_vision_api import (
    ANNOTATE_PATH, FACE_KINDS, FakeVisionApi, content_sha256, detect, draw_face,
    draw_sunglasses)
from transforms.vision_api import (
    Annotation, Face, Landmark, PermanentError, RetriesExhausted, VisionApi, parse_response)

FEATURES = [{'type': 'FACE_DETECTION', 'maxResults': 10},
            {'type': 'LABEL_DETECTION', 'maxResults': 10}]


@pytest.fixture
def fake():
  with FakeVisionApi() as server:
    yield server


@pytest.fixture
def make_api():
  apis = []

  def make(endpoint, **kwargs):
    kwargs.setdefault('initial_backoff_s', 0.001)
    kwargs.setdefault('max_backoff_s', 0.01)
    kwargs.setdefault('qps', 1000)
    kwargs.setdefault('max_attempts', 3)
    api = VisionApi(endpoint=endpoint, **kwargs)
    apis.append(api)
    return api

  yield make
  for api in apis:
    api.close()


def encode(image, fmt='PNG', **kwargs):
  out = io.BytesIO()
  image.save(out, fmt, **kwargs)
  return out.getvalue()


def photo(i=0, faces=(), sunglasses=(), size=(64, 48)):
  """A PNG with a background unique to `i` (so each image hashes differently) and markers."""
  image = Image.new('RGB', size, (i % 200, (i * 7) % 200, 90))
  for box, kind in faces:
    draw_face(image, box, kind)
  for box in sunglasses:
    draw_sunglasses(image, box)
  return encode(image)


def one_face(i):
  return photo(i, faces=[((8, 6, 40, 42), 'frontal')])


def expected_face(box, kind='frontal'):
  spec = FACE_KINDS[kind]
  return box, spec.roll, spec.pan, spec.tilt, spec.confidence


def summary(face):
  return face.box, face.roll, face.pan, face.tilt, face.confidence


def poly(*xy):
  return {'vertices': [dict(v) for v in xy]}


# Parsing real response shapes.

def test_box_comes_from_fd_bounding_poly_else_bounding_poly(fake, make_api):
  image = photo(1)
  fake.respond(image, {'faceAnnotations': [
      {'boundingPoly': poly({'x': 10, 'y': 5}, {'x': 90, 'y': 5}, {'x': 90, 'y': 100},
                            {'x': 10, 'y': 100}),
       'fdBoundingPoly': poly({'x': 20, 'y': 30}, {'x': 80, 'y': 30}, {'x': 80, 'y': 90},
                              {'x': 20, 'y': 90}),
       'rollAngle': -4.3011084, 'panAngle': 12.5, 'tiltAngle': 3.25,
       'detectionConfidence': 0.93, 'landmarkingConfidence': 0.6,
       'landmarks': [{'type': 'LEFT_EYE', 'position': {'x': 35.5, 'y': 50.25, 'z': 0.1}},
                     {'type': 'NOSE_TIP', 'position': {'x': 50}}],
       'joyLikelihood': 'VERY_UNLIKELY'},
      {'boundingPoly': poly({'x': 100, 'y': 110}, {'x': 140, 'y': 110}, {'x': 140, 'y': 150},
                            {'x': 100, 'y': 150}),
       'detectionConfidence': 0.5}]})
  [annotation] = make_api(fake.endpoint).annotate([image])
  first, second = annotation.faces
  assert first == Face(box=(20, 30, 80, 90), bounding_box=(10, 5, 90, 100), roll=-4.3011084,
                       pan=12.5, tilt=3.25, confidence=0.93, landmarks=(
                           Landmark('LEFT_EYE', 35.5, 50.25, 0.1),
                           Landmark('NOSE_TIP', 50.0, 0.0, 0.0)))
  assert second.box == second.bounding_box == (100, 110, 140, 150)
  assert (second.roll, second.pan, second.tilt, second.landmarks) == (0.0, 0.0, 0.0, ())


def test_missing_vertex_fields_mean_zero(fake, make_api):
  canned = photo(2)
  fake.respond(canned, {'faceAnnotations': [{
      'boundingPoly': poly({}, {'x': 50}, {'x': 50, 'y': 70}, {'y': 70}),
      'fdBoundingPoly': poly({'y': 10}, {'x': 40, 'y': 10}, {'x': 40, 'y': 60}, {'y': 60})}]})
  # The fake's own answer for a face touching the top-left corner leaves x and y out too.
  corner = photo(3, faces=[((0, 0, 30, 24), 'frontal')])
  raw = requests.post(fake.endpoint + ANNOTATE_PATH, timeout=5, json={'requests': [
      {'image': {'content': base64.b64encode(corner).decode()}, 'features': FEATURES}]})
  face = raw.json()['responses'][0]['faceAnnotations'][0]
  assert face['fdBoundingPoly']['vertices'] == [{}, {'x': 30}, {'x': 30, 'y': 24}, {'y': 24}]
  assert face['boundingPoly']['vertices'][0] == {}
  assert 'rollAngle' not in face and 'panAngle' not in face and 'tiltAngle' not in face
  results = make_api(fake.endpoint).annotate([canned, corner])
  assert results[0].faces[0].box == (0, 10, 40, 60)
  assert results[0].faces[0].bounding_box == (0, 0, 50, 70)
  assert summary(results[1].faces[0]) == expected_face((0, 0, 30, 24))


def test_empty_response_is_no_faces(fake, make_api):
  plain = photo(4)
  raw = requests.post(fake.endpoint + ANNOTATE_PATH, timeout=5, json={'requests': [
      {'image': {'content': base64.b64encode(plain).decode()}, 'features': FEATURES}]})
  assert raw.json() == {'responses': [{}]}
  assert make_api(fake.endpoint).annotate([plain]) == [Annotation([], [])]
  assert parse_response({}) == Annotation([], [])
  assert parse_response({'faceAnnotations': [{}]}).faces == [Face((0, 0, 0, 0), None)]


def test_labels(fake, make_api):
  box = (10, 8, 50, 44)
  shades = photo(5, faces=[(box, 'frontal')], sunglasses=[box])
  api = make_api(fake.endpoint)
  [annotation] = api.annotate([shades])
  assert annotation.labels == [('Face', 0.97), ('Sunglasses', 0.93)]
  assert summary(annotation.faces[0]) == expected_face(box)  # the band leaves the face whole
  [faces_only] = api.annotate([shades], features=('FACE_DETECTION',), max_results=3)
  assert faces_only.labels == [] and len(faces_only.faces) == 1
  assert fake.requests[-1].features == (('FACE_DETECTION', 3),)
  [labels_only] = api.annotate([shades], features=('LABEL_DETECTION',))
  assert labels_only.faces == [] and labels_only.labels[1] == ('Sunglasses', 0.93)


def test_planted_faces_come_back_with_their_kinds(fake, make_api):
  kinds = list(FACE_KINDS)
  faces = [((4 + 44 * (k % 3), 4 + 52 * (k // 3), 44 + 44 * (k % 3), 52 + 52 * (k // 3)), kind)
           for k, kind in enumerate(kinds)]
  [annotation] = make_api(fake.endpoint).annotate([photo(6, faces=faces, size=(140, 110))])
  assert [summary(f) for f in annotation.faces] == [expected_face(b, k) for b, k in faces]
  assert annotation.labels == [('Face', 0.97)]


# Per-image errors.

def test_per_image_error_is_permanent_in_place(fake, make_api):
  images = [one_face(0), b'not an image', one_face(2), b'', one_face(4)]
  api = make_api(fake.endpoint)
  results = api.annotate(images)
  assert len(fake.requests) == 1 and fake.requests[0].images == 5
  for i in (0, 2, 4):
    assert summary(results[i].faces[0]) == expected_face((8, 6, 40, 42)), i
  for i in (1, 3):
    assert isinstance(results[i], PermanentError), i
    assert results[i].code == 400 and results[i].attempts == 1
  assert 'Bad image data.' in str(results[1])
  assert api.stats.permanent_failures == 2 and api.stats.annotated == 3


def test_per_image_transient_error_is_resent_alone(fake, make_api):
  images = [one_face(i) for i in range(4)]
  fake.fail_image(images[2], code=14, times=1)
  api = make_api(fake.endpoint)
  results = api.annotate(images)
  assert all(isinstance(r, Annotation) and len(r.faces) == 1 for r in results)
  assert [r.images for r in fake.requests] == [4, 1]
  assert fake.requests[1].image_sha256 == (content_sha256(images[2]),)
  fake.fail_image(images[1], code=14, times=None)
  results = api.annotate(images)
  assert isinstance(results[1], RetriesExhausted) and results[1].attempts == 3
  assert results[1].code == 503
  assert all(isinstance(results[i], Annotation) for i in (0, 2, 3))


# Batching.

def test_forty_images_make_three_requests(fake, make_api):
  images = [one_face(i) for i in range(40)]
  api = make_api(fake.endpoint)
  results = api.annotate(images)
  assert len(fake.requests) == math.ceil(40 / 16) == 3
  assert [r.images for r in fake.requests] == [16, 16, 8]
  # Order kept: request k carries images 16k.. in input order.
  sent = [sha for r in fake.requests for sha in r.image_sha256]
  assert sent == [content_sha256(image) for image in images]
  assert all(summary(r.faces[0]) == expected_face((8, 6, 40, 42)) for r in results)
  stats = api.stats.snapshot()
  assert stats == {'images': 40, 'requests': 3, 'attempts': 3, 'retries': 0, 'splits': 0,
                   'bytes_uploaded': sum(r.body_bytes for r in fake.requests),
                   'annotated': 40, 'faces': 40, 'permanent_failures': 0, 'exhausted': 0}


def test_request_size_cap_forces_smaller_batches(fake, make_api):
  rng = np.random.default_rng(7)
  images = [encode(Image.fromarray(rng.integers(0, 256, (60 + i, 80, 3), dtype=np.uint8)))
            for i in range(7)]  # noise: PNG cannot shrink it, each image is ~15 KB
  entries = [json.dumps({'image': {'content': base64.b64encode(im).decode()},
                         'features': FEATURES}) for im in images]
  cap = len(json.dumps({'requests': [json.loads(e) for e in entries[:2]]})) + 100
  assert len(json.dumps({'requests': [json.loads(e) for e in entries[:3]]})) > cap
  # Greedy packing in order, done here independently of the client.
  expected, batch = [], []
  for i in range(len(images)):
    trial = batch + [i]
    if len(json.dumps({'requests': [json.loads(entries[j]) for j in trial]})) > cap:
      expected.append(batch)
      trial = [i]
    batch = trial
  expected.append(batch)
  api = make_api(fake.endpoint, max_request_bytes=cap)
  results = api.annotate(images)
  assert all(isinstance(r, Annotation) for r in results)  # noise has no faces, but decodes
  assert [r.images for r in fake.requests] == [len(b) for b in expected]
  assert len(fake.requests) > math.ceil(len(images) / 16)
  assert all(r.body_bytes <= cap for r in fake.requests)
  assert [r.body_bytes for r in fake.requests] == [
      len(json.dumps({'requests': [json.loads(entries[j]) for j in b]})) for b in expected]
  assert api.stats.bytes_uploaded == sum(r.body_bytes for r in fake.requests)


def test_image_too_large_for_any_request_is_not_sent(fake, make_api):
  small, big = one_face(0), bytes(3000)
  api = make_api(fake.endpoint, max_request_bytes=2000)
  results = api.annotate([small, big, small])
  assert isinstance(results[1], PermanentError) and results[1].attempts == 0
  assert 'max_request_bytes=2000' in str(results[1])
  assert results[0] == results[2] and isinstance(results[0], Annotation)
  assert [r.images for r in fake.requests] == [2]


def test_empty_input_and_non_bytes(fake, make_api):
  api = make_api(fake.endpoint)
  assert api.annotate([]) == [] and fake.requests == []
  results = api.annotate([one_face(0), 'a path, not bytes'])
  assert isinstance(results[0], Annotation) and isinstance(results[1], PermanentError)
  assert fake.requests[0].images == 1


# Retries.

def test_429_twice_then_success_loses_nothing(fake, make_api):
  images = [one_face(i) for i in range(40)]
  fake.fail(429, times=2)
  api = make_api(fake.endpoint)
  results = api.annotate(images)
  assert fake.statuses() == [429, 429, 200, 200, 200]
  assert [r.images for r in fake.requests] == [16, 16, 16, 16, 8]
  sent = [sha for r in fake.requests[2:] for sha in r.image_sha256]
  assert sent == [content_sha256(image) for image in images]
  assert all(summary(r.faces[0]) == expected_face((8, 6, 40, 42)) for r in results)
  stats = api.stats.snapshot()
  assert (stats['requests'], stats['attempts'], stats['retries'], stats['annotated']) == (
      3, 5, 2, 40)


def test_503_forever_exhausts_only_that_request(fake, make_api):
  images = [one_face(i) for i in range(40)]
  fake.fail(503, times=None, match=images[20])  # in the second request
  api = make_api(fake.endpoint, max_attempts=4)
  results = api.annotate(images)
  assert fake.statuses() == [200, 503, 503, 503, 503, 200]
  for i, result in enumerate(results):
    if 16 <= i < 32:
      assert isinstance(result, RetriesExhausted), i
      assert result.attempts == 4 and result.code == 503
      assert isinstance(result.__cause__, HttpError)
    else:
      assert isinstance(result, Annotation) and len(result.faces) == 1, i
  assert api.stats.exhausted == 16 and api.stats.retries == 3


@pytest.mark.parametrize('status', [500, 502, 504])
def test_server_errors_are_retried(fake, make_api, status):
  fake.fail(status, times=1)
  [result] = make_api(fake.endpoint).annotate([one_face(0)])
  assert isinstance(result, Annotation) and fake.statuses() == [status, 200]


def test_retry_after_is_honoured(fake, make_api):
  fake.fail(429, times=1, retry_after=0.3)
  start = time.monotonic()
  [result] = make_api(fake.endpoint, max_backoff_s=1).annotate([one_face(0)])
  assert isinstance(result, Annotation) and time.monotonic() - start >= 0.3


def test_400_is_permanent(fake, make_api):
  fake.fail(400, times=None, message='Request contains an invalid argument.')
  api = make_api(fake.endpoint)
  [result] = api.annotate([one_face(0)])
  assert isinstance(result, PermanentError)
  assert result.code == 400 and result.attempts == 1
  assert 'Request contains an invalid argument.' in str(result)
  assert isinstance(result.__cause__, HttpError) and fake.statuses() == [400]


def test_400_in_a_batch_is_split_down_to_the_bad_image(fake, make_api):
  images = [one_face(i) for i in range(8)]
  fake.fail(400, times=None, match=images[5])
  api = make_api(fake.endpoint)
  results = api.annotate(images)
  # [0-7] -> [0-3] ok, [4-7] -> [4,5] -> [4] ok, [5] refused; [6,7] ok.
  assert [r.images for r in fake.requests] == [8, 4, 4, 2, 1, 1, 2]
  assert isinstance(results[5], PermanentError) and results[5].code == 400
  assert all(isinstance(results[i], Annotation) for i in range(8) if i != 5)
  assert api.stats.splits == 3 and api.stats.permanent_failures == 1


@pytest.mark.parametrize('status', [401, 403, 404])
def test_auth_and_not_found_fail_the_whole_batch_at_once(fake, make_api, status):
  fake.fail(status, times=None)
  results = make_api(fake.endpoint).annotate([one_face(i) for i in range(3)])
  assert all(isinstance(r, PermanentError) and r.code == status for r in results)
  assert fake.statuses() == [status]


def test_connection_refused_is_retried_then_exhausted(make_api):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  results = make_api('http://127.0.0.1:%d' % port).annotate([one_face(0), one_face(1)])
  assert all(isinstance(r, RetriesExhausted) and r.attempts == 3 and r.code is None
             for r in results)
  assert isinstance(results[0].__cause__, ConnectionRefusedError)


def test_read_timeout_is_retried_then_exhausted(make_api):
  with FakeVisionApi(latency_s=0.4) as fake:
    api = make_api(fake.endpoint, timeout_s=0.1, max_attempts=2)
    [result] = api.annotate([one_face(0)])
    assert isinstance(result, RetriesExhausted) and result.attempts == 2
    assert isinstance(result.__cause__, TimeoutError)
    assert len(fake.requests) == 2
    fake.latency_s = 0
    [result] = api.annotate([one_face(0)])  # a fresh connection after the timeouts
    assert isinstance(result, Annotation)


# Rate limit, measured at the server.

def test_rate_limit_holds_with_retries(fake, make_api):
  fake.fail(429, times=4)
  api = make_api(fake.endpoint, qps=25, max_batch_images=1, max_attempts=6)
  start = time.monotonic()
  results = api.annotate([one_face(i) for i in range(20)])
  elapsed = time.monotonic() - start
  assert all(isinstance(r, Annotation) for r in results)
  assert len(fake.requests) == 24 and api.stats.retries == 4
  assert elapsed >= 23 / 25 - 0.05
  assert fake.max_in_window(1.0) <= 25 + 1  # qps + burst


def test_threads_can_share_an_instance(fake, make_api):
  api = make_api(fake.endpoint, max_batch_images=2)
  out = {}

  def work(t):
    out[t] = api.annotate([one_face(10 * t + i) for i in range(5)])
  threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert all(isinstance(r, Annotation) and len(r.faces) == 1 for t in out for r in out[t])
  assert len(fake.requests) == 4 * 3 and api.stats.annotated == 20


# Credentials.

def test_local_endpoint_needs_no_credentials(fake, make_api, monkeypatch):
  def no_adc(*args, **kwargs):
    raise AssertionError('ADC looked up for a local endpoint')
  monkeypatch.setattr(google.auth, 'default', no_adc)
  [result] = make_api(fake.endpoint).annotate([one_face(0)])
  assert isinstance(result, Annotation)
  [record] = fake.requests
  assert record.authorization is None and record.api_key is None
  assert record.path == ANNOTATE_PATH and record.query == {'alt': ['json']}


def test_remote_endpoint_uses_application_default_credentials(monkeypatch):
  calls = []

  def adc(*args, **kwargs):
    calls.append(kwargs)
    return AnonymousCredentials(), 'project'
  monkeypatch.setattr(google.auth, 'default', adc)
  for endpoint, url in [(None, 'https://vision.googleapis.com/v1/images:annotate?alt=json'),
                        ('eu-vision.googleapis.com',
                         'https://eu-vision.googleapis.com/v1/images:annotate?alt=json')]:
    api = VisionApi(endpoint=endpoint)
    api.connect()  # builds the client from the bundled discovery document: nothing is sent
    assert api._service.images().annotate(body={}).uri == url
    api.close()
  assert calls == [{'scopes': ('https://www.googleapis.com/auth/cloud-platform',)}] * 2


def test_api_key_is_sent(make_api):
  with FakeVisionApi(required_api_key='k-123') as fake:
    [result] = make_api(fake.endpoint, api_key='k-123').annotate([one_face(0)])
    assert isinstance(result, Annotation)
    assert fake.requests[0].api_key == 'k-123' and fake.requests[0].authorization is None
    missing = make_api(fake.endpoint).annotate([one_face(0), one_face(1)])
    assert all(isinstance(r, PermanentError) and r.code == 403 for r in missing)
    # A bad key is a 400 about the request, not an image: no splitting.
    wrong = make_api(fake.endpoint, api_key='nope').annotate([one_face(0), one_face(1)])
    assert all(isinstance(r, PermanentError) and r.code == 400 for r in wrong)
    assert 'API key not valid' in str(wrong[0])
    assert fake.statuses() == [200, 403, 400]


def test_explicit_credentials_are_used(fake, make_api):
  creds = oauth2_credentials.Credentials(token='tok-1')
  make_api(fake.endpoint, credentials=creds).annotate([one_face(0)])
  assert fake.requests[0].authorization == 'Bearer tok-1'


def test_api_key_and_credentials_are_exclusive():
  with pytest.raises(ValueError):
    VisionApi(api_key='k', credentials=AnonymousCredentials())


# Lifecycle and helpers.

def test_instance_pickles_for_a_dofn_and_reconnects(fake):
  api = VisionApi(endpoint=fake.endpoint, qps=50)
  api.annotate([one_face(0)])
  copy = pickle.loads(pickle.dumps(api))
  assert copy.stats.attempts == 0 and copy.qps == 50
  with copy:
    assert isinstance(copy.annotate([one_face(0)])[0], Annotation)
  api.close()


def test_errors_pickle_with_their_details():
  err = pickle.loads(pickle.dumps(RetriesExhausted('503 x4', 4, 503)))
  assert (str(err), err.attempts, err.code) == ('503 x4', 4, 503)


def test_face_scaled_maps_boxes_back_to_the_original():
  face = Face((10, 20, 30, 41), (5, 0, 35, 45), roll=3.0,
              landmarks=(Landmark('NOSE_TIP', 20.0, 30.0, -2.0),))
  big = face.scaled(2.5, 2.0)
  assert big.box == (25, 40, 75, 82) and big.bounding_box == (12, 0, 88, 90)
  assert big.landmarks == (Landmark('NOSE_TIP', 50.0, 60.0, -5.0),) and big.roll == 3.0
  assert Face((1, 2, 3, 4), None).scaled(2, 2).bounding_box is None


# The fake itself.

def test_fake_markers_survive_jpeg_and_downscaling():
  image = Image.new('RGB', (400, 300), (120, 100, 80))
  planted = [((20, 30, 120, 150), 'rolled'), ((150, 40, 250, 160), 'frontal'),
             ((280, 60, 380, 180), 'blurry')]
  for box, kind in planted:
    draw_face(image, box, kind)
  draw_sunglasses(image, planted[1][0])
  small = Image.open(io.BytesIO(encode(image, 'JPEG', quality=85))).resize((200, 150))
  faces, labels = detect(small)
  assert [f.kind for f in faces] == ['rolled', 'frontal', 'blurry']
  for face, (box, _) in zip(faces, planted, strict=True):
    assert all(abs(got - want / 2) <= 2 for got, want in zip(face.box, box, strict=True))
  assert labels == ['Face', 'Sunglasses']


def test_fake_refuses_bad_requests_like_the_api(fake):
  image = {'image': {'content': base64.b64encode(one_face(0)).decode()}, 'features': FEATURES}
  got = requests.post(fake.endpoint + ANNOTATE_PATH, json={'requests': [image] * 17}, timeout=5)
  assert got.status_code == 400 and got.json()['error']['status'] == 'INVALID_ARGUMENT'
  bad = {'image': {'content': '!!not base64!!'}, 'features': FEATURES}
  got = requests.post(fake.endpoint + ANNOTATE_PATH, json={'requests': [image, bad]}, timeout=5)
  assert got.status_code == 400
  assert "Invalid value at 'requests[1].image.content'" in got.json()['error']['message']
  fake.fail(429)
  got = requests.post(fake.endpoint + ANNOTATE_PATH, json={'requests': [image]}, timeout=5)
  assert got.status_code == 429 and got.json()['error']['status'] == 'RESOURCE_EXHAUSTED'
  got = requests.post(fake.endpoint + '/v1/images:nope', json={}, timeout=5)
  assert got.status_code == 404
