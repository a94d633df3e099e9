"""Optimizer trajectories: the ``scratch.optim`` optimizers against the ``keras.optimizers`` ones
``reference_tf.training.KerasTrainer`` builds from its settings, for 200 steps from the same
weights on the same batches, with the learning rate cut to a fifth after step 100 on both sides
(``optimizer.learning_rate = ...``, as in Keras). After every step the loss and every parameter
are compared; at the end, the optimizer state.

The model has every layer kind of ``scratch.layers`` and Keras's L2 penalty on two kernels
(``kernel_regularizer``), so the loss has a penalty term: Conv2D (SAME) -> ReLU -> MaxPool2D
(fused by the training step), Conv2D (VALID) -> ReLU -> MaxPool2D with stride 1 (not fused),
Flatten, Dense -> ReLU -> Dense.

Tolerances (``reference_tf.compare.tolerances(dtype).trajectory``, relative L2 and scaled max
error): float64 1e-10; the optimizers themselves repeat Keras's operations one for one (bit for bit
on equal gradients, ``test_optimizer_step_equals_keras_bit_for_bit_on_equal_gradients``), so the
two sides differ by the gradients' rounding alone, measured at most 1e-14 here over 200 steps.
float32 1e-4: a pass differs by about 1e-6 (``compare.py``), and neither Adam's nor RMSprop's
normalisation enlarges a relative gradient error (the update is homogeneous of degree 0 in the
gradient's scale), so 200 steps stay near 1e-5 (measured: below 1e-6). A float32 max-pool
near-tie can still be routed differently by the two sides (``pool_tie_flips``), changing one
gradient by a whole window's contribution: such a step is accepted only if a flip explains it,
and Keras then restarts from scratch's weights and optimizer state. float64 may never restart.

The planted conventions (PyTorch's Adam epsilon, RMSprop's epsilon outside the root, PyTorch's
momentum buffer, an L2 gradient without the factor 2) must each make the float64 trajectory fail
at the step where the convention first matters, naming the step and the parameters; the failure
also names the convention (``reference_tf.causes.optim``, tested in test_optim_causes.py).
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from reference_tf.causes.optim import explain_update, update_clause
from reference_tf.compare import compare, compare_arrays, tolerances
from reference_tf.testing import assert_model_parity, pool_tie_flips
from reference_tf.training import KerasTrainer, keras_optimizer, keras_optimizer_variables
from reference_tf.twin import copy_weights, keras_params, twin
from reports.cli import main
from reports.weights import read_weights
from scratch import optim
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential, build
from scratch.regularizers import L2
from scratch.train import ScratchTrainer, batch_schedule

from helpers import DTYPES

N, BATCH, STEPS, LR_CUT_AFTER, LR_FACTOR = 64, 16, 200, 100, 0.2
RESTARTS_ALLOWED = {"float32": 3, "float64": 0}
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.1),
    "momentum": lambda: optim.SGD(0.01, momentum=0.9),
    "nesterov": lambda: optim.SGD(0.01, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optim.RMSprop(0.003),
    "rmsprop-centered-momentum": lambda: optim.RMSprop(0.001, momentum=0.5, centered=True),
    "adam": lambda: optim.Adam(0.003),
    "amsgrad": lambda: optim.Adam(0.003, amsgrad=True),
    "adamw": lambda: optim.AdamW(0.003, weight_decay=0.05),
}
# Trajectories (a compiled Keras step each, a few seconds): the optimizers of
# ``tfparity train --optimizer``; the variants (centered RMSprop with momentum, AMSGrad) are
# checked bit for bit on equal gradients only. Plain SGD in float32: test_tf_training.
TRAJECTORIES = [("float64", name) for name in
                ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")] + [
                ("float32", name) for name in ("momentum", "rmsprop", "adamw")]


def trajectory_model(dtype: str) -> Sequential:
    return Sequential([
        Conv2D(4, 3, padding="same", kernel_regularizer=L2(0.01), name="conv1"),
        ReLU(name="conv1_relu"), MaxPool2D(2, name="pool1"),
        Conv2D(6, 3, name="conv2"), ReLU(name="conv2_relu"), MaxPool2D(2, strides=1, name="pool2"),
        Flatten(name="flatten"),
        Dense(16, kernel_regularizer=L2(0.01), name="hidden"), ReLU(name="hidden_relu"),
        Dense(10, name="logits"),
    ], (12, 12, 1), seed=0, dtype=dtype)


def run_trajectory(optimizer: optim.Optimizer, dtype: str, steps: int = STEPS):
    """Train scratch and Keras side by side; AssertionError at the first step outside the
    tolerance that no max-pool tie flip explains, its first line naming the catalog's cause of
    the step (``step_cause``). Returns (worst comparison as (step, c),
    restarts as [(step, flips)], model, keras trainer, keras model)."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((N, 12, 12, 1)).astype(dtype), rng.integers(0, 10, N)
    model = trajectory_model(dtype)
    keras_model = twin(model)
    scratch_side = ScratchTrainer(model, optimizer)
    keras_side = KerasTrainer(keras_model, optimizer)  # built from the settings before any step
    params = keras_params(keras_model)
    read_keras = tf.function(lambda: [variable.value for variable in params.values()])
    slots = keras_optimizer_variables(keras_side.optimizer, keras_model)
    read_state = tf.function(lambda: {slot: {key: variable.value for key, variable in
                                             values.items()} for slot, values in slots.items()})
    tol = tolerances(dtype).trajectory
    worst, restarts = None, []
    keras_weights = {key: value.numpy() for key, value in params.items()}
    rate = optimizer.learning_rate
    for batch in batch_schedule(N, BATCH, -(-steps * BATCH // N), seed=0):
        if batch.step > steps:
            break
        previous_rate = rate
        if batch.step == LR_CUT_AFTER + 1:
            optimizer.learning_rate = rate = optimizer.learning_rate * LR_FACTOR
            keras_side.optimizer.learning_rate = optimizer.learning_rate
        xb, yb = x[batch.indices], y[batch.indices]
        weights_before = ({key: value.copy() for key, value in model.params.items()},
                          keras_weights)
        keras_state = read_state()
        mine = {"loss": scratch_side.train_step(xb, yb), **model.params}
        loss = keras_side.train_step(xb, yb)
        keras_weights = {key: value.numpy() for key, value in zip(params, read_keras())}
        comparisons = compare(mine, {"loss": loss, **keras_weights})
        failing = [c for c in comparisons.values() if not c.passes(tol)]
        if failing:
            flips = 0
            if RESTARTS_ALLOWED[dtype]:  # each side routes with its own weights before the step
                weights_after = {key: value.copy() for key, value in model.params.items()}
                model.set_params(weights_before[0])
                flips = pool_tie_flips(model, xb, yb, reference_weights=weights_before[1])
                model.set_params(weights_after)
            if not flips:
                cause = step_cause(optimizer, model, keras_model, weights_before, keras_weights,
                                   keras_state, xb, yb, batch.step, previous_rate)
                raise AssertionError(
                    f"{type(optimizer).__name__} {dtype}, step {batch.step} (learning rate "
                    f"{optimizer.learning_rate:g}): {len(failing)} quantities differ from "
                    f"Keras's (max-pool tie flips: 0); {update_clause(cause)}:\n"
                    + "\n".join(c.format(tol) for c in failing))
            restarts.append((batch.step, flips))
            copy_weights(model, keras_model)
            slots = keras_optimizer_variables(keras_side.optimizer, keras_model)
            for slot, values in optimizer.state.items():
                copy_weights(values, slots[slot])
            keras_weights = {key: value.copy() for key, value in model.params.items()}
            continue
        for c in comparisons.values():
            if worst is None or c.smallest_passing_tolerance > worst[1].smallest_passing_tolerance:
                worst = (batch.step, c)
    return worst, restarts, model, keras_side, keras_model


def step_cause(optimizer, model, keras_model, weights_before, keras_after, keras_state, xb, yb,
               step, previous_rate):
    """The catalog's cause of a failing step (``reference_tf.causes.optim``): Keras's gradient
    without the penalties at Keras's weights before the step, each side's step from its own
    weights before it, Keras's state before it. Leaves the Keras model at those weights."""
    scratch_before, keras_before = weights_before
    copy_weights(keras_before, keras_model)
    variables = keras_params(keras_model)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.constant(yb, tf.int64), logits=keras_model(xb, training=True)))
    grads = dict(zip(variables, tape.gradient(loss, list(variables.values()))))
    penalties = {f"{layer.name}/{key}": penalty.l2 for layer in model.layers
                 for key, penalty in layer.regularizers.items()}
    return explain_update(
        optimizer, keras_before, {key: grad.numpy() for key, grad in grads.items()},
        {slot: {key: value.numpy() for key, value in values.items()}
         for slot, values in keras_state.items()},
        {key: model.params[key] - scratch_before[key] for key in keras_before},
        {key: keras_after[key] - keras_before[key] for key in keras_before},
        step=step, previous_learning_rate=previous_rate, penalties=penalties)


@pytest.mark.parametrize("dtype, name", TRAJECTORIES)
def test_optimizer_trajectory_matches_keras_for_200_steps(name, dtype):
    optimizer = OPTIMIZERS[name]()
    worst, restarts, model, keras_side, keras_model = run_trajectory(optimizer, dtype)
    assert len(restarts) <= RESTARTS_ALLOWED[dtype], f"restarts (step, tie flips): {restarts}"
    tol = tolerances(dtype).trajectory
    assert optimizer.iterations == int(keras_side.optimizer.iterations.numpy()) == STEPS
    keras_state = keras_optimizer_variables(keras_side.optimizer, keras_model)
    assert sorted(keras_state) == sorted(optimizer.state)
    for slot, values in optimizer.state.items():
        reference = {key: variable.numpy() for key, variable in keras_state[slot].items()}
        for c in compare(values, reference).values():
            assert c.passes(tol), f"optimizer state '{slot}' after {STEPS} steps: {c.format(tol)}"
    print(f"{name} {dtype}: restarts after tie flips {restarts}; worst at step {worst[0]}: "
          f"{worst[1].format(tol)}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_trainer_plain_sgd_is_the_former_assign_sub_step_bit_for_bit(dtype):
    # The reports' plain-SGD path now runs keras.optimizers.SGD; it must give the numbers of the
    # compiled step it replaced, var.assign_sub(lr * grad) with lr a constant of the model's
    # dtype (Keras alone would hold the rate in float32: 0.1 -> 0.10000000149 in float64).
    model = build("cnn", seed=0, dtype=dtype)
    keras_model, former_model = twin(model), twin(model)
    trainer = KerasTrainer(keras_model, optim.SGD(0.1))
    variables = former_model.trainable_variables
    rate = tf.constant(0.1, dtype=dtype)

    @tf.function
    def former_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=former_model(x, training=True)))
        for variable, grad in zip(variables, tape.gradient(loss, variables)):
            variable.assign_sub(rate * grad)

    rng = np.random.default_rng(1)
    for _ in range(3):
        x, y = rng.random((8, 28, 28, 1)).astype(dtype), rng.integers(0, 10, 8)
        trainer.train_step(x, y)
        former_step(tf.constant(x), tf.constant(y, tf.int64))
    for (key, mine), theirs in zip(keras_params(keras_model).items(), variables):
        assert np.array_equal(mine.numpy(), theirs.numpy()), key


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_step_equals_keras_bit_for_bit_on_equal_gradients(name, dtype):
    # Gradients from 1e-9 to 1 (epsilon matters at the small end), the rate cut after step 6.
    rng = np.random.default_rng(7)
    optimizer = OPTIMIZERS[name]()
    keras_side = keras_optimizer(optimizer, dtype)
    params = {"w": rng.standard_normal((4, 5)).astype(dtype)}
    variable = keras.Variable(params["w"].copy(), dtype=dtype)
    for step in range(1, 13):
        if step == 7:
            optimizer.learning_rate = optimizer.learning_rate * LR_FACTOR
            keras_side.learning_rate = optimizer.learning_rate
        grad = (rng.standard_normal((4, 5)) * 10.0 ** rng.integers(-9, 1, (4, 5))).astype(dtype)
        optimizer.step(params, {"w": grad})
        keras_side.apply([tf.constant(grad)], [variable])
        assert params["w"].tobytes() == variable.numpy().tobytes(), (
            f"step {step}: {compare_arrays(params['w'], variable.numpy(), 'w').format()}")


# Planted conventions -------------------------------------------------------------------------
def torch_adam_update(self, param, grad, learning_rate, state):
    """PyTorch / Algorithm 1: bias-corrected moments, epsilon added to sqrt(v_hat)."""
    real, step = param.dtype.type, self.iterations + 1
    m, v = state["momentum"], state["velocity"]
    m += (grad - m) * real(1 - self.beta_1)
    v += (np.square(grad) - v) * real(1 - self.beta_2)
    m_hat, v_hat = m / real(1 - self.beta_1 ** step), v / real(1 - self.beta_2 ** step)
    param -= learning_rate * m_hat / (np.sqrt(v_hat) + real(self.epsilon))


def rmsprop_epsilon_outside_update(self, param, grad, learning_rate, state):
    """RMSprop with ``g / (sqrt(v) + epsilon)`` (PyTorch's and Keras 2's placement)."""
    real = param.dtype.type
    velocity = state["velocity"]
    velocity[...] = real(self.rho) * velocity + real(1 - self.rho) * np.square(grad)
    param -= learning_rate * grad / (np.sqrt(velocity) + real(self.epsilon))


def torch_momentum_update(self, param, grad, learning_rate, state):
    """PyTorch's buffer ``b = momentum * b + g; param -= lr * b`` (its state is -velocity/lr)."""
    buffer = state["momentum"]
    buffer *= optim.keras_cast(self.momentum, param.dtype)  # Keras's value, to isolate the form
    buffer += grad
    param -= learning_rate * buffer


def l2_gradient_without_factor_2(self, w):
    """The textbook (lambda / 2) * ||w||^2 gradient, applied to Keras's l2 * ||w||^2."""
    return w.dtype.type(self.l2) * w


PLANTED = {
    # name: (class, method, patch, optimizer, the first step that must fail, failing params)
    "adam-epsilon-pytorch": (optim.Adam, "update_step", torch_adam_update,
                             lambda: optim.Adam(0.003), 1, None),
    "rmsprop-epsilon-outside-root": (optim.RMSprop, "update_step", rmsprop_epsilon_outside_update,
                                     lambda: optim.RMSprop(0.003), 1, None),
    # The same trajectory as Keras's at a constant rate (up to rounding): the first step with the
    # new rate is the first to differ.
    "momentum-pytorch-after-lr-drop": (optim.SGD, "update_step", torch_momentum_update,
                                       lambda: optim.SGD(0.01, momentum=0.9), LR_CUT_AFTER + 1,
                                       None),
    # Only the penalized kernels see the penalty's gradient, so only they differ at step 1.
    "l2-without-factor-2": (L2, "gradient", l2_gradient_without_factor_2,
                            lambda: optim.SGD(0.1), 1, ["conv1/kernel", "hidden/kernel"]),
}


@pytest.mark.parametrize("name", PLANTED)
def test_planted_convention_fails_the_trajectory_at_its_step(name, monkeypatch):
    cls, method, patch, make_optimizer, step, params = PLANTED[name]
    monkeypatch.setattr(cls, method, patch)
    with pytest.raises(AssertionError) as failure:
        run_trajectory(make_optimizer(), "float64", steps=step)
    message = str(failure.value)
    assert f"float64, step {step} " in message, message
    failing = [line.split(" ")[0] for line in message.splitlines()[1:]]
    if params is not None:
        assert sorted(failing) == params, message
    else:
        assert {"conv1/kernel", "hidden/kernel", "logits/kernel"} <= set(failing), message
    assert all("FAILS tolerance 1.0e-10; rel L2" in line for line in message.splitlines()[1:])


# tfparity train --optimizer ------------------------------------------------------------------
def test_train_command_runs_both_sides_with_the_same_optimizer(tmp_path, capsys):
    options = ["--optimizer", "adamw", "--lr", "0.002", "--weight-decay", "0.01", "--amsgrad"]
    saved = {}
    for impl in ["numpy", "tensorflow"]:
        path = tmp_path / f"{impl}.npz"
        assert main(["train", "mlp1", "--data", "templates", "--train-size", "300", "--dtype",
                     "float64", "--impl", impl, *options, "--save", str(path)]) == 0
        saved[impl] = read_weights(path)
    capsys.readouterr()
    meta = saved["numpy"].meta["optimizer"]
    assert meta == saved["tensorflow"].meta["optimizer"]
    assert meta["name"] == options[1] and meta["learning_rate"] == saved["numpy"].meta["lr"]
    for key, value in saved["numpy"].items():
        c = compare({key: value}, {key: saved["tensorflow"][key]})[key]
        assert c.passes(tolerances("float64").trajectory), c.format()


@pytest.mark.parametrize("options, message", [
    (["--optimizer", "sgd", "--beta-1", "0.8"],
     r"--beta-1 does not apply to --optimizer sgd \(its settings: learning_rate, momentum, "
     r"nesterov, weight_decay\)"),
    (["--optimizer", "adam", "--beta-2", "1.5"],
     r"Adam: expected beta_2 to be a finite number in \[0, 1\), received beta_2=1\.5"),
])
def test_train_command_bad_optimizer_options_exit_2(options, message, capsys):
    assert main(["train", "linear", "--data", "templates", *options]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_train_command_help_shows_each_optimizers_defaults(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--lr X learning_rate (default: sgd 0.1, momentum 0.01, nesterov 0.01, rmsprop 0.001, " \
           "adam 0.001, adamw 0.001)" in text
    assert "--beta-2 X beta_2 (default: adam 0.999, adamw 0.999)" in text


# The Keras optimizer and the Keras loss ----------------------------------------------------
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_keras_optimizer_has_the_scratch_optimizers_settings(name):
    optimizer = OPTIMIZERS[name]()
    keras_side = keras_optimizer(optimizer, "float64")
    config = keras_side.get_config()
    assert type(keras_side).__name__ == type(optimizer).__name__
    assert {key: config[key] for key in optimizer.get_config()} == optimizer.get_config()


def test_keras_optimizer_unknown_class_rejected():
    class Lion(optim.Optimizer):
        pass

    with pytest.raises(TypeError, match=r"keras_optimizer: expected one of \['Adam', 'AdamW', "
                                        r"'RMSprop', 'SGD'\], received Lion\."):
        keras_optimizer(Lion(0.1), "float32")


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_regularized_model_matches_keras(dtype):
    model = trajectory_model(dtype)
    x = np.random.default_rng(5).standard_normal((6, 12, 12, 1)).astype(dtype)
    assert model.regularization_loss() > 0
    assert_model_parity(model, x, np.arange(6))  # the loss includes the penalties on both sides
