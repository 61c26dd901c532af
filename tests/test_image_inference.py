"""image_inference: exact top-k from a model with known weights, keyed results keep their uri,
bad images and failed batches are error rows with nothing lost, evaluation from an index
file, and the options that must stop the job before it runs."""
import io
import json
import os

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pytest
from PIL import Image

from pipelines import image_inference, launch
from pipelines.image_inference import JOB
from tests.tables import assert_written_tables_conform, read_table
from transforms import inference
from transforms.face_model_handler import FaceModelHandler, OnDevice

LABELS = ['red', 'green', 'blue']
COLOURS = {'red': (255, 0, 0), 'green': (0, 255, 0), 'blue': (0, 0, 255),
           'grey': (128, 128, 128), 'black': (0, 0, 0)}
SIZE = 8


def softmax(logits):
  e = np.exp(logits - logits.max())
  return e / e.sum()


def expected_scores(colour):
  """What the known-weights model gives: softmax(10 x the mean of each channel in [0, 1])."""
  return softmax(10.0 * np.asarray(colour, np.float64) / 255.0)


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
  """A model with known weights: the mean colour, x10 per channel, softmax over red, green
  and blue. Saved as .keras with labels.txt beside it."""
  import keras
  folder = tmp_path_factory.mktemp('model')
  model = keras.Sequential([
      keras.Input(shape=(SIZE, SIZE, 3), name='face'),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(3, activation='softmax'),
  ])
  model.layers[-1].set_weights([10.0 * np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
  path = str(folder / 'colours.keras')
  model.save(path)
  (folder / 'labels.txt').write_text(''.join(label + '\n' for label in LABELS))
  return path


def png(colour, size=(SIZE, SIZE)):
  out = io.BytesIO()
  Image.new('RGB', size, colour).save(out, 'PNG')
  return out.getvalue()


def write_images(root):
  """Files by name; returns {name: path}."""
  files = {
      'red.png': png(COLOURS['red']), 'green.png': png(COLOURS['green']),
      'blue.png': png(COLOURS['blue']), 'grey.png': png(COLOURS['grey']),
      'big_blue.png': png(COLOURS['blue'], (40, 24)),  # resized (stretched) to 8 x 8
      'notes.png': b'<html>404</html>', 'cut.png': png(COLOURS['red'], (64, 64))[:60],
  }
  os.makedirs(root, exist_ok=True)
  paths = {}
  for name, data in files.items():
    paths[name] = os.path.join(root, name)
    with open(paths[name], 'wb') as fh:
      fh.write(data)
  return paths


def run(argv):
  image_inference.run(argv + ['--direct_num_workers', '1'], save_main_session=False)


def counters(out):
  with open(os.path.join(str(out), '_metrics.json'), encoding='utf-8') as fh:
    return json.load(fh)['counters']


def test_the_input_size_is_read_from_the_keras_file(model_path):
  config = inference.keras_config(model_path)
  assert inference.keras_input_shape(config) == [None, SIZE, SIZE, 3]
  assert inference.keras_output_units(config) == 3


def test_exact_top_k_keyed_by_uri_and_bad_images_are_errors(model_path, tmp_path):
  paths = write_images(str(tmp_path / 'in'))
  out = tmp_path / 'out'
  run(['--input', str(tmp_path / 'in' / '*.png'), '--output', str(out), '--model', model_path,
       '--top_k', '2'])
  rows = {os.path.basename(r['uri']): r for r in read_table(out, 'predictions')}
  assert sorted(rows) == ['big_blue.png', 'blue.png', 'green.png', 'grey.png', 'red.png']
  for name, colour in (('red.png', 'red'), ('green.png', 'green'), ('blue.png', 'blue'),
                       ('big_blue.png', 'blue')):
    row = rows[name]
    scores = expected_scores(COLOURS[colour])
    order = sorted(range(3), key=lambda i: (-scores[i], i))[:2]
    assert row['uri'] == paths[name]
    assert (row['label'], row['true_label'], row['model']) == (colour, None, model_path)
    assert row['score'] == pytest.approx(scores[order[0]], abs=2e-6)
    top = json.loads(row['top_k'])
    assert [t['label'] for t in top] == [LABELS[i] for i in order]
    assert [t['score'] for t in top] == pytest.approx([scores[i] for i in order], abs=2e-6)
  # grey: all three equal (1/3 each): ties go to the lowest class id.
  assert [t['label'] for t in json.loads(rows['grey.png']['top_k'])] == ['red', 'green']
  errors = {os.path.basename(e['source']): e for e in read_table(out, 'errors')}
  assert sorted(errors) == ['cut.png', 'notes.png']
  assert {e['stage'] for e in errors.values()} == {'preprocess'}
  assert errors['notes.png']['error'].startswith('not an image')
  assert errors['cut.png']['error'].startswith('corrupt image')
  c = counters(out)
  assert c['images_read'] == 7 == c['rows_predictions'] + c['errors']
  assert_written_tables_conform(str(out), JOB)


def test_an_index_file_gives_evaluation_and_a_confusion_matrix(model_path, tmp_path):
  write_images(str(tmp_path / 'ds' / 'validate' / 'x'))
  # Truths as a face_dataset index would give them: big_blue is labelled red (a wrong
  # truth, so the model is "wrong" once), grey is 'dee', a label the model does not know.
  lines = ['validate/x/red.png,red', 'validate/x/green.png,green', 'validate/x/blue.png,blue',
           'validate/x/big_blue.png,red', 'validate/x/grey.png,dee']
  index = tmp_path / 'ds' / 'validate_file.txt'
  index.write_text(''.join(line + '\n' for line in lines))
  out = tmp_path / 'out'
  run(['--input', str(index), '--output', str(out), '--model', model_path])
  predictions = {os.path.basename(r['uri']): (r['true_label'], r['label'])
                 for r in read_table(out, 'predictions')}
  assert predictions == {'red.png': ('red', 'red'), 'green.png': ('green', 'green'),
                         'blue.png': ('blue', 'blue'), 'big_blue.png': ('red', 'blue'),
                         'grey.png': ('dee', 'red')}
  # By hand: 3 of 5 right. red: predicted twice (red, grey), right once, truly red twice
  # (red, big_blue). blue: predicted twice, right once, truly once.
  evaluation = {r['label']: r for r in read_table(out, 'evaluation')}
  assert sorted(evaluation) == ['blue', 'dee', 'green', 'red']
  assert {k: evaluation['red'][k] for k in ('precision', 'recall', 'support', 'predicted')} == {
      'precision': 0.5, 'recall': 0.5, 'support': 2, 'predicted': 2}
  assert (evaluation['blue']['precision'], evaluation['blue']['recall']) == (0.5, 1.0)
  assert (evaluation['green']['precision'], evaluation['green']['recall']) == (1.0, 1.0)
  assert (evaluation['dee']['precision'], evaluation['dee']['recall']) == (None, 0.0)
  assert {(r['images'], r['accuracy']) for r in evaluation.values()} == {(5, 0.6)}
  assert sorted((r['true_label'], r['predicted_label'], r['count'])
                for r in read_table(out, 'confusion')) == [
      ('blue', 'blue', 1), ('dee', 'red', 1), ('green', 'green', 1), ('red', 'blue', 1),
      ('red', 'red', 1)]
  assert_written_tables_conform(str(out), JOB)


class FailingOnBlack(FaceModelHandler):
  """A handler whose model call fails for any batch holding an all-black image."""

  def run_inference(self, batch, model, inference_args=None):
    if any(float(np.asarray(x).max()) == 0.0 for x in batch):
      raise RuntimeError('the accelerator fell over')
    return super().run_inference(batch, model, inference_args)


@pytest.mark.parametrize('batch_size, failed', [
    (1, ['black.png']),  # one image per batch: only the black one is lost to errors
    (64, ['black.png', 'blue.png', 'green.png', 'red.png']),  # one batch: all of it
])
def test_a_failing_batch_becomes_one_error_row_per_image(model_path, tmp_path, batch_size,
                                                         failed):
  root = tmp_path / 'in'
  root.mkdir()
  for name in ('red', 'green', 'blue', 'black'):
    (root / (name + '.png')).write_bytes(png(COLOURS[name]))
  handler = FailingOnBlack(model_path, min_batch_size=batch_size, max_batch_size=batch_size)
  with TestPipeline() as p:
    tables = p | image_inference.ImageInference(
        str(root / '*.png'), model_path, LABELS, SIZE, False, {}, handler=handler)
    assert_that(tables['errors'] | 'ErrorNames' >> beam.Map(
        lambda e: (os.path.basename(e['source']), e['stage'], 'fell over' in e['error'])),
        equal_to([(name, 'inference', True) for name in failed]), label='Errors')
    assert_that(tables['predictions'] | 'Names' >> beam.Map(
        lambda r: os.path.basename(r['uri'])),
        equal_to(sorted({'red.png', 'green.png', 'blue.png', 'black.png'} - set(failed))),
        label='Predictions')


@pytest.mark.parametrize('flags, message', [
    (['--device', 'gpu'], '--device gpu, but TensorFlow sees no GPU'),
    (['--min_batch_size', '65'], '--min_batch_size (65) is above --max_batch_size (64)'),
    (['--model', '{tmp}/nothing.keras'], 'nothing.keras'),
    (['--input_table', 'p:d.t'], 'not BigQuery'),
    (['--model_labels', '{tmp}/two.txt'], 'colours.keras has 3 outputs but'),
])
def test_bad_options_stop_the_job_before_it_runs(model_path, tmp_path, capsys, flags, message):
  write_images(str(tmp_path / 'in'))
  (tmp_path / 'two.txt').write_text('red\ngreen\n')
  argv = ['--input', str(tmp_path / 'in' / '*.png'), '--output', str(tmp_path / 'out'),
          '--model', model_path] + [f.replace('{tmp}', str(tmp_path)) for f in flags]
  assert launch.main(JOB, image_inference.run, argv) == 2
  err = capsys.readouterr().err
  assert err.startswith('image_inference: error: ') and message in err, err
  assert not os.path.exists(str(tmp_path / 'out'))


def test_input_format_of_another_job_is_refused(model_path, tmp_path, capsys):
  write_images(str(tmp_path / 'in'))
  argv = ['--input', str(tmp_path / 'in' / '*.png'), '--output', str(tmp_path / 'out'),
          '--model', model_path, '--input_format', 'url_list']
  assert launch.main(JOB, image_inference.run, argv) == 2
  assert ('--input_format url_list is not an input of this job (it takes auto, images, '
          'index)') in capsys.readouterr().err


def test_streaming_messages_name_images_once_each(model_path, tmp_path):
  """Pub/Sub messages in every producer form -> one prediction per image: a repeated message
  is a duplicate, a delete notification is filtered, a broken message an error row."""
  from apache_beam.options.pipeline_options import StandardOptions
  from apache_beam.testing.test_stream import TestStream
  from transforms.records import Record
  paths = write_images(str(tmp_path / 'in'))
  messages = [
      Record(paths['red.png'].encode(), 'projects/p/subscriptions/s'),
      Record(json.dumps({'uri': paths['blue.png'], 'label': 'blue'}).encode(),
             'projects/p/subscriptions/s'),
      Record(paths['red.png'].encode(), 'projects/p/subscriptions/s'),  # redelivered
      Record(b'{}', 'projects/p/subscriptions/s',
             attributes={'bucketId': 'b', 'objectId': 'x.jpg', 'eventType': 'OBJECT_DELETE'}),
      Record(b'{"uri": ', 'projects/p/subscriptions/s'),
      Record(paths['notes.png'].encode(), 'projects/p/subscriptions/s'),
  ]
  stream = TestStream().advance_watermark_to(0)
  for message in messages:
    stream = stream.add_elements([message])
  stream = stream.advance_watermark_to_infinity()
  options = StandardOptions(streaming=True)
  p = TestPipeline(options=options)
  uris, message_errors = p | stream | image_inference.MessageUris()
  tables = uris | image_inference.Predict(model_path, LABELS, SIZE, {'max_batch_size': 4})
  assert_that(tables['predictions'] | 'Pred' >> beam.Map(
      lambda r: (os.path.basename(r['uri']), r['label'], r['true_label'])),
      equal_to([('red.png', 'red', None), ('blue.png', 'blue', 'blue')]), label='Predictions')
  assert_that(message_errors | 'Msg' >> beam.Map(lambda e: (e['stage'], e['payload'])),
              equal_to([('message', '{"uri": ')]), label='MessageErrors')
  assert_that(tables['errors'] | 'Img' >> beam.Map(
      lambda e: (e['stage'], os.path.basename(e['source']))),
      equal_to([('preprocess', 'notes.png')]), label='ImageErrors')
  result = p.run()
  result.wait_until_finish()


def test_the_device_travels_with_the_loaded_model(model_path):
  """Every thread's handler copy and the large_model server call the model loaded once:
  the device scope must be part of what load_model returns, not of one handler copy."""
  model = FaceModelHandler(model_path, device='cpu').load_model()
  assert isinstance(model, OnDevice) and model.device == '/CPU:0'
  out = np.asarray(model(np.zeros((2, SIZE, SIZE, 3), np.float32)))
  assert out.shape == (2, 3)
  with pytest.raises(inference.DeviceError):
    FaceModelHandler(model_path, device='gpu').load_model()  # no GPU on this machine


def test_a_bad_index_line_is_one_error_and_the_others_are_predicted(model_path, tmp_path):
  paths = write_images(str(tmp_path / 'ds' / 'v'))
  os.rename(paths['red.png'], str(tmp_path / 'ds' / 'v' / 'photo[1].png'))  # glob characters
  index = tmp_path / 'ds' / 'validate_file.txt'
  index.write_text('v/photo[1].png,red\nthis line has no comma\nv/green.png,green\n')
  out = tmp_path / 'out'
  run(['--input', str(index), '--output', str(out), '--model', model_path])
  assert sorted(os.path.basename(r['uri']) for r in read_table(out, 'predictions')) == [
      'green.png', 'photo[1].png']
  errors = read_table(out, 'errors')
  assert [(e['stage'], e['payload'], e['source']) for e in errors] == [
      ('index', 'this line has no comma', str(index) + ':2')]
  c = counters(out)
  assert c['images_read'] == 3 == c['rows_predictions'] + c['errors']
  assert c['batches_on_cpu'] >= 1
  assert {(r['label'], r['images']) for r in read_table(out, 'evaluation')} >= {('red', 2)}


class NanForRed(FaceModelHandler):
  """A model output the labels cannot name: NaN scores for red images."""

  def run_inference(self, batch, model, inference_args=None):
    from apache_beam.ml.inference.base import PredictionResult
    results = list(super().run_inference(batch, model, inference_args))
    return [PredictionResult(r.example, np.full(3, np.nan, np.float32))
            if float(np.asarray(r.example)[..., 0].mean()) > 0.9 else r for r in results]


def test_an_output_that_names_no_label_is_a_postprocess_error(model_path, tmp_path):
  root = tmp_path / 'in'
  root.mkdir()
  for name in ('red', 'blue'):
    (root / (name + '.png')).write_bytes(png(COLOURS[name]))
  with TestPipeline() as p:
    tables = p | image_inference.ImageInference(
        str(root / '*.png'), model_path, LABELS, SIZE, False, {},
        handler=NanForRed(model_path))
    assert_that(tables['errors'] | 'E' >> beam.Map(
        lambda e: (os.path.basename(e['source']), e['stage'], 'non-finite' in e['error'])),
        equal_to([('red.png', 'postprocess', True)]), label='Errors')
    assert_that(tables['predictions'] | 'P' >> beam.Map(lambda r: r['label']),
                equal_to(['blue']), label='Predictions')


def test_served_predictions_are_inference_mode_even_with_augmentation_layers(tmp_path):
  """face_cnn's RandomFlip must not flip served images: the handler's output equals the
  model in inference mode, not a mirrored image's."""
  from models import face_cnn
  model = face_cnn.build_model(16, 2, seed=0)
  path = str(tmp_path / 'face.keras')
  face_cnn.save_model(model, ['ann', 'bob'], path)
  rng = np.random.default_rng(1)
  x = rng.random((8, 16, 16, 3), dtype=np.float32)
  handler = FaceModelHandler(path, device='cpu')
  loaded = handler.load_model()
  served = np.stack([np.asarray(r.inference) for r in handler.run_inference(list(x), loaded)])
  expected = np.asarray(loaded.model(x, training=False))
  np.testing.assert_allclose(served, expected, atol=1e-6)
  mirrored = np.asarray(loaded.model(x[:, :, ::-1], training=False))
  assert np.abs(served - mirrored).max() > 1e-6  # the test can tell flipped from not
