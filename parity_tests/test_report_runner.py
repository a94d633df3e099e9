"""The report's protocol and run store (no TensorFlow except the one real run); resuming is tested
with the sweep driver (test_report_sweep.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from reports.experiment import runner
from reports.experiment.protocol import (
    FULL,
    IMPLEMENTATIONS,
    QUICK,
    SETTINGS,
    RunSpec,
    plan,
    prefix_parents,
    steps_per_run,
)
from reports.files import run_schema
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
    {"stops": (2,)},
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


def test_plan_stops_the_longest_run_of_a_trajectory_at_the_shorter_ones():
    specs = plan(list(SETTINGS), 2, FULL)
    # SETTINGS: cnn trains 10 and 20 epochs at lr 0.001, mlp2 5 and 40 epochs at lr 0.003.
    assert {(s.model, s.setting, s.stops) for s in specs if s.stops} == {
        ("cnn", 2, (10,)), ("mlp2", 1, (5,))}
    parents = prefix_parents(specs)
    shorter = [s for s in specs if s.key in parents]
    assert {(s.model, s.setting) for s in shorter} == {("cnn", 1), ("mlp2", 0)}
    assert len(shorter) == 2 * 2 * 2  # both implementations, both seeds
    for spec in shorter:
        parent = parents[spec.key]
        assert (parent.seed, parent.implementation, parent.lr) == (spec.seed,
                                                                    spec.implementation, spec.lr)
        assert spec.epochs in parent.stops


def test_plan_quick_takes_equal_runs_once():
    """--quick trains one epoch everywhere: cnn's settings 2 and 3 are then the same run."""
    specs = plan(["cnn"], 1, QUICK)
    parents = prefix_parents(specs)
    assert [(s.setting, parents[s.key].setting) for s in specs if s.key in parents] == [
        (1, 2), (1, 2)]
    assert all(not s.stops for s in specs)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_derive_prefix_equals_the_shorter_run_trained_alone(implementation, fresh_blas_policy):
    # 3 steps per epoch, records every 2 steps: the stop after epoch 1 (step 3) is off the
    # schedule, so the longer run's next record would differ if the stop reset its loss.
    threads.configure("1")  # bitwise-repeatable BLAS sums
    protocol = replace(TINY, eval_every=200)
    splits = tiny_splits()
    shorter = RunSpec("mlp1", 0, 1, 0.1, 0, implementation, protocol)
    longer = RunSpec("mlp1", 1, 2, 0.1, 0, implementation, protocol, stops=(1,))
    derived = runner.derive_prefix(shorter, runner.train_one(longer, splits))
    alone = runner.train_one(shorter, splits)
    assert run_schema.problem(derived, shorter) is None

    def outcome(result):
        timings = ("train_time", "eval_time")
        return ([{k: v for k, v in r.items() if k not in timings} for r in result["history"]],
                [result[k] for k in ("key", "diverged", "steps", "planned_steps",
                                     "n_evaluations", "initial_weights_sha256")])

    assert [r["step"] for r in alone["history"]] == [0, 2, 3]
    assert outcome(derived) == outcome(alone)


def test_derive_prefix_of_a_run_that_diverged_before_the_stop():
    shorter = RunSpec("mlp1", 0, 4, 0.1, 0, "numpy", FULL)
    parent = fake_run_result(RunSpec("mlp1", 1, 8, 0.1, 0, "numpy", FULL, stops=(4,)))
    parent["diverged"] = True
    parent["history"] = parent["history"][:1] + [{**parent["history"][1], "step": 2,
                                                   "diverged": True}]
    parent["history"][1].pop("stop")
    derived = runner.derive_prefix(shorter, parent)
    assert derived["diverged"] and [r["step"] for r in derived["history"]] == [0, 2]


def test_derive_prefix_refuses_a_parent_without_the_stop():
    shorter = RunSpec("mlp1", 0, 4, 0.1, 0, "numpy", FULL)
    parent = fake_run_result(RunSpec("mlp1", 1, 8, 0.1, 0, "numpy", FULL))  # no stops
    with pytest.raises(ValueError, match="has no record at step 4"):
        runner.derive_prefix(shorter, parent)


def test_as_planned_drops_the_stop_records_only():
    result = fake_run_result(RunSpec("mlp1", 1, 8, 0.1, 0, "numpy", FULL, stops=(4,)))
    planned = runner.as_planned(result)
    assert [r["step"] for r in planned["history"]] == [0, 8]
    assert planned["n_evaluations"] == 2 and len(result["history"]) == 3
