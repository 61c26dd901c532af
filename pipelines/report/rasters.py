"""Raster charts: heatmaps over the game map, and contact sheets of thumbnails."""
import math
from typing import Dict, List, Tuple

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm

from pipelines.report.charts import WIDTH, figure, save

MAX_HEATMAP_SIDE = 600  # cells; wider maps are coarsened


def _coarsen(width: int, height: int) -> int:
  return max(1, math.ceil(max(width, height) / MAX_HEATMAP_SIDE))


def log_ticks(top: float) -> List[int]:
  """1, 2, 5, 10, 20, 50 ... up to `top`: readable colour-bar ticks on a log scale."""
  ticks, base = [], 1
  while base <= top:
    ticks += [t for t in (base, 2 * base, 5 * base) if t <= top]
    base *= 10
  return ticks


def map_heatmaps(path: str, title: str, layers: Dict[str, Dict[Tuple[int, int], int]],
                 cbar_label: str, ncols: int = 3) -> str:
  """One map per layer over the same extent and one log colour scale for all (a few busy
  cells would wash out the rest on a linear one); cells without events are grey."""
  cells = [c for counts in layers.values() for c in counts]
  x0, x1 = min(c[0] for c in cells), max(c[0] for c in cells)
  z0, z1 = min(c[1] for c in cells), max(c[1] for c in cells)
  step = _coarsen(x1 - x0 + 1, z1 - z0 + 1)
  shape = ((z1 - z0) // step + 1, (x1 - x0) // step + 1)
  grids = {}
  for layer, counts in layers.items():
    grid = np.zeros(shape)
    for (x, z), n in counts.items():
      grid[(z - z0) // step, (x - x0) // step] += n
    grids[layer] = np.ma.masked_equal(grid, 0)
  top = max(2.0, max(float(g.max()) for g in grids.values()))
  norm = LogNorm(vmin=1, vmax=top)
  ncols = min(ncols, len(layers))
  nrows = math.ceil(len(layers) / ncols)
  aspect = shape[0] / shape[1]
  fig = figure(WIDTH, 0.8 + nrows * (min(6.0, max(1.2, (WIDTH - 1.2) / ncols - 0.6) * aspect)
                                      + 0.8))
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  cmap = matplotlib.colormaps['viridis'].with_extremes(bad='#e8e8e8')
  extent = (x0 - 0.5, x0 - 0.5 + shape[1] * step, z0 - 0.5, z0 - 0.5 + shape[0] * step)
  image = None
  for ax, (layer, grid) in zip(axes, grids.items(), strict=False):
    image = ax.imshow(grid, origin='lower', cmap=cmap, norm=norm, interpolation='nearest',
                      extent=extent)
    total = sum(layers[layer].values())
    ax.set_title('%s (%d event%s)' % (layer, total, '' if total == 1 else 's'), fontsize=11,
                 loc='left')
    ax.set_xlabel('cell x' if step == 1 else 'cell x (%d cells per pixel)' % step)
    ax.set_ylabel('cell z')
  for ax in axes[len(layers):]:
    ax.set_visible(False)
  bar = fig.colorbar(image, ax=list(axes), label=cbar_label, shrink=0.7, pad=0.02)
  bar.set_ticks(log_ticks(top), labels=[str(t) for t in log_ticks(top)])
  bar.ax.minorticks_off()
  fig.suptitle(title, fontsize=14, fontweight='bold')
  return save(fig, path)


def image_grid(path: str, title: str, rows: List[Tuple[str, List[Tuple[np.ndarray, str]]]],
               ncols: int = 8) -> str:
  """A contact sheet: one row of thumbnails (with captions) per labelled group."""
  width = max(len(images) for _, images in rows)
  ncols = max(min(4, ncols), min(ncols, width))  # at least 4 columns: thumbnails stay small
  fig = figure(min(WIDTH, 1.45 * ncols + 1.6), 0.7 + 1.75 * len(rows))
  axes = fig.subplots(len(rows), ncols, squeeze=False)
  for r, (row_label, images) in enumerate(rows):
    for c in range(ncols):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_visible(False)
      if c < len(images):
        pixels, caption = images[c]
        ax.imshow(pixels)
        ax.set_xlabel(caption, fontsize=7)
      if c == 0:
        ax.set_ylabel(row_label, fontsize=9, rotation=0, ha='right', va='center')
  fig.suptitle(title, fontsize=13, fontweight='bold')
  return save(fig, path)
