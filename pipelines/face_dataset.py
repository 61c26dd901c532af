"""face_dataset: a photo collection -> a clean, balanced train/validate set of face crops.

    python -m pipelines.face_dataset [--input 'photos/*/*' | --input dev_urls.txt]
        [--output DIR|gs://BUCKET/DIR] [--detector local|vision] [--size 96]
        [--validate_fraction 0.3] [--balance] [--max_faces 1] [--max_angle 20] ...

Read (folders `<root>/<label>/<file>`, or PubFig-style URL lists fetched over HTTP) ->
decode -> drop exact and near duplicates -> detect faces in batches (OpenCV Haar offline, or
Cloud Vision) -> filter -> split by content hash -> optionally balance -> crop, resize, write
JPEGs -> index files. Every image read ends in exactly one of `faces`, `rejects` (with a
reason) or `errors`: `images_read = rows_faces + rows_rejects + errors`.
"""
import os
import re
import sys
import time
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.launch import JobPlan, build_job, default_output, main, run_job
from pipelines.options import (ENDPOINT, ConfigError, JobOptions, add_switch, described, fraction,
                               input_format, int_range, non_negative, positive,
                               positive_int)
from transforms import dataset_files, dataset_split, face_detect, image_inputs, images, pubfig
from transforms.face_crops import DecodeImages, DetectFaces, FaceFilter
from transforms.image_dedupe import Duplicates, ExactDuplicates
from transforms.image_inputs import count_reject, reject_row
from transforms.sinks import is_bigquery_dataset
from transforms.sources import is_pubsub

JOB = 'face_dataset'
DESCRIPTION = ('Photos in <root>/<label>/ folders, or PubFig-style URL lists -> face crops '
               'split into training/ and validate/, index files, and the faces, rejects '
               'and errors tables.')
SAMPLE_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'samples', JOB, '*',
                            '*')
# Unrelated 64-bit pHashes differ in ~32 bits (sd 4): past ~10 strangers start to chain into
# groups, and the hash bands get so narrow that every bucket fills with them.
MAX_NEAR_DISTANCE = 10
HAAR_WINDOW_PX = 24  # the frontal cascade's window: the smallest face it can find
DUPLICATE = 'duplicate'


class FaceDatasetOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('face_dataset')
    group.add_argument(
        '--detector', choices=('local', 'vision'), default='local',
        help='local: OpenCV Haar cascades, offline (roll from the eyes, no pan/tilt, no '
        'labels); vision: Cloud Vision FACE_DETECTION + LABEL_DETECTION (default local).')
    group.add_argument(
        '--max_faces', type=positive_int, default=1,
        help='Reject images with more confident faces than this (default 1). Above 1, the '
        'largest face is cropped.')
    group.add_argument(
        '--max_angle', type=non_negative, default=20,
        help='Reject faces whose |roll|, |pan| or |tilt| exceeds this many degrees; '
        'unknown angles pass (default 20).')
    group.add_argument(
        '--reject_labels', default='sunglasses',
        type=described('reject_labels', r'^[^,]*(,[^,]*)*$'),
        help="Comma-separated image labels that reject an image, ignoring case (vision "
        "detector only; default 'sunglasses'; '' for none).")
    group.add_argument(
        '--min_face_px', type=positive_int, default=32,
        help="Reject faces whose box's shorter side is under this many pixels of the "
        "original image (default 32).")
    group.add_argument(
        '--min_confidence', type=fraction, default=0.5,
        help='Faces below this detection confidence do not count (default 0.5); an image '
        'with only such faces is rejected as low_confidence.')
    group.add_argument(
        '--crop_margin', type=non_negative, default=0.2,
        help='Grow the face box by this fraction of its width/height on each side before '
        'cropping, clamped to the image (default 0.2).')
    group.add_argument(
        '--size', type=positive_int, default=96,
        help='Crops are SIZE x SIZE pixels (default 96).')
    group.add_argument(
        '--jpeg_quality', type=int_range(1, 95), default=90,
        help='JPEG quality of the crops, 1-95 (default 90).')
    group.add_argument(
        '--validate_fraction', type=fraction, default=0.3,
        help='Share of faces in validate/, chosen by pixel hash: the same image always '
        'lands in the same split (default 0.3).')
    add_switch(
        group, '--balance',
        help="Cap every label at the smallest label's face count (a deterministic choice); "
        "the others are rejects with reason balance.")
    group.add_argument(
        '--near_duplicate_distance', type=int_range(-1, MAX_NEAR_DISTANCE), default=4,
        help='Images whose 64-bit perceptual hashes differ in at most this many bits are '
        'near duplicates; one is kept (default 4, at most 10). 0 still groups equal hashes (a resized '
        'copy usually has its original\'s hash); -1 turns near duplicates off, leaving '
        'exact (equal pixel) duplicates only.')
    group.add_argument(
        '--detect_batch_size', type=positive_int, default=16,
        help='Images per detector call; with --detector vision, one images:annotate '
        'request (the API takes at most 16 images and 10 MB per request; default 16).')
    group.add_argument(
        '--max_upload_px', type=positive_int, default=1024,
        help='Vision: images are downscaled to at most this many pixels on the long side '
        'before upload, and boxes mapped back (default 1024).')
    group.add_argument(
        '--vision_endpoint', default=None,
        type=described('vision_endpoint', ENDPOINT),
        help='Vision endpoint, e.g. http://127.0.0.1:8080 for a local server (which needs '
        'no credentials). Default: vision.googleapis.com.')
    group.add_argument(
        '--vision_qps', type=positive, default=10,
        help='Vision requests per second per worker process, retries included (default 10).')
    group.add_argument(
        '--vision_max_attempts', type=positive_int, default=6,
        help='Attempts per Vision request on 429/5xx before its images go to errors '
        '(default 6).')
    group.add_argument(
        '--max_image_bytes', type=positive_int, default=images.MAX_BYTES,
        help='Files and downloads over this many bytes are not read: an error row for '
        'files, a too_large reject for URLs (default %d, 32 MiB).' % images.MAX_BYTES)
    group.add_argument(
        '--download_concurrency', type=positive_int, default=8,
        help='URL lists: concurrent downloads per DoFn instance (default 8).')
    group.add_argument(
        '--download_timeout', type=positive, default=10,
        help='URL lists: seconds to connect and between bytes (default 10).')
    group.add_argument(
        '--download_attempts', type=positive_int, default=3,
        help='URL lists: attempts per URL on timeouts, 429 and 5xx (default 3).')


def _csv(text: Optional[str]):
  return tuple(part.strip().lower() for part in (text or '').split(',') if part.strip())


def check_options(opts: FaceDatasetOptions, job_options: JobOptions, source: Optional[str],
                  output: str) -> None:
  if job_options.input_table or is_pubsub(source):
    raise ConfigError('face_dataset reads image files or URL lists (--input GLOB), not '
                      'BigQuery or Pub/Sub')
  if is_bigquery_dataset(output):
    raise ConfigError('face_dataset writes image files: --output must be a directory '
                      '(local or gs://), not a BigQuery dataset')
  if not 1 <= opts.jpeg_quality <= 95:
    raise ConfigError('--jpeg_quality must be 1-95 (Pillow: above 95 only grows files)')
  if opts.size < 8:
    raise ConfigError('--size must be at least 8 pixels, got %d' % opts.size)
  if not -1 <= opts.near_duplicate_distance <= MAX_NEAR_DISTANCE:
    raise ConfigError('--near_duplicate_distance must be -1 (off) or 0-%d bits, got %d'
                      % (MAX_NEAR_DISTANCE, opts.near_duplicate_distance))
  if source:
    check_input_outside_output(source, output)


def _inside(path: str, folder: str) -> bool:
  if '://' in path or '://' in folder:
    return path.rstrip('/').startswith(folder.rstrip('/') + '/')
  path, folder = os.path.abspath(path), os.path.abspath(folder)
  return os.path.commonpath([path, folder]) == folder


def check_input_outside_output(source: str, output: str) -> None:
  """A local run first deletes the crops of the last one (training/, validate/ under
  --output): input there would be deleted, then missed. Local globs are matched (and must
  match something); remote ones are judged by their fixed prefix."""
  if '://' in source:
    fixed = re.split(r'[*?\[]', source, maxsplit=1)[0]
    inputs = [fixed] if fixed != source else [source]
  else:
    inputs = [m.path for m in FileSystems.match([source])[0].metadata_list]
    if not inputs:
      raise ConfigError('--input %r matches no files' % source)
  for path in inputs:
    if _inside(path, output):
      raise ConfigError('--input must not be inside --output (%s is under %s): a run '
                        'replaces the crops there' % (path, output))


def detector_from_options(opts: FaceDatasetOptions, api_key: Optional[str] = None):
  if opts.detector == 'local':
    # Found down to the cascade's window, so faces under --min_face_px are too_small
    # rejects with their size, not silent no_face ones.
    return face_detect.LocalDetector(min_face_px=min(HAAR_WINDOW_PX, opts.min_face_px))
  return face_detect.VisionDetector(
      max_upload_px=opts.max_upload_px, endpoint=opts.vision_endpoint, api_key=api_key,
      qps=opts.vision_qps, max_attempts=opts.vision_max_attempts)


def duplicate_row(job: str, reject):
  image_id, info, kept_id, detail = reject
  return count_reject(job, reject_row(info.source, info.label, DUPLICATE, detail,
                                      duplicate_of=kept_id, image_id=image_id))


class FaceDataset(beam.PTransform):
  """PBegin -> {'faces', 'rejects', 'errors'}; crops and index files under `output`."""

  def __init__(self, source: str, output: str, detector, face_filter: FaceFilter = FaceFilter(),
               url_list: bool = False, near_distance: int = 4, validate_fraction: float = 0.3,
               balance: bool = False, crop_margin: float = 0.2, size: int = 96,
               jpeg_quality: int = 90, batch_size: int = 16, downloader=None,
               download_concurrency: int = 8, max_bytes: int = images.MAX_BYTES,
               clock=time.time):
    super().__init__()
    self._source = source
    self._output = output
    self._detector = detector
    self._filter = face_filter
    self._url_list = url_list
    self._near_distance = near_distance
    self._validate_fraction = validate_fraction
    self._balance = balance
    self._crop_margin = crop_margin
    self._size = size
    self._jpeg_quality = jpeg_quality
    self._batch_size = batch_size
    self._downloader = downloader
    self._download_concurrency = download_concurrency
    self._max_bytes = max_bytes
    self._clock = clock

  def expand(self, pbegin):
    if self._url_list:
      read = image_inputs.ReadUrlLists(JOB, self._source, self._downloader,
                                        self._download_concurrency, self._clock)
    else:
      read = image_inputs.ReadImageFiles(JOB, self._source, self._max_bytes, self._clock)
    records, read_rejects, read_errors = pbegin | 'Read' >> read
    items, decode_errors = records | 'Decode' >> DecodeImages(JOB, self._max_bytes,
                                                              self._clock)
    if self._near_distance < 0:
      kept, duplicates = items | 'Duplicates' >> ExactDuplicates(JOB)
    else:
      kept, duplicates = items | 'Duplicates' >> Duplicates(JOB, self._near_distance)
    candidates, detect_rejects, detect_errors = kept | 'DetectFaces' >> DetectFaces(
        JOB, self._detector, self._filter, self._batch_size, self._clock)
    rejects = [read_rejects, duplicates | 'DuplicateRows' >> beam.Map(
        lambda reject: duplicate_row(JOB, reject)), detect_rejects]
    if self._balance:
      candidates, balance_rejects = candidates | 'Balance' >> dataset_split.Balance(JOB)
      rejects.append(balance_rejects)
    fraction_ = self._validate_fraction
    faces, crop_errors = (
        candidates
        | 'Split' >> beam.Map(
            lambda c: (c, dataset_split.split_of(c.item.sha256, fraction_)))
        | 'WriteCrops' >> dataset_files.WriteCrops(
            JOB, self._output, self._crop_margin, self._size, self._jpeg_quality,
            self._clock))
    faces | 'WriteIndex' >> dataset_files.WriteIndex(self._output)
    return {
        'faces': faces,
        'rejects': rejects | 'Rejects' >> beam.Flatten(),
        'errors': (read_errors, decode_errors, detect_errors, crop_errors)
        | 'Errors' >> beam.Flatten(),
    }


def _read(pipeline, source, options):
  """The job reads for itself (images, not records): hand it the pipeline and --input."""
  return pipeline, source


def _build(root, options: PipelineOptions, streaming: bool):
  pipeline, source = root
  opts = options.view_as(FaceDatasetOptions)
  job_options = options.view_as(JobOptions)
  output = job_options.output or default_output(JOB)
  check_options(opts, job_options, source, output)
  if streaming:
    raise ConfigError('face_dataset is a batch job (duplicates need the whole collection); '
                      'run it without --streaming')
  url_list = input_format(job_options, ('images', 'url_list')) == 'url_list' or (
      job_options.input_format == 'auto' and image_inputs.is_url_list(source))
  downloader = pubfig.Downloader(timeout_s=opts.download_timeout,
                                 max_attempts=opts.download_attempts,
                                 max_bytes=opts.max_image_bytes,
                                 pool_size=max(16, opts.download_concurrency))
  face_filter = FaceFilter(opts.max_faces, opts.max_angle, _csv(opts.reject_labels),
                           opts.min_face_px, opts.min_confidence)
  return pipeline | 'FaceDataset' >> FaceDataset(
      source, output, detector_from_options(opts, job_options.api_key), face_filter,
      url_list, opts.near_duplicate_distance, opts.validate_fraction, opts.balance,
      opts.crop_margin, opts.size, opts.jpeg_quality, opts.detect_batch_size, downloader,
      opts.download_concurrency, opts.max_image_bytes)


def build(argv=None, save_main_session=True) -> JobPlan:
  """The job's pipeline for `argv`, not run (tests inspect it)."""
  return build_job(JOB, FaceDatasetOptions, _build, argv, save_main_session, DESCRIPTION,
                   read=_read, default_input=SAMPLE_INPUT)


def run(argv=None, save_main_session=True) -> Optional[beam.runners.runner.PipelineResult]:
  return run_job(JOB, FaceDatasetOptions, _build, argv, save_main_session, DESCRIPTION,
                 read=_read, default_input=SAMPLE_INPUT,
                 output_files=dataset_files.OUTPUT_FILES)


if __name__ == '__main__':
  sys.exit(main(JOB, run))
