"""The optimizer trajectory check of the test suite: scratch and Keras trained side by side
from the same weights on the same batches (``run_trajectory``), and the planted optimizer
conventions (``PLANTED``) that test_tf_optim.py and test_optim_causes.py run through it. The
tolerances and the restart rule are explained in test_tf_optim.py's docstring."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from reference_tf.causes.optim import explain_update, update_clause
from reference_tf.compare import compare, tolerances
from reference_tf.testing import pool_tie_flips
from reference_tf.training import KerasTrainer, keras_optimizer_variables
from reference_tf.twin import copy_weights, keras_params, twin
from scratch import optim
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential
from scratch.regularizers import L2
from scratch.train import ScratchTrainer, batch_schedule

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
