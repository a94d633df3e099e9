"""The heat map of ``tfparity diff --plot``: one row per layer, one column per quantity and
attribution; each cell shows the error (the larger of relative L2 and scaled max abs), coloured
by its log10, and the title says PASS/FAIL and where the implementations first part ways."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from reference_tf.diff_result import ModelDiff
from reports.files.atomic import save_figure
from reports.render.layerdiff_text import cause_line, time_clause

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


def _value(comparison, shape) -> tuple[float, str]:
    """(colour: log10 of the error, floored and capped; cell text: the error itself)."""
    if comparison is None:
        return math.nan, ""
    if tuple(comparison.shape) != tuple(shape):
        return CEILING, "shape"
    error = comparison.smallest_passing_tolerance
    if not math.isfinite(error):
        return CEILING, "inf" if error > 0 else "nan"
    return max(math.log10(max(error, 1e-300)), FLOOR), _magnitude(error)


def _magnitude(error: float) -> str:
    """An error as a reader compares it with a tolerance: "0", "2e-16", "0.011", "1.3", "6e+15"."""
    if error == 0:
        return "0"
    return f"{error:.0e}" if error < 1e-2 or error >= 1e3 else f"{error:.2g}"


def _power_of_ten(exponent: float, _position=None) -> str:
    """Colour-bar tick text for log10 value ``exponent``: "1e-16", ..., "1", "10"."""
    return {0: "1", 1: "10"}.get(int(exponent), f"1e{int(exponent)}")


def _title(result: ModelDiff) -> str:
    """The run, PASS/FAIL and where the implementations first part ways."""
    data = result.data + (", SHA-256 not checked" if result.data_unverified else "")
    run = f"tfparity diff {result.model} ({result.dtype}, batch {result.batch_shape[0]}, {data})"
    first = result.first_divergence
    if first is not None:
        verdict = (f"FAIL: first divergence {first.layer} ({first.layer_type}), {first.direction} "
                   f"pass, {first.label}{time_clause(first)} (boxed)")
    elif result.first_propagated_failure is not None:
        layer, label = result.first_propagated_failure
        verdict = (f"FAIL: propagated error first at {layer} {label}, no layer's own error above "
                   "tolerance")
    else:
        verdict = "PASS: every quantity within tolerance"
    return f"{run}: {verdict}\ncell: the error; grey: not applicable; cyan: tolerances"


def heatmap(result: ModelDiff, path) -> Path:
    """Draw the per-layer errors of ``result`` into ``path`` (.png, .svg or .pdf), the first
    divergence boxed; each cell shows the error, coloured by its log10."""
    columns = _columns(result)
    grid = np.full((len(result.layers), len(columns)), np.nan)
    texts = np.full(grid.shape, "", dtype=object)
    tol = {}
    for row, layer in enumerate(result.layers):
        for q in layer.quantities:
            label = "dL/dx" if q.label == "dL/dlogits" else "y" if q.label == "loss" else q.label
            tol[q.direction] = q.tolerance
            for col, (name, attribution, _) in enumerate(columns):
                if name == label:
                    grid[row, col], texts[row, col] = _value(getattr(q, attribution), q.shape)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.45 * len(result.layers) + 1.8))
    cmap = plt.get_cmap("magma_r").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=FLOOR, vmax=CEILING,
                      aspect="auto")
    for (row, col), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(col, row, texts[row, col], ha="center", va="center", fontsize=7,
                    color="white" if value > (FLOOR + CEILING) / 2 else "black")
    ax.set_xticks(range(len(columns)), [header for _, _, header in columns], fontsize=8)
    ax.set_yticks(range(len(result.layers)),
                  [f"{layer.name} ({layer.type})" for layer in result.layers], fontsize=8)
    ax.xaxis.tick_top()
    if result.first_divergence is not None:
        row = [layer.name for layer in result.layers].index(result.first_divergence.layer)
        label = result.first_divergence.label
        label = "dL/dx" if label == "dL/dlogits" else "y" if label == "loss" else label
        # the isolated column; a fault about dL/dy (which has none) or an input has fewer
        col = next((i for attribution in ("isolated", "propagated")
                    for i, c in enumerate(columns) if c[0] == label and c[1] == attribution),
                   None)
        if col is not None:
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False,
                                   edgecolor="tab:cyan", linewidth=3))
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02,
                       ticks=np.arange(FLOOR + 1, CEILING + 1, 4),
                       format=FuncFormatter(_power_of_ten))
    bar.set_label("error vs TensorFlow (log scale, floored at 1e-17)")
    for _kind, value in sorted(tol.items()):
        bar.ax.axhline(math.log10(value), color="tab:cyan", linewidth=1.5)
    causes = "".join(f"\n{line}" for line in textwrap.wrap(cause_line(result), 120))
    ax.set_title(_title(result) + causes, fontsize=9, pad=28)
    path = save_figure(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
