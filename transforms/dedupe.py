"""Drop repeated deliveries of the same element, counting them.

At-least-once producers and Pub/Sub redeliveries repeat events. A keyed, stateful DoFn lets
the first copy through at once (no windowing delay, the same in batch and streaming) and
remembers the key for `ttl_s` of event time, then forgets it so state stays bounded.
"""
from typing import Any, Tuple

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration


class _FirstPerKey(beam.DoFn):
  SEEN = ReadModifyWriteStateSpec('seen', BooleanCoder())
  EXPIRY = TimerSpec('expiry', TimeDomain.WATERMARK)

  def __init__(self, namespace: str, ttl_s: float):
    self._ttl = Duration.of(ttl_s)
    self._duplicates = Metrics.counter(namespace, 'duplicates')

  def process(self, element, timestamp=beam.DoFn.TimestampParam,
              seen=beam.DoFn.StateParam(SEEN), expiry=beam.DoFn.TimerParam(EXPIRY)):
    if seen.read():
      self._duplicates.inc()
      return
    seen.write(True)
    expiry.set(timestamp + self._ttl)
    yield element[1]

  @on_timer(EXPIRY)
  def expire(self, seen=beam.DoFn.StateParam(SEEN)):
    seen.clear()


class DropDuplicates(beam.PTransform):
  """(key, value) -> value, once per key; repeats increment `<namespace>/duplicates`."""

  def __init__(self, namespace: str, ttl_s: float = 3600):
    super().__init__()
    self._namespace = namespace
    self._ttl_s = ttl_s

  def expand(self, keyed):
    return (
        keyed
        # A str key coder is deterministic, as state keys must be.
        | 'TypeKeys' >> beam.Map(lambda kv: kv).with_output_types(Tuple[str, Any])
        | 'FirstPerKey' >> beam.ParDo(_FirstPerKey(self._namespace, self._ttl_s)))
