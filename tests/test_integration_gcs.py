"""face_dataset reading photos from and writing crops, index files and tables to gs:// on the
GCS emulator, through Beam's own GCS filesystem; read back with the storage client."""
import glob
import json
import os
import subprocess
import sys

import pytest

from localcloud import clients

from tests.emulator_fixtures import cloud  # noqa: F401 (the session fixture)

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, 'pipelines', 'samples', 'face_dataset')


def _ndjson(bucket, prefix):
  rows = []
  for blob in bucket.list_blobs(prefix=prefix):
    rows += [json.loads(line) for line in blob.download_as_text().splitlines() if line]
  return rows


def test_face_dataset_from_and_to_gcs(cloud, tmp_path):  # noqa: F811
  client = clients.storage()
  bucket = client.create_bucket('faces-it')
  photos = sorted(glob.glob(os.path.join(SAMPLE, '*', '*')))
  for path in photos:
    bucket.blob('photos/' + os.path.relpath(path, SAMPLE)).upload_from_filename(path)

  done = subprocess.run(
      [sys.executable, '-m', 'pipelines', 'face_dataset', '--input', 'gs://faces-it/photos/*/*',
       '--output', 'gs://faces-it/faces', '--balance'],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
      timeout=600)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

  faces = _ndjson(bucket, 'faces/faces/')
  rejects = _ndjson(bucket, 'faces/rejects/')
  errors = _ndjson(bucket, 'faces/errors/')
  assert (len(faces), len(rejects), len(errors)) == (20, 13, 2)
  assert len(photos) == len(faces) + len(rejects) + len(errors)  # nothing lost
  assert {row['label'] for row in faces} == {'eileen_collins', 'grace_hopper'}
  crops = {blob.name for blob in bucket.list_blobs(prefix='faces/')
           if blob.name.endswith('.jpg')}
  assert len(crops) == 20
  index = {}
  for split in ('training', 'validate'):
    lines = bucket.blob('faces/%s_file.txt' % split).download_as_text().splitlines()
    index[split] = lines
    for line in lines:
      path, label = line.rsplit(',', 1)
      assert 'faces/' + path in crops and path.startswith(split + '/' + label + '/')
  assert len(index['training']) + len(index['validate']) == 20
  assert bucket.blob('faces/labels.txt').download_as_text().split() == [
      'eileen_collins', 'grace_hopper']
  metrics = json.loads(bucket.blob('faces/_metrics.json').download_as_text())['counters']
  assert metrics['images_read'] == len(photos)
  assert metrics['rows_faces'] == 20
