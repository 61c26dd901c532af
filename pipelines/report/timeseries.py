"""Charts over time: panels of per-window series sharing a time axis (alert spans, thresholds
and marks drawn in), and per-keyword bars coloured by sentiment."""
import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib import dates as mdates
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipelines.report.charts import ALERT_COLOUR, WIDTH, colour_map, figure, save


@dataclasses.dataclass
class Panel:
  """One axes of a time chart: series {label: (times, values)} plus what to mark."""
  title: str
  ylabel: str
  series: Dict[str, Tuple[Sequence, Sequence]]
  spans: List[Tuple] = dataclasses.field(default_factory=list)    # (start, end, label)
  hlines: List[Tuple] = dataclasses.field(default_factory=list)   # (y, label)
  marks: List[Tuple] = dataclasses.field(default_factory=list)    # (time, value): alerts
  mark_label: str = 'alert'
  kind: str = 'line'  # or 'bar'
  bar_width_days: float = 0.0
  ylim: Optional[Tuple[float, float]] = None
  log_y: bool = False


def _time_axis(ax, xlabel: str) -> None:
  locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
  ax.xaxis.set_major_locator(locator)
  ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
  ax.set_xlabel(xlabel)


def smallest_step(panels: Sequence[Panel]):
  """The shortest gap between consecutive times of any series: the window period."""
  steps = [b - a for p in panels for xs, _ in p.series.values()
           for a, b in zip(xs, xs[1:], strict=False) if b > a]
  return min(steps) if steps else None


def break_gaps(xs: Sequence, ys: Sequence, step) -> Tuple[list, list]:
  """A None between points further apart than 1.5 steps, so a line does not bridge windows
  that have no row (no data is not the same as the neighbours' values)."""
  out_x, out_y = [], []
  for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
    if i and step is not None and x - xs[i - 1] > step * 1.5:
      out_x.append(xs[i - 1] + step)
      out_y.append(None)
    out_x.append(x)
    out_y.append(y)
  return out_x, [np.nan if y is None else y for y in out_y]


def _legend(fig: Figure, handles: Dict) -> None:
  if handles:
    fig.legend(list(handles.values()), list(handles), loc='outside lower center',
               ncol=min(len(handles), 6), fontsize=9, frameon=False)


def time_panels(path: str, title: str, panels: List[Panel], xlabel: str = 'window start (UTC)',
                ncols: int = 1, panel_height: float = 2.6,
                colours: Optional[Dict[str, str]] = None) -> str:
  """Panels sharing a time axis; one legend below them for every series and marking."""
  nrows = math.ceil(len(panels) / ncols)
  fig = figure(WIDTH, 1.2 + panel_height * nrows)
  axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
  labels = list(dict.fromkeys(label for p in panels for label in p.series))
  colours = {**colour_map(labels), **(colours or {})}
  step = smallest_step(panels)
  handles = {}
  for ax, panel in zip(axes, panels, strict=False):
    for label, (xs, ys) in panel.series.items():
      if panel.kind == 'bar':
        artist = ax.bar(xs, ys, width=panel.bar_width_days, color=colours[label], label=label,
                        align='edge')
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
      else:
        (artist,) = ax.plot(*break_gaps(xs, ys, step), marker='o', markersize=2.5,
                            linewidth=1.4, color=colours[label], label=label)
      handles.setdefault(label, artist)
    for start, end, label in panel.spans:
      handles.setdefault(label, ax.axvspan(start, end, color=ALERT_COLOUR, alpha=0.15,
                                           linewidth=0, label=label))
    for y, label in panel.hlines:
      handles.setdefault(label, ax.axhline(y, color=ALERT_COLOUR, linestyle='--',
                                           linewidth=1.2, label=label))
    if panel.marks:
      xs, ys = [m[0] for m in panel.marks], [m[1] for m in panel.marks]
      handles.setdefault(panel.mark_label, ax.scatter(
          xs, ys, marker='v', s=46, color=ALERT_COLOUR, zorder=5, label=panel.mark_label))
    ax.set_title(panel.title, fontsize=11, loc='left')
    ax.set_ylabel(panel.ylabel)
    if panel.log_y:
      ax.set_yscale('log')
    if panel.ylim:
      ax.set_ylim(*panel.ylim)
    ax.grid(True, alpha=0.3)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  for ax in axes[max(0, len(panels) - ncols):len(panels)]:
    ax.xaxis.set_tick_params(labelbottom=True)
    _time_axis(ax, xlabel)
  fig.suptitle(title, fontsize=14, fontweight='bold')
  _legend(fig, handles)
  return save(fig, path)


def sentiment_bars(path: str, title: str,
                   panels: Dict[str, Tuple[Sequence, Sequence[int], Sequence[float]]],
                   bar_width_days: float, xlabel: str = 'window start (UTC)',
                   ncols: int = 2) -> str:
  """Small multiples, one per keyword: tweets per window as bars coloured by the window's
  average sentiment (red negative, yellow neutral, green positive)."""
  nrows = math.ceil(len(panels) / ncols)
  fig = figure(WIDTH, 1.0 + 2.2 * nrows)
  axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
  cmap = matplotlib.colormaps['RdYlGn']
  norm = matplotlib.colors.Normalize(vmin=-1, vmax=1)
  for ax, (name, (xs, counts, scores)) in zip(axes, panels.items(), strict=False):
    ax.bar(xs, counts, width=bar_width_days, align='edge', color=cmap(norm(np.asarray(scores))),
           edgecolor='#555', linewidth=0.3)
    ax.set_title('%s (%d tweet%s)' % (name, sum(counts), '' if sum(counts) == 1 else 's'),
                 fontsize=11, loc='left')
    ax.set_ylabel('tweets')
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, axis='y', alpha=0.3)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  for ax in axes[max(0, len(panels) - ncols):len(panels)]:
    ax.xaxis.set_tick_params(labelbottom=True)
    _time_axis(ax, xlabel)
  fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[:len(panels)]),
               label='average sentiment score', shrink=0.6, pad=0.01)
  fig.suptitle(title, fontsize=14, fontweight='bold')
  return save(fig, path)
