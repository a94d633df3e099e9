"""The report's protocol and run store (no TensorFlow except the one real run); resuming is tested
with the sweep driver (test_report_sweep.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from reports.experiment import runner
from reports.experiment.protocol import FULL, IMPLEMENTATIONS, QUICK, SETTINGS, plan, steps_per_run
from reports.files.records import write_json_atomic
from scratch import threads

from helpers import TINY, fake_run_result, tiny_splits


def test_plan_is_seed_major_numpy_first():
    specs = plan(list(SETTINGS), 2, FULL)
    assert len(specs) == 2 * 4 * 3 * 2
    assert [s.seed for s in specs] == sorted(s.seed for s in specs)
    assert [s.implementation for s in specs[:2]] == list(IMPLEMENTATIONS)
    assert {(s.model, s.epochs, s.lr) for s in specs} == {
        (m, e, lr) for m, settings in SETTINGS.items() for e, lr in settings}


def test_plan_quick_overrides_epochs_only():
    specs = plan(["mlp2"], 1, QUICK)
    assert {s.epochs for s in specs} == {1}
    assert [s.lr for s in specs[::2]] == [lr for _, lr in SETTINGS["mlp2"]]


@pytest.mark.parametrize("models, seeds", [(["resnet"], 1), ([], 1), (["cnn"], 0), (["cnn"], 1.5)])
def test_plan_rejects_bad_arguments(models, seeds):
    with pytest.raises(ValueError, match="report: expected"):
        plan(models, seeds, FULL)


def test_steps_per_run_counts_the_short_last_batch():
    spec = plan(["linear"], 1, FULL)[0]
    assert steps_per_run(spec, 55000) == 5 * 550
    assert steps_per_run(spec, 250) == 5 * 3


@pytest.mark.parametrize("change", [
    {"lr": 0.2}, {"epochs": 6}, {"seed": 1}, {"implementation": "tensorflow"},
    {"protocol": replace(FULL, train_size=100)}, {"protocol": replace(FULL, dtype="float64")},
])
def test_run_key_changes_with_any_field(change):
    spec = plan(["linear"], 1, FULL)[0]
    assert replace(spec, **change).key != spec.key
    assert replace(spec).key == spec.key


def test_write_json_atomic_is_strict_json_without_temp_files(tmp_path):
    path = tmp_path / "a" / "r.json"
    write_json_atomic(path, {"x": [1.0, math.nan, math.inf], "y": np.float32(0.5),
                             "n": np.int64(3)})
    assert json.loads(path.read_text()) == {"x": [1.0, None, None], "y": 0.5, "n": 3}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_run_store_round_trip_and_stale_results(tmp_path):
    store = runner.RunStore(tmp_path)
    spec, other = plan(["linear"], 1, FULL)[:2]
    assert store.load(spec) is None
    store.save(spec, fake_run_result(spec))
    assert store.load(spec)["key"] == spec.key
    # a file whose key does not match
    store.path(other).write_text(json.dumps(fake_run_result(spec)))
    assert store.load(other) is None
    store.path(other).write_text("{truncated")
    assert store.load(other) is None


def test_train_one_both_sides_start_equal_and_time_apart():
    splits = tiny_splits()
    spec = plan(["mlp1"], 1, TINY)[5]  # lr 0.1, the TensorFlow run
    results = {impl: runner.train_one(replace(spec, implementation=impl),
                                      splits) for impl in IMPLEMENTATIONS}
    numpy_run, tf_run = results["numpy"], results["tensorflow"]
    assert numpy_run["initial_weights_sha256"] == tf_run["initial_weights_sha256"]
    assert numpy_run["steps"] == tf_run["steps"] == numpy_run["planned_steps"] == 3
    assert [r["samples_seen"] for r in numpy_run["history"]] == [0, 100, 200, 300]
    for result in results.values():
        assert result["train_time"] > 0 and result["eval_time"] > 0
        assert (result["wall_time"]
                >= result["setup_time"] + result["train_time"] + result["eval_time"])
    np.testing.assert_allclose([r["test_loss"] for r in numpy_run["history"]],
                               [r["test_loss"] for r in tf_run["history"]], rtol=1e-5)
    # The conditions of the timings: each side's threads, the load at the start and the end.
    # The phases alternate: warm-up step, warm-up evaluation and the record at step 0, then
    # three times a step and a record: four starts of each phase.
    assert numpy_run["threads"]["rules"] == threads.policy().rules
    assert sum(numpy_run["threads"]["usage"]["eval"].values()) == 4
    assert sum(numpy_run["threads"]["usage"]["step"].values()) == 4
    assert set(tf_run["threads"]) == {"intra_op", "inter_op"}
    for result in results.values():
        assert all(isinstance(result[f"load_average_1min_at_{when}"], float)
                   for when in ("start", "end"))
