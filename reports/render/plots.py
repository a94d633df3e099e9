"""The report's pictures (matplotlib; the CLI selects the Agg backend): one figure per model of
the differences between the implementations and the learning curves, the summary table,
runtimes, and the timing phase's chart."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reports.analysis.tables import curves
from reports.experiment.protocol import ALL_SETTINGS
from reports.files.atomic import save_figure

STYLE = {  # implementation -> line style (CURVE_ROWS: evaluation set -> colour)
    "numpy": {"linestyle": "-", "linewidth": 2.2, "alpha": 0.75, "label": "NumPy"},
    "tensorflow": {"linestyle": (0, (3, 2)), "linewidth": 1.4, "alpha": 1.0, "label": "TensorFlow"},
}


def _save(fig, path: Path) -> Path:
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


DIFFERENCES = {  # drift series key -> (label, colour)
    "weights": ("weights NumPy vs TF", "black"),
    "seed_weights": ("weights seed vs seed (NumPy)", "tab:gray"),
    "test_loss_gap": ("|NumPy - TF| test loss", "tab:purple"),
    "test_accuracy_gap": ("|NumPy - TF| test accuracy", "tab:orange"),
}
LOG_LOSS_SPAN = 50  # a loss curve spanning a larger factor (a diverging run) is drawn on log scale
CURVE_ROWS = (("accuracy", {"train_eval_accuracy": ("train subset", "tab:blue"),
                            "test_accuracy": ("test", "tab:red")}),
              ("loss", {"train_eval_loss": ("train subset", "tab:blue"),
                        "test_loss": ("test", "tab:red")}))


def _band(values: list[list]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, min, max) over seeds (rows) of series cut to the shortest; None -> NaN."""
    n = min(len(v) for v in values)
    stack = np.array([[np.nan if x is None else x for x in v[:n]] for v in values], dtype=float)
    with np.errstate(all="ignore"):
        return stack.mean(axis=0), stack.min(axis=0), stack.max(axis=0)


def _difference_panel(ax, series: list[dict]) -> None:
    """The drift series of one experiment on a log scale; exact zeros sit on the bottom edge."""
    drawn = {key: _band([s[key] for s in series]) for key in DIFFERENCES
             if series and all(s[key] is not None for s in series)}
    positive = [v[v > 0] for band in drawn.values() for v in band if np.any(v > 0)]
    floor = 10.0 ** np.floor(np.log10(min(float(v.min()) for v in positive))) / 10 \
        if positive else 1e-17
    n = min(len(s["samples_seen"]) for s in series) if series else 0
    samples = np.array(series[0]["samples_seen"][:n], dtype=float) / 1e3 if series else []
    for key, (mean, low, high) in drawn.items():
        label, colour = DIFFERENCES[key]
        ax.plot(samples, np.maximum(mean, floor), color=colour, marker=".", label=label)
        ax.fill_between(samples, np.maximum(low, floor), np.maximum(high, floor), color=colour,
                        alpha=0.15, linewidth=0)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor * 0.7)
    ax.set_ylabel("distance / gap (log; 0 on the bottom edge)", fontsize=9)


def _curve_panel(ax, results: list[dict], model: str, setting: int, quantity: str,
                 sets: dict) -> None:
    """Train-subset and test curves of both implementations: seed mean and min-max band; the
    y range holds every value (a loss spanning more than LOG_LOSS_SPAN on a log scale)."""
    values = []
    for impl, style in STYLE.items():
        for key, (set_name, colour) in sets.items():
            samples, mean, low, high = curves(results, model, setting, impl, key)
            if samples.size == 0:
                continue
            ax.plot(samples / 1e3, mean, color=colour,
                    **{**style, "label": f"{style['label']} {set_name}"})
            ax.fill_between(samples / 1e3, low, high, color=colour, alpha=0.12, linewidth=0)
            values += [v[np.isfinite(v)] for v in (low, high)]
    finite = np.concatenate(values) if values else np.array([])
    if finite.size and finite.min() < finite.max():
        low, high = float(finite.min()), float(finite.max())
        if quantity == "loss" and low > 0 and high / low > LOG_LOSS_SPAN:
            ax.set_yscale("log")
            ax.set_ylim(low / 1.2, high * 1.2)
        else:
            margin = 0.05 * (high - low)
            ax.set_ylim(low - margin, high + margin)
    ax.set_ylabel(quantity + (" (log)" if ax.get_yscale() == "log" else ""))


def model_curves(results: list[dict], series: list[dict], model: str, path: Path) -> Path:
    """One model's figure: a column per setting; top row the differences between the
    implementations (``reports.analysis.tables.drift_series``: weight distance NumPy vs TF and seed
    vs seed, |NumPy - TF| test loss and accuracy; log scale), then accuracy and loss of the train
    subset and test set for NumPy (solid) and TensorFlow (dashed): seed mean as the line,
    min-max over seeds as the band."""
    fig, axes = plt.subplots(3, 3, figsize=(15, 10), squeeze=False, sharex="col")
    for col, (epochs, lr) in enumerate(ALL_SETTINGS[model]):
        spec = next((r["spec"] for r in results
                     if (r["spec"]["model"], r["spec"]["setting"]) == (model, col)), None)
        epochs = spec["epochs"] if spec else epochs  # --quick overrides the epochs
        _difference_panel(axes[0, col], [s for s in series
                                         if (s["model"], s["setting"]) == (model, col + 1)])
        axes[0, col].set_title(f"{model} #{col + 1}: {epochs} epoch{'s' * (epochs != 1)}, "
                               f"lr {lr:g}", fontsize=11)
        for row, (quantity, sets) in enumerate(CURVE_ROWS, start=1):
            _curve_panel(axes[row, col], results, model, col + 1, quantity, sets)
        axes[2, col].set_xlabel("training samples processed (thousands)")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3, which="major")
    for row in range(3):
        axes[row, 2].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9,
                            frameon=False)
    seeds = len({r["spec"]["seed"] for r in results if r["spec"]["model"] == model})
    fig.suptitle(f"{model}: differences between the implementations (top), accuracy and loss; "
                 f"line = mean, band = min-max over {seeds} seed{'s' * (seeds != 1)}",
                 fontsize=13)
    fig.tight_layout()
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


def timing_chart(rows: list[dict], path: Path) -> Path:
    """Step times (median with IQR) and evaluation throughputs of both sides per model, from
    ``reports.measure.bench.bench_model``'s rows (``tfparity bench --plot``, timing.png); log
    scale."""
    names = [row["model"] for row in rows]
    positions = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "step", "training step (ms, median)"),
                           (axes[1], "eval_images_per_s", "evaluation (images/s)")):
        for offset, side, title in ((-0.2, "numpy", "NumPy"), (0.2, "tensorflow", "TensorFlow")):
            if key == "step":
                values = [1e3 * row[f"{side}_step"]["median"] for row in rows]
                errors = [[1e3 * (row[f"{side}_step"]["median"] - row[f"{side}_step"]["q1"])
                           for row in rows],
                          [1e3 * (row[f"{side}_step"]["q3"] - row[f"{side}_step"]["median"])
                           for row in rows]]
            else:
                values, errors = [row[f"{side}_{key}"] for row in rows], None
            ax.bar(positions + offset, values, 0.4, yerr=errors, label=title)
        ax.set_xticks(positions, names)
        ax.set_yscale("log")
        ax.set_title(label)
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
