"""The model side of image_inference: Beam's TensorFlow handler on the chosen device.

`FaceModelHandler` is Beam's `TFModelHandlerNumpy` (it loads `.keras` files, local or gs://,
once per worker process, shared by the process's threads; across processes with
`large_model`). Its `load_model` resolves --device on the worker and returns the model
wrapped so that every call runs under that device: the device travels with the shared model,
so every thread (each has its own handler copy; only one loads) and the `large_model` server
process use it. `--device gpu` fails in `load_model` on a worker without a GPU. Importing
this module imports TensorFlow (Beam's handler module does).
"""
import logging

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

from transforms.inference import resolve_device

class OnDevice:
  """A Keras model whose calls run under one TensorFlow device scope, in inference mode.

  `predict_on_batch` (inference mode, compiled): a plain `model(x)` call, which Beam's
  handler makes, leaves `training` unset, and Keras 3's augmentation layers (face_cnn's
  RandomFlip) then augment -- mirroring about half the served images -- and it is slower
  (bench/image_inference.py).
  """

  def __init__(self, model, device: str):
    self.model = model
    self.device = device

  def __call__(self, batch, **kwargs):
    import tensorflow as tf
    with tf.device(self.device):
      if kwargs:
        return self.model(batch, training=False, **kwargs)
      return self.model.predict_on_batch(batch)


class FaceModelHandler(TFModelHandlerNumpy):
  """TFModelHandlerNumpy on `device` ('auto', 'cpu' or 'gpu', resolved on the worker).
  Batches are counted per device as `batches_on_cpu` / `batches_on_gpu` under `namespace`
  (counters in load_model would not be reported: it runs outside any bundle), so the job's
  summary says where the model ran."""

  def __init__(self, model_uri: str, device: str = 'auto', namespace: str = 'image_inference',
               **kwargs):
    super().__init__(model_uri, **kwargs)
    self._device = device
    self._namespace = namespace

  def load_model(self):
    import tensorflow as tf
    gpus = [d.name for d in tf.config.list_physical_devices('GPU')]
    used = resolve_device(self._device, gpus)
    tf_device = '/GPU:0' if used == 'gpu' else '/CPU:0'
    with tf.device(tf_device):
      model = super().load_model()
    logging.info('image_inference: model %s loaded on %s (--device %s; GPUs visible: %s)',
                 self._model_uri, tf_device, self._device, gpus or 'none')
    return OnDevice(model, tf_device)

  def run_inference(self, batch, model, inference_args=None):
    try:
      device = model.device.strip('/').split(':')[0].lower()
    except Exception:  # a large_model proxy may not expose attributes
      device = 'unknown'
    Metrics.counter(self._namespace, 'batches_on_' + device).inc()
    return super().run_inference(batch, model, inference_args)

  def get_metrics_namespace(self) -> str:
    return self._namespace
