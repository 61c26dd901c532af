"""image_inference: images -> a Keras model's top-k identities, batched with RunInference.

    python -m pipelines.image_inference --model PATH.keras
        [--input 'crops/*/*.jpg' | --input DATASET/validate_file.txt]
        [--output DIR] [--top_k 3] [--min_batch_size 1] [--max_batch_size 64]
        [--device auto|cpu|gpu] [--large_model]

Input: an image glob (local or gs://), or a face_dataset index file (`path,label` lines,
paths relative to the file; the label is the ground truth and the job also writes
`evaluation` and `confusion`). Each image is decoded and resized exactly as the model was
trained (`images.model_input`), batched by Beam's RunInference with a keyed TensorFlow
handler (the model loaded once per worker process), and its top-k written to
`predictions`. Unreadable images and failed batches are error rows:
`images_read = rows_predictions + errors`.
"""
import json
import os
import sys
import time
from typing import Optional

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before Beam's TF handler imports TensorFlow

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.launch import JobPlan, build_job, is_local, main, run_job
from pipelines.options import (GCS, ConfigError, JobOptions, add_switch, described,
                               input_format, positive_int)
from transforms import dataset_files, images, inference, timestamps
from transforms.deadletter import RecordError, TryParDo, dead_letter
from transforms.records import Record
from transforms.dedupe import DropDuplicates
from transforms.sources import ReadRecords, is_pubsub

JOB = 'image_inference'
DESCRIPTION = ('Images (a glob, or a face_dataset index file with ground truth) -> '
               'predictions (top-k identities), evaluation and confusion, and errors.')


class ImageInferenceOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('image_inference')
    group.add_argument(
        '--model', default=None,
        type=described('model', '^' + GCS + '$', 'GCS_READ_FILE', cloud_only=True,
                       required=True, form='a gs:// path to the .keras file'),
        help='The .keras model (local or gs://), e.g. from `python -m models.face_cnn '
        'train`. Its input size comes from the file.')
    group.add_argument(
        '--model_labels', default=None,
        type=described('model_labels', '^' + GCS + '$', 'GCS_READ_FILE', cloud_only=True,
                       form='a gs:// path to labels.txt'),
        help='labels.txt for the model\'s outputs (line i = class i). Default: labels.txt '
        'beside --model.')
    group.add_argument(
        '--top_k', type=positive_int, default=3,
        help='Labels per prediction in top_k (default 3).')
    group.add_argument(
        '--min_batch_size', type=positive_int, default=1,
        help='RunInference batches at least this many images when it can (default 1).')
    group.add_argument(
        '--max_batch_size', type=positive_int, default=64,
        help='At most this many images per model call (default 64; on a GPU, as many as '
        'fit its memory).')
    group.add_argument(
        '--max_batch_duration_secs', type=positive_int, default=None,
        help='Streaming: run a partial batch after this many seconds (whole seconds; '
        'ignored in batch, where bundles end anyway).')
    add_switch(
        group, '--large_model',
        help='Share one copy of the model between the worker\'s processes instead of one '
        'per process (for models near the memory size).')
    group.add_argument(
        '--device', choices=inference.DEVICES, default='auto',
        help='auto: a GPU when TensorFlow sees one; gpu: a GPU or fail (at start-up '
        'locally; at model load on a worker without one); cpu: never a GPU (default auto). '
        'The summary counts batches_on_cpu / batches_on_gpu.')


class _ReadImage(beam.DoFn):
  """(uri, truth) -> Record(bytes, uri, value=truth); a missing or oversized file raises a
  RecordError (an error row of stage `read`). Reads at most max_bytes + 1 bytes: no
  metadata lookup (a name with glob characters such as `photo[1].jpg` would not match)."""

  def __init__(self, job: str, max_bytes: int = images.MAX_BYTES):
    self._read = Metrics.counter(job, 'images_read')
    self._max_bytes = max_bytes

  def process(self, element):
    uri, truth = element
    self._read.inc()
    try:
      with FileSystems.open(uri) as fh:
        data = fh.read(self._max_bytes + 1)
    except (OSError, ValueError) as e:
      raise RecordError('cannot read %s: %s' % (uri, e)) from None
    if len(data) > self._max_bytes:
      raise RecordError('image too large: over %d bytes (not read)' % self._max_bytes)
    yield Record(data, uri, value=truth)


class _IndexLines(beam.DoFn):
  """An index file -> (uri, label) per line; a bad line is its own error row (counted as an
  image read), and never takes the other lines with it."""

  def __init__(self, job: str, clock):
    self._job = job
    self._clock = clock
    self._read = Metrics.counter(job, 'images_read')

  def process(self, readable_file: fileio.ReadableFile):
    path = readable_file.metadata.path
    text = readable_file.read().decode('utf-8', 'surrogateescape')
    for number, line in enumerate(text.splitlines(), 1):
      try:
        entry = dataset_files.parse_index_line(path, number, line)
      except RecordError as e:
        self._read.inc()
        yield beam.pvalue.TaggedOutput('errors', dead_letter(
            self._job, 'index', str(e), Record(line, path, line=number), self._clock()))
        continue
      if entry:
        yield entry


class _Preprocess(beam.DoFn):
  """Record -> ((uri, truth), float32 array), what RunInference batches."""

  def __init__(self, size: int):
    self._size = size

  def process(self, record: Record):
    yield (record.source, record.value), images.model_input(record.payload, self._size)


def prediction_row(keyed_result, labels, k: int, model: str, clock=time.time):
  (uri, truth), result = keyed_result
  top = inference.top_k(result.inference, labels, k)
  return {
      'uri': uri, 'label': top[0][0], 'score': top[0][1],
      'top_k': json.dumps([{'label': label, 'score': score} for label, score in top]),
      'true_label': truth, 'model': model,
      'inference_time': timestamps.to_rfc3339(clock()),
  }


class _TopK(beam.DoFn):
  """Keyed PredictionResult -> a `predictions` row; an output the labels cannot name (a
  NaN score, a model with more outputs than labels) is an error row of stage
  `postprocess`, not a failed job."""

  def __init__(self, job: str, labels, k: int, model: str, clock):
    self._job = job
    self._labels = list(labels)
    self._k = k
    self._model = model
    self._clock = clock

  def process(self, keyed_result):
    try:
      yield prediction_row(keyed_result, self._labels, self._k, self._model, self._clock)
    except ValueError as e:
      uri = keyed_result[0][0]
      yield beam.pvalue.TaggedOutput('errors', dead_letter(
          self._job, 'postprocess', str(e), Record(uri, uri), self._clock()))


def failed_batch_rows(failure, job: str, clock=time.time):
  """A batch the model refused -> one error row per image in it (nothing lost).
  RunInference's dead letter is (batch of (key, example), (type, repr, traceback))."""
  batch, (exc_type, exc_repr, _) = failure
  reason = '%s: %s' % (getattr(exc_type, '__name__', exc_type), exc_repr)
  for (uri, _), _ in batch:
    yield dead_letter(job, 'inference', reason, Record(uri, uri), clock())


class ConfusionFn(beam.CombineFn):

  def create_accumulator(self):
    return {}

  def add_input(self, acc, pair):
    return inference.add_pairs(acc, [pair])

  def merge_accumulators(self, accumulators):
    out = {}
    for acc in accumulators:
      for pair, count in acc.items():
        out[pair] = out.get(pair, 0) + count
    return out

  def extract_output(self, acc):
    return acc


class _MessageUris(beam.DoFn):
  """A Pub/Sub Record -> (uri, (uri, label)) keyed for DropDuplicates; GCS notifications of
  anything but a new object are `filtered`, unusable messages error rows (stage `message`)."""

  def __init__(self, job: str, clock):
    self._job = job
    self._clock = clock
    self._read = Metrics.counter(job, 'messages_read')
    self._filtered = Metrics.counter(job, 'filtered')

  def process(self, record: Record):
    self._read.inc()
    try:
      uri, label = inference.uri_from_message(record.payload, record.attributes)
    except inference.NotAnImageEvent:
      self._filtered.inc()
      return
    except RecordError as e:
      yield beam.pvalue.TaggedOutput('errors', dead_letter(
          self._job, 'message', str(e), record, self._clock()))
      return
    yield uri, (uri, label)


class MessageUris(beam.PTransform):
  """Pub/Sub Records -> ((uri, label) once per uri within `dedupe_ttl_s`, error rows):
  a redelivered or repeated notification is predicted once (counted as `duplicates`)."""

  def __init__(self, dedupe_ttl_s: float = 3600, clock=time.time):
    super().__init__()
    self._dedupe_ttl_s = dedupe_ttl_s
    self._clock = clock

  def expand(self, records):
    parsed = records | 'Parse' >> beam.ParDo(_MessageUris(JOB, self._clock)).with_outputs(
        'errors', main='uris')
    uris = parsed.uris | 'DropDuplicates' >> DropDuplicates(JOB, self._dedupe_ttl_s)
    return uris, parsed.errors


class Predict(beam.PTransform):
  """(uri, truth or None) -> {'predictions', 'errors'}, plus 'evaluation' and 'confusion'
  with `evaluate` (ground truth known, bounded input)."""

  def __init__(self, model_uri: str, labels, size: int, handler_kwargs: dict,
               device: str = 'auto', top_k: int = 3, evaluate: bool = False,
               clock=time.time, handler=None):
    super().__init__()
    self._model_uri = model_uri
    self._labels = list(labels)
    self._size = size
    self._handler_kwargs = dict(handler_kwargs)
    self._device = device
    self._top_k = top_k
    self._evaluate = evaluate
    self._clock = clock
    self._handler = handler  # tests: a FaceModelHandler that fails on purpose

  def expand(self, uris):
    records, read_errors = (
        uris
        | 'Spread' >> beam.Reshuffle()
        | 'Read' >> TryParDo(_ReadImage(JOB), JOB, 'read', self._clock))
    examples, preprocess_errors = records | 'Preprocess' >> TryParDo(
        _Preprocess(self._size), JOB, 'preprocess', self._clock)
    model_handler = self._handler
    if model_handler is None:
      from transforms.face_model_handler import FaceModelHandler  # imports TensorFlow
      model_handler = FaceModelHandler(self._model_uri, device=self._device, namespace=JOB,
                                       **self._handler_kwargs)
    handler = KeyedModelHandler(model_handler)
    results, failed = examples | 'RunInference' >> RunInference(
        handler).with_exception_handling()
    labels, k, model, clock = self._labels, self._top_k, self._model_uri, self._clock
    top = results | 'TopK' >> beam.ParDo(_TopK(JOB, labels, k, model, clock)).with_outputs(
        'errors', main='predictions')
    predictions = top.predictions
    batch_errors = failed.failed_inferences | 'FailedBatches' >> beam.FlatMap(
        failed_batch_rows, JOB, clock)
    tables = {
        'predictions': predictions,
        'errors': (read_errors, preprocess_errors, batch_errors, top.errors)
        | 'Errors' >> beam.Flatten(),
    }
    if self._evaluate:
      confusion = (
          predictions
          | 'Pairs' >> beam.Map(lambda row: (row['true_label'], row['label']))
          | 'Confusion' >> beam.CombineGlobally(ConfusionFn()))
      tables['evaluation'] = confusion | 'EvaluationRows' >> beam.FlatMap(
          inference.evaluation_rows, labels)
      tables['confusion'] = confusion | 'ConfusionRows' >> beam.FlatMap(
          inference.confusion_rows)
    return tables


class ImageInference(beam.PTransform):
  """PBegin -> the job's tables: `source` is an image glob, index files (`index`; adds
  evaluation) or a Pub/Sub subscription or topic (streaming)."""

  def __init__(self, source: str, model_uri: str, labels, size: int, index: bool,
               handler_kwargs: dict, device: str = 'auto', top_k: int = 3,
               clock=time.time, handler=None, dedupe_ttl_s: float = 3600,
               id_label: Optional[str] = None, timestamp_attribute: Optional[str] = None):
    super().__init__()
    self._source = source
    self._index = index and not is_pubsub(source)
    self._dedupe_ttl_s = dedupe_ttl_s
    self._id_label = id_label
    self._timestamp_attribute = timestamp_attribute
    self._clock = clock
    self._predict = Predict(model_uri, labels, size, handler_kwargs, device, top_k,
                            self._index, clock, handler)

  def expand(self, pbegin):
    errors = []
    if is_pubsub(self._source):
      records = pbegin | 'ReadMessages' >> ReadRecords(
          self._source, job=JOB, id_label=self._id_label,
          timestamp_attribute=self._timestamp_attribute)
      uris, message_errors = records | 'MessageUris' >> MessageUris(
          self._dedupe_ttl_s, self._clock)
      errors.append(message_errors)
    elif self._index:
      entries = (
          pbegin
          | 'Match' >> fileio.MatchFiles(self._source)
          | 'OpenIndex' >> fileio.ReadMatches()
          | 'IndexLines' >> beam.ParDo(_IndexLines(JOB, self._clock)).with_outputs(
              'errors', main='entries'))
      errors.append(entries.errors)
      uris = entries.entries
    else:
      uris = (
          pbegin
          | 'Match' >> fileio.MatchFiles(self._source)
          | 'Uris' >> beam.Map(lambda metadata: (metadata.path, None)))
    tables = uris | 'Predict' >> self._predict
    if errors:
      tables['errors'] = errors + [tables['errors']] | 'AllErrors' >> beam.Flatten()
    return tables


def _read(pipeline, source, options):
  return pipeline, source


def _build(root, options: PipelineOptions, streaming: bool):
  pipeline, source = root
  opts = options.view_as(ImageInferenceOptions)
  job_options = options.view_as(JobOptions)
  if not job_options.input:
    raise ConfigError('--input is required: an image glob or a face_dataset index file')
  if not opts.model:
    raise ConfigError('--model PATH.keras is required (train one with `python -m '
                      'models.face_cnn train`)')
  if job_options.input_table:
    raise ConfigError('image_inference reads images (--input GLOB), index files or Pub/Sub '
                      'messages naming images, not BigQuery')
  if opts.min_batch_size > opts.max_batch_size:
    raise ConfigError('--min_batch_size (%d) is above --max_batch_size (%d)' % (
        opts.min_batch_size, opts.max_batch_size))
  if opts.device == 'gpu' and is_local(options):
    # Locally the workers are this machine: fail now, not at model load. On Dataflow the
    # launcher has no GPU; each worker checks in FaceModelHandler.load_model.
    import tensorflow as tf
    try:
      inference.resolve_device('gpu', tf.config.list_physical_devices('GPU'))
    except inference.DeviceError as e:
      raise ConfigError(str(e)) from None
  try:
    config = inference.keras_config(opts.model)
    size = inference.square_rgb_size(inference.keras_input_shape(config), opts.model)
    labels_file = opts.model_labels or dataset_files.sibling(opts.model,
                                                             dataset_files.LABELS_FILE)
    labels = dataset_files.read_labels(labels_file)
  except (ValueError, OSError) as e:
    raise ConfigError(str(e)) from None
  units = inference.keras_output_units(config)
  if units is not None and units != len(labels):
    raise ConfigError('%s has %d outputs but %s lists %d labels' % (
        opts.model, units, labels_file, len(labels)))
  index = not streaming and (input_format(job_options, ('images', 'index')) == 'index' or (
      job_options.input_format == 'auto' and source.lower().endswith('.txt')))
  handler_kwargs = {'min_batch_size': opts.min_batch_size,
                    'max_batch_size': opts.max_batch_size,
                    'large_model': opts.large_model}
  if opts.max_batch_duration_secs and streaming:
    handler_kwargs['max_batch_duration_secs'] = opts.max_batch_duration_secs
  return pipeline | 'ImageInference' >> ImageInference(
      source, opts.model, labels, size, index, handler_kwargs, opts.device, opts.top_k,
      dedupe_ttl_s=job_options.dedupe_ttl, id_label=job_options.id_label,
      timestamp_attribute=job_options.timestamp_attribute)


def build(argv=None, save_main_session=True) -> JobPlan:
  return build_job(JOB, ImageInferenceOptions, _build, argv, save_main_session, DESCRIPTION,
                   read=_read)


def run(argv=None, save_main_session=True) -> Optional[beam.runners.runner.PipelineResult]:
  return run_job(JOB, ImageInferenceOptions, _build, argv, save_main_session, DESCRIPTION,
                 read=_read)


if __name__ == '__main__':
  sys.exit(main(JOB, run))
