"""Time conversions shared by every job: event times in, RFC 3339 UTC strings out."""
import datetime
import re
from typing import Any, Optional

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_rfc3339(seconds: Optional[float]) -> Optional[str]:
  """Epoch seconds -> '2018-10-10T20:19:24.123456Z' (what BigQuery TIMESTAMP loads)."""
  if seconds is None:
    return None
  return micros_to_rfc3339(int(round(seconds * 1_000_000)))


_FRACTION = re.compile(r'\.(\d+)')


def parse_rfc3339_micros(text: str) -> int:
  """RFC 3339 / ISO-8601 (any fraction digits, 'Z' or offset) -> exact epoch microseconds."""
  text = text.strip()
  if text.endswith(('Z', 'z')):
    text = text[:-1] + '+00:00'
  # Python parses at most 6 fraction digits: keep microseconds, drop the rest (ns logs).
  text = _FRACTION.sub(lambda m: '.' + (m.group(1) + '000000')[:6], text, count=1)
  moment = datetime.datetime.fromisoformat(text)
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=datetime.timezone.utc)
  return (moment - _EPOCH) // datetime.timedelta(microseconds=1)


def parse_rfc3339(text: str) -> float:
  """RFC 3339 text -> epoch seconds."""
  return parse_rfc3339_micros(text) / 1e6


def epoch_micros(value: Any) -> int:
  """An epoch number or numeric string in s, ms, us or ns (by magnitude), or RFC 3339 text.

  Integers are scaled exactly (no float round trip), so microsecond event times survive.
  Raises ValueError for anything else, so callers can dead-letter the record.
  """
  if isinstance(value, bool) or value is None:
    raise ValueError('not a timestamp: %r' % (value,))
  if isinstance(value, str):
    stripped = value.strip()
    if stripped.lstrip('-').isdigit():
      return _scale_int(int(stripped))
    try:
      number = float(stripped)
    except ValueError:
      return parse_rfc3339_micros(stripped)
    return _scale_float(number)
  if isinstance(value, int):
    return _scale_int(value)
  if isinstance(value, float):
    return _scale_float(value)
  raise ValueError('not a timestamp: %r' % (value,))


def micros_to_rfc3339(micros: Optional[int]) -> Optional[str]:
  if micros is None:
    return None
  m = _EPOCH + datetime.timedelta(microseconds=int(micros))
  # Formatted by hand: strftime('%Y') does not zero-pad years before 1000 on glibc.
  return '%04d-%02d-%02dT%02d:%02d:%02d.%06dZ' % (
      m.year, m.month, m.day, m.hour, m.minute, m.second, m.microsecond)


# Magnitude bands: epoch seconds stay below 1e11 until the year 5138; ms below 1e14 ...
def _scale_int(number: int) -> int:
  magnitude = abs(number)
  if magnitude >= 10**17:
    return number // 1000
  if magnitude >= 10**14:
    return number
  if magnitude >= 10**11:
    return number * 1000
  return number * 1_000_000


def _scale_float(number: float) -> int:
  if number != number or number in (float('inf'), float('-inf')):
    raise ValueError('not a timestamp: %r' % number)
  if number.is_integer():
    return _scale_int(int(number))
  magnitude = abs(number)
  factor = 1e-3 if magnitude >= 1e17 else 1 if magnitude >= 1e14 else 1e3 if magnitude >= 1e11 else 1e6
  return int(round(number * factor))
