"""The files face_dataset writes under --output (local or gs://), and the `faces` rows.

    training/<label>/<name>.jpg     validate/<label>/<name>.jpg
    training_file.txt  validate_file.txt    lines `path,label`, sorted
    labels.txt                              one label per line, sorted; line i = class id i

Index paths are relative to the index file's directory (`training/alice/x-1a2b.jpg`), so a
dataset can be copied or moved (local <-> gs://) as a whole; readers join them with the
index's folder. The `faces` table's `output_path` is the full path. Labels and names hold
no commas (`pubfig.safe_label` rules), so `path,label` needs no quoting.

A crop's name is the source file's stem (made safe) plus 12 hex digits of the image's pixel
hash: readable, stable across reruns, unique within a label (equal pixels were deduplicated).
"""
import os
import posixpath
import time
import unicodedata
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import images
from transforms.dataset_split import SPLITS, TRAINING, VALIDATE
from transforms.deadletter import RecordError, dead_letter
from transforms.face_crops import Candidate, crop_face, item_record
from transforms.image_inputs import ERRORS

INDEX_FILES = {TRAINING: 'training_file.txt', VALIDATE: 'validate_file.txt'}
LABELS_FILE = 'labels.txt'
# Everything a run writes besides its tables (globs relative to --output), replaced by reruns.
OUTPUT_FILES = tuple('%s/*/*.jpg' % split for split in SPLITS) + tuple(
    INDEX_FILES.values()) + (LABELS_FILE,)
MAX_STEM_CHARS = 60
MAX_STEM_BYTES = 120  # UTF-8: name <= 120 + 13 + 4 bytes, well under NAME_MAX (255)


def output_name(source: str, sha256: str) -> str:
  """`<stem>-<12 hex>`: the file (or URL path) stem with every run of anything but
  letters, digits and combining marks turned into one `_`, cut to 60 characters and 120
  UTF-8 bytes (a legal 255-byte source name must not make an illegal crop name); just the
  hex when nothing usable is left."""
  path = unquote(urlsplit(source).path) if '://' in source else source
  stem = posixpath.basename(path.replace('\\', '/')).rsplit('.', 1)[0]
  kept = [ch if unicodedata.category(ch)[0] in 'LNM' else ' '
          for ch in unicodedata.normalize('NFC', stem)]  # as pubfig.safe_label: marks too
  stem = '_'.join(''.join(kept).split())[:MAX_STEM_CHARS]
  stem = stem.encode('utf-8')[:MAX_STEM_BYTES].decode('utf-8', 'ignore').strip('_')
  return '%s-%s' % (stem, sha256[:12]) if stem else sha256[:16]


def relative_path(split: str, label: str, name: str) -> str:
  return '%s/%s/%s.jpg' % (split, label, name)


def face_row(candidate: Candidate, split: str, output_path: str) -> Dict[str, Any]:
  """A `faces` row (schemas/face_dataset/faces.json)."""
  item, face = candidate.item, candidate.face
  left, top, right, bottom = face.box
  return {
      'image_id': candidate.image_id, 'source': item.source, 'label': item.label,
      'split': split, 'face_left': left, 'face_top': top, 'face_right': right,
      'face_bottom': bottom, 'roll': face.roll, 'pan': face.pan, 'tilt': face.tilt,
      'confidence': face.confidence, 'faces': candidate.faces,
      'detector': candidate.detector, 'width': item.width, 'height': item.height,
      'output_path': output_path, 'sha256': item.sha256,
      'phash': images.phash_hex(item.phash),
  }


class _WriteCrop(beam.DoFn):
  """(Candidate, split) -> the crop written, and its `faces` row. An image that cannot be
  cropped is an error row (stage `crop`); a failed write raises, so the runner retries it."""

  def __init__(self, job: str, output: str, margin: float, size: int, quality: int, clock):
    self._job = job
    self._output = output
    self._margin = margin
    self._size = size
    self._quality = quality
    self._clock = clock

  def process(self, element: Tuple[Candidate, str]):
    candidate, split = element
    item = candidate.item
    try:
      jpeg = crop_face(item.data, candidate.face.box, self._margin, self._size,
                       self._quality)
    except Exception as e:  # a RecordError, or Pillow failing on a decodable image
      yield beam.pvalue.TaggedOutput(ERRORS, dead_letter(
          self._job, 'crop', '%s: %s' % (type(e).__name__, e), item_record(item),
          self._clock()))
      return
    relative = relative_path(split, item.label, output_name(item.source, item.sha256))
    path = FileSystems.join(self._output, *relative.split('/'))
    with FileSystems.create(path, mime_type='image/jpeg') as fh:
      fh.write(jpeg)
    yield face_row(candidate, split, path)


class WriteCrops(beam.PTransform):
  """(Candidate, split) -> (faces rows, error rows): crops under `output`."""

  def __init__(self, job: str, output: str, margin: float = 0.2, size: int = 96,
               quality: int = 90, clock=time.time):
    super().__init__()
    self._fn = _WriteCrop(job, output, margin, size, quality, clock)

  def expand(self, split_candidates):
    result = split_candidates | 'Write' >> beam.ParDo(self._fn).with_outputs(
        ERRORS, main='faces')
    return result.faces, result[ERRORS]


def index_entry(row: Dict[str, Any]) -> Tuple[str, str, str]:
  """(split, relative path, label) of a `faces` row."""
  name = posixpath.basename(row['output_path'].replace('\\', '/'))
  return row['split'], relative_path(row['split'], row['label'], name[:-len('.jpg')]), \
      row['label']


def index_texts(entries: List[Tuple[str, str, str]]) -> Dict[str, str]:
  """{file name: content} of the index files, every line sorted (so reruns are identical)."""
  texts = {}
  for split, filename in INDEX_FILES.items():
    lines = sorted('%s,%s' % (path, label) for s, path, label in entries if s == split)
    texts[filename] = ''.join(line + '\n' for line in lines)
  texts[LABELS_FILE] = ''.join(label + '\n' for label in sorted({e[2] for e in entries}))
  return texts


def _write_index(entries: List[Tuple[str, str, str]], output: str) -> List[str]:
  written = []
  for filename, text in index_texts(entries).items():
    path = FileSystems.join(output, filename)
    with FileSystems.create(path, mime_type='text/plain') as fh:
      fh.write(text.encode('utf-8'))
    written.append(path)
  return written


class WriteIndex(beam.PTransform):
  """`faces` rows -> training_file.txt, validate_file.txt and labels.txt (always all three,
  empty when no face was kept). The entries meet in one place to be sorted: ~100 bytes
  each, so millions fit a worker."""

  def __init__(self, output: str):
    super().__init__()
    self._output = output

  def expand(self, faces):
    return (
        faces
        | 'Entries' >> beam.Map(index_entry)
        | 'Gather' >> beam.combiners.ToList()
        | 'Write' >> beam.Map(_write_index, self._output))


def sibling(path: str, name: str) -> str:
  """The file `name` in the folder of `path` (local or gs://)."""
  if '://' in path:
    return path.rsplit('/', 1)[0] + '/' + name
  return os.path.join(os.path.dirname(os.path.abspath(path)), name)


def read_labels(path: str) -> List[str]:
  """A labels.txt: one label per line, line i = class id i, each label once."""
  with FileSystems.open(path) as fh:
    labels = [line.strip() for line in fh.read().decode('utf-8').splitlines() if line.strip()]
  if not labels or len(set(labels)) != len(labels):
    raise ValueError('%s must list each label once (line i = class id i)' % path)
  return labels


def index_folder(path: str) -> str:
  return path.rsplit('/', 1)[0] if '://' in path else os.path.dirname(path)


def parse_index_line(path: str, number: int, line: str) -> Optional[Tuple[str, str]]:
  """(image path, label) of line `number` of the index file at `path`, None for a blank
  line; relative paths are resolved against the index file's folder. RecordError for a
  line that is not `path,label`."""
  if not line.strip():
    return None
  image_path, sep, label = line.rpartition(',')
  if not sep or not image_path or not label.strip():
    raise RecordError('%s:%d: expected path,label, got %r' % (path, number, line))
  if '://' not in image_path and not os.path.isabs(image_path):
    folder = index_folder(path)
    image_path = (posixpath.join(folder, image_path) if '://' in folder
                  else os.path.join(folder, *image_path.split('/')))
  return image_path, label.strip()


def parse_index(path: str, text: str) -> List[Tuple[str, str]]:
  """Every entry of an index file; RecordError at the first bad line (training refuses a
  broken index; image_inference dead-letters bad lines one by one instead)."""
  entries = []
  for number, line in enumerate(text.splitlines(), 1):
    entry = parse_index_line(path, number, line)
    if entry:
      entries.append(entry)
  return entries
