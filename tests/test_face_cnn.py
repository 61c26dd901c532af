"""models.face_cnn: the input every model sees, reading face_dataset's index files, and a
tiny seeded training run that is reproducible and round-trips through .keras."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from models import face_cnn
from transforms import images
from transforms.deadletter import RecordError


def jpeg(colour, size=(96, 96), **kwargs):
  out = io.BytesIO()
  Image.new('RGB', size, colour).save(out, 'JPEG', quality=95, **kwargs)
  return out.getvalue()


def test_model_input_is_float32_rgb_in_0_1_at_the_model_size():
  x = images.model_input(jpeg((255, 0, 0)), 96)
  assert (x.shape, x.dtype) == ((96, 96, 3), np.float32)
  assert x.min() >= 0.0 and x.max() <= 1.0
  assert abs(float(x[..., 0].mean()) - 1.0) < 0.01 and float(x[..., 2].mean()) < 0.02
  wide = images.model_input(jpeg((0, 0, 255), (200, 100)), 64)  # resized, not cropped
  assert wide.shape == (64, 64, 3)
  gray = io.BytesIO()
  Image.new('L', (30, 30), 128).save(gray, 'PNG')
  assert images.model_input(gray.getvalue(), 32).shape == (32, 32, 3)
  with pytest.raises(RecordError):
    images.model_input(b'<html>not found</html>', 96)


def test_model_input_applies_exif_orientation():
  image = Image.new('RGB', (60, 40), (255, 0, 0))
  image.paste((0, 0, 255), (0, 0, 60, 20))  # blue on top as stored
  exif = Image.Exif()
  exif[0x0112] = 3  # rotate 180: blue ends at the bottom
  out = io.BytesIO()
  image.save(out, 'JPEG', quality=95, exif=exif)
  x = images.model_input(out.getvalue(), 60)
  assert x[5, 30, 0] > 0.9 and x[55, 30, 2] > 0.9


def write_dataset(root, per_label=6, validate=2):
  """Two 'people' a CNN tells apart at once: reddish and bluish noisy squares."""
  rng = np.random.default_rng(0)
  lines = {'training_file.txt': [], 'validate_file.txt': []}
  for label, channel in (('ann', 0), ('bob', 2)):
    os.makedirs(os.path.join(root, 'training', label), exist_ok=True)
    os.makedirs(os.path.join(root, 'validate', label), exist_ok=True)
    for i in range(per_label + validate):
      pixels = rng.integers(0, 90, size=(32, 32, 3), dtype=np.uint8)
      pixels[..., channel] += 160
      split = 'validate' if i >= per_label else 'training'
      relative = '%s/%s/%s-%d.jpg' % (split, label, label, i)
      Image.fromarray(pixels).save(os.path.join(root, *relative.split('/')), quality=95)
      lines[split + '_file.txt'].append('%s,%s' % (relative, label))
  for name, entries in lines.items():
    with open(os.path.join(root, name), 'w') as fh:
      fh.write(''.join(line + '\n' for line in sorted(entries)))
  with open(os.path.join(root, 'labels.txt'), 'w') as fh:
    fh.write('ann\nbob\n')


def test_index_paths_are_relative_to_the_index_file(tmp_path):
  write_dataset(str(tmp_path))
  examples = face_cnn.read_index(str(tmp_path / 'validate_file.txt'))
  assert examples[0] == face_cnn.Example(str(tmp_path / 'validate' / 'ann' / 'ann-6.jpg'),
                                         'ann')
  data = face_cnn.load_dataset(str(tmp_path), 32)
  assert data.labels == ['ann', 'bob']
  assert data.x_train.shape == (12, 32, 32, 3) and data.y_train.tolist() == [0] * 6 + [1] * 6
  assert data.x_val.shape == (4, 32, 32, 3) and data.y_val.tolist() == [0, 0, 1, 1]


def test_an_index_label_missing_from_labels_txt_is_refused(tmp_path):
  write_dataset(str(tmp_path))
  (tmp_path / 'labels.txt').write_text('ann\n')
  with pytest.raises(ValueError, match=r"labels missing from labels.txt: \['bob'\]"):
    face_cnn.load_dataset(str(tmp_path), 32)


def test_the_model_maps_faces_to_a_distribution_over_identities():
  model = face_cnn.build_model(32, 3, seed=1)
  out = model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
  assert out.shape == (2, 3)
  assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
  assert [layer.__class__.__name__ for layer in model.layers][-3:] == [
      'Dense', 'Dropout', 'Dense']


def test_training_is_reproducible_and_the_saved_model_round_trips(tmp_path):
  import keras
  write_dataset(str(tmp_path / 'ds'))
  runs = [face_cnn.train(str(tmp_path / 'ds'), str(tmp_path / name / 'face.keras'),
                         epochs=4, batch_size=4, seed=3, size=32)
          for name in ('a', 'b')]
  assert runs[0]['validation_accuracy'] == 1.0
  assert {k: v for k, v in runs[0].items() if k not in ('model', 'labels_file')} == {
      k: v for k, v in runs[1].items() if k not in ('model', 'labels_file')}
  assert (tmp_path / 'a' / 'labels.txt').read_text() == 'ann\nbob\n'
  x = face_cnn.load_dataset(str(tmp_path / 'ds'), 32).x_val
  a, b = (keras.models.load_model(str(tmp_path / name / 'face.keras')) for name in 'ab')
  pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
  np.testing.assert_array_equal(pa, pb)  # same seed, same data: the same weights
  assert pa.argmax(axis=1).tolist() == [0, 0, 1, 1]


def test_cli_trains_and_reports_and_refuses_bad_paths(tmp_path, capsys):
  write_dataset(str(tmp_path / 'ds'))
  assert face_cnn.main(['train', '--dataset', str(tmp_path / 'ds'), '--model_out',
                        str(tmp_path / 'm' / 'face.keras'), '--epochs', '2', '--size',
                        '32']) == 0
  assert 'validation accuracy: ' in capsys.readouterr().out
  assert os.path.exists(tmp_path / 'm' / 'face.keras')
  assert face_cnn.main(['train', '--dataset', str(tmp_path / 'ds'), '--model_out',
                        str(tmp_path / 'm' / 'face.h5'), '--size', '32', '--epochs', '1']) == 2
  assert 'must end in .keras' in capsys.readouterr().err
