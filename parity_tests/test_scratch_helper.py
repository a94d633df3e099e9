"""The step helper (scratch/helper.py): the second half of a batch in another process gives the
numbers of the same halves computed here, bit for bit; a helper that dies, raises or is
interrupted costs nothing but time."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from scratch import helper, models, threads
from scratch.optim import SGD
from scratch.train import ScratchTrainer

WAIT = 60.0  # seconds for a helper to start on a loaded machine


@pytest.fixture
def helper_mode(monkeypatch):
    """Set whether the step phase has the helper; a fault of one test does not reach the next,
    and every helper started here is stopped."""
    monkeypatch.setattr(helper, "fault", None)
    helper.retire(None)

    def mode(on: bool) -> helper.StepHelper | None:
        monkeypatch.setattr(threads, "step_helper", lambda: on)
        if not on:
            return None
        started = helper.ready_helper(wait=WAIT)
        assert started is not None, helper.fault
        return started

    yield mode
    helper.retire(None)


@pytest.fixture
def parent_halves(monkeypatch):
    """Counts the halves this process runs forward itself."""
    calls = []
    original = helper.chain_forward

    def counted(blocks, x):
        calls.append(len(x))
        return original(blocks, x)

    monkeypatch.setattr(helper, "chain_forward", counted)
    return calls


def batch(n=100, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1)).astype(dtype), rng.integers(0, 10, n)


def step(model, x, y):
    loss, grads = model.loss_and_grads(x, y)
    return loss, {key: value.copy() for key, value in grads.items()}


@pytest.mark.parametrize("n", [1, helper.MIN_SPLIT - 1, helper.MIN_SPLIT, 99, 100, 1000])
def test_helper_halves_cover_the_batch(n):
    parts = helper.halves(n)
    covered = np.concatenate([np.arange(n)[part] for part in parts])
    assert np.array_equal(covered, np.arange(n))
    assert len(parts) == (2 if n >= helper.MIN_SPLIT else 1)
    assert max(len(range(n)[p]) for p in parts) - min(len(range(n)[p]) for p in parts) <= 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, blas", [(100, 1), (100, 2), (33, 1)])
def test_helper_step_equals_the_halves_computed_here(helper_mode, parent_halves, dtype, n, blas):
    # The helper takes this process's BLAS thread count: with two, conv2's kernel gradient
    # rounds differently than with one.
    x, y = batch(n, dtype=dtype)
    model = models.build("cnn", seed=3, dtype=dtype)
    with threadpool_limits(blas, user_api="blas"):
        helper_mode(False)
        expected = step(model, x, y)
        assert parent_halves == [n // 2, n - n // 2]
        parent_halves.clear()
        helper_mode(True)
        actual = step(model, x, y)
    assert _equal(actual, expected)
    assert parent_halves[-1:] == [n // 2], "the helper did not run the second half"
    assert helper.fault is None


def _equal(actual, expected) -> bool:
    (loss, grads), (expected_loss, expected_grads) = actual, expected
    return loss == expected_loss and grads.keys() == expected_grads.keys() and all(
        np.array_equal(grads[key], expected_grads[key]) for key in grads)


@pytest.mark.parametrize("rule, halves", [("off", False), ("auto", True), ("on", True)])
def test_helper_rule_off_runs_the_whole_batch(monkeypatch, parent_halves, rule, halves):
    # Off is the engine without the helper: one pass over the whole batch, whatever the load.
    monkeypatch.setenv(threads.HELPER_VAR, rule)
    monkeypatch.setattr(threads, "step_helper", lambda: False)
    threads.configure()
    try:
        x, y = batch(64)
        models.build("cnn", seed=1).loss_and_grads(x, y)
    finally:
        monkeypatch.delenv(threads.HELPER_VAR)
        threads.configure()
    assert parent_halves == ([32, 32] if halves else [64])


def test_helper_training_gives_the_same_weights(helper_mode):
    x, y = batch(400, seed=1)
    weights = []
    for on in (False, True):
        helper_mode(on)
        model = models.build("cnn", seed=5)
        trainer = ScratchTrainer(model, SGD(0.05))
        for start in range(0, 400, 100):
            trainer.train_step(x[start:start + 100], y[start:start + 100])
        weights.append({key: value.copy() for key, value in model.params.items()})
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert np.array_equal(weights[0][key], weights[1][key]), key


@pytest.mark.parametrize("when", ["forward", "backward"])
def test_helper_killed_mid_step_gives_the_same_numbers(helper_mode, monkeypatch, when):
    x, y = batch()
    model = models.build("cnn", seed=7)
    helper_mode(False)
    expected = step(model, x, y)
    running = helper_mode(True)
    # Killed before the half is sent: a reply already written would outlive the child.
    method = {"forward": "submit_forward", "backward": "submit_backward"}[when]
    original = getattr(running, method)

    def killed_first(*args):
        running.process.send_signal(signal.SIGKILL)
        running.process.wait()
        return original(*args)

    monkeypatch.setattr(running, method, killed_first)
    with pytest.warns(helper.HelperWarning, match="step helper process stopped"):
        assert _equal(step(model, x, y), expected)
    assert "exited" in helper.fault or "broke" in helper.fault
    assert helper.running_pids() == [] and helper.ready_helper() is None
    assert _equal(step(model, x, y), expected)  # later steps run both halves here


def test_helper_error_in_the_child_gives_the_same_numbers(helper_mode, monkeypatch):
    x, y = batch()
    model = models.build("cnn", seed=8)
    helper_mode(False)
    expected = step(model, x, y)
    running = helper_mode(True)
    original = running.submit_backward

    def wrong_shapes(forward, dy, dx_shape, grad_shapes, blas_threads):
        # The child cannot write a (3, 3, 1, 8) kernel gradient into a (2,) array.
        return original(forward, dy, dx_shape, [(2,)] * len(grad_shapes), blas_threads)

    monkeypatch.setattr(running, "submit_backward", wrong_shapes)
    with pytest.warns(helper.HelperWarning):
        assert _equal(step(model, x, y), expected)
    assert helper.fault.startswith("the helper raised ValueError")


def test_helper_interrupted_step_stops_the_helper(helper_mode, monkeypatch):
    x, y = batch()
    model = models.build("cnn", seed=9)
    running = helper_mode(True)
    pid = running.process.pid
    original = helper.chain_forward

    def interrupted(blocks, half):
        raise KeyboardInterrupt

    monkeypatch.setattr(helper, "chain_forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.loss_and_grads(x, y)
    assert helper.running_pids() == [] and helper.fault is None
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    monkeypatch.setattr(helper, "chain_forward", original)
    helper_mode(False)
    expected = step(model, x, y)
    started = helper_mode(True)  # a new helper, in step with the next pass
    assert started.process.pid != pid
    assert _equal(step(model, x, y), expected)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_helper_leaves_no_shared_memory_file_and_ends_with_its_parent(helper_mode):
    x, y = batch()
    running = helper_mode(True)
    models.build("cnn", seed=2).loss_and_grads(x, y)
    assert running.memory is not None and not Path(running.memory.path).exists()
    running.connection.close()  # as when this process ends
    assert running.process.wait(timeout=WAIT) == 0


def test_helper_child_ignores_ctrl_c(helper_mode):
    running = helper_mode(True)
    os.kill(running.process.pid, signal.SIGINT)
    x, y = batch()
    models.build("cnn", seed=2).loss_and_grads(x, y)
    assert running.process.poll() is None and helper.fault is None


@pytest.mark.parametrize("value", ["sometimes", "2", ""])
def test_step_helper_rule_rejects_bad_values(value):
    if not value:
        assert threads.BlasThreads({threads.HELPER_VAR: value}).helper_rule == "auto"
        return
    with pytest.raises(ValueError, match=rf"TFPARITY_STEP_HELPER: expected one of auto, on, "
                                         rf"off, received '{value}'"):
        threads.BlasThreads({threads.HELPER_VAR: value})


@pytest.mark.parametrize("rule, free, expected", [
    ("auto", 2, True), ("auto", 1, False), ("on", 1, True), ("off", 2, False)])
def test_step_helper_rule_decides_when_the_step_phase_starts(monkeypatch, rule, free, expected):
    monkeypatch.setattr(threads, "auto_threads", lambda: free)
    chosen = threads.BlasThreads({threads.HELPER_VAR: rule})
    try:
        chosen.use("step")
        assert chosen.helper is expected
        assert chosen.describe()["step_helper"]["usage"] == {("on" if expected else "off"): 1}
        chosen.use("eval")
        chosen.use("step")
        assert chosen.describe()["step_helper"]["usage"] == {("on" if expected else "off"): 2}
    finally:
        chosen.restore()


def test_step_helper_auto_is_off_beside_busy_competitors():
    from reports.measure.competitors import competitors

    chosen = threads.BlasThreads({threads.HELPER_VAR: "auto"})
    try:
        with competitors(2):
            chosen.use("step")
        assert chosen.helper is False
    finally:
        chosen.restore()


def test_helper_forked_child_starts_its_own(helper_mode):
    # A forked process shares its parent's socket and memory with the helper: it must not use
    # that helper, or the two processes' halves would mix.
    parent_helper = helper_mode(True)
    x, y = batch()
    model = models.build("cnn", seed=4)
    expected = step(model, x, y)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own helper (or none), the same numbers, then exit at once
        try:
            ok = helper.running_pids() == [] and _equal(step(model, x, y), expected)
            mine = helper.ready_helper(wait=WAIT)
            ok = ok and (mine is None or mine.process.pid != parent_helper.process.pid)
            ok = ok and _equal(step(model, x, y), expected)
            helper.retire(None)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert _equal(step(model, x, y), expected) and helper.fault is None


@pytest.mark.parametrize("forced", [True, False])
def test_step_helper_forced_for_a_block_then_restored(forced):
    # The decisions phase times the fused step against the layer-by-layer pass with the
    # helper off, so that the ratio is the fusion's alone.
    before = threads.step_helper()
    with threads.blas_threads("step", helper=forced):
        assert threads.step_helper() is forced
    assert threads.step_helper() is before


def test_helper_keeps_each_chains_half_apart(helper_mode):
    # Two models' forward passes, then their backward passes in the other order: each backward
    # pass gets its own forward pass's half.
    x, _ = batch()
    dy = np.random.default_rng(1).standard_normal((100, 7, 7, 8)).astype("float32")
    results = []
    for on in (False, True):
        helper_mode(on)
        chains = [models.build("cnn", seed=seed).units[0] for seed in (11, 12)]
        for chain in chains:
            chain.call(x)
        grads = []
        for chain in reversed(chains):
            chain.call_backward(dy, need_input_grad=True)
            grads.append({f"{conv.name}/{key}": value.copy() for conv, _ in chain.blocks
                          for key, value in conv.grads.items()})
        results.append(grads)
    assert helper.fault is None
    for expected, actual in zip(*results):
        assert expected.keys() == actual.keys()
        assert all(np.array_equal(expected[key], actual[key]) for key in expected)


def test_helper_that_cannot_start_leaves_a_fault_and_the_same_numbers(helper_mode, monkeypatch):
    x, y = batch()
    model = models.build("cnn", seed=6)
    helper_mode(False)
    expected = step(model, x, y)
    monkeypatch.setattr(helper.sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(threads, "step_helper", lambda: True)
    with pytest.warns(helper.HelperWarning, match="could not start"):
        assert _equal(step(model, x, y), expected)
    assert helper.fault.startswith("the helper could not start")
    assert helper.ready_helper() is None and helper.running_pids() == []
