"""Event-time windowing shared by the jobs: global in batch, fixed/session with triggers
when streaming. Windowed tables get `window_start`/`window_end` and the pane's index/timing.
"""
import dataclasses
from typing import Any, Dict, Optional

import apache_beam as beam
from apache_beam.transforms import trigger, window

from transforms import timestamps


@dataclasses.dataclass(frozen=True)
class Windowing:
  """How aggregations are windowed. In batch every aggregate covers the whole input."""
  streaming: bool = False
  window_s: float = 300
  early_firing_s: Optional[float] = 60
  allowed_lateness_s: float = 600
  batch_windows: bool = False  # window bounded input too (per-minute log metrics), no triggers

  @classmethod
  def from_options(cls, options, streaming: bool, batch_windows: bool = False,
                   default_window_s: float = 300) -> 'Windowing':
    """From JobOptions' --window/--early_firing/--allowed_lateness."""
    return cls(streaming=streaming, window_s=options.window or default_window_s,
               early_firing_s=options.early_firing or None,
               allowed_lateness_s=options.allowed_lateness, batch_windows=batch_windows)

  def _trigger(self):
    early = (trigger.AfterProcessingTime(self.early_firing_s)
             if self.early_firing_s else None)
    return trigger.AfterWatermark(early=early, late=trigger.AfterCount(1))

  def window_into(self, windowfn: window.WindowFn) -> beam.PTransform:
    """WindowInto `windowfn` with this windowing's trigger and lateness when streaming."""
    if not self.streaming:
      if self.batch_windows:
        return beam.WindowInto(windowfn)
      return _Unchanged()  # batch input is already in the global window
    return beam.WindowInto(
        windowfn,
        trigger=self._trigger(),
        accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
        allowed_lateness=self.allowed_lateness_s)


class _Unchanged(beam.PTransform):
  """No step at all: bounded jobs never leave the global window."""

  def expand(self, pcoll):
    return pcoll


def window_columns(win: Any, pane: Any) -> Dict[str, Any]:
  """window_start/window_end/pane_index/pane_timing; all null for the global window, and
  the pane columns null when `pane` is None (bounded input fires once per window)."""
  if isinstance(win, window.GlobalWindow) or not hasattr(win, 'start'):
    return {'window_start': None, 'window_end': None, 'pane_index': None,
            'pane_timing': None}
  columns = {
      'window_start': timestamps.micros_to_rfc3339(win.start.micros),
      'window_end': timestamps.micros_to_rfc3339(win.end.micros),
  }
  columns.update(pane_columns(win, pane))
  return columns


_TIMING = {0: 'EARLY', 1: 'ON_TIME', 2: 'LATE', 3: 'UNKNOWN'}


def pane_columns(win: Any, pane: Any) -> Dict[str, Any]:
  if isinstance(win, window.GlobalWindow) or pane is None:
    return {'pane_index': None, 'pane_timing': None}
  return {'pane_index': pane.index, 'pane_timing': _TIMING.get(pane.timing, 'UNKNOWN')}


class AddWindowColumns(beam.DoFn):
  """Row -> row with its window and pane columns (panes only when streaming)."""

  def __init__(self, streaming: bool = True):
    self._streaming = streaming

  def process(self, row, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
    out = dict(row)
    out.update(window_columns(win, pane if self._streaming else None))
    yield out


class _KeyByWindow(beam.DoFn):
  """(key, value) -> ((key, window start, window end), value) for each window `windowfn`
  assigns the element to (several for sliding windows)."""

  def __init__(self, windowfn: window.WindowFn):
    self._windowfn = windowfn

  def process(self, kv, timestamp=beam.DoFn.TimestampParam):
    for win in self._windowfn.assign(window.WindowFn.AssignContext(timestamp)):
      yield (kv[0], win.start.micros, win.end.micros), kv[1]


class _WindowedRows(beam.DoFn):

  def __init__(self, to_rows):
    self._to_rows = to_rows

  def process(self, keyed_result):
    (key, start, end), result = keyed_result
    columns = {'window_start': timestamps.micros_to_rfc3339(start),
               'window_end': timestamps.micros_to_rfc3339(end),
               'pane_index': None, 'pane_timing': None}
    for row in self._to_rows(key, result):
      row.update(columns)
      yield row


class AggregatePerWindow(beam.PTransform):
  """(key, value) -> rows: combine per key and window (`windowfn`, default fixed windows of
  `windowing.window_s`), turn each (key, result) into rows with `to_rows`, and add the
  window and pane columns.

  Bounded input with `batch_windows` puts the window in the key instead of windowing the
  collection: the same rows (no triggers, one pane), but a plain global-window combine,
  which the DirectRunner runs about twice as fast as its per-window trigger machinery.
  """

  def __init__(self, windowing: Windowing, combine_fn, to_rows,
               windowfn: Optional[window.WindowFn] = None):
    super().__init__()
    self._windowing = windowing
    self._combine_fn = combine_fn
    self._to_rows = to_rows
    self._windowfn = windowfn

  def expand(self, keyed):
    windowfn = self._windowfn or window.FixedWindows(self._windowing.window_s)
    if keyed.is_bounded and self._windowing.batch_windows and not self._windowing.streaming:
      return (
          keyed
          | 'KeyByWindow' >> beam.ParDo(_KeyByWindow(windowfn))
          | 'Combine' >> beam.CombinePerKey(self._combine_fn)
          | 'ToRows' >> beam.ParDo(_WindowedRows(self._to_rows)).with_output_types(Any))
    return (
        keyed
        | 'Window' >> self._windowing.window_into(windowfn)
        | 'Combine' >> beam.CombinePerKey(self._combine_fn)
        | 'ToRows' >> beam.FlatMapTuple(self._to_rows)
        | 'AddWindow' >> beam.ParDo(AddWindowColumns(self._windowing.streaming)))
