"""A file at a run's place that is not a run of its spec (not JSON, another schema, a
non-number accuracy, a directory) is moved to ``runs/rejected/`` with one line naming it and
the problem, and the run is trained again, before any training; the report never crashes on it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reports.cli import main
from reports.experiment import runner
from reports.experiment.protocol import FULL, QUICK, plan
from reports.render import writer

from helpers import FakeTrainer, fake_run_result

SPEC = plan(["linear"], 1, FULL)[0]
GOOD = fake_run_result(SPEC)


def _with_record(**record) -> dict:
    return {**GOOD, "history": [{**GOOD["history"][0], **record}]}


@pytest.mark.parametrize("content, said", [
    ("null", "holds NoneType None, expected an object"),
    ("{truncated", "cannot be read as JSON"),
    (json.dumps({"key": SPEC.key}), "holds the spec None, expected {"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "history"}),
     "holds history=None, expected a non-empty list of records"),
    (json.dumps(_with_record(test_accuracy="high")),
     "holds history[0].test_accuracy='high', expected a number"),
    (json.dumps({**GOOD, "diverged": "no"}), "holds diverged='no', expected true or false"),
    (json.dumps({**GOOD, "train_time": [1]}), "holds train_time=[1], expected a number"),
    (json.dumps({**GOOD, "spec": {**GOOD["spec"], "lr": 9.0}}), "holds the spec {"),
    (json.dumps({**fake_run_result(plan(["mlp1"], 1, FULL)[0])}), "holds the run key"),
])
def test_run_store_sets_aside_a_file_that_is_not_a_run(content, said, tmp_path, capsys):
    store = runner.RunStore(tmp_path)
    store.dir.mkdir()
    store.path(SPEC).write_text(content)
    assert store.load(SPEC) is None
    err = capsys.readouterr().err
    assert f"run file {SPEC.filename} {said}" in err and "trained again" in err, err
    assert not store.path(SPEC).exists()
    assert (store.dir / "rejected" / SPEC.filename).read_text() == content


LONGER = next(spec for spec in plan(["cnn"], 1, FULL) if spec.stops)  # 20 epochs, stops (10,)
WITH_STOP = fake_run_result(LONGER)  # one step per epoch: the stop is step 10


@pytest.mark.parametrize("change, said", [
    ({"history": [WITH_STOP["history"][0], WITH_STOP["history"][-1]]},
     "holds no record at step 10, the stop after 10 epochs"),
    ({"planned_steps": None}, "holds planned_steps=None, expected a whole number of steps"),
])
def test_run_store_sets_aside_a_run_without_its_stop(change, said, tmp_path, capsys):
    store = runner.RunStore(tmp_path)
    store.save(LONGER, {**WITH_STOP, **change})
    assert store.load(LONGER) is None
    assert f"run file {LONGER.filename} {said}" in capsys.readouterr().err


def test_run_store_keeps_a_run_that_diverged_before_its_stop(tmp_path):
    store = runner.RunStore(tmp_path)
    diverged = [WITH_STOP["history"][0], {**WITH_STOP["history"][0], "step": 4, "diverged": True}]
    store.save(LONGER, {**WITH_STOP, "history": diverged, "diverged": True})
    assert store.load(LONGER)["key"] == LONGER.key
    assert store.load(replace(LONGER, stops=(10,)))["key"] == LONGER.key


def test_run_store_keeps_a_valid_run_and_a_null_accuracy(tmp_path):
    store = runner.RunStore(tmp_path)
    store.save(SPEC, _with_record(test_accuracy=float("nan")))  # saved as null
    assert store.load(SPEC)["key"] == SPEC.key


def test_report_trains_again_what_is_set_aside_before_training(tmp_path, monkeypatch, capsys):
    specs = plan(["linear"], 1, replace(QUICK, data="templates"))
    args = ["report", "--quick", "--data", "templates", "--models", "linear", "--out",
            str(tmp_path), "--no-timing", "--no-decisions", "--no-progress"]
    monkeypatch.setattr(writer, "write", lambda out, results, **kwargs: out / "report.md")
    monkeypatch.setattr(runner, "train_one", FakeTrainer())
    assert main(args) == 0
    store = runner.RunStore(tmp_path)
    store.path(specs[0]).write_text(json.dumps({**fake_run_result(specs[0]),
                                                "history": [{"test_accuracy": "high"}]}))
    store.path(specs[3]).unlink()
    store.path(specs[3]).mkdir()  # a directory in a run file's place
    again = FakeTrainer()
    monkeypatch.setattr(runner, "train_one", again)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert again.calls == [specs[0], specs[3]]
    assert f"run file {specs[3].filename} is a directory; moved to" in err, err
    assert all(store.load(spec)["key"] == spec.key for spec in specs)
    assert sorted(p.name for p in (store.dir / "rejected").iterdir()) == sorted(
        [specs[0].filename, specs[3].filename])
