"""The NumPy engine's BLAS thread policy (``scratch.threads``): who decides, how settings are
parsed, and that the engine's phases really run with their counts (read back through
threadpoolctl). No timing is asserted."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from scratch import threads
from scratch.models import build
from scratch.optim import SGD
from scratch.train import ScratchTrainer


def blas_counts() -> list[int]:
    """The thread counts of the loaded BLAS libraries, as threadpoolctl reads them."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_threads_finds_the_blas():
    assert blas_counts(), "threadpoolctl found no BLAS under NumPy"
    assert threads.BlasThreads({}).controller.lib_controllers


def test_blas_threads_policy_without_settings():
    chosen = threads.BlasThreads({})
    assert (chosen.source, chosen.rules) == ("tfparity policy", threads.POLICY)


@pytest.mark.parametrize("variable", threads.BLAS_VARIABLES)
def test_blas_threads_user_variable_wins_over_policy(variable):
    chosen = threads.BlasThreads({variable: "3"})
    assert chosen.source == f"{variable}=3"
    assert chosen.rules == dict.fromkeys(threads.PHASES)
    # Leaving the BLAS alone, the phases record what it runs with.
    assert chosen.describe()["phases"] == dict.fromkeys(threads.PHASES, blas_counts()[0])


@pytest.mark.parametrize("spec, expected", [
    ("1", {"step": 1, "eval": 1}),
    (" 3 ", {"step": 3, "eval": 3}),
    ("step=2", {"step": 2, "eval": threads.POLICY["eval"]}),
    ("eval=2, step=1", {"step": 1, "eval": 2}),
    ("auto", {"step": "auto", "eval": "auto"}),
    ("step=Auto,eval=3", {"step": "auto", "eval": 3}),
    ("inherit", {"step": None, "eval": None}),
    ("INHERIT", {"step": None, "eval": None}),
])
def test_blas_threads_env_var_parsed(spec, expected):
    chosen = threads.BlasThreads({threads.ENV_VAR: spec, "OPENBLAS_NUM_THREADS": "1"})
    assert (chosen.source, chosen.rules) == (threads.ENV_VAR, expected)


@pytest.mark.parametrize("spec, received", [
    ("0", "'0'"), ("-1", "'-1'"), ("two", "'two'"), ("1.5", "'1.5'"), ("step=0", "'0'"),
    ("step=x", "'x'"), ("train=1", "'train=1'"), ("step=1,,", "'step=1,,'"), ("=2", "'=2'"),
])
def test_blas_threads_env_var_bad_value_names_it(spec, received):
    with pytest.raises(ValueError, match=threads.ENV_VAR) as caught:
        threads.BlasThreads({threads.ENV_VAR: spec})
    assert "expected" in str(caught.value) and f"received {received}" in str(caught.value)


def test_blas_threads_override_wins_over_env_var():
    chosen = threads.BlasThreads({threads.ENV_VAR: "1"}, override="eval=2")
    assert (chosen.source, chosen.rules) == ("--blas-threads",
                                              {"step": threads.POLICY["step"], "eval": 2})
    with pytest.raises(ValueError, match="--blas-threads.*'none'"):
        threads.BlasThreads({}, override="none")


def test_blas_threads_use_sets_and_restore_gives_back():
    before = blas_counts()
    chosen = threads.BlasThreads({threads.ENV_VAR: "step=1,eval=2"})
    try:
        chosen.use("eval")
        assert set(blas_counts()) == {2}
        chosen.use("step")
        assert set(blas_counts()) == {1}
    finally:
        chosen.restore()
    assert blas_counts() == before


def test_blas_threads_phase_context_restores_the_counts_before():
    chosen = threads.BlasThreads({threads.ENV_VAR: "step=2,eval=1"})
    chosen.use("eval")
    try:
        with chosen.phase("step"):
            assert set(blas_counts()) == {2}
        assert set(blas_counts()) == {1}
    finally:
        chosen.restore()


def test_blas_threads_unknown_phase_names_it():
    with pytest.raises(ValueError, match="'train'"):
        threads.BlasThreads({}).use("train")


def test_blas_threads_describe_records_source_phases_and_libraries():
    record = threads.BlasThreads({threads.ENV_VAR: "step=1,eval=2"}).describe()
    assert record["source"] == threads.ENV_VAR
    assert record["phases"] == {"step": 1, "eval": 2}
    assert [lib["started_with_threads"] for lib in record["libraries"]] == blas_counts()
    assert all(lib["internal_api"] and lib["version"] for lib in record["libraries"])


@pytest.mark.parametrize("spec", ["step=1,eval=2", "step=2,eval=1"])
def test_scratch_trainer_runs_each_phase_with_its_threads(fresh_blas_policy, spec):
    threads.configure(spec)
    counts = threads.policy().rules
    model = build("mlp1")
    trainer = ScratchTrainer(model, SGD(0.1), eval_batch_size=8)
    x = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    y = np.arange(16) % 10
    trainer.train_step(x, y)
    assert set(blas_counts()) == {counts["step"]}
    trainer.evaluate(x, y)
    assert set(blas_counts()) == {counts["eval"]}
    with threads.blas_threads("step"):
        assert set(blas_counts()) == {counts["step"]}
    assert set(blas_counts()) == {counts["eval"]}


@pytest.mark.parametrize("others, expected", [(0, 2), (1, 1), (5, 1), (None, 1)])
def test_blas_threads_auto_takes_the_cores_others_leave(monkeypatch, others, expected):
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: others)
    assert threads.auto_threads(cores=2) == expected


def test_blas_threads_auto_sees_busy_competitors():
    from reports.measure.competitors import competitors

    with competitors(2):
        # Busy loops are always running or waiting to run, so every look counts both.
        assert threads.busy_elsewhere() >= 2
        assert threads.auto_threads(cores=2) == 1


def test_blas_threads_auto_phase_decides_when_it_starts(monkeypatch):
    decisions = iter([2, 1])
    monkeypatch.setattr(threads, "auto_threads", lambda: next(decisions))
    chosen = threads.BlasThreads({threads.ENV_VAR: "step=1,eval=auto", threads.HELPER_VAR: "off"})
    try:
        chosen.use("eval")
        assert set(blas_counts()) == {2}
        snapshot = chosen.usage_snapshot()
        chosen.use("eval")  # the phase is running: no new decision
        chosen.use("step")
        chosen.use("eval")
        assert set(blas_counts()) == {1}
        record = chosen.describe(since=snapshot)
        assert record["usage"] == {"step": {"1": 1}, "eval": {"1": 1}}
        assert chosen.describe()["usage"] == {"step": {"1": 1}, "eval": {"1": 1, "2": 1}}
        assert record["phases"] == {"step": 1, "eval": 1}
        assert record["rules"] == {"step": 1, "eval": "auto"}
    finally:
        chosen.restore()
