"""The heat map of ``tfparity diff --plot`` (``reference_tf.display.heatmap_figure``: one row
per layer, one column per quantity and attribution, the first divergence boxed) as a file."""

from __future__ import annotations

from pathlib import Path

from reference_tf.display import heatmap_figure
from reports.atomic import save_figure


def heatmap(result, path) -> Path:
    """Draw the per-layer errors of a ``ModelDiff`` into ``path`` (.png, .svg or .pdf)."""
    return save_figure(heatmap_figure(result), path, dpi=110, bbox_inches="tight")
