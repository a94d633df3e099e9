"""Student's t quantiles against their closed forms, and the paired-seed interval of the summary."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from reports.analysis.statistics import MIN_SEEDS, paired_interval, t_cdf, t_quantile
from reports.analysis.tables import summary_table
from reports.experiment.protocol import QUICK, plan

PROBABILITIES = [0.6, 0.9, 0.95, 0.975, 0.995, 0.999]


def t_quantile_closed_form(p: float, df: int) -> float:
    """Quantiles with a closed form: df 1 (Cauchy), 2 and 4 (Shaw, 2006)."""
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    alpha = 4 * p * (1 - p)
    q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
    return math.copysign(2 * math.sqrt(q - 1), p - 0.5)


@pytest.mark.parametrize("df", [1, 2, 4])
@pytest.mark.parametrize("p", PROBABILITIES)
def test_t_quantile_matches_the_closed_forms(p, df):
    expected = t_quantile_closed_form(p, df)
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-10)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, rel=1e-10)
    assert t_cdf(expected, df) == pytest.approx(p, abs=1e-12)


@pytest.mark.parametrize("p", PROBABILITIES)
def test_t_quantile_for_many_degrees_of_freedom_follows_its_expansion(p):
    # z + (z^3 + z) / (4 df) + (5 z^5 + 16 z^3 + 3 z) / (96 df^2) + O(df^-3), z the normal quantile
    z, df = NormalDist().inv_cdf(p), 5000
    expected = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("p, df", [(0.0, 3), (1.0, 3), (0.5, 0)])
def test_t_quantile_rejects_bad_arguments(p, df):
    with pytest.raises(ValueError, match="expected"):
        t_quantile(p, df) if df else t_cdf(1.0, df)


def test_paired_interval_hand_case():
    # d = (0.1, 0.0, 0.2): mean 0.1, sd 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3).
    interval = paired_interval([0.5, 0.6, 0.7], [0.4, 0.6, 0.5])
    half = t_quantile_closed_form(0.975, 2) * 0.1 / math.sqrt(3)
    assert interval.n == 3
    assert interval.mean == pytest.approx(0.1) and interval.sd == pytest.approx(0.1)
    assert (interval.low, interval.high) == pytest.approx((0.1 - half, 0.1 + half))


def test_paired_interval_needs_three_pairs_and_drops_missing_ones():
    two = paired_interval([0.5, 0.6, np.nan], [0.4, 0.6, 0.5])
    assert two.n == 2 and two.mean == pytest.approx(0.05)
    assert all(math.isnan(v) for v in (two.sd, two.low, two.high))
    with pytest.raises(ValueError, match="paired_interval: expected two 1-D arrays"):
        paired_interval([0.5, 0.6], [0.4])


def test_paired_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials, seeds, true = 4000, 5, 0.01
    shared = rng.normal(0.9, 0.02, (trials, seeds))  # seed effect, common to both sides
    a = shared + true + rng.normal(0, 0.003, (trials, seeds))
    b = shared + rng.normal(0, 0.003, (trials, seeds))
    covered = [(i.low <= true <= i.high) for i in map(paired_interval, a, b)]
    assert 0.94 <= np.mean(covered) <= 0.96


def test_summary_table_gives_the_paired_interval_per_experiment():
    rng = np.random.default_rng(1)
    rows = []
    for setting, seeds in ((1, 5), (2, MIN_SEEDS - 1)):
        for seed in range(seeds):
            for impl in ("numpy", "tensorflow"):
                rows.append({"model": "mlp1", "setting": setting, "epochs": 1, "lr": 0.1,
                             "seed": seed, "implementation": impl,
                             "final_test_accuracy": float(rng.uniform(0.8, 0.9))})
    runs = pd.DataFrame(rows)
    table = summary_table(runs).set_index("setting")
    first = runs[runs["setting"] == 1].pivot(index="seed", columns="implementation",
                                             values="final_test_accuracy")
    expected = paired_interval(first["numpy"], first["tensorflow"])
    assert table.loc[1, ["paired_mean", "paired_low", "paired_high", "paired_n"]].tolist() == \
        pytest.approx([expected.mean, expected.low, expected.high, 5])
    assert table.loc[1, "paired_mean"] == pytest.approx(table.loc[1, "difference"])
    assert table.loc[2, "paired_n"] == MIN_SEEDS - 1 and math.isnan(table.loc[2, "paired_low"])


def synthetic_result(spec, final_test_accuracy: float) -> dict:
    """A finished run whose test accuracy rises to ``final_test_accuracy`` (three evaluations)."""
    history = [{"samples_seen": 100 * i, "step": i, "epoch": i / 3, "train_loss": 1.0 / (i + 1),
                "train_eval_loss": 1.0 / (i + 1), "train_eval_accuracy": 0.95,
                "test_loss": 1.0 / (i + 1), "test_accuracy": final_test_accuracy - 0.01 * (2 - i),
                "train_time": 0.1 * i, "eval_time": 0.05 * (i + 1), "diverged": False}
               for i in range(3)]
    return {"key": spec.key, "spec": spec.to_dict(), "diverged": False, "history": history,
            "steps": 2, "initial_weights_sha256": f"seed{spec.seed}", "setup_time": 0.1,
            "train_time": 0.2, "eval_time": 0.15, "wall_time": 0.5, "ms_per_step": 100.0,
            "s_per_epoch": 0.3, "load_average_1min_at_end": 1.0,
            "execution": {"executor": "processes", "workers": 2, "threads_per_worker": 1}}


def test_report_summary_and_prose_give_the_paired_interval_with_three_seeds(tmp_path):
    from reports.render import writer

    rng = np.random.default_rng(2)
    specs = plan(["linear"], 3, QUICK)
    # Setting 3: NumPy 2 pp above TensorFlow in every seed, far beyond the seed noise of 0.1 pp.
    planted = {spec.key: 0.02 * (spec.setting == 2 and spec.implementation == "numpy")
               for spec in specs}
    results = [synthetic_result(spec, 0.9 + planted[spec.key] + float(rng.normal(0, 0.001)))
               for spec in specs]
    invocation = writer.Invocation(command="test", models=["linear"], seeds=3, protocol=QUICK,
                                   environment={}, elapsed=1.0, data={})
    writer.write(tmp_path, results, invocation)
    table = pd.read_csv(tmp_path / "summary_table.csv")
    assert table["paired_n"].tolist() == [3, 3, 3]
    assert table.loc[2, "paired_low"] > 0.015 and table.loc[2, "paired_high"] < 0.025
    markdown = (tmp_path / "summary_table.md").read_text()
    row = next(line for line in markdown.splitlines() if "#3 (1 ep" in line)
    cells = [cell.strip() for cell in row.split("|")]
    low, high = (100 * table.loc[2, f"paired_{k}"] for k in ("low", "high"))
    assert cells[-2] == f"{100 * table.loc[2, 'paired_mean']:+.2f} [{low:+.2f}, {high:+.2f}]"
    report = (tmp_path / "report.md").read_text()
    assert "the paired 95% interval holds 0 in 2 of 3 settings (not for #3)" in report
    assert "timing phase was skipped" in report
