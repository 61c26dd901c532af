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


def _threshold(keyed, cap: int):
  """(label, balance ranks) -> (label, the cap-th smallest rank): ranks up to it are kept.
  Holds `cap` ranks, whatever the label's size."""
  label, ranks = keyed
  smallest = heapq.nsmallest(cap, ranks)
  yield label, (smallest[-1] if smallest else '')


class _Cap(beam.DoFn):
  """Candidates ranked past their label's threshold -> `balance` rejects."""

  def __init__(self, job: str):
    self._job = job

  def process(self, candidate, thresholds, cap: int):
    label = candidate.item.label
    if balance_rank(candidate.item.sha256) <= thresholds[label]:
      yield candidate
      return
    yield beam.pvalue.TaggedOutput(REJECTS, count_reject(self._job, reject_row(
        candidate.item.source, label, BALANCE,
        'label %s capped at %d faces (the smallest label\'s count)' % (label, cap),
        image_id=candidate.image_id)))


def _record_cap(cap: int, counter) -> int:
  counter.inc(cap)
  return cap


class Balance(beam.PTransform):
  """Candidates -> (kept, reject rows): every label cut to the smallest label's count.

  Only (label, rank) pairs are grouped, never the candidates (which carry their image
  bytes): the per-label thresholds reach the candidates as a side input, so the crops that
  follow keep the parallelism they had instead of one thread per label.
  """

  def __init__(self, job: str):
    super().__init__()
    self._job = job

  def expand(self, candidates):
    ranks = candidates | 'Ranks' >> beam.Map(
        lambda c: (c.item.label, balance_rank(c.item.sha256)))
    cap = (
        ranks
        | 'CountPerLabel' >> beam.combiners.Count.PerKey()
        | 'Counts' >> beam.Values()
        | 'Smallest' >> beam.CombineGlobally(lambda counts: min(counts, default=0))
        | 'CountCap' >> beam.Map(_record_cap, Metrics.counter(self._job, 'balance_cap')))
    thresholds = (
        ranks
        | 'Group' >> beam.GroupByKey()
        | 'Threshold' >> beam.FlatMap(_threshold, beam.pvalue.AsSingleton(cap)))
    result = candidates | 'Cap' >> beam.ParDo(
        _Cap(self._job), beam.pvalue.AsDict(thresholds), beam.pvalue.AsSingleton(cap)
    ).with_outputs(REJECTS, main='kept')
    return result.kept, result[REJECTS]
