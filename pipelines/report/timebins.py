"""Bucketing times for "per hour"-style charts: a bin width that gives a readable count."""
import datetime
from typing import Dict, Iterable, List, Tuple

BIN_WIDTHS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
_EPOCH = datetime.datetime(1970, 1, 1)


def bin_width_s(first: datetime.datetime, last: datetime.datetime, max_bins: int = 48) -> int:
  """The narrowest width from BIN_WIDTHS_S that covers first..last in at most max_bins."""
  span = (last - first).total_seconds()
  for width in BIN_WIDTHS_S:
    if span / width < max_bins:
      return width
  return BIN_WIDTHS_S[-1]


def bin_start(moment: datetime.datetime, width_s: int) -> datetime.datetime:
  seconds = int((moment - _EPOCH).total_seconds() // width_s * width_s)
  return _EPOCH + datetime.timedelta(seconds=seconds)


def width_text(width_s: int) -> str:
  for unit, size in (('day', 86400), ('hour', 3600), ('minute', 60)):
    if width_s % size == 0:
      n = width_s // size
      return '%d %s%s' % (n, unit, '' if n == 1 else 's') if n != 1 else unit
  return '%d s' % width_s


def count_by_bin(items: Iterable[Tuple[datetime.datetime, str]], width_s: int
                 ) -> List[Tuple[datetime.datetime, Dict[str, int]]]:
  """(time, category) pairs -> [(bin start, {category: count})] in time order, empty bins
  between the first and last included (a gap in activity is information)."""
  counts: Dict[datetime.datetime, Dict[str, int]] = {}
  for moment, category in items:
    slot = counts.setdefault(bin_start(moment, width_s), {})
    slot[category] = slot.get(category, 0) + 1
  if not counts:
    return []
  out, current, last = [], min(counts), max(counts)
  while current <= last:
    out.append((current, counts.get(current, {})))
    current += datetime.timedelta(seconds=width_s)
  return out
