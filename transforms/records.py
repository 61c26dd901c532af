"""The element every source emits: a raw payload plus where it came from.

Jobs parse `payload`; dead letters keep it verbatim with `attributes` and `source`, so an
error row always holds enough to replay the record.
"""
import dataclasses
from typing import Any, Dict, Optional, Union

from transforms import jsonsplit



class _Unparsed:
  """Sentinel for a payload not parsed yet. A class, so it survives pickling by reference
  (an `object()` sentinel would come back as a different object after a shuffle)."""


_UNPARSED = _Unparsed


@dataclasses.dataclass(frozen=True)
class Record:
  payload: Union[str, bytes]
  source: str
  attributes: Optional[Dict[str, str]] = None
  message_id: Optional[str] = None       # Pub/Sub message id (dedupe key for redeliveries)
  publish_time: Optional[int] = None     # epoch microseconds, when the source knows it
  line: Optional[int] = None             # 1-based line of the record in its file
  part: Optional[int] = None             # which of the record's events this is (0-based)
  value: Any = dataclasses.field(default=_UNPARSED, compare=False, repr=False)

  @property
  def parsed(self) -> bool:
    return self.value is not _UNPARSED

  @property
  def location(self) -> str:
    """Where to find the record: `source[:line][#part]`."""
    where = '%s:%d' % (self.source, self.line) if self.line else self.source
    return where if self.part is None else '%s#%d' % (where, self.part)

  def with_value(self, value: Any, part: Optional[int] = None) -> 'Record':
    """The same record carrying `value`, or one of its events (`part`). The raw payload
    stays, so a dead letter for any part holds the record as it came in.
    (dataclasses.replace is several times slower, and this runs once per event.)"""
    return Record(self.payload, self.source, self.attributes, self.message_id,
                  self.publish_time, self.line, self.part if part is None else part, value)

  def text(self) -> str:
    """The payload as text; raises UnicodeDecodeError for binary payloads."""
    if isinstance(self.payload, bytes):
      return self.payload.decode('utf-8')
    return self.payload


def json_value(record: Record) -> Any:
  """The record's JSON value, parsing the payload unless the reader already did."""
  if record.parsed:
    return record.value
  return jsonsplit.loads(record.text())
