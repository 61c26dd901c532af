"""Dead letters: every record a job cannot use becomes one `errors` row, and is counted.

Steps raise `RecordError(reason)` for bad input and are applied with `TryParDo`, which uses
Beam's own `with_exception_handling` and turns the failures into error rows (schema:
`schemas/errors.json`). Nothing is dropped silently and the job never crashes on data.
"""
import base64
import json
import time
from typing import Any, Callable, Dict, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import timestamps
from transforms.records import Record


class RecordError(ValueError):
  """Bad input. The message is what the `errors.error` column says."""


def encode_payload(payload: Any) -> Tuple[Optional[str], Optional[str]]:
  """(payload text, encoding): text when it is UTF-8, else base64 of the raw bytes."""
  if payload is None:
    return None, None
  if isinstance(payload, str):
    try:
      payload.encode('utf-8')
      return payload, 'text'
    except UnicodeEncodeError:
      try:  # undecodable bytes the file reader kept as surrogates: the original bytes
        payload = payload.encode('utf-8', 'surrogateescape')
      except UnicodeEncodeError:  # lone surrogates from JSON escapes such as "\ud800"
        payload = payload.encode('utf-8', 'surrogatepass')
  if isinstance(payload, (bytes, bytearray)):
    try:
      return bytes(payload).decode('utf-8'), 'text'
    except UnicodeDecodeError:
      return base64.b64encode(bytes(payload)).decode('ascii'), 'base64'
  return json.dumps(payload, sort_keys=True, default=str), 'text'


def error_row(job: str, stage: str, error: str, element: Any,
              processing_time: float) -> Dict[str, Any]:
  """The errors-table row for `element` (a Record, or any JSON-able value)."""
  attributes = source = None
  raw = element
  if isinstance(element, Record):
    raw = element.payload
    if raw is None and element.parsed:
      raw = element.value
    attributes = element.attributes
    source = element.location
  if hasattr(raw, '_asdict'):  # a NamedTuple expanded from a record: keep field names
    raw = raw._asdict()
  payload, encoding = encode_payload(raw)
  return {
      'processing_time': timestamps.to_rfc3339(processing_time),
      'job': job,
      'stage': stage,
      'error': error,
      'payload': payload,
      'payload_encoding': encoding,
      'attributes': json.dumps(attributes, sort_keys=True) if attributes else None,
      'source': source,
  }


def dead_letter(job: str, stage: str, error: str, element: Any,
                processing_time: float) -> Dict[str, Any]:
  """`error_row`, counted as `errors` and `errors_<stage>`: for steps that sort their
  failures themselves (a batch call whose elements fail one by one)."""
  Metrics.counter(job, 'errors').inc()
  Metrics.counter(job, 'errors_' + stage).inc()
  return error_row(job, stage, error, element, processing_time)


def reason(exc_type: type, exc_repr: str, formatted_traceback) -> str:
  """A readable reason from what `with_exception_handling` hands over."""
  last = formatted_traceback[-1].strip() if formatted_traceback else exc_repr
  message = last.split(': ', 1)[1] if ': ' in last else ''
  if issubclass(exc_type, RecordError):
    return message or exc_repr
  return '%s: %s' % (exc_type.__name__, message) if message else exc_type.__name__


class _ToErrorRow(beam.DoFn):

  def __init__(self, job: str, stage: str, clock: Callable[[], float]):
    self._job = job
    self._stage = stage
    self._clock = clock

  def process(self, failure):
    element, (exc_type, exc_repr, formatted_traceback) = failure
    yield dead_letter(self._job, self._stage, reason(exc_type, exc_repr, formatted_traceback),
                    element, self._clock())


class TryParDo(beam.PTransform):
  """Apply a DoFn; elements it raises on become error rows. Returns (good, errors)."""

  def __init__(self, fn: beam.DoFn, job: str, stage: str,
               clock: Callable[[], float] = time.time):
    super().__init__()
    self._fn = fn
    self._job = job
    self._stage = stage
    self._clock = clock

  def expand(self, pcoll):
    result = pcoll | 'Apply' >> beam.ParDo(self._fn).with_exception_handling(
        main_tag='good', dead_letter_tag='bad')
    errors = result['bad'] | 'ToErrorRows' >> beam.ParDo(
        _ToErrorRow(self._job, self._stage, self._clock))
    return result['good'], errors
