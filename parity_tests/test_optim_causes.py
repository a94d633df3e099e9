"""The optimizer conventions of the cause catalog (``reference_tf.causes.optim``): each planted
convention fails the trajectory test (``trajectory.run_trajectory``) in both dtypes and its
failure names the convention; clean optimizers and planted bugs that are no convention (a step
scaled by 1.01, a step of the wrong sign on one parameter) name none; the catalog's float64
recomputation of Keras's step is Keras's."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf

from reference_tf.causes import optim as optim_causes
from reference_tf.causes.optim import Step, after, explain_update, optimizer_settings
from reference_tf.causes.registry import error, find_cause
from reference_tf.compare import tolerances
from reference_tf.training import keras_optimizer
from scratch import optim

from helpers import DTYPES
from trajectory import LR_FACTOR, OPTIMIZERS, PLANTED, run_trajectory

# The planted conventions (trajectory.PLANTED) and the cause each must get.
PLANTED_CAUSES = {
    "adam-epsilon-pytorch": "adam_epsilon",
    "rmsprop-epsilon-outside-root": "rmsprop_epsilon",
    "momentum-pytorch-after-lr-drop": "momentum_form",
    "l2-without-factor-2": "l2_factor",
}
CAUSE = re.compile(r"; it matches TensorFlow to (\S+) when .* \(cause: (\w+)\):$")
NO_CAUSE = ("; no known convention explains it (tried: adam_epsilon, rmsprop_epsilon, "
            "momentum_form, l2_factor):")
SEEDS = range(5)
STEPS, CUT_AT = 8, 5  # equal-gradient runs: the rate drops to a fifth at step CUT_AT


def test_every_planted_optimizer_convention_has_its_cause():
    assert PLANTED_CAUSES.keys() == PLANTED.keys()
    assert sorted(PLANTED_CAUSES.values()) == sorted(optim_causes.update_conventions())


@pytest.mark.parametrize("name, dtype", [pytest.param(name, dtype, id=f"{name}-{dtype}")
                                         for name in PLANTED for dtype in DTYPES])
def test_planted_optimizer_convention_is_caught_and_named(name, dtype, monkeypatch):
    cls, method, patch, make_optimizer, step, params = PLANTED[name]
    monkeypatch.setattr(cls, method, patch)
    with pytest.raises(AssertionError) as failure:
        run_trajectory(make_optimizer(), dtype, steps=step)
    header, *lines = str(failure.value).splitlines()
    assert f" {dtype}, step {step} " in header, header
    if dtype == "float64":  # the step's failing parameters, each line a failing comparison
        failing = [line.split(" ")[0] for line in lines]
        if params is not None:
            assert sorted(failing) == params, failure.value
        else:
            assert {"conv1/kernel", "hidden/kernel", "logits/kernel"} <= set(failing), failure.value
        assert all("FAILS tolerance 1.0e-10; rel L2" in line for line in lines), failure.value
    found = CAUSE.search(header)
    assert found is not None and found.group(2) == PLANTED_CAUSES[name], header
    assert float(found.group(1)) <= tolerances(dtype).trajectory, header


def scaled_step(factor: float, keys=None):
    """An ``Optimizer.step`` that takes Keras's step times ``factor`` (on ``keys`` only, or on
    every parameter)."""
    keras_step = optim.Optimizer.step

    def step(self, params, grads):
        before = {key: value.copy() for key, value in params.items()}
        keras_step(self, params, grads)
        for key in keys or params:
            params[key][...] = before[key] + (params[key] - before[key]) * factor

    return step


NOT_CONVENTIONS = {"step-scaled-1.01": scaled_step(1.01),
                   "wrong-sign-on-hidden-bias": scaled_step(-1.0, ["hidden/bias"])}


@pytest.mark.parametrize("bug", NOT_CONVENTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_planted_bug_that_is_no_optimizer_convention_names_no_cause(bug, dtype, monkeypatch):
    monkeypatch.setattr(optim.Optimizer, "step", NOT_CONVENTIONS[bug])
    with pytest.raises(AssertionError) as failure:
        run_trajectory(optim.Adam(0.003), dtype, steps=1)
    header = str(failure.value).splitlines()[0]
    assert f" {dtype}, step 1 " in header and header.endswith(NO_CAUSE), header


class EqualStep(NamedTuple):
    """One step of a scratch optimizer and its Keras optimizer on the same gradient: the
    settings then (``optimizer_settings``), the parameters and Keras's state before, the
    gradients, scratch's and Keras's step (after minus before), the step and the rate before."""

    settings: dict
    before: dict
    grads: dict
    state: dict
    update: dict
    keras_update: dict
    step: int
    previous_learning_rate: float


@lru_cache(maxsize=None)
def equal_gradient_steps(name: str, dtype: str, seed: int) -> tuple[EqualStep, ...]:
    """STEPS steps on gradients from 1e-6 to 1, the rate cut at CUT_AT, of parameters of scale
    0.01 (so that a wrong step shows above the float32 tolerance)."""
    rng = np.random.default_rng(seed)
    optimizer = OPTIMIZERS[name]()
    keras_side = keras_optimizer(optimizer, dtype)
    params = {key: (0.01 * rng.standard_normal(shape)).astype(dtype)
              for key, shape in (("kernel", (4, 5)), ("bias", (5,)))}
    variables = {key: keras.Variable(value.copy(), dtype=dtype, name=key)
                 for key, value in params.items()}
    keras_side.build(list(variables.values()))
    slots: dict = {}
    for variable in keras_side.variables:
        for key in params:
            if variable.name.startswith(f"{key}_"):
                slots.setdefault(variable.name[len(key) + 1:], {})[key] = variable
    rate, steps = optimizer.learning_rate, []
    for step in range(1, STEPS + 1):
        previous = rate
        if step == CUT_AT:
            optimizer.learning_rate = keras_side.learning_rate = rate = rate * LR_FACTOR
        grads = {key: (rng.standard_normal(value.shape)
                       * 10.0 ** rng.integers(-6, 1, value.shape)).astype(dtype)
                 for key, value in params.items()}
        before = {key: value.copy() for key, value in params.items()}
        state = {slot: {key: variable.numpy() for key, variable in values.items()}
                 for slot, values in slots.items()}
        optimizer.step(params, grads)
        keras_side.apply([tf.constant(grads[key]) for key in params], list(variables.values()))
        steps.append(EqualStep(optimizer_settings(optimizer), before, grads, state,
                               {key: params[key] - before[key] for key in params},
                               {key: variables[key].numpy() - before[key] for key in params},
                               step, previous))
    return tuple(steps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_keras_step_recomputed_in_float64_is_keras(name, dtype):
    tol = tolerances(dtype).trajectory
    for seed in SEEDS:
        for s in equal_gradient_steps(name, dtype, seed):
            for key, w in s.before.items():
                step = Step(s.settings, w.astype(np.float64), s.grads[key].astype(np.float64),
                            {slot: values[key].astype(np.float64)
                             for slot, values in s.state.items()},
                            s.step, s.settings["learning_rate"], s.previous_learning_rate, None)
                residual = error(after(step), w + s.keras_update[key].astype(np.float64))
                assert residual <= tol, f"{name} seed {seed} step {s.step} {key}: {residual:.1e}"


def explained(monkeypatch, name: str, dtype: str, seed: int, wrong=None) -> list:
    """explain_update on every equal-gradient step, the user's step being scratch's (or
    ``wrong(key, keras_step)``): [(step, cause, whether the matcher was asked)]."""
    asked = []

    def spy(case):
        asked.append(case.name)
        return find_cause(case)

    monkeypatch.setattr(optim_causes, "find_cause", spy)
    results = []
    for s in equal_gradient_steps(name, dtype, seed):
        update = s.update if wrong is None else {key: wrong(key, value)
                                                 for key, value in s.keras_update.items()}
        asked.clear()
        cause = explain_update(s.settings, s.before, s.grads, s.state, update, s.keras_update,
                               step=s.step, previous_learning_rate=s.previous_learning_rate)
        results.append((s.step, cause, bool(asked)))
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_clean_optimizer_step_names_no_cause(name, dtype, monkeypatch):
    for seed in SEEDS:
        results = explained(monkeypatch, name, dtype, seed)
        assert all(cause is None and not asked for _, cause, asked in results), (seed, results)


WRONG_STEPS = {"scaled-1.01": lambda key, value: value * 1.01,
               "wrong-sign-on-bias": lambda key, value: -value if key == "bias" else value}


@pytest.mark.parametrize("wrong", WRONG_STEPS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_wrong_step_that_is_no_convention_names_no_cause(name, dtype, wrong, monkeypatch):
    for seed in SEEDS:
        results = explained(monkeypatch, name, dtype, seed, WRONG_STEPS[wrong])
        assert all(asked for _, _, asked in results), (seed, results)  # every step fails
        assert all(cause is None for _, cause, _ in results), (seed, results)


def test_explain_update_inconsistent_state_raises():
    s = equal_gradient_steps("momentum", "float64", 0)[1]
    zeros = {"momentum": {key: np.zeros_like(value) for key, value in s.state["momentum"].items()}}
    with pytest.raises(ValueError, match=r"explain_update: Keras's step of 'kernel' recomputed "
                                         r"from before, grads and state differs from "
                                         r"keras_update by .* state Keras's before step 2\."):
        explain_update(s.settings, s.before, s.grads, zeros,
                       {key: 1.01 * value for key, value in s.keras_update.items()},
                       s.keras_update, step=s.step)


@pytest.mark.parametrize("optimizer, message", [
    ({"name": "Lion", "learning_rate": 0.1},
     r"expected the optimizer's name to be one of \['Adam', 'AdamW', 'RMSprop', 'SGD'\], "
     r"received 'Lion'"),
    ({"name": "SGD"}, r"the settings of SGD have no learning_rate"),
])
def test_explain_update_bad_settings_rejected(optimizer, message):
    with pytest.raises(ValueError, match=message):
        explain_update(optimizer, {"w": np.ones(2)}, {"w": np.ones(2)}, None, {"w": np.ones(2)},
                       {"w": np.ones(2)}, step=1)
