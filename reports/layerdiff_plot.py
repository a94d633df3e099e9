"""The heat map of ``tfparity diff --plot``: one row per layer, one column per quantity and
attribution, colour = log10 of the error (the larger of relative L2 and scaled max abs)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from reference_tf.layerdiff import ModelDiff
from reports.atomic import save_figure

FLOOR, CEILING = -17.0, 1.0  # log10 range of the colour scale; a wrong shape is drawn at CEILING


def _columns(result: ModelDiff) -> list[tuple[str, str, str]]:
    """(quantity label, attribution, header) in display order; the loss's dL/dlogits is its
    dL/dx column."""
    labels = []
    for layer in result.layers:
        for q in layer.quantities:
            label = "dL/dx" if q.label == "dL/dlogits" else "y" if q.label == "loss" else q.label
            if label not in labels:
                labels.append(label)
    order = sorted(labels, key=lambda s: (s != "y", s == "dL/dx", s != "dL/dy", s))
    columns = []
    for label in order:
        columns.append((label, "propagated", label))
        if label != "dL/dy":
            columns.append((label, "isolated", f"{label}\nisolated"))
    return columns


def _value(comparison, shape) -> float:
    if comparison is None:
        return math.nan
    if tuple(comparison.shape) != tuple(shape):
        return CEILING
    error = comparison.smallest_passing_tolerance
    return CEILING if not math.isfinite(error) else max(math.log10(max(error, 1e-300)), FLOOR)


def heatmap(result: ModelDiff, path) -> Path:
    """Draw the per-layer errors of ``result`` into ``path`` (PNG), the first divergence boxed."""
    columns = _columns(result)
    grid = np.full((len(result.layers), len(columns)), np.nan)
    tol = {}
    for row, layer in enumerate(result.layers):
        for q in layer.quantities:
            label = "dL/dx" if q.label == "dL/dlogits" else "y" if q.label == "loss" else q.label
            tol[q.pass_] = q.tolerance
            for col, (name, attribution, _) in enumerate(columns):
                if name == label:
                    grid[row, col] = _value(getattr(q, attribution), q.shape)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.45 * len(result.layers) + 1.8))
    cmap = plt.get_cmap("magma_r").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=FLOOR, vmax=CEILING,
                      aspect="auto")
    for (row, col), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(col, row, str(int(round(value))), ha="center", va="center", fontsize=7,
                    color="white" if value > (FLOOR + CEILING) / 2 else "black")
    ax.set_xticks(range(len(columns)), [header for _, _, header in columns], fontsize=8)
    ax.set_yticks(range(len(result.layers)),
                  [f"{layer.name} ({layer.type})" for layer in result.layers], fontsize=8)
    ax.xaxis.tick_top()
    if result.first is not None:
        row = [layer.name for layer in result.layers].index(result.first.layer)
        label = result.first.label
        label = "dL/dx" if label == "dL/dlogits" else "y" if label == "loss" else label
        # the isolated column; a fault about dL/dy (which has none) or an input has fewer
        col = next((i for attribution in ("isolated", "propagated")
                    for i, c in enumerate(columns) if c[0] == label and c[1] == attribution),
                   None)
        if col is not None:
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False,
                                   edgecolor="tab:cyan", linewidth=3))
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("log10 error vs TensorFlow (floored at -17)")
    for kind, value in sorted(tol.items()):
        bar.ax.axhline(math.log10(value), color="tab:cyan", linewidth=1.5)
    ax.set_title(f"tfparity diff {result.model} ({result.dtype}, batch {result.batch_shape[0]}, "
                 f"{result.data}); grey: not applicable; cyan: tolerance / first divergence",
                 fontsize=9, pad=28)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
