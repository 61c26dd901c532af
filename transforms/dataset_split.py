"""face_dataset's train/validate split and class balance, both decided by image content.

`split_of` puts an image in `validate` when the first 64 bits of its pixel SHA-256, read as
a fraction of 2^64, fall below `validate_fraction`. So an image's split never depends on the
input order, the bundling, the runner or the other images: rerunning, or adding photos,
never moves a face from training into validation (which would leak it into both).

`Balance` caps every label at the smallest label's face count (unequal classes skew a
classifier toward the big ones). Within a label it keeps the faces with the smallest
`balance_rank`, a second hash of the content independent of the split's bits, so the kept
faces are a deterministic, unbiased sample that keeps the split's proportions. The dropped
ones are rejects with reason `balance`.
"""
import hashlib
import heapq

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.image_inputs import REJECTS, count_reject, reject_row

TRAINING = 'training'
VALIDATE = 'validate'
SPLITS = (TRAINING, VALIDATE)
BALANCE = 'balance'


def split_of(sha256: str, validate_fraction: float) -> str:
  if not 0.0 <= validate_fraction <= 1.0:
    raise ValueError('validate_fraction must be within [0, 1], got %r' % (validate_fraction,))
  # Exact: an int against fraction * 2^64 (a float times a power of two, no rounding).
  return VALIDATE if int(sha256[:16], 16) < validate_fraction * float(1 << 64) else TRAINING


def balance_rank(sha256: str) -> str:
  return hashlib.sha256(b'balance:' + sha256.encode('ascii')).hexdigest()


class _CapLabel(beam.DoFn):
  """(label, candidates) -> the `cap` with the smallest balance_rank; the rest are rejects.
  Two passes over the group (runners can re-iterate it), holding only `cap` ranks."""

  def __init__(self, job: str):
    self._job = job

  def process(self, keyed, cap: int):
    label, candidates = keyed
    ranks = heapq.nsmallest(cap, (balance_rank(c.item.sha256) for c in candidates))
    threshold = ranks[-1] if ranks else None
    for candidate in candidates:
      if threshold is not None and balance_rank(candidate.item.sha256) <= threshold:
        yield candidate
        continue
      yield beam.pvalue.TaggedOutput(REJECTS, count_reject(self._job, reject_row(
          candidate.item.source, label, BALANCE,
          'label %s capped at %d faces (the smallest label\'s count)' % (label, cap),
          image_id=candidate.image_id)))


def _record_cap(cap: int, counter) -> int:
  counter.inc(cap)
  return cap


class Balance(beam.PTransform):
  """Candidates -> (kept, reject rows): every label cut to the smallest label's count."""

  def __init__(self, job: str):
    super().__init__()
    self._job = job

  def expand(self, candidates):
    keyed = candidates | 'ByLabel' >> beam.Map(lambda c: (c.item.label, c))
    cap = (
        keyed
        | 'CountPerLabel' >> beam.combiners.Count.PerKey()
        | 'Counts' >> beam.Values()
        | 'Smallest' >> beam.CombineGlobally(lambda counts: min(counts, default=0))
        | 'CountCap' >> beam.Map(_record_cap, Metrics.counter(self._job, 'balance_cap')))
    result = (
        keyed
        | 'Group' >> beam.GroupByKey()
        | 'Cap' >> beam.ParDo(_CapLabel(self._job), beam.pvalue.AsSingleton(cap))
        .with_outputs(REJECTS, main='kept'))
    return result.kept, result[REJECTS]
