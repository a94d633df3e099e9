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

The trajectory itself is ``trajectory.run_trajectory`` (shared with test_optim_causes.py, where
the planted conventions, PyTorch's Adam epsilon, RMSprop's epsilon outside the root, PyTorch's
momentum buffer and an L2 gradient without the factor 2, must each make the trajectory fail at
the step where the convention first matters, naming the step, the parameters and the
convention).
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from reference_tf.compare import compare, compare_arrays, tolerances
from reference_tf.testing import assert_model_parity
from reference_tf.training import KerasTrainer, keras_optimizer, keras_optimizer_variables
from reference_tf.twin import keras_params, twin
from reports.cli import main
from reports.files.weights import read_weights
from scratch import optim
from scratch.models import build

from helpers import DTYPES
from trajectory import (
    LR_FACTOR,
    OPTIMIZERS,
    RESTARTS_ALLOWED,
    STEPS,
    run_trajectory,
    trajectory_model,
)

# Trajectories (a compiled Keras step each, a few seconds): the optimizers of
# ``tfparity train --optimizer``; the variants (centered RMSprop with momentum, AMSGrad) are
# checked bit for bit on equal gradients only. Plain SGD in float32: test_tf_training.
TRAJECTORIES = [("float64", name) for name in
                ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")] + [
                ("float32", name) for name in ("momentum", "rmsprop", "adamw")]


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
