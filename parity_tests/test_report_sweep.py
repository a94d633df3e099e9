"""The sweep's driver on the serial executor with a stand-in trainer: resuming, Ctrl-C, claims
shared with other report processes, and the executor options (no TensorFlow)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from reports.experiment import runner
from reports.experiment.protocol import FULL, plan
from reports.experiment.sweep import claims, driver
from reports.experiment.sweep.options import Executor

from helpers import TINY, FakeTrainer, fake_run_result, tiny_splits

SERIAL = Executor()


def claim_of(store, spec):
    return claims.claim_path(store.dir, spec.filename)


def test_run_sweep_resumes_instead_of_starting_over(tmp_path, monkeypatch):
    specs = plan(["linear", "mlp1"], 1, TINY)
    store = runner.RunStore(tmp_path)
    first = FakeTrainer()
    monkeypatch.setattr(runner, "train_one", first)
    results, record = driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert first.calls == specs and set(results) == {s.key for s in specs}
    assert record["trained"] == len(specs) and record["executor"]["executor"] == "serial"
    driver_process = f"{os.uname().nodename}:{os.getpid()}"
    assert {r["execution"]["worker"] for r in results.values()} == {driver_process}

    again = FakeTrainer()
    monkeypatch.setattr(runner, "train_one", again)
    loads = []
    driver.run_sweep(specs, store, lambda: loads.append(1) or tiny_splits(), SERIAL, progress=False)
    assert again.calls == [] and loads == []  # everything cached: no data loaded, nothing trained

    store.path(specs[3]).unlink()
    driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert again.calls == [specs[3]]
    assert list(store.dir.glob("*" + claims.SUFFIX)) == []  # every claim released


def test_run_sweep_interrupted_keeps_finished_runs_and_releases_claims(tmp_path, monkeypatch):
    specs = plan(["linear"], 1, TINY)
    store = runner.RunStore(tmp_path)
    monkeypatch.setattr(runner, "train_one", FakeTrainer(interrupt_at=2))
    with pytest.raises(KeyboardInterrupt):
        driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert [store.load(s) is not None for s in specs] == [True, True] + [False] * (len(specs) - 2)
    assert list(store.dir.glob("*" + claims.SUFFIX)) == []
    rest = FakeTrainer()
    monkeypatch.setattr(runner, "train_one", rest)
    driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert rest.calls == specs[2:]


def test_claim_excludes_a_second_claimer_until_released(tmp_path):
    path = tmp_path / "runs" / ("a" + claims.SUFFIX)
    first = claims.try_claim(path)
    assert first is not None and claims.holder(path)["pid"] == os.getpid()
    assert claims.try_claim(path) is None
    first.release()
    assert not path.exists()
    second = claims.try_claim(path)
    assert second is not None
    second.release()


def test_claim_of_a_killed_process_is_reclaimed(tmp_path):
    path = tmp_path / ("a" + claims.SUFFIX)
    code = (f"import sys, time; from reports.experiment.sweep import claims; "
            f"from pathlib import Path; "
            f"assert claims.try_claim(Path({str(path)!r})); print('claimed', flush=True); "
            f"time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "claimed"
        assert claims.try_claim(path) is None  # held by a live process
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert claims.holder(path)["pid"] == child.pid  # the file stays, its lock died with the pid
    claim = claims.try_claim(path)
    assert claim is not None and claims.holder(path)["pid"] == os.getpid()
    claim.release()


class TrainerThen(FakeTrainer):
    """A FakeTrainer that calls ``then()`` once it has trained ``last``: another driver's claim
    ends while this one waits."""

    def __init__(self, last, then):
        super().__init__()
        self.last, self.then = last, then

    def __call__(self, spec, splits, on_record=None):
        result = super().__call__(spec, splits, on_record)
        if spec == self.last:
            self.then()
        return result


def test_run_sweep_leaves_a_claimed_run_to_its_claimer(tmp_path, monkeypatch):
    specs = plan(["linear"], 1, TINY)
    store = runner.RunStore(tmp_path)
    other = claims.try_claim(claim_of(store, specs[1]))  # another driver is training it

    def other_finishes():
        store.save(specs[1], {**fake_run_result(specs[1]), "trained_by": "other"})
        other.release()

    trainer = TrainerThen(specs[-1], other_finishes)
    monkeypatch.setattr(runner, "train_one", trainer)
    monkeypatch.setattr(driver, "POLL_SECONDS", 0.1)
    results, _ = driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert trainer.calls == specs[:1] + specs[2:]
    assert results[specs[1].key]["trained_by"] == "other"


def test_run_sweep_trains_a_run_whose_claimer_died_before_saving(tmp_path, monkeypatch):
    specs = plan(["linear"], 1, TINY)
    store = runner.RunStore(tmp_path)
    other = claims.try_claim(claim_of(store, specs[0]))
    trainer = TrainerThen(specs[-1], other.release)  # its lock goes as a dead process's would
    monkeypatch.setattr(runner, "train_one", trainer)
    monkeypatch.setattr(driver, "POLL_SECONDS", 0.1)
    results, _ = driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert trainer.calls == specs[1:] + specs[:1]
    assert set(results) == {s.key for s in specs}


@pytest.mark.parametrize("kwargs, option", [
    ({"name": "serial", "jobs": 2}, "--jobs"),
    ({"name": "serial", "threads": 1}, "--worker-threads"),
    ({"name": "processes", "jobs": 0}, "--jobs"),
    ({"name": "processes", "address": "auto"}, "--address"),
    ({"name": "ray", "threads": True}, "--worker-threads"), ({"name": "dask"}, "--executor"),
])
def test_executor_rejects_options_that_do_not_fit(kwargs, option):
    with pytest.raises(ValueError, match=f"argument {option}: "):
        Executor(**kwargs)


def test_executor_arguments_name_the_chosen_options():
    assert Executor().arguments() == []
    assert Executor("processes", jobs=2).arguments() == ["--executor", "processes", "--jobs", "2"]
    assert Executor("ray", threads=1, address="auto").arguments() == [
        "--executor", "ray", "--worker-threads", "1", "--address", "auto"]


def test_run_sweep_takes_shorter_runs_from_the_longer_one(tmp_path, monkeypatch):
    # The stand-in trainer makes a step per epoch: FULL's 10- and 20-epoch cnn runs cost nothing.
    specs = plan(["cnn"], 1, FULL)
    shorter = [s for s in specs if s.setting == 1]  # 10 epochs, lr 0.001
    longer = {s.implementation: s for s in specs if s.setting == 2}  # 20 epochs, lr 0.001
    store = runner.RunStore(tmp_path)
    trainer = FakeTrainer()
    monkeypatch.setattr(runner, "train_one", trainer)
    results, record = driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert sorted(s.key for s in trainer.calls) == sorted(s.key for s in specs
                                                          if s not in shorter)
    assert (record["trained"], record["derived"]) == (4, 2)
    for spec in shorter:
        saved = store.load(spec)  # (a NaN loss of the stand-in is saved as null)
        assert saved["history"][-1]["step"] == results[spec.key]["history"][-1]["step"]
        assert saved["derived_from"] == longer[spec.implementation].key
        assert [r["step"] for r in saved["history"]] == [0, 10]

    # A shorter run's file lost: taken again from the saved longer run, nothing trained.
    store.path(shorter[0]).unlink()
    again = FakeTrainer()
    monkeypatch.setattr(runner, "train_one", again)
    results, record = driver.run_sweep(specs, store, tiny_splits, SERIAL, progress=False)
    assert again.calls == [] and record["derived"] == 1
    assert store.load(shorter[0])["derived_from"] == longer[shorter[0].implementation].key
