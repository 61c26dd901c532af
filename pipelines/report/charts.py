"""Bar charts and count matrices, and what every chart module shares: matplotlib's object API
on the Agg canvas (no pyplot: no global figure state, no display, nothing fetched), one PNG
per function, the page's palette and where the files go.

Callers pass only data they have: a section says "no rows" instead of calling these with
nothing to draw.
"""
import dataclasses
import math
from typing import Dict, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100
WIDTH = 10.5  # inches: about the page's width at DPI
PALETTE = matplotlib.colormaps['tab10'].colors
SENTIMENT_COLOURS = {'positive': '#2e7d32', 'neutral': '#9e9e9e', 'negative': '#c62828'}
ALERT_COLOUR = '#d62728'

# Labels come from the data ('$GME', '$\\foo$'): plain text, never mathtext (which raises on
# an unknown symbol at savefig). Read when each Text is made, ticks included, so set for the
# process; figure() sets it again in case something reset the rcParams since.
matplotlib.rcParams['text.parse_math'] = False


def figure(width: float, height: float) -> Figure:
  matplotlib.rcParams['text.parse_math'] = False
  fig = Figure(figsize=(width, height), dpi=DPI, layout='constrained')
  FigureCanvasAgg(fig)
  return fig


def save(fig: Figure, path: str) -> str:
  fig.savefig(path, dpi=DPI, facecolor='white')
  return path


def colour_map(labels: Sequence[str]) -> Dict[str, str]:
  """The same colour for the same series label in every panel of a chart."""
  return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def bars(path: str, title: str, labels: Sequence[str], values: Sequence[float], xlabel: str,
         ylabel: str, yerr: Optional[Tuple[Sequence[float], Sequence[float]]] = None,
         annotations: Optional[Sequence[str]] = None, horizontal: bool = False,
         colour: str = PALETTE[0]) -> str:
  """One bar per label, with optional error bars (lower, upper: distances from the value,
  negatives drawn as 0) and a text label on each bar."""
  if yerr is not None:
    yerr = tuple([max(0.0, float(e)) for e in side] for side in yerr)
  height = max(2.8, 0.45 * len(labels) + 1.2) if horizontal else 4.2
  fig = figure(WIDTH if not horizontal else 9, height)
  ax = fig.subplots()
  positions = np.arange(len(labels))
  if horizontal:
    drawn = ax.barh(positions, values, color=colour, xerr=yerr)
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    ax.grid(True, axis='x', alpha=0.3)
  else:
    drawn = ax.bar(positions, values, color=colour, yerr=yerr, capsize=4 if yerr else 0,
                   error_kw={'ecolor': '#444', 'elinewidth': 1.2})
    ax.set_xticks(positions, labels, rotation=30 if max(map(len, labels)) > 8 else 0,
                  ha='right' if max(map(len, labels)) > 8 else 'center')
    ax.grid(True, axis='y', alpha=0.3)
  if all(float(v).is_integer() for v in values):
    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
  if annotations:
    ax.bar_label(drawn, labels=list(annotations), padding=3, fontsize=9)
    if horizontal:
      ax.set_xlim(0, max(values) * 1.25 if max(values) > 0 else 1)
    else:
      top = max((v + (yerr[1][i] if yerr else 0)) for i, v in enumerate(values))
      ax.set_ylim(0, top * 1.15 if top > 0 else 1)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=13, fontweight='bold')
  return save(fig, path)


def stacked_bars(path: str, title: str, categories: Sequence[str],
                 stacks: Dict[str, Sequence[float]], xlabel: str, ylabel: str,
                 colours: Optional[Dict[str, str]] = None, horizontal: bool = False,
                 annotate: bool = False) -> str:
  """Bars split into parts (each stack's values in category order)."""
  colours = colours or colour_map(list(stacks))
  height = max(2.6, 0.5 * len(categories) + 1.4) if horizontal else 4.2
  fig = figure(WIDTH, height)
  ax = fig.subplots()
  positions = np.arange(len(categories))
  base = np.zeros(len(categories))
  for name, values in stacks.items():
    values = np.asarray(values, dtype=float)
    if horizontal:
      drawn = ax.barh(positions, values, left=base, color=colours[name], label=name)
    else:
      drawn = ax.bar(positions, values, bottom=base, color=colours[name], label=name)
    if annotate:
      ax.bar_label(drawn, labels=[('%.0f%%' % v if v >= 6 else '') for v in values],
                   label_type='center', fontsize=9, color='white')
    base += values
  if horizontal:
    ax.set_yticks(positions, categories)
    ax.invert_yaxis()
  else:
    ax.set_xticks(positions, categories)
  (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=13, fontweight='bold')
  ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), frameon=False)
  return save(fig, path)


def grouped_bars(path: str, title: str, categories: Sequence[str],
                 groups: Dict[str, Sequence[Optional[float]]], xlabel: str, ylabel: str,
                 ylim: Optional[Tuple[float, float]] = None) -> str:
  """Side-by-side bars per category; a missing value is drawn as 'n/a'."""
  fig = figure(WIDTH, 4.2)
  ax = fig.subplots()
  positions = np.arange(len(categories))
  width = 0.8 / max(1, len(groups))
  for i, (name, values) in enumerate(groups.items()):
    offsets = positions + (i - (len(groups) - 1) / 2) * width
    heights = [0.0 if v is None else v for v in values]
    drawn = ax.bar(offsets, heights, width=width, color=PALETTE[i % len(PALETTE)], label=name)
    ax.bar_label(drawn, labels=['n/a' if v is None else '%.2f' % v for v in values],
                 padding=2, fontsize=8)
  ax.set_xticks(positions, categories)
  if ylim:
    ax.set_ylim(*ylim)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.grid(True, axis='y', alpha=0.3)
  ax.set_title(title, fontsize=13, fontweight='bold')
  ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), frameon=False)
  return save(fig, path)


def bar_panels(path: str, title: str, panels: Dict[str, Tuple[Sequence[str], Sequence[float]]],
               xlabel: str, ncols: int = 3) -> str:
  """Small multiples of horizontal bars, one panel per key (e.g. top terms per keyword)."""
  nrows = math.ceil(len(panels) / ncols)
  longest = max((len(labels) for labels, _ in panels.values()), default=1)
  fig = figure(WIDTH, 0.8 + nrows * (0.28 * longest + 0.9))
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  for i, (ax, (name, (labels, values))) in enumerate(zip(axes, panels.items(), strict=False)):
    positions = np.arange(len(labels))
    ax.barh(positions, values, color=PALETTE[i % len(PALETTE)])
    ax.set_yticks(positions, labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_title(name, fontsize=11, loc='left')
    ax.set_xlabel(xlabel)
    ax.grid(True, axis='x', alpha=0.3)
  for ax in axes[len(panels):]:
    ax.set_visible(False)
  fig.suptitle(title, fontsize=14, fontweight='bold')
  return save(fig, path)


def count_matrix(path: str, title: str, rows: Sequence[str], cols: Sequence[str],
                 counts: Dict[Tuple[str, str], int], xlabel: str, ylabel: str) -> str:
  """A matrix of counts (confusion matrix), every cell annotated with its number."""
  grid = np.array([[counts.get((r, c), 0) for c in cols] for r in rows], dtype=float)
  side = max(4.0, 0.7 * max(len(rows), len(cols)) + 2.5)
  fig = figure(min(WIDTH, side + 1.5), min(10.0, side))
  ax = fig.subplots()
  image = ax.imshow(grid, cmap='Blues', vmin=0, vmax=max(1.0, grid.max()))
  for i in range(len(rows)):
    for j in range(len(cols)):
      value = int(grid[i, j])
      ax.text(j, i, str(value), ha='center', va='center', fontsize=11,
              color='white' if value > grid.max() / 2 else '#1d1d1f')
  ax.set_xticks(range(len(cols)), cols, rotation=30, ha='right')
  ax.set_yticks(range(len(rows)), rows)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=13, fontweight='bold')
  bar = fig.colorbar(image, ax=ax, label='images', shrink=0.8)
  bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
  return save(fig, path)


@dataclasses.dataclass
class ChartFiles:
  """Where one job's charts go: `<out_dir>/<job>-<name>.png`, referenced by bare name so the
  page works from wherever the folder is copied."""
  out_dir: str
  job: str

  def path(self, name: str) -> Tuple[str, str]:
    """(file path to write, src for the page)."""
    filename = '%s-%s.png' % (self.job, name)
    return '%s/%s' % (self.out_dir.rstrip('/'), filename), filename
