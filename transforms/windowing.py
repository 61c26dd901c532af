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

  def fixed(self) -> beam.PTransform:
    return self._window_into(window.FixedWindows(self.window_s))

  def sliding(self, period_s: float) -> beam.PTransform:
    """Windows of `window_s` starting every `period_s`: each element is in several."""
    return self._window_into(window.SlidingWindows(self.window_s, period_s))

  def _window_into(self, windowfn) -> beam.PTransform:
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


class AggregatePerWindow(beam.PTransform):
  """(key, value) -> rows: combine per key in `windowing.fixed()` windows (or the
  `window_into` given), turn each (key, result) into rows with `to_rows`, and add the
  window and pane columns."""

  def __init__(self, windowing: Windowing, combine_fn, to_rows,
               window_into: Optional[beam.PTransform] = None):
    super().__init__()
    self._windowing = windowing
    self._combine_fn = combine_fn
    self._to_rows = to_rows
    self._window_into = window_into

  def expand(self, keyed):
    return (
        keyed
        | 'Window' >> (self._window_into or self._windowing.fixed())
        | 'Combine' >> beam.CombinePerKey(self._combine_fn)
        | 'ToRows' >> beam.FlatMapTuple(self._to_rows)
        | 'AddWindow' >> beam.ParDo(AddWindowColumns(self._windowing.streaming)))
