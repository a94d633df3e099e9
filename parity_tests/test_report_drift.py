"""The weight drift of the report: the projection every run records (``reports.experiment.drift``)
and the series ``results.json`` derives from it, on a float64 ``tfparity report --quick`` run with
two seeds (offline templates data), where NumPy and TensorFlow must stay within 1e-9 of each other
while two seeds are far apart."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reports.cli import main
from reports.experiment import protocol
from reports.experiment.datasets import load
from reports.experiment.drift import WeightProjection, projection_seed, relative_distance
from reports.experiment.protocol import PROJECTION_DIM, QUICK, SETTINGS, RunSpec
from scratch.models import build
from scratch.train import fit

MODELS = ["linear", "cnn"]
SEEDS = 2
FLOAT64_DISTANCE = 1e-9  # the acceptance bound after the quick run
SEEDS_APART = 0.1  # two seeds' independent initial weights are ~sqrt(2) apart (relative)


@pytest.fixture(scope="module")
def float64_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("drift64")
    code = main(["report", "--quick", "--data", "templates", "--dtype", "float64", "--seeds",
                 str(SEEDS), "--models", *MODELS, "--no-timing", "--no-decisions", "--out",
                 str(out), "--no-progress"])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def _runs(out: Path) -> dict:
    """The saved runs (``runs/*.json``: results.json leaves their weight projections out)."""
    runs = [json.loads(path.read_text()) for path in (out / "runs").glob("*.json")]
    return {(r["spec"]["model"], r["spec"]["setting"] + 1, r["spec"]["seed"],
             r["spec"]["implementation"]): r for r in runs}


def test_report_drift_one_series_per_experiment_and_seed(float64_run):
    series = float64_run[1]["drift"]
    assert sorted((s["model"], s["setting"], s["seed"]) for s in series) == sorted(
        (m, setting, seed) for m in MODELS for setting in (1, 2, 3) for seed in range(SEEDS))


def test_report_drift_one_value_per_evaluation(float64_run):
    runs = _runs(float64_run[0])
    for s in float64_run[1]["drift"]:
        for impl in ("numpy", "tensorflow"):
            history = runs[(s["model"], s["setting"], s["seed"], impl)]["history"]
            assert s["samples_seen"] == [r["samples_seen"] for r in history]
            assert all(len(r["weight_projection"]) == PROJECTION_DIM for r in history)
        for key in ("weights", "seed_weights", "test_accuracy_gap", "test_loss_gap"):
            assert len(s[key]) == len(s["samples_seen"]), (s["model"], s["setting"], key)


def test_report_drift_zero_at_step_zero_and_finite(float64_run):
    for s in float64_run[1]["drift"]:
        label = (s["model"], s["setting"], s["seed"])
        assert s["samples_seen"][0] == 0 and s["weights"][0] == 0.0, label
        for key in ("weights", "seed_weights", "test_accuracy_gap", "test_loss_gap"):
            assert all(v is not None and math.isfinite(v) for v in s[key]), (label, key)


def test_report_drift_float64_below_bound_and_seeds_far_apart(float64_run):
    for s in float64_run[1]["drift"]:
        label = (s["model"], s["setting"], s["seed"])
        assert max(s["weights"]) < FLOAT64_DISTANCE, (label, s["weights"])
        assert max(s["test_loss_gap"]) < FLOAT64_DISTANCE, (label, s["test_loss_gap"])
        assert max(s["test_accuracy_gap"]) == 0.0, (label, s["test_accuracy_gap"])
        assert s["other_seed"] == (s["seed"] + 1) % SEEDS
        assert min(s["seed_weights"]) > SEEDS_APART, (label, s["seed_weights"])


def test_report_drift_records_the_weights_the_numpy_run_ends_with(float64_run):
    """Train linear #3 seed 0 again with scratch.train.fit (no report code) and project its
    final weights: the recorded last projection of the report's NumPy run is the same."""
    protocol = replace(QUICK, data="templates", dtype="float64")
    splits = load(protocol, verify=False)
    epochs, lr = protocol.epochs, SETTINGS["linear"][2][1]
    model = build("linear", seed=0, dtype="float64")
    fit(model, *splits.train, epochs=epochs, lr=lr, batch_size=protocol.batch_size, seed=0,
        eval_every=protocol.eval_every)
    projection = WeightProjection("linear", {k: v.shape for k, v in model.params.items()})
    recorded = _runs(float64_run[0])[("linear", 3, 0, "numpy")]["history"][-1]
    np.testing.assert_allclose(recorded["weight_projection"], projection(model.params),
                               rtol=0, atol=1e-12)


def test_report_drift_table_and_figures(float64_run):
    out, results = float64_run
    table = {(row["model"], row["setting"]): row for row in results["tables"]["drift"]}
    assert set(table) == {(m, setting) for m in MODELS for setting in (1, 2, 3)}
    for row in table.values():
        assert 0 < row["max_weight_distance"] < FLOAT64_DISTANCE
        assert row["final_seed_distance"] > SEEDS_APART
    for model in MODELS:
        assert (out / f"curves_{model}.png").stat().st_size > 10_000


@pytest.mark.parametrize("shapes", [{"a/kernel": (3, 2), "a/bias": (2,)},
                                    {"conv/kernel": (3, 3, 1, 4)}])
def test_weight_projection_fixed_by_model_and_shapes(shapes):
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(shape) for k, shape in shapes.items()}
    first, second = WeightProjection("m", shapes), WeightProjection("m", dict(reversed(
        list(shapes.items()))))
    assert np.array_equal(first(params), second(params))  # same P, same summation order
    assert not np.array_equal(first(params), WeightProjection("other", shapes)(params))
    assert projection_seed("m", "a/kernel", (3, 2)) != projection_seed("m", "a/kernel", (2, 3))
    assert first(params).dtype == np.float64 and first(params).shape == (PROJECTION_DIM,)


def test_weight_projection_keeps_norms():
    """E||P v||^2 = ||v||^2; at K = 256 the norm of a spread vector is kept to a few percent."""
    shapes = {"dense/kernel": (784, 32), "dense/bias": (32,)}
    projection = WeightProjection("mlp", shapes)
    rng = np.random.default_rng(1)
    for _ in range(5):
        params = {k: rng.standard_normal(shape) for k, shape in shapes.items()}
        norm = math.sqrt(sum(float(np.sum(v * v)) for v in params.values()))
        assert abs(np.linalg.norm(projection(params)) / norm - 1) < 0.15


def test_weight_projection_is_linear():
    shapes = {"d/kernel": (5, 3)}
    projection = WeightProjection("m", shapes)
    a, b = np.arange(15.0).reshape(5, 3), np.ones((5, 3))
    np.testing.assert_allclose(projection({"d/kernel": a - 2 * b}),
                               projection({"d/kernel": a}) - 2 * projection({"d/kernel": b}),
                               rtol=1e-12, atol=1e-12)


def test_weight_projection_rejects_other_keys():
    projection = WeightProjection("m", {"d/kernel": (2, 2)})
    with pytest.raises(ValueError, match=r"expected parameters \['d/kernel'\].*'d/bias'"):
        projection({"d/kernel": np.zeros((2, 2)), "d/bias": np.zeros(2)})


def test_relative_distance_hand_case():
    # rows: ||(3, 0) - (0, 4)|| / ||(0, 4)|| = 5 / 4; identical rows give 0; NaN stays NaN
    a = np.array([[3.0, 0.0], [1.0, 2.0], [np.nan, 1.0]])
    b = np.array([[0.0, 4.0], [1.0, 2.0], [1.0, 1.0]])
    np.testing.assert_array_equal(relative_distance(a, b), [1.25, 0.0, np.nan])


def test_run_key_depends_on_what_runs_record(monkeypatch):
    """Runs saved before the records changed (e.g. without weight projections) have another key,
    so the run store does not reuse them."""
    spec = RunSpec("linear", 0, 1, 0.1, 0, "numpy", QUICK)
    before = spec.key
    monkeypatch.setattr(protocol, "RECORDS", {})
    assert spec.key != before


@pytest.mark.parametrize("dtype", ["float16", "int32"])
def test_report_dtype_rejects_unknown(dtype, tmp_path, capsys):
    assert main(["report", "--quick", "--dtype", dtype, "--out", str(tmp_path)]) == 2
    assert "--dtype" in capsys.readouterr().err
