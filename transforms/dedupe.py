"""Drop repeated deliveries of the same element, counting them.

At-least-once producers and Pub/Sub redeliveries repeat events. Unbounded input goes
through a keyed, stateful DoFn that lets the first copy through at once (no windowing
delay) and forgets the key `ttl_s` seconds of processing time after it first came, so
state stays bounded. Processing time, not event time: a redelivery follows its first copy
within the subscription's retention however old the event is, and an event-time expiry
would forget a backfilled (old) event the moment it was seen. Bounded
input is combined per key instead: the same result, but runners (the DirectRunner above
all) shuffle a combine far faster than they run per-key state.
"""
from typing import Any, Callable, Optional, Tuple

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp


class _FirstPerKey(beam.DoFn):
  SEEN = ReadModifyWriteStateSpec('seen', BooleanCoder())
  EXPIRY = TimerSpec('expiry', TimeDomain.REAL_TIME)

  def __init__(self, namespace: str, ttl_s: float, counter: str = 'duplicates',
               weight: Optional[Callable[[Any], int]] = None):
    self._ttl = Duration.of(ttl_s)
    self._duplicates = Metrics.counter(namespace, counter)
    self._weight = weight

  def process(self, element, seen=beam.DoFn.StateParam(SEEN),
              expiry=beam.DoFn.TimerParam(EXPIRY)):
    if seen.read():
      self._duplicates.inc(self._weight(element[1]) if self._weight else 1)
      return
    seen.write(True)
    expiry.set(Timestamp.now() + self._ttl)
    yield element[1]

  @on_timer(EXPIRY)
  def expire(self, seen=beam.DoFn.StateParam(SEEN)):
    seen.clear()


class _FirstAndCount(beam.CombineFn):
  """(value, timestamp) copies of one key -> [one copy, number of copies]: the copy
  `prefer` ranks lowest, or any when there is no preference."""

  def __init__(self, prefer: Optional[Callable[[Any], Any]] = None):
    self._prefer = prefer

  def _better(self, candidate, kept) -> bool:
    return self._prefer is not None and self._prefer(candidate[0]) < self._prefer(kept[0])

  def create_accumulator(self):
    return [None, 0]

  def add_input(self, acc, stamped):
    if acc[1] == 0 or self._better(stamped, acc[0]):
      acc[0] = stamped
    acc[1] += 1
    return acc

  def merge_accumulators(self, accumulators):
    out = [None, 0]
    for first, count in accumulators:
      if count and (out[1] == 0 or self._better(first, out[0])):
        out[0] = first
      out[1] += count
    return out

  def extract_output(self, acc):
    return acc


class _EmitFirst(beam.DoFn):

  def __init__(self, namespace: str, counter: str, weight: Optional[Callable[[Any], int]]):
    self._duplicates = Metrics.counter(namespace, counter)
    self._weight = weight

  def process(self, keyed):
    _, ((value, timestamp), copies) = keyed
    if copies > 1:
      self._duplicates.inc((copies - 1) * (self._weight(value) if self._weight else 1))
    yield beam.window.TimestampedValue(value, timestamp)


class _WithTimestamp(beam.DoFn):

  def process(self, kv, timestamp=beam.DoFn.TimestampParam):
    yield kv[0], (kv[1], timestamp)


class DropDuplicates(beam.PTransform):
  """(key, value) -> value, once per key; repeats increment `<namespace>/<counter>` by
  one, or by `weight(value)` (a message of several readings repeats them all). Element
  timestamps are kept. Bounded input keeps the copy `prefer(value)` ranks lowest (ties
  must not exist, or the pick is arbitrary); unbounded input keeps the first to arrive."""

  def __init__(self, namespace: str, ttl_s: float = 3600, counter: str = 'duplicates',
               weight: Optional[Callable[[Any], int]] = None,
               prefer: Optional[Callable[[Any], Any]] = None):
    super().__init__()
    self._prefer = prefer
    self._namespace = namespace
    self._ttl_s = ttl_s
    self._counter = counter
    self._weight = weight

  def expand(self, keyed):
    # A str key coder is deterministic, as shuffle and state keys must be.
    keyed = keyed | 'TypeKeys' >> beam.Map(lambda kv: kv).with_output_types(Tuple[str, Any])
    if keyed.is_bounded:
      return (
          keyed
          | 'Stamp' >> beam.ParDo(_WithTimestamp())
          | 'FirstAndCount' >> beam.CombinePerKey(_FirstAndCount(self._prefer))
          | 'EmitFirst' >> beam.ParDo(_EmitFirst(self._namespace, self._counter, self._weight)))
    return keyed | 'FirstPerKey' >> beam.ParDo(
        _FirstPerKey(self._namespace, self._ttl_s, self._counter, self._weight))
