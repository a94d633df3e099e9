"""The report's pictures (matplotlib; the CLI selects the Agg backend): learning curves, the summary
table, runtimes."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reports.analysis import curves
from reports.atomic import save_figure
from reports.experiments import SETTINGS

STYLE = {  # implementation -> line style; evaluation set -> colour
    "numpy": {"linestyle": "-", "linewidth": 2.2, "alpha": 0.75, "label": "NumPy"},
    "tensorflow": {"linestyle": (0, (3, 2)), "linewidth": 1.4, "alpha": 1.0, "label": "TensorFlow"},
}
SETS = {"train_eval_accuracy": ("train", "tab:blue"), "test_accuracy": ("test", "tab:red")}


def _save(fig, path: Path) -> Path:
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def learning_curves(results: list[dict], models: list[str], path: Path) -> Path:
    """A grid (one row per model, one column per setting) of train and test accuracy against
    samples processed, NumPy and TensorFlow overlaid: seed mean as a line, min-max as a band.
    Each panel's y range spans its accuracies after the first evaluation (the untrained start
    at ~10% is left below the axis so that the differences near the end stay visible)."""
    fig, axes = plt.subplots(len(models), 3, figsize=(15, 3.3 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for col, (epochs, lr) in enumerate(SETTINGS[model]):
            ax = axes[row, col]
            low, high = 1.0, 0.0
            for impl, style in STYLE.items():
                for key, (set_name, colour) in SETS.items():
                    samples, mean, lo, hi = curves(results, model, col + 1, impl, key)
                    if samples.size == 0:
                        continue
                    ax.plot(samples / 1e3, mean, color=colour,
                            **{**style, "label": f"{style['label']} {set_name}"})
                    ax.fill_between(samples / 1e3, lo, hi, color=colour, alpha=0.12, linewidth=0)
                    if np.isfinite(lo[1:]).any():
                        low, high = (min(low, float(np.nanmin(lo[1:]))),
                                     max(high, float(np.nanmax(hi[1:]))))
            spec = next((r["spec"] for r in results if (r["spec"]["model"],
                                                        r["spec"]["setting"]) == (model, col)),
                        None)
            epochs = spec["epochs"] if spec else epochs  # --quick overrides the epochs
            ax.set_title(f"{model} #{col + 1}: {epochs} epoch{'s' * (epochs != 1)}, lr {lr:g}",
                         fontsize=11)
            ax.set_xlabel("training samples processed (thousands)")
            ax.set_ylabel("accuracy")
            ax.grid(alpha=0.3)
            if low < high:
                margin = max(0.1 * (high - low), 0.005)
                ax.set_ylim(max(0.0, low - margin), min(1.0, high + margin))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=4, frameon=False, fontsize=11,
               bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Learning curves: seed mean (line) and min-max over seeds (band)", y=1.025,
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, path)


def _pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def summary_table(summary: pd.DataFrame, verdicts: pd.DataFrame, path: Path) -> Path:
    """The summary table as a picture: final test accuracy (%) mean ± std per implementation, the
    difference in percentage points and each side's most common verdict."""
    verdict = {(r.model, r.setting, r.implementation): r.verdict for r in verdicts.itertuples()}
    header = ["model", "setting", "NumPy\ntest acc. (%)", "TensorFlow\ntest acc. (%)",
              "NumPy - TF\n(pp)", "verdict\nNumPy", "verdict\nTensorFlow"]
    cells = [[r.model, f"#{r.setting}: {r.epochs} ep, lr {r.lr:g}", _pm(r.numpy_mean, r.numpy_std),
              _pm(r.tensorflow_mean, r.tensorflow_std), f"{100 * r.difference:+.2f}",
              verdict.get((r.model, r.setting, "numpy"), ""),
              verdict.get((r.model, r.setting, "tensorflow"), "")]
             for r in summary.itertuples()]
    fig, ax = plt.subplots(figsize=(12, 0.3 * (len(cells) + 3)))
    ax.axis("off")
    widths = [0.08, 0.2, 0.15, 0.15, 0.11, 0.12, 0.12]
    table = ax.table(cellText=cells, colLabels=header, colWidths=widths, loc="upper center",
                     cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1, 1.5)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8e8e8")
            cell.set_height(cell.get_height() * 1.8)
    seeds = int(summary["seeds"].max()) if len(summary) else 0
    ax.set_title(f"Final test accuracy, mean ± std over {seeds} seed(s)", fontsize=12)
    return _save(fig, path)


def runtime_chart(runtime: pd.DataFrame, path: Path) -> Path:
    """Bars per experiment for NumPy and TensorFlow (log scale): ms per training step and seconds of
    evaluation per run, with the NumPy/TensorFlow ratio written above each pair."""
    labels = [f"{r.model}\n#{r.setting}" for r in runtime.itertuples()]
    x = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.5))
    panels = [("ms_per_step", "step_ratio", "training time per step (ms)"),
              ("eval_time", "eval_ratio", "evaluation time per run (s)")]
    for ax, (metric, ratio, title) in zip(axes, panels):
        for offset, impl, colour in ((-0.2, "numpy", "tab:green"),
                                     (0.2, "tensorflow", "tab:orange")):
            ax.bar(x + offset, runtime[f"{metric}_{impl}"], width=0.4, color=colour,
                   label=STYLE[impl]["label"])
        tops = np.maximum(runtime[f"{metric}_numpy"], runtime[f"{metric}_tensorflow"])
        for xi, top, value in zip(x, tops, runtime[ratio]):
            ax.text(xi, top * 1.15, f"{value:.2g}x", ha="center", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(top=float(tops.max()) * 3)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(f"{title}; NumPy/TF ratio above the bars")
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3, which="both")
        ax.legend(loc="upper left")
    fig.tight_layout()
    return _save(fig, path)
