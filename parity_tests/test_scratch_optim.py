"""``scratch.optim`` and ``scratch.regularizers`` without TensorFlow: hand-worked steps, the
conventions that differ from PyTorch's and the textbook's, validation, the state, and the numbers
quoted in ``docs/optimizers.md`` (computed here, never typed in by hand)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import DTYPES
from scratch.gradcheck import assert_gradients_match, check_model_gradients
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential
from scratch.optim import SGD, Adam, AdamW, RMSprop, keras_cast
from scratch.regularizers import L2

DOC = Path(__file__).resolve().parents[1] / "docs" / "optimizers.md"


def steps(optimizer, w0: float, gradients: list[float], dtype="float32") -> list[float]:
    """The parameter after each step of a one-element parameter with the given gradients."""
    params = {"w": np.array([w0], dtype=dtype)}
    trajectory = []
    for g in gradients:
        optimizer.step(params, {"w": np.array([g], dtype=dtype)})
        trajectory.append(float(params["w"][0]))
    return trajectory


# Hand-worked steps ---------------------------------------------------------------------------
def test_sgd_momentum_two_steps_by_hand():
    # lr 0.1, momentum 0.9, g = 0.5 twice, w0 = 1: v1 = -0.1*0.5 = -0.05, w1 = 0.95;
    # v2 = 0.9*(-0.05) - 0.05 = -0.095, w2 = 0.855.
    assert steps(SGD(0.1, momentum=0.9), 1.0, [0.5, 0.5]) == pytest.approx([0.95, 0.855], rel=1e-6)


def test_sgd_nesterov_two_steps_by_hand():
    # As above, but w += momentum*v - lr*g: w1 = 1 + (0.9*(-0.05) - 0.05) = 0.905;
    # v2 = -0.095, w2 = 0.905 + (0.9*(-0.095) - 0.05) = 0.7695.
    assert steps(SGD(0.1, momentum=0.9, nesterov=True), 1.0, [0.5, 0.5]) == pytest.approx(
        [0.905, 0.7695], rel=1e-6)


def test_rmsprop_first_step_by_hand():
    # lr 1, rho 0.9, g = 0.01: v = 0.1 * 1e-4 = 1e-5; step = 0.01 / sqrt(1e-5 + 1e-7)
    # = 0.01 / 3.17805e-3 = 3.14658.
    assert steps(RMSprop(1.0), 0.0, [1e-2], "float64")[0] == pytest.approx(-3.14658, rel=1e-5)


def test_adam_first_step_by_hand():
    # lr 1, g = 1e-5: m = 0.1 g = 1e-6, v = 0.001 g^2 = 1e-13; alpha = sqrt(0.001) / 0.1
    # = 0.316228; step = alpha * m / (sqrt(v) + 1e-7) = 3.16228e-7 / 4.16228e-7 = 0.759747.
    assert steps(Adam(1.0), 0.0, [1e-5], "float64")[0] == pytest.approx(-0.759747, rel=1e-5)


def test_adamw_decays_before_the_adam_step_by_hand():
    # lr 0.1, weight_decay 0.5, g = 0: w1 = 1 - 1 * 0.5 * 0.1 = 0.95, and Adam moves nothing
    # (m = 0); a second step: 0.95 * (1 - 0.05) = 0.9025.
    assert steps(AdamW(0.1, weight_decay=0.5), 1.0, [0.0, 0.0]) == pytest.approx([0.95, 0.9025])


def test_l2_penalty_and_gradient_by_hand():
    # l2 = 0.25, w = (1, -2, 3): penalty 0.25 * 14 = 3.5, gradient 2 * 0.25 * w = (0.5, -1, 1.5).
    w = np.array([1.0, -2.0, 3.0])
    assert L2(0.25)(w) == 3.5
    np.testing.assert_array_equal(L2(0.25).gradient(w), [0.5, -1.0, 1.5])


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_regularized_model_gradients_match_finite_differences(dtype):
    layers = [Conv2D(3, 3, padding="same", kernel_regularizer=L2(0.05), name="conv"), ReLU(),
              MaxPool2D(2), Flatten(), Dense(10, kernel_regularizer=L2(0.2), name="dense")]
    model = Sequential(layers, (6, 6, 1), seed=1, dtype=dtype)
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 1)).astype(dtype)
    y = np.arange(4)
    loss, _ = model.loss_and_grads(x, y)
    assert model.regularization_loss() == pytest.approx(
        0.05 * np.sum(model.params["conv/kernel"].astype(float) ** 2)
        + 0.2 * np.sum(model.params["dense/kernel"].astype(float) ** 2), rel=1e-6)
    assert loss == pytest.approx(model.trace(x, y).loss, rel=1e-6)
    assert_gradients_match(check_model_gradients(model, x, y))


# Conventions ---------------------------------------------------------------------------------
@given(dtype=st.sampled_from(DTYPES),
       lr=st.floats(1e-4, 1.0), seed=st.integers(0, 2**16))
def test_plain_sgd_is_param_minus_lr_times_grad_bit_for_bit(dtype, lr, seed):
    rng = np.random.default_rng(seed)
    param, grad = (rng.standard_normal((3, 4)).astype(dtype) for _ in range(2))
    expected = param - np.asarray(lr, dtype=dtype) * grad  # the update before the Keras optimizers
    params = {"p": param.copy()}
    SGD(lr).step(params, {"p": grad})
    assert params["p"].tobytes() == expected.tobytes()


def torch_momentum(lrs: list[float], gradients: np.ndarray, momentum: float) -> np.ndarray:
    """PyTorch's momentum SGD: b = momentum*b + g; w -= lr*b; the weights after each step."""
    w, b, out = np.zeros(gradients.shape[1:]), np.zeros(gradients.shape[1:]), []
    for lr, g in zip(lrs, gradients):
        b = momentum * b + g
        w = w - lr * b
        out.append(w)
    return np.array(out)


def keras_momentum(lrs: list[float], gradients: np.ndarray, momentum: float) -> np.ndarray:
    optimizer, out = SGD(lrs[0], momentum=momentum), []
    params = {"w": np.zeros(gradients.shape[1:])}
    for lr, g in zip(lrs, gradients):
        optimizer.learning_rate = lr
        optimizer.step(params, {"w": g})
        out.append(params["w"].copy())
    return np.array(out)


@given(lr=st.floats(1e-3, 0.5), cut=st.floats(0.01, 0.5), k=st.integers(2, 12),
       seed=st.integers(0, 2**16))
def test_sgd_momentum_equals_pytorch_form_until_the_learning_rate_changes(lr, cut, k, seed):
    # Keras's velocity v = -lr * b (PyTorch's buffer) at a constant rate; at the first step with
    # the new rate lr', Keras's step is mu*v - lr'*g = -mu*lr*b - lr'*g, PyTorch's
    # -lr'*(mu*b + g): they differ by exactly -mu*(lr - lr')*b, b PyTorch's buffer before it.
    momentum = float(np.float32(0.9))  # the value Keras uses for float64 variables
    gradients = np.random.default_rng(seed).standard_normal((k + 1, 5))
    lrs = [lr] * k + [lr * cut]
    keras = keras_momentum(lrs, gradients, momentum)
    torch = torch_momentum(lrs, gradients, momentum)
    np.testing.assert_allclose(keras[:k], torch[:k], rtol=1e-12, atol=1e-14)
    buffer = sum(momentum ** (k - 1 - i) * gradients[i] for i in range(k))
    expected = -momentum * (lr - lr * cut) * buffer
    np.testing.assert_allclose((keras[k] - keras[k - 1]) - (torch[k] - torch[k - 1]), expected,
                               rtol=1e-9, atol=1e-14)


def test_keras_cast_rounds_python_floats_through_float32():
    assert keras_cast(0.9, np.float64) == np.float64(np.float32(0.9)) == 0.8999999761581421
    assert keras_cast(0.9, np.float32) == np.float32(0.9)
    assert keras_cast(0.5, np.float64) == 0.5  # exact in float32


# State, learning rate, validation ------------------------------------------------------------
@pytest.mark.parametrize("optimizer, slots", [
    (SGD(), ()), (SGD(momentum=0.9), ("momentum",)), (RMSprop(), ("velocity",)),
    (RMSprop(momentum=0.5, centered=True), ("velocity", "momentum", "average_gradient")),
    (Adam(), ("momentum", "velocity")),
    (Adam(amsgrad=True), ("momentum", "velocity", "velocity_hat")),
    (AdamW(), ("momentum", "velocity")),
])
def test_optimizer_state_is_keyed_like_the_params(optimizer, slots):
    params = {"dense/kernel": np.ones((2, 3)), "dense/bias": np.ones(3)}
    grads = {key: np.full_like(value, 0.5) for key, value in params.items()}
    assert optimizer.state == {} and optimizer.iterations == 0
    optimizer.step(params, grads)
    optimizer.step(params, grads)
    assert optimizer.iterations == 2
    assert tuple(optimizer.state) == slots
    for slot in slots:
        assert optimizer.state[slot].keys() == params.keys()
        assert all(optimizer.state[slot][k].shape == params[k].shape for k in params)
        assert all(np.any(optimizer.state[slot][k] != 0) for k in params), slot


def test_learning_rate_change_applies_from_the_next_step():
    optimizer = SGD(0.1)
    assert steps(optimizer, 1.0, [1.0]) == pytest.approx([0.9])
    optimizer.learning_rate = 0.5
    assert steps(optimizer, 1.0, [1.0]) == pytest.approx([0.5])


def test_optimizer_rejects_params_that_change_keys():
    optimizer = Adam()
    optimizer.step({"a": np.ones(2)}, {"a": np.ones(2)})
    with pytest.raises(ValueError, match=r"Adam: the state was created for the params \['a'\], "
                                         r"received \['b'\]"):
        optimizer.step({"b": np.ones(2)}, {"b": np.ones(2)})
    with pytest.raises(ValueError, match=r"Adam: params and grads must have the same keys"):
        optimizer.step({"a": np.ones(2)}, {"b": np.ones(2)})


@pytest.mark.parametrize("make, message", [
    (lambda: SGD(0), r"SGD: expected a positive finite learning rate, received learning_rate=0\."),
    (lambda: SGD(momentum=1.5), r"SGD: expected momentum to be a finite number in \[0, 1\], "
                                r"received momentum=1\.5\."),
    (lambda: SGD(nesterov=1), r"SGD: expected nesterov to be True or False, received nesterov=1\."),
    (lambda: RMSprop(rho=-0.1), r"RMSprop: expected rho to be a finite number in \[0, 1\]"),
    (lambda: RMSprop(epsilon=float("nan")), r"RMSprop: expected epsilon to be a finite number "
                                            r"in \[0, inf\), received epsilon=nan\."),
    (lambda: RMSprop(centered="yes"), r"RMSprop: expected centered to be True or False"),
    (lambda: Adam(beta_1=1.0), r"Adam: expected beta_1 to be a finite number in \[0, 1\), "
                               r"received beta_1=1\.0\."),
    (lambda: Adam(beta_2="0.999"), r"Adam: expected beta_2 .* received beta_2='0\.999'\."),
    (lambda: Adam(amsgrad=None), r"Adam: expected amsgrad to be True or False"),
    (lambda: Adam(weight_decay=-1), r"Adam: expected weight_decay to be a finite number in "
                                    r"\[0, inf\), received weight_decay=-1\."),
    (lambda: AdamW(weight_decay=None), r"AdamW: expected weight_decay to be a number, received "
                                       r"weight_decay=None"),
    (lambda: L2(-0.01), r"L2: expected l2 to be a finite number >= 0, received l2=-0\.01\."),
    (lambda: Dense(3, kernel_regularizer=0.01), r"Dense: expected kernel_regularizer to be None "
                                                r"or scratch\.regularizers\.L2, received "
                                                r"kernel_regularizer=0\.01\."),
])
def test_optimizer_bad_settings_rejected(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_learning_rate_setter_rejects_bad_values():
    optimizer = RMSprop()
    with pytest.raises(ValueError, match=r"RMSprop: expected a positive finite learning rate, "
                                         r"received learning_rate=inf\."):
        optimizer.learning_rate = float("inf")
    assert optimizer.learning_rate == 0.001


# The numbers of docs/optimizers.md -----------------------------------------------------------
def doc_numbers() -> dict[str, str]:
    """Every number docs/optimizers.md quotes, computed from the optimizers and the other
    libraries' formulas, formatted as the page prints it."""
    g_adam, eps, torch_eps = 1e-5, 1e-7, 1e-8
    keras_adam = -steps(Adam(1.0), 0.0, [g_adam], "float64")[0]
    # Algorithm 1 / PyTorch at step 1: m_hat = g, v_hat = g^2, step = lr * g / (|g| + eps).
    torch_adam, torch_adam_default = g_adam / (g_adam + eps), g_adam / (g_adam + torch_eps)
    g_rms = 1e-2
    keras_rms = -steps(RMSprop(1.0), 0.0, [g_rms], "float64")[0]
    outside = g_rms / (np.sqrt(0.1 * g_rms**2) + eps)             # epsilon outside, rho 0.9
    torch_rms = g_rms / (np.sqrt(0.01 * g_rms**2) + torch_eps)    # PyTorch: alpha 0.99, eps 1e-8
    momentum, gradients = 0.9, np.ones((11, 1))
    lrs = [0.1] * 10 + [0.01]
    keras_m = np.diff(keras_momentum(lrs, gradients, momentum)[:, 0])[-1]
    torch_m = np.diff(torch_momentum(lrs, gradients, momentum)[:, 0])[-1]
    return {
        "adam_keras": f"{keras_adam:.4f}", "adam_torch": f"{torch_adam:.4f}",
        "adam_gap": f"{1 - keras_adam / torch_adam:.1%}",
        "adam_torch_default": f"{torch_adam_default:.4f}",
        "adam_gap_default": f"{1 - keras_adam / torch_adam_default:.1%}",
        "rms_keras": f"{keras_rms:.4f}", "rms_outside": f"{outside:.4f}",
        "rms_torch": f"{torch_rms:.4f}",
        "momentum_keras": f"{keras_m:.4f}", "momentum_torch": f"{torch_m:.4f}",
        "momentum_cast": repr(float(keras_cast(0.9, np.float64))),
        "l2_keras": f"{L2(0.01).gradient(np.array([0.5]))[0]:g}",
    }


def test_docs_optimizers_quotes_the_computed_numbers():
    text = DOC.read_text()
    quoted = dict(re.findall(r"<!-- (\w+) -->`([^`]+)`", text))
    assert quoted == doc_numbers()
