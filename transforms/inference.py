"""image_inference's pure pieces: which device, top-k, and evaluation against known labels.

No TensorFlow import here (the device check takes the visible GPUs as an argument; model
facts come from the `.keras` file's config.json), so this logic is testable on any machine
and `--help` or a bad option never waits for TensorFlow to load.
"""
import json
import zipfile
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.deadletter import RecordError

DEVICES = ('auto', 'cpu', 'gpu')


class DeviceError(RuntimeError):
  """--device gpu where no GPU is visible: a clear failure, not a silent CPU run."""


def resolve_device(requested: str, gpus: Sequence[str]) -> str:
  """'cpu' or 'gpu' for --device `requested`, given the GPUs TensorFlow sees."""
  if requested not in DEVICES:
    raise ValueError('--device must be one of %s, got %r' % ('|'.join(DEVICES), requested))
  if requested == 'gpu' and not gpus:
    raise DeviceError(
        '--device gpu, but TensorFlow sees no GPU (tf.config.list_physical_devices("GPU") '
        'is empty): check the worker image has CUDA and a GPU build of TensorFlow, and that '
        'the job asked for accelerators (worker_accelerator); or run with --device cpu')
  if requested == 'auto':
    return 'gpu' if gpus else 'cpu'
  return requested


def top_k(probabilities: Sequence[float], labels: Sequence[str], k: int
          ) -> List[Tuple[str, float]]:
  """The k most probable (label, score), highest first; ties by class id."""
  scores = np.asarray(probabilities, dtype=np.float64).ravel()
  if len(scores) != len(labels):
    raise ValueError('the model has %d outputs but there are %d labels' % (
        len(scores), len(labels)))
  if k < 1:
    raise ValueError('k must be >= 1, got %r' % (k,))
  if not np.all(np.isfinite(scores)):
    raise ValueError('the model returned a non-finite score: %r' % (scores.tolist(),))
  order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
  return [(labels[i], round(float(scores[i]), 6)) for i in order]


Confusion = Dict[Tuple[str, str], int]  # (true label, predicted label) -> images


def add_pairs(confusion: Confusion, pairs: Iterable[Tuple[str, str]]) -> Confusion:
  for pair in pairs:
    confusion[pair] = confusion.get(pair, 0) + 1
  return confusion


def _ratio(numerator: int, denominator: int) -> Optional[float]:
  return round(numerator / denominator, 6) if denominator else None


def evaluation_rows(confusion: Confusion, labels: Sequence[str] = ()) -> List[Dict]:
  """One `evaluation` row per label (every label of the model, and any true label outside
  it), with the overall `images` and `accuracy` on each: precision = right / predicted as
  it (None when never predicted), recall = right / truly it (None when support is 0)."""
  images = sum(confusion.values())
  right = sum(count for (truth, predicted), count in confusion.items() if truth == predicted)
  names = list(labels) + sorted({t for t, _ in confusion} - set(labels))
  rows = []
  for label in names:
    hits = confusion.get((label, label), 0)
    support = sum(c for (t, _), c in confusion.items() if t == label)
    predicted = sum(c for (_, p), c in confusion.items() if p == label)
    rows.append({'label': label, 'precision': _ratio(hits, predicted),
                 'recall': _ratio(hits, support), 'support': support,
                 'predicted': predicted, 'images': images,
                 'accuracy': _ratio(right, images)})
  return rows


def confusion_rows(confusion: Confusion) -> List[Dict]:
  """The confusion matrix as `(true_label, predicted_label, count)` rows, non-zero cells."""
  return [{'true_label': t, 'predicted_label': p, 'count': c}
          for (t, p), c in sorted(confusion.items()) if c]



# --- image URIs from Pub/Sub messages ----------------------------------------------------

class NotAnImageEvent(Exception):
  """A message that names no new image (a GCS notification of a delete, say): filtered."""


def uri_from_message(payload, attributes: Optional[Dict[str, str]] = None
                     ) -> Tuple[str, Optional[str]]:
  """(image URI, ground-truth label or None) named by a Pub/Sub message, in any of the forms
  a producer sends:

  - a Cloud Storage notification (attributes `bucketId`, `objectId`, `eventType`): only
    OBJECT_FINALIZE names a new image; other events raise NotAnImageEvent;
  - a JSON object `{"uri": "gs://...", "label": "..."}` (label optional), or a GCS object
    resource `{"bucket": ..., "name": ...}` (a notification's payload without attributes);
  - the URI itself as text.
  RecordError for anything else (not UTF-8, empty, not a gs:// or local path).
  """
  attributes = attributes or {}
  if 'bucketId' in attributes and 'objectId' in attributes:
    event = attributes.get('eventType', 'OBJECT_FINALIZE')
    if event != 'OBJECT_FINALIZE':
      raise NotAnImageEvent('%s of gs://%s/%s' % (event, attributes['bucketId'],
                                                 attributes['objectId']))
    return 'gs://%s/%s' % (attributes['bucketId'], attributes['objectId']), None
  if isinstance(payload, (bytes, bytearray)):
    try:
      payload = bytes(payload).decode('utf-8')
    except UnicodeDecodeError:
      raise RecordError('message is not UTF-8 text') from None
  text = (payload or '').strip()
  label = None
  if text.startswith('{'):
    try:
      value = json.loads(text)
    except ValueError as e:
      raise RecordError('message is not valid JSON: %s' % e) from None
    if isinstance(value.get('uri'), str):
      text, label = value['uri'].strip(), value.get('label')
    elif isinstance(value.get('bucket'), str) and isinstance(value.get('name'), str):
      text = 'gs://%s/%s' % (value['bucket'], value['name'])
    else:
      raise RecordError('JSON message has no "uri" (or "bucket" and "name")')
    if label is not None and not isinstance(label, str):
      raise RecordError('"label" must be text, got %r' % (label,))
  if not text or '\n' in text or ('://' in text and not text.startswith('gs://')):
    raise RecordError('message does not name an image: %r' % text[:200])
  return text, label


# --- what a .keras file says about its model, without TensorFlow -------------------------

def keras_config(model_uri: str) -> Dict[str, Any]:
  """The model's config.json from a `.keras` file (a zip), local or gs://."""
  try:
    with FileSystems.open(model_uri) as fh, zipfile.ZipFile(fh) as archive:
      return json.loads(archive.read('config.json'))
  except (zipfile.BadZipFile, KeyError, ValueError) as e:
    raise ValueError('%s is not a .keras model file: %s' % (model_uri, e)) from None


def keras_output_units(config: Dict[str, Any]) -> Optional[int]:
  """Outputs of the model's last layer when it says (a Dense layer's `units`), else None."""
  layers = config.get('config', {}).get('layers') or []
  units = layers[-1].get('config', {}).get('units') if layers else None
  return units if isinstance(units, int) else None


def keras_input_shape(config: Dict[str, Any]) -> List[Optional[int]]:
  """The model's input shape (batch dimension included) from a `.keras` config: the
  launcher learns the preprocessing size without loading the model."""
  for layer in config.get('config', {}).get('layers', []):
    if layer.get('class_name') == 'InputLayer':
      shape = layer.get('config', {}).get('batch_shape')
      if shape:
        return list(shape)
  shape = config.get('build_config', {}).get('input_shape')
  if shape:
    return list(shape)
  raise ValueError('the model does not say its input shape (no InputLayer)')


def square_rgb_size(shape: List[Optional[int]], model_uri: str) -> int:
  if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or not shape[1]:
    raise ValueError('%s takes %s; image_inference serves models of square RGB images '
                     '(None, size, size, 3)' % (model_uri, shape))
  return int(shape[1])
