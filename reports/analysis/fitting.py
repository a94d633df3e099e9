"""Rules that read a run's evaluation history: divergence, under-/over-fitting and stability.

A history is a list of records as written by ``scratch.train.run``: ``samples_seen``,
``train_loss``, ``train_eval_loss``/``train_eval_accuracy`` (first 20% of the training set),
``test_loss``/``test_accuracy``; the first record is taken before any step. Missing or
non-finite values are NaN. Every threshold is a named constant, quoted in the report.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# Divergence: a non-finite loss, or any recorded loss above this multiple of the initial test loss.
DIVERGENCE_LOSS_FACTOR = 3.0
# Under-fitting: final train accuracy below UNDERFIT_MIN_TRAIN_ACCURACY, or more than
# UNDERFIT_CAPACITY_GAP below the best final train accuracy the same model reaches in the report
# (with another setting: it has the capacity, this run did not use it), or still rising by more
# than UNDERFIT_LATE_GAIN over the last LATE_FRACTION of the samples processed.
UNDERFIT_MIN_TRAIN_ACCURACY = 0.90
UNDERFIT_CAPACITY_GAP = 0.03
UNDERFIT_LATE_GAIN = 0.01
LATE_FRACTION = 0.25
# Over-fitting: a final train-test accuracy gap of at least OVERFIT_MIN_GAP, together with the test
# loss at least OVERFIT_LOSS_RISE (relative) above its minimum or the test accuracy at least
# OVERFIT_ACCURACY_DROP below its best, at the end of training.
OVERFIT_MIN_GAP = 0.015
OVERFIT_LOSS_RISE = 0.10
OVERFIT_ACCURACY_DROP = 0.005
# Stability: the fluctuation is the std of the test accuracy over the last FLUCTUATION_WINDOW
# evaluations.
FLUCTUATION_WINDOW = 5

VERDICTS = ("diverged", "over-fitting", "under-fitting", "good fit")


class FitVerdict(NamedTuple):
    """``verdict`` in VERDICTS, ``rule``: the rule that produced it, with the measured numbers."""

    verdict: str
    rule: str


def column(history: list[dict], key: str) -> np.ndarray:
    """The values of ``key`` over the records (N,), float, NaN where missing or non-finite."""
    values = np.array([r.get(key) for r in history], dtype=float)
    values[~np.isfinite(values)] = np.nan
    return values


LOSS_KEYS = ("train_loss", "train_eval_loss", "test_loss")


def divergence(history: list[dict], diverged_flag: bool = False) -> str | None:
    """Why the run diverged (a phrase), or None if it did not; the losses of LOSS_KEYS that the
    records hold are checked."""
    if diverged_flag:
        return "a training loss became NaN/inf (the run was stopped)"
    initial = float(history[0]["test_loss"])
    for key in LOSS_KEYS:
        if not any(key in r for r in history):
            continue  # not recorded (``tfparity train`` evaluates no training subset)
        values = np.array([r.get(key) for r in history[1:]], dtype=float)  # record 0: no steps yet
        if not np.isfinite(values).all():
            return f"{key} became NaN/inf"
        if values.size and values.max() > DIVERGENCE_LOSS_FACTOR * initial:
            return (f"{key} reached {values.max():.3g} > {DIVERGENCE_LOSS_FACTOR:g} x the initial "
                    f"test loss {initial:.3g}")
    return None


def late_gain(samples: np.ndarray, values: np.ndarray) -> float:
    """How much ``values`` rose over the last LATE_FRACTION of ``samples`` (final minus the value
    at the last evaluation at or before the start of that window)."""
    start = samples[-1] * (1 - LATE_FRACTION)
    before = np.flatnonzero(samples <= start)
    return float(values[-1] - values[before[-1]])


def fit_verdict(history: list[dict], diverged_flag: bool = False,
                best_train_accuracy: float | None = None) -> FitVerdict:
    """The verdict of one run: diverged, then over-fitting, then under-fitting, else good fit.

    ``best_train_accuracy``: the best final train accuracy of the same model in the report (any
    setting), for the capacity rule; None skips that rule.
    """
    reason = divergence(history, diverged_flag)
    if reason is not None:
        return FitVerdict("diverged", f"diverged: {reason}")
    samples = column(history, "samples_seen")
    train_acc, test_acc = column(history, "train_eval_accuracy"), column(history, "test_accuracy")
    test_loss = column(history, "test_loss")
    gap = train_acc[-1] - test_acc[-1]
    loss_rise = test_loss[-1] / np.nanmin(test_loss) - 1
    acc_drop = np.nanmax(test_acc) - test_acc[-1]
    if gap >= OVERFIT_MIN_GAP and (loss_rise >= OVERFIT_LOSS_RISE
                                   or acc_drop >= OVERFIT_ACCURACY_DROP):
        return FitVerdict("over-fitting",
                         f"train-test gap {100 * gap:.2f} pp >= {100 * OVERFIT_MIN_GAP:g} pp and "
                         f"test loss {100 * loss_rise:+.1f}% above its minimum (threshold "
                         f"{100 * OVERFIT_LOSS_RISE:g}%) / "
                         f"test accuracy {100 * acc_drop:.2f} pp below its best "
                         f"(threshold {100 * OVERFIT_ACCURACY_DROP:g} pp)")
    if train_acc[-1] < UNDERFIT_MIN_TRAIN_ACCURACY:
        return FitVerdict("under-fitting", f"train {100 * train_acc[-1]:.2f}% < "
                                          f"{100 * UNDERFIT_MIN_TRAIN_ACCURACY:g}%")
    if (best_train_accuracy is not None
            and best_train_accuracy - train_acc[-1] > UNDERFIT_CAPACITY_GAP):
        return FitVerdict("under-fitting",
                         f"train {100 * train_acc[-1]:.2f}%, "
                         f"{100 * (best_train_accuracy - train_acc[-1]):.2f} pp below the model's "
                         f"best {100 * best_train_accuracy:.2f}% (> "
                         f"{100 * UNDERFIT_CAPACITY_GAP:g} pp)")
    gain = late_gain(samples, train_acc)
    if gain > UNDERFIT_LATE_GAIN:
        return FitVerdict("under-fitting",
                         f"train accuracy still rising: +{100 * gain:.2f} pp in the last "
                         f"{100 * LATE_FRACTION:g}% (> {100 * UNDERFIT_LATE_GAIN:g} pp)")
    return FitVerdict("good fit",
                     f"train {100 * train_acc[-1]:.2f}% >= "
                     f"{100 * UNDERFIT_MIN_TRAIN_ACCURACY:g}%, "
                     f"late gain {100 * gain:+.2f} pp, gap {100 * gap:.2f} pp, test loss "
                     f"{100 * loss_rise:+.1f}% over its min")


def stability(history: list[dict]) -> dict:
    """Per-run stability numbers (accuracies as fractions): ``fluctuation`` (std of the last
    FLUCTUATION_WINDOW test accuracies), ``largest_drop`` (largest fall of the test accuracy between
    consecutive evaluations), ``best_test_accuracy`` and ``final_test_accuracy``."""
    test_acc = column(history, "test_accuracy")
    finite = test_acc[np.isfinite(test_acc)]
    drops = -np.diff(finite)
    return {
        "fluctuation": float(np.std(finite[-FLUCTUATION_WINDOW:])) if finite.size else math.nan,
        "largest_drop": float(max(0.0, drops.max())) if drops.size else 0.0,
        "best_test_accuracy": float(finite.max()) if finite.size else math.nan,
        "final_test_accuracy": float(test_acc[-1]),
    }


def tracking_gap(history_a: list[dict], history_b: list[dict], key: str = "test_accuracy") -> float:
    """Largest |a - b| of ``key`` over the evaluations both histories reached (NaN if none)."""
    n = min(len(history_a), len(history_b))
    a, b = column(history_a[:n], key), column(history_b[:n], key)
    diff = np.abs(a - b)
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else math.nan
