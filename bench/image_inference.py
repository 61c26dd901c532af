"""Benchmark: image_inference's throughput (images/s) with batches of 64 against one image per
model call, and against a plain loop calling the same model outside Beam, on the same images.

    python bench/image_inference.py [--images 2000 | --quick] [--repeats 3]
        [--device auto|cpu|gpu] [--seed 1] [--workdir DIR] [--keep]

Why: the job is Beam so it can run on Dataflow (and on GPU workers), and RunInference batches
for it. This measures what Beam costs on one machine against the obvious script (target: the
job at >= 0.8x the loop's images/s), and what batching gains over one image per call.

Model: `models.face_cnn.build_model(96, 10, seed=0)`, untrained, saved with labels.txt into
the work directory. Untrained weights cost exactly what trained ones do (same layers, same
shapes, same operations; only the numbers in the weight tensors differ), so no training is
needed to time it. Input: `--images` (default 2000; --quick: 256) 96 x 96 JPEG face crops,
generated deterministically from --seed into `<work>/crops/crop_NNNNN.jpg`: a square around
the face of the astronaut or Grace Hopper (pipelines/samples/photos/, public domain; face
boxes as the local Haar detector finds them), 1.2-1.8x the face, off centre by up to 10%,
turned up to 10 degrees, mirrored half the time, brightness/contrast/colour jitter, sensor
noise, JPEG quality 80-95 via `images.to_jpeg` (as face_dataset writes its crops). 96 x 96 is
the model's size, so preprocessing (`images.model_input`) is a decode and a scale to [0, 1],
no resize.

Measured, each on the same images, in this one process (DirectRunner in-process:
`--direct_num_workers 1 --direct_running_mode in_memory`; TensorFlow uses every core for its
ops either way). images/s = images / wall seconds, start-up included:

(a)  the job, `image_inference.run(['--input', 'crops/*.jpg', '--model', ..., '--max_batch_size',
     '64', '--min_batch_size', '64'])`: match, read, `model_input`, RunInference with the
     job's keyed FaceModelHandler, top-k rows written. min = max = 64 so that every batch is
     64 images, as in the loop (the job's default min 1 lets Beam's BatchElements start at 1
     and grow its batches from timings); the job's defaults (min 1, max 64) are measured
     too, as (a, min 1) (`a_min1` in the report).
(b)  the same with `--max_batch_size 1 --min_batch_size 1`.
(c)  a plain loop: `keras.models.load_model`, then for each 64 files in sorted order: read,
     `images.model_input`, `np.stack`, one model call, top-1 (argmax). The call is
     `model.predict_on_batch(x)` or `model(x, training=False)`, whichever a probe on this
     machine finds faster (printed). Where that is predict_on_batch, the loop is also timed
     with `model(x, training=False)` (c_call), the eager call Beam's default TF inference_fn
     makes (`model(np.stack(batch))`), to tell the cost of that call from Beam's. The job's
     FaceModelHandler serves through `OnDevice`, which calls `predict_on_batch` since this
     benchmark found that a plain call let face_cnn's RandomFlip mirror served images and
     was slower; labels below that say `model(x, training=False)` for (a') name the
     inference_fn Beam is given, which OnDevice turns into predict_on_batch.
(a') RunInference alone over the preprocessed arrays: `Create(indexes) | ParDo(array from a
     memory-mapped .npy of the decoded images) | RunInference(KeyedModelHandler(
     FaceModelHandler(..., min_batch_size=64, max_batch_size=64))) | top-1 | WriteToText`;
     with a predict_on_batch inference_fn too (a'_pob) when that call is the faster. Not `beam.Create` of (key, array) pairs: Create pickles its elements into the
     pipeline proto, bz2-compressed, each time the pipeline is converted for the runner:
     0.05 s per 110 KB image array on the machine this was written on, 0.12 s per array of
     random floats (about 4 minutes for 2,000 of those); the Create probe prints the cost
     on 16 image arrays.
(c') the plain loop on the same arrays (no reading, no decoding), both calls as in (c)
     (c', c'_call).

Start-up: each is also run on the first 64 images (one batch). steady images/s =
(N - 64) / (seconds for N - seconds for 64); start-up seconds = seconds for 64 - 64 / steady
images/s: pipeline construction, model load, first call (graph tracing), writing, teardown.
Every run is repeated --repeats times in rounds (each round runs everything once, the small
run before the full one), the median is reported, after an untimed warm-up of each kind.

Ratios: a/c (Beam's overhead, target >= 0.8), a/b (batching gain), a'/c' (RunInference's
own overhead), end to end and steady. Timings are reported, never asserted. CPU seconds of
this process per run are reported too: CPU/wall far below the core count with the loop
means other work shared the machine (the 1-minute load average before and after is printed).

Checks (exit status 1 when one fails): every full-size run's top-1 label for every image
equals the plain loop's (c), and its score is within 1e-5 (the job's scores are rounded to 6
decimals); a different label passes only as a tie: the loop's scores for the two labels
within 1e-6 (float rounding can order such a pair either way, and batches of other sizes
round differently), counted apart. The job's counters: images_read = rows_predictions = N,
no errors. When a run differs, the loop is run again on the mirrored arrays and the differing
images that equal it are counted: with face_cnn's RandomFlip layer, that is the model's
training-time augmentation applied at serving (the job calls the model without
training=False; about half the images come out mirrored, their scores off by up to 6e-4).

GPU: `--device` is passed to the job (`--device`) and to FaceModelHandler, and the loops run
under `tf.device` of the same device (auto: a GPU when TensorFlow sees one; gpu without one:
exit 2). The report is `bench_image_inference_<cpu|gpu>.json` in the work directory; when the
other device's report is there too (same images), a GPU vs CPU table is printed. On a GPU
machine, as one command (`;`, not `&&`: a failed check exits 1 after the figures are out;
not timed on a GPU yet; --repeats 1 cuts the timed rounds to a third):

    python bench/image_inference.py --device cpu --workdir /tmp/bii --keep;
    python bench/image_inference.py --device gpu --workdir /tmp/bii --keep

On the 2-core machine it was written on, the default run takes about 6.5 minutes (each round
of runs 1.7-2.2 minutes, the batch-size-1 job a third of it; generating the images 25 s),
--quick about 1 minute.
"""
import argparse
import contextlib
import glob
import io
import json
import logging
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow is imported

import apache_beam as beam  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.ml.inference.base import (KeyedModelHandler, PredictionResult,  # noqa: E402
                                           RunInference)
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402

from bench.common import environment, finish, rows, timed  # noqa: E402
from models import face_cnn  # noqa: E402
from pipelines import image_inference as job  # noqa: E402
from transforms import images, inference  # noqa: E402
from transforms.face_model_handler import FaceModelHandler  # noqa: E402

GENERATOR_VERSION = 1  # bump when the images change: --workdir reuses a matching set
SIZE, CLASSES, MODEL_SEED = 96, 10, 0
LABELS = ['person_%02d' % i for i in range(CLASSES)]
BATCH = 64
SMALL = 64  # images in the start-up runs: one batch
QUICK_IMAGES = 256
MIN_IMAGES = 2 * SMALL
PHOTOS = os.path.join(ROOT, 'pipelines', 'samples', 'photos')
# (photo, face box (left, top, right, bottom) as face_detect.LocalDetector finds it)
FACES = (('astronaut.jpg', (177, 66, 272, 161)), ('grace_hopper.jpg', (155, 105, 377, 327)))
DIRECT = ['--direct_num_workers', '1', '--direct_running_mode', 'in_memory']
SCORE_TOL = 1e-5
TIE = 1e-6
CREATE_PROBE = 16  # arrays in the beam.Create probe
TARGET = 0.8
PREDICT_ON_BATCH, CALL = 'predict_on_batch', 'model(x, training=False)'
CALLS = {PREDICT_ON_BATCH: lambda model, x: model.predict_on_batch(x),
         CALL: lambda model, x: model(x, training=False)}


# --- the images and the model ---------------------------------------------------------------

def face_crop(photo, box, rnd):
  """One SIZE x SIZE JPEG: a square around the face, jittered (see the module docstring)."""
  left, top, right, bottom = box
  width, height = photo.size
  side = max(right - left, bottom - top) * rnd.uniform(1.2, 1.8)
  side = min(side, min(width, height) / 1.45)  # the turned region stays inside the photo
  half = side * 0.72  # > side / sqrt(2): the square turned any way stays in the region
  cx = min(max((left + right) / 2 + rnd.uniform(-0.1, 0.1) * side, half), width - half)
  cy = min(max((top + bottom) / 2 + rnd.uniform(-0.1, 0.1) * side, half), height - half)
  region = photo.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
  region = region.rotate(rnd.uniform(-10, 10), Image.Resampling.BICUBIC)
  mx, my = region.width / 2, region.height / 2
  image = region.resize((SIZE, SIZE), Image.Resampling.LANCZOS,
                        box=(mx - side / 2, my - side / 2, mx + side / 2, my + side / 2))
  if rnd.random() < 0.5:
    image = ImageOps.mirror(image)
  for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
    image = enhance(image).enhance(rnd.uniform(0.8, 1.2))
  noise = rnd.randint(1, 6)
  pixels = np.asarray(image).astype(np.int16) + np.random.default_rng(
      rnd.getrandbits(32)).integers(-noise, noise + 1, size=(SIZE, SIZE, 3), dtype=np.int16)
  image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
  return images.to_jpeg(image, quality=rnd.randint(80, 95))


def generate(work, n, seed):
  """Writes `<work>/crops/crop_NNNNN.jpg` and the first SMALL again into `<work>/crops_small/`;
  returns (manifest, reused). Reuses the sets already there when their manifest matches."""
  params = {'images': n, 'seed': seed, 'size': SIZE, 'generator': GENERATOR_VERSION}
  crops, small = os.path.join(work, 'crops'), os.path.join(work, 'crops_small')
  manifest_path = os.path.join(work, 'manifest.json')
  if os.path.isfile(manifest_path):
    with open(manifest_path, encoding='utf-8') as fh:
      manifest = json.load(fh)
    if manifest.get('params') == params and len(glob.glob(os.path.join(crops, '*.jpg'))) == n \
        and len(glob.glob(os.path.join(small, '*.jpg'))) == SMALL:
      return manifest, True
  for folder in (crops, small):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
  photos = []
  for name, box in FACES:
    with Image.open(os.path.join(PHOTOS, name)) as im:
      photos.append((images.to_rgb(im), box))
  rnd = random.Random(seed)
  sizes = []
  for i in range(n):
    photo, box = photos[rnd.randrange(len(photos))]
    data = face_crop(photo, box, random.Random(rnd.getrandbits(64)))
    sizes.append(len(data))
    for folder in (crops, small) if i < SMALL else (crops,):
      with open(os.path.join(folder, 'crop_%05d.jpg' % i), 'wb') as fh:
        fh.write(data)
  manifest = {'params': params, 'bytes_mean': round(sum(sizes) / n),
              'bytes_total': sum(sizes)}
  with open(manifest_path, 'w', encoding='utf-8') as fh:
    json.dump(manifest, fh, indent=1)
  return manifest, False


def save_model(work):
  """The untrained face model and labels.txt under `<work>/model/`; returns its path."""
  path = os.path.join(work, 'model', 'face_cnn.keras')
  face_cnn.save_model(face_cnn.build_model(SIZE, CLASSES, seed=MODEL_SEED), LABELS, path)
  return path


def preprocess(paths):
  """The images as the job's model input, float32 (N, SIZE, SIZE, 3)."""
  x = np.empty((len(paths), SIZE, SIZE, 3), dtype=np.float32)
  for i, path in enumerate(paths):
    with open(path, 'rb') as fh:
      x[i] = images.model_input(fh.read(), SIZE)
  return x


# --- Beam -----------------------------------------------------------------------------------

def batch_stats(result):
  """RunInference's batches (count, mean, min, max size) from a finished pipeline."""
  for dist in result.metrics().query(MetricsFilter().with_namespace(job.JOB))['distributions']:
    if dist.key.metric.name.endswith('inference_request_batch_size'):
      value = dist.committed or dist.attempted
      if value and value.count:
        return {'batches': value.count, 'mean': round(value.sum / value.count, 1),
                'min': value.min, 'max': value.max}
  return None


def job_run(pattern, out, model, device, min_batch, max_batch):
  """The job in this process; returns its printed summary and RunInference's batches."""
  captured = io.StringIO()
  with contextlib.redirect_stdout(captured):  # run() prints its counters
    result = job.run(['--input', pattern, '--model', model, '--output', out, '--device', device,
                      '--min_batch_size', str(min_batch), '--max_batch_size', str(max_batch)]
                     + DIRECT, save_main_session=False)
  return {'printed': captured.getvalue(), 'batch_sizes': batch_stats(result)}


def job_predictions(out):
  """{absolute path: (label, score)} from the job's predictions table, and its counters."""
  found = {os.path.abspath(r['uri']): (r['label'], r['score'])
           for r in rows(out, 'predictions')}
  with open(os.path.join(out, '_metrics.json'), encoding='utf-8') as fh:
    return found, json.load(fh)['counters']


class _Arrays(beam.DoFn):
  """index -> (key, preprocessed array) from a memory-mapped .npy file (opened once per
  DoFn instance): arrays reach RunInference without beam.Create's pickling."""

  def __init__(self, path, keys):
    self._path = path
    self._keys = keys

  def setup(self):
    self._arrays = np.load(self._path, mmap_mode='r')

  def process(self, index):
    yield self._keys[index], np.array(self._arrays[index])


def _top1_line(keyed, labels):
  key, result = keyed
  (label, score), = inference.top_k(result.inference, labels, 1)
  return json.dumps({'key': key, 'label': label, 'score': score})


def predict_on_batch_fn(model, batch, inference_args, model_id=None):
  """A TFModelHandlerNumpy inference_fn: one predict_on_batch call (a compiled function)
  instead of the default eager `model(np.stack(batch))`. FaceModelHandler hands over the
  Keras model wrapped with its device (`OnDevice`: .model, .device)."""
  keras_model = getattr(model, 'model', model)
  with tf.device(getattr(model, 'device', None)):
    predictions = keras_model.predict_on_batch(np.stack(batch, axis=0))
  return [PredictionResult(x, y, model_id) for x, y in zip(batch, predictions, strict=True)]


def run_inference_arrays(npy, keys, out, model, device, inference_fn=None):
  """(a'): RunInference alone over the preprocessed arrays, batches of exactly BATCH."""
  kwargs = {'min_batch_size': BATCH, 'max_batch_size': BATCH}
  if inference_fn is not None:
    kwargs['inference_fn'] = inference_fn
  handler = KeyedModelHandler(FaceModelHandler(model, device=device, **kwargs))
  pipeline = beam.Pipeline(options=PipelineOptions(DIRECT))
  _ = (pipeline
       | 'Indexes' >> beam.Create(range(len(keys)))
       | 'Arrays' >> beam.ParDo(_Arrays(npy, list(keys)))
       | 'RunInference' >> RunInference(handler)
       | 'Top1' >> beam.Map(_top1_line, LABELS)
       | 'Write' >> beam.io.WriteToText(os.path.join(out, 'top1'), file_name_suffix='.json'))
  result = pipeline.run()
  result.wait_until_finish()
  return {'batch_sizes': batch_stats(result)}


def array_predictions(out):
  found = {}
  for name in glob.glob(os.path.join(out, 'top1*.json')):
    with open(name, encoding='utf-8') as fh:
      for line in fh:
        row = json.loads(line)
        found[row['key']] = (row['label'], row['score'])
  return found


def create_probe(x, out):
  """Seconds of a pipeline that only creates (key, array) pairs with beam.Create and drops
  them, against one that creates indexes and reads the arrays with _Arrays."""
  npy = os.path.join(out, 'probe.npy')
  os.makedirs(out, exist_ok=True)
  np.save(npy, x)
  keys = ['k%d' % i for i in range(len(x))]

  def pipeline(build):
    with beam.Pipeline(options=PipelineOptions(DIRECT)) as p:
      build(p) | 'Drop' >> beam.Map(lambda _: None)

  create_s, _ = timed(pipeline, lambda p: p | beam.Create(list(zip(keys, x, strict=True))))
  indexes_s, _ = timed(pipeline, lambda p: p | beam.Create(range(len(x)))
                       | beam.ParDo(_Arrays(npy, keys)))
  return {'arrays': len(x), 'array_bytes': int(x[0].nbytes), 'create_pairs_s': create_s,
          'create_indexes_s': indexes_s}


# --- the plain loops ------------------------------------------------------------------------

def load_model(path, tf_device):
  with tf.device(tf_device):
    return keras.models.load_model(path)


def loop_files(paths, model_path, tf_device, call):
  """(c): load, then per BATCH files: read, model_input, stack, one call, top-1."""
  fn = CALLS[call]
  model = load_model(model_path, tf_device)
  probs, top = [], []
  with tf.device(tf_device):
    for start in range(0, len(paths), BATCH):
      batch = []
      for path in paths[start:start + BATCH]:
        with open(path, 'rb') as fh:
          batch.append(images.model_input(fh.read(), SIZE))
      p = np.asarray(fn(model, np.stack(batch)))
      probs.append(p)
      top.append(p.argmax(axis=1))
  return np.concatenate(probs), np.concatenate(top)


def loop_arrays(x, model_path, tf_device, call):
  """(c'): load, then per BATCH preprocessed arrays: one call, top-1."""
  fn = CALLS[call]
  model = load_model(model_path, tf_device)
  probs, top = [], []
  with tf.device(tf_device):
    for start in range(0, len(x), BATCH):
      p = np.asarray(fn(model, x[start:start + BATCH]))
      probs.append(p)
      top.append(p.argmax(axis=1))
  return np.concatenate(probs), np.concatenate(top)


def probe_calls(x, model_path, tf_device, rounds=3, batches=4):
  """images/s of each call on batches of BATCH, after two warm-up calls each (tracing);
  alternated `rounds` times, best of each."""
  model = load_model(model_path, tf_device)
  batch = x[:BATCH]
  best = dict.fromkeys(CALLS, 0.0)
  with tf.device(tf_device):
    for fn in CALLS.values():
      fn(model, batch)
      fn(model, batch)
    for _ in range(rounds):
      for name, fn in CALLS.items():
        start = time.perf_counter()
        for _ in range(batches):
          np.asarray(fn(model, batch))
        best[name] = max(best[name], batches * BATCH / (time.perf_counter() - start))
  return best


# --- measuring ------------------------------------------------------------------------------

def cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


class _DropNoise(logging.Filter):
  """Beam 2.77's RunInference warns on every batch that the `resource` module is missing
  when torch is not installed (its import of `resource` shares a try with ModelManager's):
  one line per batch here, not a problem of the job."""

  def filter(self, record):
    return 'Resource module is not available' not in record.getMessage()


def quiet():
  logging.getLogger('apache_beam.runners.portability').setLevel(logging.ERROR)
  logging.getLogger().addFilter(_DropNoise())
  logging.getLogger('tensorflow').setLevel(logging.ERROR)  # retracing notes: new model each run
  warnings.filterwarnings('ignore', message='Skipping variable loading for optimizer')


def runs_plan(fast, labels_of):
  """[(name, label, kind)] in run order; `fast` is the faster call."""
  plan = [('a', '(a) job, batches of 64 (min = max 64)', 'job'),
          ('a_min1', '(a, min 1) job, its defaults (min 1, max 64)', 'job'),
          ('b', '(b) job, batches of 1', 'job'),
          ('c', '(c) plain loop, files, %s' % labels_of[fast], 'loop_files')]
  if fast != CALL:
    plan.append(('c_call', '(c_call) plain loop, files, %s' % labels_of[CALL], 'loop_files'))
  plan.append(("a'", "(a') RunInference on arrays, %s" % labels_of[CALL], 'ri'))
  if fast != CALL:
    plan.append(("a'_pob", "(a'_pob) RunInference on arrays, %s" % labels_of[
        PREDICT_ON_BATCH], 'ri'))
  plan.append(("c'", "(c') plain loop, arrays, %s" % labels_of[fast], 'loop_arrays'))
  if fast != CALL:
    plan.append(("c'_call", "(c'_call) plain loop, arrays, %s" % labels_of[CALL],
                 'loop_arrays'))
  return plan


class Bench:
  """The runs, their timings and their outputs."""

  def __init__(self, work, model, device, tf_device, fast, paths, small_paths, x, npy):
    self.work, self.model, self.device, self.tf_device = work, model, device, tf_device
    self.fast = fast
    self.sets = {'full': (os.path.join(work, 'crops', '*.jpg'), paths),
                 'small': (os.path.join(work, 'crops_small', '*.jpg'), small_paths)}
    self.x, self.npy = x, npy
    self.times = {}  # name -> {'full': [s], 'small': [s], 'cpu_full': [s], ...}
    self.info = {}  # name -> what the last full run said (batch sizes)
    self.outputs = {}  # name -> {path: (label, score)} of the last full run
    self.reference = None  # (c)'s first full run: (keys, probabilities)

  def out(self, name, size):
    return os.path.join(self.work, 'out', '%s_%s' % (name.replace("'", 'p'), size))

  def once(self, name, kind, size):
    """Runs `name` on the full or small set; returns (seconds, cpu seconds, info, found)."""
    pattern, paths = self.sets[size]
    n = len(paths)
    out = self.out(name, size)
    shutil.rmtree(out, ignore_errors=True)
    call = CALL if name.endswith('_call') else self.fast
    cpu = cpu_seconds()
    if kind == 'job':
      min_batch, max_batch = {'a': (BATCH, BATCH), 'a_min1': (1, BATCH), 'b': (1, 1)}[name]
      seconds, info = timed(job_run, pattern, out, self.model, self.device, min_batch,
                            max_batch)
    elif kind == 'ri':
      fn = predict_on_batch_fn if name.endswith('_pob') else None
      npy = self.npy[size]
      seconds, info = timed(run_inference_arrays, npy, paths, out, self.model, self.device, fn)
    elif kind == 'loop_files':
      seconds, result = timed(loop_files, paths, self.model, self.tf_device, call)
      info = {'probs': result[0], 'top': result[1]}
    else:
      seconds, result = timed(loop_arrays, self.x[:n], self.model, self.tf_device, call)
      info = {'probs': result[0], 'top': result[1]}
    cpu = cpu_seconds() - cpu
    if kind == 'job':
      found, counters = job_predictions(out)
      info['counters'] = counters
    elif kind == 'ri':
      found = array_predictions(out)
    else:
      found = {p: (LABELS[j], float(info['probs'][i, j])) for i, (p, j) in enumerate(
          zip(paths, info['top'], strict=True))}
    return seconds, cpu, info, found

  def measure(self, name, kind, size):
    seconds, cpu, info, found = self.once(name, kind, size)
    t = self.times.setdefault(name, {'full': [], 'small': [], 'cpu_full': [], 'cpu_small': []})
    t[size].append(seconds)
    t['cpu_' + size].append(cpu)
    if size == 'full':
      if name == 'c' and self.reference is None:
        self.reference = info['probs']
      self.info[name] = {k: v for k, v in info.items() if k not in ('probs', 'top')}
      self.outputs[name] = found
    return seconds


def check(name, found, paths, reference, counters=None, mirrored=None):
  """Problems of one run's {path: (label, score)} against the loop's probabilities; with
  `mirrored` (the loop's probabilities of the mirrored images), how many of the images that
  differ got exactly those: a horizontal flip applied at serving (the model's RandomFlip)."""
  ids = {label: i for i, label in enumerate(LABELS)}
  result = {'match': 0, 'tie': 0, 'mismatch': 0, 'score_off': 0, 'max_score_diff': 0.0,
            'differing_equal_to_mirrored': None if mirrored is None else 0}

  def as_mirrored(i, label, score):
    flip = mirrored[i]
    return label == LABELS[int(flip.argmax())] and abs(score - float(flip[ids[label]])) <= \
        SCORE_TOL
  missing = [p for p in paths if p not in found]
  extra = len(set(found) - set(paths))
  examples = []
  for i, path in enumerate(paths):
    if path not in found:
      continue
    label, score = found[path]
    probs = reference[i]
    top = int(probs.argmax())
    if label == LABELS[top]:
      result['match'] += 1
    elif label in ids and probs[top] - probs[ids[label]] <= TIE:
      result['tie'] += 1
    else:
      result['mismatch'] += 1
      if mirrored is not None and as_mirrored(i, label, score):
        result['differing_equal_to_mirrored'] += 1
      if len(examples) < 3:
        examples.append('%s: %s %.6f, loop %s %.6f' % (os.path.basename(path), label, score,
                                                      LABELS[top], probs[top]))
      continue
    diff = abs(score - float(probs[ids[label]]))
    result['max_score_diff'] = max(result['max_score_diff'], diff)
    if diff > SCORE_TOL:
      result['score_off'] += 1
      if mirrored is not None and as_mirrored(i, label, score):
        result['differing_equal_to_mirrored'] += 1
      if len(examples) < 3:
        examples.append('%s: score %.7f, loop %.7f' % (os.path.basename(path), score,
                                                       probs[ids[label]]))
  problems = []
  if missing or extra or result['mismatch'] or result['score_off']:
    problems.append('%s: %d images missing, %d extra, %d with another top-1 label, %d scores '
                    'off by more than %g (e.g. %s)' % (
                        name, len(missing), extra, result['mismatch'], result['score_off'],
                        SCORE_TOL, '; '.join(examples) or '-'))
    if result['differing_equal_to_mirrored']:
      problems[-1] += ('; %d of those %d equal the loop on the mirrored image: the model\'s '
                       'RandomFlip flipped them at serving' % (
                           result['differing_equal_to_mirrored'],
                           result['mismatch'] + result['score_off']))
  if counters is not None:
    n = len(paths)
    if counters.get('images_read') != n or counters.get('rows_predictions') != n or \
        counters.get('errors', 0):
      problems.append('%s: counters %s, expected images_read = rows_predictions = %d, no '
                      'errors' % (name, counters, n))
  result['missing'], result['extra'] = len(missing), extra
  return result, problems


def figures(times, n):
  """Medians, rates and start-up of one run's timings."""
  full, small = statistics.median(times['full']), statistics.median(times['small'])
  f = {'seconds': full, 'images_per_s': n / full, 'small_seconds': small,
       'cpu_per_wall': statistics.median(times['cpu_full']) / full,
       'repeats_full': times['full'], 'repeats_small': times['small']}
  if full > small:
    f['steady_images_per_s'] = (n - SMALL) / (full - small)
    f['startup_seconds'] = small - SMALL / f['steady_images_per_s']
  else:
    f['steady_images_per_s'] = f['startup_seconds'] = None
  return f


def ratio(figs, a, b, key):
  if a not in figs or b not in figs or not figs[a].get(key) or not figs[b].get(key):
    return None
  return figs[a][key] / figs[b][key]


# --- report ---------------------------------------------------------------------------------

def print_table(plan, figs, info, n):
  print('\n%-58s %8s %9s %8s %9s %9s %8s %s' % (
      'run (%d images; start-up runs on %d)' % (n, SMALL), 'seconds', 'images/s', '64-img s',
      'start-up', 'steady/s', 'CPU/wall', 'batches (mean size)'))
  for name, label, _ in plan:
    f = figs[name]
    batches = (info.get(name) or {}).get('batch_sizes')
    print('%-58s %8.2f %9.1f %8.2f %9s %9s %8.2f %s' % (
        label, f['seconds'], f['images_per_s'], f['small_seconds'],
        '%.2f' % f['startup_seconds'] if f['startup_seconds'] is not None else '-',
        '%.1f' % f['steady_images_per_s'] if f['steady_images_per_s'] is not None else '-',
        f['cpu_per_wall'],
        '%d (%.1f, %d-%d)' % (batches['batches'], batches['mean'], batches['min'],
                              batches['max']) if batches else '-'))
  print('(images/s = images / wall seconds, start-up included; steady/s = (%d - %d) / '
        '(seconds - 64-img s); start-up = 64-img s - %d / steady; medians)' % (n, SMALL, SMALL))


def print_ratios(ratios, fast):
  def fmt(pair):
    return ' / '.join('%.2f' % v if v is not None else '-' for v in pair)

  def met(value):
    return '-' if value is None else 'met' if value >= TARGET else 'NOT met'

  print('\nratios (end to end / steady):')
  a_c = ratios['a/c']
  print('  a/c   Beam\'s overhead, the job vs the plain loop:           %s   target >= %.1f: '
        '%s end to end, %s steady' % (fmt(a_c), TARGET, met(a_c[0]), met(a_c[1])))
  print('  a/b   batching gain, batches of 64 vs 1:                    %s' % fmt(ratios['a/b']))
  print("  a'/c' RunInference alone vs the loop, on arrays:            %s" % fmt(ratios["a'/c'"]))
  if 'a/c_call' in ratios:
    print('  where the loop makes the call Beam\'s handler makes (%s):' % CALL)
    print('  c_call/c   that call vs %s, files:            %s' % (PREDICT_ON_BATCH,
                                                                   fmt(ratios['c_call/c'])))
    print("  c'_call/c' the same, arrays:                               %s" % fmt(
        ratios["c'_call/c'"]))
    print('  a/c_call   the job vs the loop, same call:                 %s' % fmt(
        ratios['a/c_call']))
    print("  a'/c'_call RunInference vs the loop, same call, arrays:    %s" % fmt(
        ratios["a'/c'_call"]))
    print("  a'_pob/c'  RunInference with a predict_on_batch inference_fn vs the loop, "
          "arrays: %s" % fmt(ratios["a'_pob/c'"]))


def device_comparison(work, report):
  """GPU vs CPU images/s, when the other device's report is in the work directory."""
  other = 'gpu' if report['device_used'] == 'cpu' else 'cpu'
  path = os.path.join(work, 'bench_image_inference_%s.json' % other)
  if not os.path.isfile(path):
    return None
  with open(path, encoding='utf-8') as fh:
    theirs = json.load(fh)
  if theirs.get('generator') != report['generator']:
    print('\n(%s has other images: no GPU vs CPU table)' % path)
    return None
  gpu, cpu = (theirs, report) if other == 'gpu' else (report, theirs)
  print('\nGPU vs CPU (images/s end to end / steady; CPU figures from %s):' % (
      path if other == 'cpu' else 'this run'))
  table = {}
  for name, f in gpu['figures'].items():
    c = cpu['figures'].get(name)
    if not c:
      continue
    table[name] = {'gpu': [f['images_per_s'], f['steady_images_per_s']],
                   'cpu': [c['images_per_s'], c['steady_images_per_s']]}
    print('  %-8s GPU %8.1f / %8s   CPU %8.1f / %8s   GPU/CPU %.2fx' % (
        name, f['images_per_s'], '%.1f' % f['steady_images_per_s']
        if f['steady_images_per_s'] else '-', c['images_per_s'], '%.1f' %
        c['steady_images_per_s'] if c['steady_images_per_s'] else '-',
        f['images_per_s'] / c['images_per_s']))
  return table


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--images', type=int, default=2000,
                      help='face crops to generate (default 2000)')
  parser.add_argument('--quick', action='store_true',
                      help='--images %d --repeats 1' % QUICK_IMAGES)
  parser.add_argument('--repeats', type=int, default=3,
                      help='timed runs of each (default 3; the median is reported)')
  parser.add_argument('--device', choices=inference.DEVICES, default='auto',
                      help="the job's --device, and where the loops run (default auto)")
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--workdir', help='default: a new temporary directory; images generated '
                      'there before with the same parameters are reused (with --keep)')
  parser.add_argument('--keep', action='store_true',
                      help='keep the images, the model and the outputs')
  args = parser.parse_args(argv)
  n = QUICK_IMAGES if args.quick else args.images
  repeats = 1 if args.quick else args.repeats
  if n < MIN_IMAGES or repeats < 1:
    parser.error('--images must be at least %d and --repeats at least 1' % MIN_IMAGES)
  gpus = [d.name for d in tf.config.list_physical_devices('GPU')]
  try:
    used = inference.resolve_device(args.device, gpus)
  except inference.DeviceError as e:
    parser.error(str(e))
  tf_device = '/GPU:0' if used == 'gpu' else '/CPU:0'
  start = time.perf_counter()
  quiet()
  work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix='bench_image_inference_'))
  os.makedirs(work, exist_ok=True)

  gen_s, (manifest, reused) = timed(generate, work, n, args.seed)
  paths = sorted(os.path.abspath(p) for p in glob.glob(os.path.join(work, 'crops', '*.jpg')))
  small_paths = paths[:SMALL]
  print('input: %s/crops/*.jpg: %d JPEG face crops %dx%d, mean %d bytes (%s in %.1f s); '
        'start-up set: crops_small/*.jpg, the first %d' % (
            work, n, SIZE, SIZE, manifest['bytes_mean'], 'reused' if reused else 'generated',
            gen_s, SMALL))
  model = save_model(work)
  print('model: %s (face_cnn.build_model(%d, %d, seed=%d), untrained: the same cost to run as '
        'trained weights), labels.txt beside it' % (model, SIZE, CLASSES, MODEL_SEED))
  prep_s, x = timed(preprocess, paths)
  npy = {'full': os.path.join(work, 'arrays.npy'), 'small': os.path.join(work,
                                                                         'arrays_small.npy')}
  np.save(npy['full'], x)
  np.save(npy['small'], x[:SMALL])
  print("arrays for (a') and (c'): images.model_input of every image, %.1f s (%.0f images/s, "
        'one core), %d MB' % (prep_s, n / prep_s, x.nbytes // 2**20))
  print('device: --device %s -> %s (TensorFlow sees %s)' % (
      args.device, tf_device, ', '.join(gpus) or 'no GPU'))

  probe = probe_calls(x, model, tf_device)
  fast = max(probe, key=probe.get)
  print('call probe, batches of %d on arrays: %s (the plain loops use %s)' % (
      BATCH, ', '.join('%s %.0f images/s' % kv for kv in probe.items()), fast))
  create = create_probe(x[:CREATE_PROBE], os.path.join(work, 'out', 'create_probe'))
  print("beam.Create probe: %d (key, array) pairs of %d KB: %.2f s; %d indexes + _Arrays: "
        "%.2f s (why (a') reads a memory-mapped .npy)" % (
            create['arrays'], create['array_bytes'] // 1024, create['create_pairs_s'],
            create['arrays'], create['create_indexes_s']))

  labels_of = {PREDICT_ON_BATCH: PREDICT_ON_BATCH, CALL: CALL}
  plan = runs_plan(fast, labels_of)
  bench = Bench(work, model, args.device, tf_device, fast, paths, small_paths, x, npy)
  load = {'before': os.getloadavg()[0]}
  warm_s = 0.0
  for kind in ('job', 'ri', 'loop_files', 'loop_arrays'):  # imports, first traces: untimed
    name = next(name for name, _, k in plan if k == kind)
    warm_s += timed(bench.once, name, kind, 'small')[0]
  print('warm-up (one small run of each kind, untimed): %.1f s' % warm_s)
  for r in range(repeats):
    round_s = 0.0
    for name, _, kind in plan:
      round_s += bench.measure(name, kind, 'small')
      round_s += bench.measure(name, kind, 'full')
    load['after_round_%d' % (r + 1)] = os.getloadavg()[0]
    print('round %d of %d: %.0f s' % (r + 1, repeats, round_s))

  problems, checks, mirrored = [], {}, None
  for name, _, kind in plan:
    counters = bench.info[name].get('counters') if kind == 'job' else None
    checks[name], p = check(name, bench.outputs[name], paths, bench.reference, counters)
    if p and mirrored is None:  # was it a horizontal flip? the loop on mirrored arrays
      mirrored = loop_arrays(np.ascontiguousarray(x[:, :, ::-1]), model, tf_device, fast)[0]
    if p:
      checks[name], p = check(name, bench.outputs[name], paths, bench.reference, counters,
                              mirrored)
    problems += p
  figs = {name: figures(bench.times[name], n) for name, _, _ in plan}
  print('\nthe job (a) printed:\n' + bench.info['a']['printed'].rstrip())
  print_table(plan, figs, bench.info, n)
  ratios = {}
  for key, (top, bottom) in {'a/c': ('a', 'c'), 'a/b': ('a', 'b'), "a'/c'": ("a'", "c'"),
                             'a_min1/c': ('a_min1', 'c'), 'c_call/c': ('c_call', 'c'),
                             "c'_call/c'": ("c'_call", "c'"), 'a/c_call': ('a', 'c_call'),
                             "a'/c'_call": ("a'", "c'_call"),
                             "a'_pob/c'": ("a'_pob", "c'")}.items():
    if top in figs and bottom in figs:
      ratios[key] = (ratio(figs, top, bottom, 'images_per_s'),
                     ratio(figs, top, bottom, 'steady_images_per_s'))
  print_ratios(ratios, fast)
  print('\npredictions against the plain loop (c), top-1 label and score within %g:' % SCORE_TOL)
  for name, _, _ in plan:
    c = checks[name]
    print('  %-8s %d match, %d ties (scores within %g), %d other label, %d missing; %d scores '
          'off; largest score difference %.1e%s' % (
              name, c['match'], c['tie'], TIE, c['mismatch'], c['missing'], c['score_off'],
              c['max_score_diff'], '; %d of the differing equal the loop on the mirrored '
              'image' % c['differing_equal_to_mirrored'] if c['differing_equal_to_mirrored']
              else ''))
  env = dict(environment(), tensorflow=tf.__version__, keras=keras.__version__, gpus=gpus,
             device_used=used, tf_device=tf_device)
  print('machine: %(cpu_count)d CPUs (%(machine)s, %(cpu)s); python %(python)s, apache_beam '
        '%(apache_beam)s, tensorflow %(tensorflow)s, keras %(keras)s' % env)
  load['after'] = os.getloadavg()[0]
  print('1-minute load average before the runs and after each round (above %d: other work '
        'shared the CPUs): %s' % (env['cpu_count'], ', '.join(
            '%s %.1f' % kv for kv in load.items())))
  report = {
      'images': n, 'repeats': repeats, 'seed': args.seed, 'small_images': SMALL,
      'batch': BATCH, 'generator': manifest['params'], 'image_bytes_mean': manifest[
          'bytes_mean'], 'generate_seconds': gen_s, 'preprocess_seconds': prep_s,
      'model': {'builder': 'face_cnn.build_model(%d, %d, seed=%d)' % (SIZE, CLASSES,
                                                                      MODEL_SEED),
                'trained': False, 'labels': LABELS},
      'device': args.device, 'device_used': used, 'call_probe_images_per_s': probe,
      'loop_call': fast, 'create_probe': create, 'runs': {name: label for name, label, _ in
                                                          plan},
      'figures': figs, 'ratios': ratios, 'target_a_over_c': TARGET,
      'batch_sizes': {k: v.get('batch_sizes') for k, v in bench.info.items()},
      'job_counters': {k: v['counters'] for k, v in bench.info.items() if 'counters' in v},
      'checks': checks, 'load_1min': load, 'environment': env, 'problems': problems}
  if used == 'cpu':
    print('\nGPU: not run here (TensorFlow sees no GPU%s); on a GPU machine: see this '
          "script's docstring (one command, CPU then GPU, prints GPU vs CPU)" % (
              '; --device cpu' if gpus else ''))
  report['gpu_vs_cpu'] = device_comparison(work, report)
  if not args.keep:
    for name in ('crops', 'crops_small', 'model'):
      shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    for path in npy.values():
      os.remove(path)
  finish(work, 'image_inference_%s' % used, report, os.path.join(work, 'manifest.json'),
         lambda _: os.path.join(work, 'out'), args.keep, start)
  if problems:
    print('FAILED:\n  ' + '\n  '.join(problems))
  return 1 if problems else 0


if __name__ == '__main__':
  sys.exit(main())
