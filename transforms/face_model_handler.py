"""The model side of image_inference: Beam's TensorFlow handler on the chosen device, and
what can be learnt about a `.keras` model without loading TensorFlow (input size, labels).

`FaceModelHandler` is Beam's `TFModelHandlerNumpy` (it loads `.keras` files, local or gs://,
once per worker process, shared by the process's threads; across processes with
`large_model`), placing the model and every batch on the resolved device and saying which
device it used. `--device gpu` fails in `load_model` on a worker without a GPU, as the launch
check does on the launcher.
"""
import io
import json
import logging
import zipfile
from typing import List, Optional

from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

from transforms.inference import resolve_device

def keras_input_shape(model_uri: str) -> List[Optional[int]]:
  """The model's input shape (batch dimension included) from the `.keras` file's
  config.json: the launcher learns the preprocessing size without importing TensorFlow."""
  with FileSystems.open(model_uri) as fh:
    data = fh.read()
  try:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
      config = json.loads(archive.read('config.json'))
  except (zipfile.BadZipFile, KeyError, ValueError) as e:
    raise ValueError('%s is not a .keras model file: %s' % (model_uri, e)) from None
  for layer in config.get('config', {}).get('layers', []):
    if layer.get('class_name') == 'InputLayer':
      shape = layer.get('config', {}).get('batch_shape')
      if shape:
        return list(shape)
  shape = config.get('build_config', {}).get('input_shape')
  if shape:
    return list(shape)
  raise ValueError('%s does not say its input shape (no InputLayer)' % model_uri)


def square_rgb_size(shape: List[Optional[int]], model_uri: str) -> int:
  if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3 or not shape[1]:
    raise ValueError('%s takes %s; image_inference serves models of square RGB images '
                     '(None, size, size, 3)' % (model_uri, shape))
  return int(shape[1])


class FaceModelHandler(TFModelHandlerNumpy):
  """TFModelHandlerNumpy on `device` ('auto', 'cpu' or 'gpu', resolved on the worker)."""

  def __init__(self, model_uri: str, device: str = 'auto', **kwargs):
    super().__init__(model_uri, **kwargs)
    self._device = device
    self._tf_device = None

  def load_model(self):
    import tensorflow as tf
    gpus = [d.name for d in tf.config.list_physical_devices('GPU')]
    used = resolve_device(self._device, gpus)
    self._tf_device = '/GPU:0' if used == 'gpu' else '/CPU:0'
    with tf.device(self._tf_device):
      model = super().load_model()
    logging.info('image_inference: model %s loaded on %s (--device %s; GPUs visible: %s)',
                 self._model_uri, self._tf_device, self._device, gpus or 'none')
    return model

  def run_inference(self, batch, model, inference_args=None):
    import tensorflow as tf
    with tf.device(self._tf_device or '/CPU:0'):
      return super().run_inference(batch, model, inference_args)

  def get_metrics_namespace(self) -> str:
    return 'image_inference'
