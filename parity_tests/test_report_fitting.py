"""The report's under-/over-fitting rules (``reports.analysis.fitting``) on synthetic histories:
every verdict is reachable, and a history just on the other side of each threshold gets a different
verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.analysis import fitting as d

N_EVALS = 21  # evaluations 0, 20000, ..., 400000 samples


def history(train_acc, test_acc=None, test_loss=None, train_loss=None, train_eval_loss=None):
    """Records like scratch.train.run's from per-evaluation sequences (scalars are broadcast)."""
    def seq(values, default):
        values = default if values is None else values
        return np.broadcast_to(np.asarray(values, dtype=float), (N_EVALS,))

    train_acc = seq(train_acc, None)
    test_acc = seq(test_acc, train_acc)
    test_loss = seq(test_loss, np.linspace(2.3, 0.3, N_EVALS))
    train_loss = seq(train_loss, test_loss)
    train_eval_loss = seq(train_eval_loss, test_loss)
    return [{"samples_seen": 20000 * i, "step": 200 * i,
             "train_loss": math.nan if i == 0 else train_loss[i],
             "train_eval_loss": train_eval_loss[i], "train_eval_accuracy": train_acc[i],
             "test_loss": test_loss[i], "test_accuracy": test_acc[i]} for i in range(N_EVALS)]


def plateau(final: float, start: float = 0.1) -> np.ndarray:
    """Accuracy that rises quickly from ``start`` and is flat at ``final`` for the second half."""
    return np.concatenate([np.linspace(start, final, N_EVALS // 2),
                           np.full(N_EVALS - N_EVALS // 2, final)])


def overfit_curves(gap: float, loss_rise: float, acc_drop: float = 0.0):
    """Train accuracy flat at 0.99; test accuracy ``gap`` below it at the end, ``acc_drop`` below
    its best; test loss ending ``loss_rise`` (relative) above its minimum 0.1."""
    train = plateau(0.99)
    test = plateau(0.99 - gap + acc_drop)
    test[-1] = 0.99 - gap
    loss = np.concatenate([np.linspace(2.3, 0.1, N_EVALS - 5),
                           np.linspace(0.1, 0.1 * (1 + loss_rise), 5)])
    return history(train, test, loss, train_loss=np.linspace(2.3, 0.01, N_EVALS))


def test_fit_verdict_good_fit():
    assert d.fit_verdict(history(plateau(0.97))).verdict == "good fit"


def test_fit_verdict_diverged_flag_non_finite():
    result = d.fit_verdict(history(plateau(0.97)), diverged_flag=True)
    assert result.verdict == "diverged" and "NaN/inf" in result.rule


@pytest.mark.parametrize("key", ["train_loss", "train_eval_loss", "test_loss"])
def test_fit_verdict_diverged_nan_loss(key):
    records = history(plateau(0.97))
    records[-3][key] = math.nan
    assert d.fit_verdict(records).verdict == "diverged"


@pytest.mark.parametrize("factor, verdict", [(d.DIVERGENCE_LOSS_FACTOR * 1.01, "diverged"),
                                             (d.DIVERGENCE_LOSS_FACTOR * 0.99, "good fit")])
def test_fit_verdict_loss_explosion_threshold(factor, verdict):
    train_loss = np.linspace(2.3, 0.3, N_EVALS)
    train_loss[5] = 2.3 * factor  # the initial test loss is 2.3
    assert d.fit_verdict(history(plateau(0.97), train_loss=train_loss)).verdict == verdict


def test_fit_verdict_overfitting_by_rising_test_loss():
    result = d.fit_verdict(overfit_curves(gap=0.03, loss_rise=0.5))
    assert result.verdict == "over-fitting" and "gap 3.00 pp" in result.rule


def test_fit_verdict_overfitting_by_falling_test_accuracy():
    assert d.fit_verdict(overfit_curves(gap=0.03, loss_rise=0.0,
                                     acc_drop=0.01)).verdict == "over-fitting"


@pytest.mark.parametrize("gap, loss_rise, acc_drop", [
    (d.OVERFIT_MIN_GAP - 0.002, 0.5, 0.01),                   # gap just too small
    (0.03, d.OVERFIT_LOSS_RISE - 0.02, 0.0),                  # test loss barely rising
    (0.03, 0.0, d.OVERFIT_ACCURACY_DROP - 0.002),             # test accuracy barely falling
])
def test_fit_verdict_overfitting_needs_every_condition(gap, loss_rise, acc_drop):
    assert d.fit_verdict(overfit_curves(gap, loss_rise, acc_drop)).verdict == "good fit"


@pytest.mark.parametrize("final, verdict",
                         [(d.UNDERFIT_MIN_TRAIN_ACCURACY - 0.005, "under-fitting"),
                                            (d.UNDERFIT_MIN_TRAIN_ACCURACY + 0.005, "good fit")])
def test_fit_verdict_underfitting_low_train_accuracy_threshold(final, verdict):
    assert d.fit_verdict(history(plateau(final))).verdict == verdict


@pytest.mark.parametrize("shortfall, verdict", [(d.UNDERFIT_CAPACITY_GAP + 0.003, "under-fitting"),
                                                (d.UNDERFIT_CAPACITY_GAP - 0.003, "good fit")])
def test_fit_verdict_underfitting_capacity_threshold(shortfall, verdict):
    result = d.fit_verdict(history(plateau(0.95)), best_train_accuracy=0.95 + shortfall)
    assert result.verdict == verdict, result.rule


def test_fit_verdict_capacity_rule_skipped_without_reference():
    assert d.fit_verdict(history(plateau(0.91)), best_train_accuracy=None).verdict == "good fit"


@pytest.mark.parametrize("late_rise, verdict", [(d.UNDERFIT_LATE_GAIN + 0.003, "under-fitting"),
                                                (d.UNDERFIT_LATE_GAIN - 0.003, "good fit")])
def test_fit_verdict_underfitting_still_rising_threshold(late_rise, verdict):
    acc = plateau(0.95)
    window = np.flatnonzero(np.arange(N_EVALS) > (N_EVALS - 1) * (1 - d.LATE_FRACTION))
    acc[window] = np.linspace(0.95, 0.95 + late_rise, window.size + 1)[1:]  # rises after 0.95
    result = d.fit_verdict(history(acc))
    assert result.verdict == verdict, result.rule


def test_fit_verdict_overfitting_takes_precedence_over_still_rising():
    records = overfit_curves(gap=0.03, loss_rise=0.5)
    for i, record in enumerate(records[-5:]):
        record["train_eval_accuracy"] = 0.95 + 0.01 * i
        record["test_accuracy"] = record["train_eval_accuracy"] - 0.03
    assert d.fit_verdict(records).verdict == "over-fitting"


def test_late_gain_hand_case():
    # window starts at 0.75 * 400 = 300: last record at or before it is 300 (value 0.5); final 0.8.
    samples = np.array([0, 100, 200, 300, 350, 400], dtype=float)
    values = np.array([0.1, 0.2, 0.4, 0.5, 0.7, 0.8])
    assert d.late_gain(samples, values) == pytest.approx(0.3)


def test_stability_hand_case():
    records = history(plateau(0.9))
    for record, acc in zip(records[-6:], [0.90, 0.92, 0.88, 0.91, 0.90, 0.89]):
        record["test_accuracy"] = acc
    stats = d.stability(records)
    # last five: 0.92 0.88 0.91 0.90 0.89 -> mean 0.90, squared deviations sum 0.001 -> std
    # sqrt(0.0002)
    assert stats["fluctuation"] == pytest.approx(math.sqrt(0.0002))
    assert stats["largest_drop"] == pytest.approx(0.04)
    assert stats["best_test_accuracy"] == pytest.approx(0.92)
    assert stats["final_test_accuracy"] == pytest.approx(0.89)


def test_stability_rising_curve_has_no_drop():
    assert d.stability(history(np.linspace(0.1, 0.9, N_EVALS)))["largest_drop"] == 0.0


def test_tracking_gap_over_common_evaluations():
    a = history(plateau(0.9))
    b = history(plateau(0.9))
    b[4]["test_accuracy"] += 0.002
    assert d.tracking_gap(a, b) == pytest.approx(0.002)
    assert d.tracking_gap(a, b[:3]) == 0.0  # b stopped early (diverged): compare what both reached
    assert d.tracking_gap(a, a, "train_eval_accuracy") == 0.0


def test_column_maps_none_to_nan():
    records = [{"x": 1.0}, {"x": None}, {"x": math.inf}]
    np.testing.assert_array_equal(np.isnan(d.column(records, "x")), [False, True, True])


def test_runs_table_compares_each_run_with_its_own_models_best():
    from reports.analysis.tables import runs_table

    def result(model, setting, final_train):
        return {"spec": {"model": model, "setting": setting, "epochs": 5, "lr": 0.1, "seed": 0,
                         "implementation": "numpy"},
                "history": history(plateau(final_train)), "diverged": False, "steps": 1,
                "ms_per_step": 1.0, "s_per_epoch": 1.0, "eval_time": 1.0, "train_time": 1.0,
                "setup_time": 0.0, "wall_time": 3.0, "initial_weights_sha256": "0"}

    runs = runs_table([result("linear", 0, 0.92), result("linear", 1, 0.945),
                       result("cnn", 0, 0.92)])
    assert list(runs["verdict"]) == ["good fit", "good fit", "good fit"]  # 2.5 pp below the best
    runs = runs_table([result("linear", 0, 0.92), result("linear", 1, 0.96),
                       result("cnn", 0, 0.92)])
    assert list(runs["verdict"]) == ["under-fitting", "good fit", "good fit"]
