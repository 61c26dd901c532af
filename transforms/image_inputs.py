"""Where `face_dataset`'s images come from: a folder glob or PubFig-style URL lists.

Both readers emit the same `Record`s: the image's raw bytes as `payload` (so a dead letter
holds the file itself), where it came from as `source` (a path or URL) and an `ImageMeta`
as `value`. Everything else is a reject row (`bad_label`, and for URLs `dead_link`,
`md5_mismatch`, `too_large`) or an error row, and every image candidate is counted once in
`images_read`: a matched file, or a data line of a list (header and blank lines are not
candidates). So `images_read = faces + rejects + errors` can be checked from counters.

Folder input `<root>/<label>/<file>`: the label is the parent folder's name through
`pubfig.safe_label`; a folder that leaves nothing usable (`..`, `---`) is a `bad_label`
reject. Files over `images.MAX_BYTES` are error rows without being read. Matched paths are
reshuffled before they are read, so a runner spreads the reads (MatchFiles alone yields the
whole listing from one element, and the reads would fuse onto one worker).

URL lists: every data line is parsed (`pubfig.parse_line`; a line it refuses, like a
truncated last line, is an error row pointing at `list:line`), then fetched by a
`pubfig.Downloader` shared by the DoFn's threads, a batch of lines at a time on
`concurrency` threads.
"""
import os
import posixpath
import time
from typing import Any, Dict, NamedTuple, Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics import Metrics

from transforms import images, pubfig
from transforms.deadletter import RecordError, dead_letter
from transforms.records import Record

REJECTS = 'rejects'
ERRORS = 'errors'
BAD_LABEL = 'bad_label'
LIST_SUFFIXES = ('.txt', '.tsv')


class ImageMeta(NamedTuple):
  image_id: str  # unique per input: the file's path, or `list:line` for a URL list entry
  label: str     # safe (see pubfig.safe_label)
  list_rect: Optional[pubfig.Rect] = None  # the list's face box, for URL list entries


def reject_row(source: str, label: Optional[str], reason: str, detail: str,
               duplicate_of: Optional[str] = None,
               image_id: Optional[str] = None) -> Dict[str, Any]:
  """A `rejects` row (schemas/face_dataset/rejects.json). `image_id` defaults to the
  source (what it is for folder input)."""
  return {'image_id': image_id or source, 'source': source, 'label': label,
          'reason': reason, 'detail': detail, 'duplicate_of': duplicate_of}


def count_reject(job: str, row: Dict[str, Any]) -> Dict[str, Any]:
  Metrics.counter(job, 'rejects_' + row['reason']).inc()
  return row


def is_url_list(pattern: str) -> bool:
  """A PubFig-style list (`dev_urls.txt`, `eval_urls.txt`) rather than an image glob."""
  return pattern.lower().endswith(LIST_SUFFIXES)


def folder_name(path: str) -> str:
  """The name of the folder holding `path` (local or any `scheme://` path)."""
  if '://' in path:
    return posixpath.basename(posixpath.dirname(path))
  return os.path.basename(os.path.dirname(path))


class _ReadImageFile(beam.DoFn):
  """A matched file -> a Record of its bytes, a `bad_label` reject, or an error row."""

  def __init__(self, job: str, max_bytes: int, clock):
    self._job = job
    self._max_bytes = max_bytes
    self._clock = clock
    self._read = Metrics.counter(job, 'images_read')

  def process(self, readable_file: fileio.ReadableFile):
    path = readable_file.metadata.path
    self._read.inc()
    folder = folder_name(path)
    try:
      label = pubfig.safe_label(folder)
    except RecordError as e:
      yield beam.pvalue.TaggedOutput(REJECTS, count_reject(self._job, reject_row(
          path, None, BAD_LABEL, 'folder %r: %s' % (folder, e))))
      return
    size = readable_file.metadata.size_in_bytes
    if size is not None and size > self._max_bytes:
      yield beam.pvalue.TaggedOutput(ERRORS, dead_letter(
          self._job, 'read', 'image too large: %d bytes > %d (not read)' % (
              size, self._max_bytes), Record(None, path), self._clock()))
      return
    data = readable_file.read()
    yield Record(data, path, value=ImageMeta(path, label))


class ReadImageFiles(beam.PTransform):
  """Glob of `<root>/<label>/<file>` -> (image Records, reject rows, error rows)."""

  def __init__(self, job: str, pattern: str, max_bytes: int = images.MAX_BYTES, clock=None):
    super().__init__()
    self._job = job
    self._pattern = pattern
    self._max_bytes = max_bytes
    self._clock = clock or time.time

  def expand(self, pbegin):
    result = (
        pbegin
        | 'Match' >> fileio.MatchFiles(self._pattern)
        | 'Spread' >> beam.Reshuffle()
        | 'Open' >> fileio.ReadMatches()
        | 'Read' >> beam.ParDo(_ReadImageFile(self._job, self._max_bytes, self._clock))
        .with_outputs(REJECTS, ERRORS, main='images'))
    return result['images'], result[REJECTS], result[ERRORS]


class _ListEntries(beam.DoFn):
  """A URL list file -> one Record per data line (value: UrlEntry), or error rows."""

  def __init__(self, job: str, clock):
    self._job = job
    self._clock = clock
    self._read = Metrics.counter(job, 'images_read')

  def process(self, readable_file: fileio.ReadableFile):
    path = readable_file.metadata.path
    raw = readable_file.read()
    try:
      text = raw.decode('utf-8')
    except UnicodeDecodeError:
      text = raw.decode('latin-1')  # old lists: names in Latin-1; never fails
    for number, line in pubfig.numbered_lines(text):
      record = Record(line, path, line=number)
      try:
        entry = pubfig.parse_line(line, number)
      except RecordError as e:
        self._read.inc()
        yield beam.pvalue.TaggedOutput(ERRORS, dead_letter(
            self._job, 'url_list', str(e), record, self._clock()))
        continue
      if entry is None:  # header or blank line
        continue
      self._read.inc()
      yield record.with_value(entry)


class _Download(beam.DoFn):
  """A batch of list entries -> image Records; dead links, md5 mismatches and oversized
  bodies are rejects, and so is a person whose name leaves no usable label."""

  def __init__(self, job: str, downloader: pubfig.Downloader, concurrency: int):
    self._job = job
    self._downloader = downloader
    self._concurrency = concurrency

  def setup(self):
    self._downloader.setup()

  def teardown(self):
    self._downloader.close()

  def process(self, batch):
    fetch = []
    for record in batch:
      entry = record.value
      try:
        label = pubfig.safe_label(entry.person)
      except RecordError as e:
        yield beam.pvalue.TaggedOutput(REJECTS, count_reject(self._job, reject_row(
            entry.url, None, BAD_LABEL, str(e), image_id=record.location)))
        continue
      fetch.append((record, label))
    results = self._downloader.download_many(
        [record.value for record, _ in fetch], self._concurrency)
    for (record, label), download in zip(fetch, results, strict=True):
      entry = record.value
      if download.reject:
        yield beam.pvalue.TaggedOutput(REJECTS, count_reject(self._job, reject_row(
            entry.url, label, download.reject, download.detail, image_id=record.location)))
        continue
      yield Record(download.data, entry.url,
                   value=ImageMeta(record.location, label, entry.rect))


class ReadUrlLists(beam.PTransform):
  """Glob of PubFig-style URL lists -> (image Records, reject rows, error rows)."""

  def __init__(self, job: str, pattern: str, downloader: Optional[pubfig.Downloader] = None,
               concurrency: int = 8, clock=None):
    super().__init__()
    self._job = job
    self._pattern = pattern
    self._downloader = downloader or pubfig.Downloader()
    self._concurrency = concurrency
    self._clock = clock or time.time

  def expand(self, pbegin):
    entries = (
        pbegin
        | 'Match' >> fileio.MatchFiles(self._pattern)
        | 'Open' >> fileio.ReadMatches()
        | 'Lines' >> beam.ParDo(_ListEntries(self._job, self._clock)).with_outputs(
            ERRORS, main='entries'))
    result = (
        entries.entries
        | 'Spread' >> beam.Reshuffle()  # a list is one file: fan its lines out first
        | 'Batch' >> beam.BatchElements(min_batch_size=2 * self._concurrency,
                                        max_batch_size=2 * self._concurrency)
        | 'Download' >> beam.ParDo(_Download(self._job, self._downloader, self._concurrency))
        .with_outputs(REJECTS, ERRORS, main='images'))
    errors = (entries[ERRORS], result[ERRORS]) | 'Errors' >> beam.Flatten()
    return result['images'], result[REJECTS], errors
