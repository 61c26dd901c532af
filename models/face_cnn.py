"""A small Keras CNN that names the person in a face crop, trained on face_dataset's output.

    python -m models.face_cnn train --dataset DIR --model_out PATH.keras
        [--epochs 20] [--batch_size 32] [--seed 0]

`--dataset` is a face_dataset `--output` (local or gs://): `training_file.txt` and
`validate_file.txt` (lines `path,label`, paths relative to the dataset) and `labels.txt`
(line i = class id i). Writes the model (`.keras`, the format Beam's TensorFlow model
handlers load under Keras 3) and `labels.txt` beside it, and prints the validation accuracy.

The input is `transforms.images.model_input`'s: the crop decoded upright as RGB, resized to the model's
size, float32 in [0, 1]. image_inference preprocesses with the same function, so training
and serving cannot drift apart. Training is seeded (weights, shuffling, augmentation, op
determinism): the same data and seed give the same model on the same machine.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms import images
from transforms import dataset_files
from transforms.dataset_files import LABELS_FILE, read_labels, sibling

DEFAULT_SIZE = 96
INDEX_FILES = ('training_file.txt', 'validate_file.txt')


class Example(NamedTuple):
  path: str   # as resolved: the dataset folder joined with the index line's path
  label: str


def _read_text(path: str) -> str:
  with FileSystems.open(path) as fh:
    return fh.read().decode('utf-8')


def read_index(path: str) -> List[Example]:
  """`path,label` lines; a relative path is relative to the index file's folder."""
  return [Example(*entry) for entry in dataset_files.parse_index(path, _read_text(path))]


class Dataset(NamedTuple):
  labels: List[str]
  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray


def load_dataset(folder: str, size: int = DEFAULT_SIZE) -> Dataset:
  """face_dataset's output -> arrays; every index label must be in labels.txt."""
  labels = read_labels(FileSystems.join(folder, LABELS_FILE))
  ids = {label: i for i, label in enumerate(labels)}
  arrays = []
  for name in INDEX_FILES:
    examples = read_index(FileSystems.join(folder, name))
    unknown = sorted({e.label for e in examples} - set(ids))
    if unknown:
      raise ValueError('%s has labels missing from %s: %s' % (name, LABELS_FILE, unknown))
    x = np.zeros((len(examples), size, size, 3), dtype=np.float32)
    for i, example in enumerate(examples):
      with FileSystems.open(example.path) as fh:
        x[i] = images.model_input(fh.read(), size)
    arrays += [x, np.array([ids[e.label] for e in examples], dtype=np.int64)]
  return Dataset(labels, *arrays)


def build_model(size: int, classes: int, seed: int = 0, dropout: float = 0.5):
  """Conv/pool blocks -> dense -> dropout -> softmax over `classes` identities. Takes the
  `images.model_input` array; horizontal flips augment training only."""
  import keras
  from keras import layers
  if classes < 1:
    raise ValueError('need at least one class')
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([
      keras.Input(shape=(size, size, 3), name='face'),
      layers.RandomFlip('horizontal', seed=seed),
      layers.Conv2D(32, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(),
      layers.Conv2D(64, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(),
      layers.Conv2D(128, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(),
      layers.GlobalAveragePooling2D(),
      layers.Dense(128, activation='relu'),
      layers.Dropout(dropout, seed=seed),
      layers.Dense(classes, activation='softmax', name='identity'),
  ], name='face_cnn')
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  return model


def check_model_path(model_out: str) -> None:
  if not model_out.endswith('.keras'):
    raise ValueError('--model_out must end in .keras (the format Keras 3 saves and Beam '
                     'loads), got %r' % model_out)


def save_model(model, labels: Sequence[str], model_out: str) -> Tuple[str, str]:
  """The model at `model_out` (local or gs://, ending in .keras) and labels.txt beside it."""
  check_model_path(model_out)
  labels_path = sibling(model_out, LABELS_FILE)
  if '://' not in model_out:
    os.makedirs(os.path.dirname(os.path.abspath(model_out)), exist_ok=True)
  scratch = tempfile.mkdtemp(prefix='face_cnn_')
  try:
    local = os.path.join(scratch, 'model.keras')
    model.save(local)
    for source, target, mime in ((local, model_out, 'application/octet-stream'),
                                 (None, labels_path, 'text/plain')):
      data = (open(source, 'rb').read() if source
              else ''.join(label + '\n' for label in labels).encode('utf-8'))
      with FileSystems.create(target, mime_type=mime) as fh:
        fh.write(data)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return model_out, labels_path


def train(dataset_dir: str, model_out: str, epochs: int = 20, batch_size: int = 32,
          seed: int = 0, size: int = DEFAULT_SIZE, verbose: int = 0) -> Dict[str, object]:
  """Train on the dataset, save, and return what was learnt (validation accuracy...)."""
  check_model_path(model_out)  # before the training, not after it
  import tensorflow as tf
  tf.config.experimental.enable_op_determinism()
  data = load_dataset(dataset_dir, size)
  if not len(data.x_train):
    raise ValueError('%s has no training images' % dataset_dir)
  model = build_model(size, len(data.labels), seed)
  history = model.fit(
      data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
      validation_data=(data.x_val, data.y_val) if len(data.x_val) else None,
      verbose=verbose)
  report = {
      'labels': data.labels, 'training_images': int(len(data.x_train)),
      'validate_images': int(len(data.x_val)), 'epochs': epochs,
      'training_accuracy': round(float(history.history['accuracy'][-1]), 4),
  }
  if len(data.x_val):
    _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
    report['validation_accuracy'] = round(float(accuracy), 4)
  report['model'], report['labels_file'] = save_model(model, data.labels, model_out)
  return report


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m models.face_cnn', description=__doc__.split(
      '\n\n')[0])
  commands = parser.add_subparsers(dest='command', required=True)
  train_cmd = commands.add_parser('train', help='train on a face_dataset output')
  train_cmd.add_argument('--dataset', required=True,
                         help='face_dataset --output folder (local or gs://)')
  train_cmd.add_argument('--model_out', required=True,
                         help='where to write the .keras model (local or gs://); labels.txt '
                         'is written beside it')
  train_cmd.add_argument('--epochs', type=int, default=20)
  train_cmd.add_argument('--batch_size', type=int, default=32)
  train_cmd.add_argument('--size', type=int, default=DEFAULT_SIZE,
                         help='input size, as face_dataset --size (default 96)')
  train_cmd.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's start-up chatter
  if args.epochs < 1 or args.batch_size < 1 or args.size < 8:
    parser.error('--epochs and --batch_size must be >= 1, --size >= 8')
  try:
    report = train(args.dataset, args.model_out, args.epochs, args.batch_size, args.seed,
                   args.size)
  except (ValueError, OSError) as e:
    print('face_cnn: error: %s' % e, file=sys.stderr)
    return 2
  print(json.dumps(report, indent=2))
  print('validation accuracy: %s' % report.get('validation_accuracy', 'n/a (no validate images)'))
  return 0


if __name__ == '__main__':
  sys.exit(main())
