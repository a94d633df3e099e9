"""BatchNormalization, Dropout, AveragePooling2D and the activations (LeakyReLU, Sigmoid, Tanh,
Softmax) without TensorFlow: finite differences in float64, hand-worked
cases (every expected number derived in a comment), training vs inference, the moving statistics,
the dropout masks, dtypes and argument errors.

Finite-difference inputs keep a margin from the kinks: LeakyReLU inputs stay 0.1 away from 0.
Batch normalization mixes the examples, so ``check_layer_gradients`` perturbs each input element
on its own there; Dropout's mask is drawn once and replayed by every perturbed pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratch import ops
from scratch.gradcheck import assert_gradients_match, check_layer_gradients, compare, numerical_grad
from scratch.layers import (
    AveragePooling2D,
    BatchNormalization,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    Sigmoid,
    Softmax,
    Tanh,
    replaying_masks,
)
from scratch.models import Sequential, build

from helpers import DTYPES
from strategies import away_from_zero

RTOL = 1e-7
SPATIAL = [(5, 6), (4, 5)]
PADDINGS = ["valid", "same"]


def batch_norm(shape, rng, center=True, scale=True, momentum=0.99):
    """A float64 BatchNormalization built for ``shape`` with random gamma, beta and state."""
    layer = BatchNormalization(momentum=momentum, center=center, scale=scale, name="bn")
    layer.build(shape, rng, "float64")
    for value in layer.params.values():
        value[...] = rng.uniform(0.5, 1.5, value.shape) * rng.choice([-1, 1], value.shape)
    layer.state["moving_mean"][...] = rng.standard_normal(shape[-1])
    layer.state["moving_variance"][...] = rng.uniform(0.5, 2.0, shape[-1])
    return layer


# Finite differences -------------------------------------------------------------------------

@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False),
                                           (False, False)])
@pytest.mark.parametrize("shape, batch", [((5,), 4), ((3, 4, 2), 2), ((2, 3, 3), 1)])
def test_batch_norm_gradients_match_finite_differences(shape, batch, center, scale):
    rng = np.random.default_rng(1)
    layer = batch_norm(shape, rng, center, scale)
    x = 2 * rng.standard_normal((batch, *shape)) + 0.5
    results = check_layer_gradients(layer, x)
    assert set(results) == {"input"} | set(layer.params)
    assert_gradients_match(results, RTOL)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 2)])
def test_batch_norm_inference_gradients_match_finite_differences(shape):
    # With the moving statistics (constants) the map is affine per channel.
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    mean, variance = rng.standard_normal(shape[-1]), rng.uniform(0.5, 2, shape[-1])

    def objective(_):
        y, _ = ops.batch_norm_inference_forward(x, gamma, beta, mean, variance)
        return float(np.sum(y * dy))

    _, cache = ops.batch_norm_inference_forward(x, gamma, beta, mean, variance)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, cache)
    assert_gradients_match({name: compare(name, analytic, numerical_grad(objective, value))
                            for name, analytic, value in (("input", dx, x),
                                                          ("gamma", dgamma, gamma),
                                                          ("beta", dbeta, beta))}, RTOL)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.8])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 2)])
def test_dropout_gradients_match_finite_differences(shape, rate):
    rng = np.random.default_rng(3)
    layer = Dropout(rate, seed=5, name="dropout").build(shape, rng, "float64")
    assert_gradients_match(check_layer_gradients(layer, rng.standard_normal((3, *shape))), RTOL)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("hw", SPATIAL)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides", [None, 1, (2, 1)])
@pytest.mark.parametrize("pool_size", [2, 3, (2, 3)])
def test_avg_pool2d_gradients_match_finite_differences(pool_size, strides, padding, hw, batch):
    rng = np.random.default_rng(4)
    layer = AveragePooling2D(pool_size, strides=strides, padding=padding, name="pool")
    layer.build((*hw, 2), rng, "float64")
    results = check_layer_gradients(layer, rng.standard_normal((batch, *hw, 2)))
    assert set(results) == {"input"}
    assert_gradients_match(results, RTOL)


@pytest.mark.parametrize("make", [Sigmoid, Tanh, lambda **k: LeakyReLU(0.2, **k),
                                  lambda **k: LeakyReLU(**k), lambda **k: Softmax(**k),
                                  lambda **k: Softmax(axis=1, **k)],
                         ids=["sigmoid", "tanh", "leaky_relu_0.2", "leaky_relu", "softmax",
                              "softmax_axis1"])
@pytest.mark.parametrize("shape", [(6,), (3, 4, 2)])
def test_activation_gradients_match_finite_differences(make, shape):
    rng = np.random.default_rng(5)
    layer = make(name="activation").build(shape, rng, "float64")
    x = 3 * away_from_zero((3, *shape), rng)
    results = check_layer_gradients(layer, x)
    assert set(results) == {"input"}
    assert_gradients_match(results, RTOL)


# Hand-worked cases --------------------------------------------------------------------------

# One channel, x = [1, 3, 5]: mean 3, biased variance ((1-3)^2 + 0 + (5-3)^2) / 3 = 8/3 (the
# unbiased one would be 4). With epsilon 1e-3, x_hat = (x - 3) / sqrt(8/3 + 0.001); gamma 2 and
# beta 0.5 give y = 2 x_hat + 0.5. The moving statistics start at 0 and 1 and move by 1%:
# mean 0.99 * 0 + 0.01 * 3 = 0.03, variance 0.99 * 1 + 0.01 * 8/3 = 1.0166666... (PyTorch's
# unbiased running variance would give 0.99 + 0.04 = 1.03).
def test_batch_norm_hand_case_biased_variance_and_keras_momentum():
    layer = BatchNormalization(name="bn").build((1,), None, "float64")
    layer.params["gamma"][...] = 2.0
    layer.params["beta"][...] = 0.5
    y = layer.forward(np.array([[1.0], [3.0], [5.0]]))
    x_hat = np.array([-2.0, 0.0, 2.0]) / np.sqrt(8 / 3 + 0.001)
    np.testing.assert_allclose(y[:, 0], 2 * x_hat + 0.5, rtol=1e-15)
    np.testing.assert_allclose(layer.state["moving_mean"], [0.03], rtol=1e-15)
    np.testing.assert_allclose(layer.state["moving_variance"], [0.99 + 0.01 * 8 / 3], rtol=1e-15)
    # Inference normalizes with the moving statistics: (3 - 0.03) / sqrt(1.01666... + 0.001).
    np.testing.assert_allclose(layer.infer(np.array([[3.0]]))[0, 0],
                               2 * 2.97 / np.sqrt(0.99 + 0.01 * 8 / 3 + 0.001) + 0.5, rtol=1e-14)


# A constant upstream gradient does not change a batch-normalized output's loss (adding c to
# every dy adds c * sum(y - beta) / gamma = c * sum(x_hat) = 0), so dx = 0 exactly up to rounding;
# and the output of each channel has mean beta and variance gamma^2 var / (var + eps).
def test_batch_norm_output_statistics_and_constant_gradient():
    rng = np.random.default_rng(6)
    layer = batch_norm((3, 3, 2), rng)
    x = 3 * rng.standard_normal((4, 3, 3, 2)) + 1
    y = layer.forward(x)
    variance = x.var(axis=(0, 1, 2))
    gamma, beta = layer.params["gamma"], layer.params["beta"]
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), beta, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), gamma ** 2 * variance / (variance + 1e-3),
                               rtol=1e-13)
    assert np.abs(layer.backward(np.full(y.shape, 7.0))).max() < 1e-13


# AveragePooling2D 2x2, stride 2, SAME on the 3x3 input 0..8 (row-major): SAME pads
# (2-1)*2 + 2 - 3 = 1 row and column, all at the bottom/right. The windows cover
# {0, 1, 3, 4} -> 8/4 = 2, {2, 5} -> 7/2 = 3.5, {6, 7} -> 13/2 = 6.5, {8} -> 8/1 = 8: padded
# cells count neither in the sum nor in the divisor. Backward with dy = 1 gives each cell
# 1/(its window's count): 1/4 in the top-left block, 1/2 on the edges, 1 in the corner.
def test_avg_pool2d_same_divisor_leaves_padding_out():
    layer = AveragePooling2D(2, padding="same", name="pool").build((3, 3, 1), None, "float64")
    y = layer.forward(np.arange(9.0).reshape(1, 3, 3, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[2, 3.5], [6.5, 8]])
    dx = layer.backward(np.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5],
                                                   [0.5, 0.5, 1.0]])


# LeakyReLU(0.3) of [-2, 0, 3] is [-2s, 0, 3] with s = float32(0.3) = 0.30000001192092896 (the
# slope TensorFlow's op applies); at exactly 0 the derivative is the slope (x > 0 takes the
# identity branch, everything else the slope), so dy = [1, 1, 1] gives [s, s, 1].
def test_leaky_relu_at_zero_has_the_slope_as_derivative():
    layer = LeakyReLU(name="leaky").build((3,), None, "float64")
    s = float(np.float32(0.3))
    assert layer.slope == s == 0.30000001192092896
    np.testing.assert_array_equal(layer.forward(np.array([[-2.0, 0.0, 3.0]])), [[-2 * s, 0, 3]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[s, s, 1]])


# Softmax of equal scores is uniform; its Jacobian is diag(p) - p p^T, so with p = 1/4 and
# dy = e_0, dx = p * (dy - p . dy) = [1/4 (1 - 1/4), -1/16, -1/16, -1/16] = [3/16, -1/16, ...].
# Scores of magnitude 1e4 shift by their maximum: [1e4, 1e4 - 1] -> [1, e^-1] / (1 + e^-1).
def test_softmax_ties_and_huge_scores():
    layer = Softmax(name="softmax").build((4,), None, "float64")
    np.testing.assert_array_equal(layer.forward(np.full((1, 4), 2.5)), [[0.25] * 4])
    np.testing.assert_array_equal(layer.backward(np.eye(4)[:1]),
                                  [[3 / 16, -1 / 16, -1 / 16, -1 / 16]])
    huge = Softmax(name="softmax").build((2,), None, "float64")
    y = huge.forward(np.array([[1e4, 1e4 - 1]]))
    np.testing.assert_allclose(y, [[1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))]],
                               rtol=1e-15)


# sigmoid(0) = 1/2 with derivative 1/4; tanh(0) = 0 with derivative 1. At |x| = 800, exp(800)
# would overflow: sigmoid gives exactly 1 and 0 (derivative 0) without a warning.
def test_sigmoid_and_tanh_hand_values_without_overflow():
    sigmoid = Sigmoid(name="s").build((3,), None, "float64")
    tanh = Tanh(name="t").build((3,), None, "float64")
    x = np.array([[0.0, 800.0, -800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(sigmoid.forward(x), [[0.5, 1.0, 0.0]])
        np.testing.assert_array_equal(sigmoid.backward(np.ones((1, 3))), [[0.25, 0.0, 0.0]])
        np.testing.assert_array_equal(tanh.forward(x), [[0.0, 1.0, -1.0]])
        np.testing.assert_array_equal(tanh.backward(np.ones((1, 3))), [[1.0, 0.0, 0.0]])


# Dropout(0.5): kept units are doubled, dropped ones are 0, and the gradient follows the same
# mask; over 200000 units the kept fraction is 0.5 within 5 standard deviations
# (sqrt(0.25 / 200000) = 0.0011).
def test_dropout_rate_is_drop_probability_with_inverted_scaling():
    layer = Dropout(0.5, seed=1, name="dropout").build((1000,), None, "float64")
    x = np.random.default_rng(0).uniform(1, 2, (200, 1000))
    y = layer.forward(x)
    assert set(np.unique(y / x)) == {0.0, 2.0}
    assert abs(layer.keep.mean() - 0.5) < 5 * 0.0011
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), 2.0 * layer.keep)
    np.testing.assert_array_equal(layer.infer(x), x)


# Training vs inference, state, masks ----------------------------------------------------------

def test_dropout_masks_differ_between_passes_and_replay_on_request():
    layer = Dropout(0.4, seed=3, name="dropout").build((50,), None, "float32")
    x = np.ones((4, 50), dtype="float32")
    first = layer.forward(x)
    second = layer.forward(x)
    assert not np.array_equal(first, second)
    with replaying_masks([layer]):
        np.testing.assert_array_equal(layer.forward(x), second)
    assert not layer.replay
    again = Dropout(0.4, seed=3, name="dropout").build((50,), None, "float32")
    np.testing.assert_array_equal(again.forward(x), first)  # the seed fixes the sequence


def test_dropout_replay_without_matching_mask_rejected():
    layer = Dropout(0.4, name="drop").build((5,), None, "float64")
    layer.replay = True
    with pytest.raises(ValueError, match=r"'drop'.*replay.*\(2, 5\).*none"):
        layer.forward(np.ones((2, 5)))


def test_dropout_generator_spawned_without_changing_the_weights():
    # The same seed gives the same weights with and without a Dropout in the middle.
    def layers(with_dropout):
        middle = [Dropout(0.5, name="dropout")] if with_dropout else []
        return [Flatten(name="flatten"), Dense(8, name="hidden"), *middle, Dense(10, name="logits")]

    plain = Sequential(layers(False), (4, 4, 1), seed=9, dtype="float64")
    dropped = Sequential(layers(True), (4, 4, 1), seed=9, dtype="float64")
    for key, value in plain.params.items():
        np.testing.assert_array_equal(dropped.params[key], value, err_msg=key)


def test_cnn_bn_state_is_not_params_and_moves_only_in_training():
    model = build("cnn_bn", seed=0, dtype="float64")
    assert list(model.state) == ["bn1/moving_mean", "bn1/moving_variance", "bn2/moving_mean",
                                 "bn2/moving_variance"]
    assert not set(model.state) & set(model.params)
    assert {"bn1/gamma", "bn1/beta"} <= set(model.params) and "conv1/bias" not in model.params
    x = np.random.default_rng(1).random((3, 28, 28, 1))
    before = {key: value.copy() for key, value in model.state.items()}
    model.forward(x)
    model.evaluate(x, np.arange(3))
    for key, value in model.state.items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    trace = model.trace(x, np.arange(3))
    assert not set(trace.state) & set(trace.grads)
    batch_mean = trace.outputs["conv1"].mean(axis=(0, 1, 2))
    np.testing.assert_allclose(model.state["bn1/moving_mean"], 0.01 * batch_mean, rtol=1e-12)
    np.testing.assert_array_equal(trace.state["bn1/moving_mean"], model.state["bn1/moving_mean"])
    model.set_state(before)
    np.testing.assert_array_equal(model.state["bn1/moving_mean"], before["bn1/moving_mean"])


def test_set_state_wrong_key_or_shape_is_named():
    model = build("cnn_bn", dtype="float32")
    with pytest.raises(ValueError, match=r"state keys differ.*bn2/moving_variance"):
        model.set_state({k: v for k, v in model.state.items() if k != "bn2/moving_variance"})
    with pytest.raises(ValueError, match=r"'bn1/moving_mean' expected float32 \(8,\)"):
        model.set_state({**model.state, "bn1/moving_mean": np.zeros(7, "float32")})


def test_batch_norm_moments_are_accurate_in_float32():
    # 20000 values per channel with mean 100 and std 1: a one-at-a-time float32 sum would be
    # off by ~1e-4 relative; pairwise summation stays near float32's resolution.
    rng = np.random.default_rng(7)
    x = (100 + rng.standard_normal((20000, 3))).astype("float32")
    mean, variance = ops.batch_moments(x)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(variance, exact.var(axis=0), rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make, shape", [
    (lambda: BatchNormalization(name="l"), (4, 4, 2)),
    (lambda: Dropout(0.3, name="l"), (4, 4, 2)),
    (lambda: AveragePooling2D(3, strides=2, padding="same", name="l"), (5, 5, 2)),
    (lambda: Sigmoid(name="l"), (6,)),
    (lambda: Tanh(name="l"), (6,)),
    (lambda: Softmax(name="l"), (6,)),
    (lambda: LeakyReLU(name="l"), (4, 4, 2)),
], ids=["bn", "dropout", "avgpool", "sigmoid", "tanh", "softmax", "leaky_relu"])
def test_layer_dtype_preserved(make, shape, dtype):
    rng = np.random.default_rng(8)
    layer = make().build(shape, rng, dtype)
    x = rng.standard_normal((2, *shape)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype and y.shape[1:] == layer.compute_output_shape(shape)
    assert layer.infer(x).dtype == dtype
    dx = layer.backward(rng.standard_normal(y.shape).astype(dtype))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert all(a.dtype == dtype for a in (*layer.grads.values(), *layer.state.values()))


# Argument errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("make, error, message", [
    (lambda: Dropout(1.0), ValueError, r"rate in \[0, 1\), received rate=1.0"),
    (lambda: Dropout(-0.1), ValueError, r"rate in \[0, 1\)"),
    (lambda: Dropout("0.5"), TypeError, r"rate to be a number"),
    (lambda: Dropout(0.5, seed=-1), ValueError, r"seed >= 0, received seed=-1"),
    (lambda: BatchNormalization(momentum=1.5), ValueError, r"momentum in \[0, 1\]"),
    (lambda: BatchNormalization(epsilon=0), ValueError, r"epsilon in \(0, inf\)"),
    (lambda: BatchNormalization(center="yes"), TypeError, r"center to be True or False"),
    (lambda: LeakyReLU(-0.1), ValueError, r"negative_slope in \[0, inf\)"),
    (lambda: Softmax(axis=1.5), TypeError, r"axis to be an int"),
    (lambda: AveragePooling2D(0), ValueError, r"pool_size to be positive"),
])
def test_layer_invalid_settings_rejected(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_softmax_over_the_batch_axis_rejected():
    with pytest.raises(ValueError, match=r"Softmax.*not the batch axis.*axis=0"):
        Softmax(axis=0).build((4,), None, "float64")


def test_batch_norm_wrong_channel_count_rejected():
    layer = BatchNormalization(name="bn").build((4, 4, 3), None, "float64")
    with pytest.raises(ValueError, match=r"'bn'.*expected 3 channel\(s\).*\(4, 4, 2\)"):
        layer.forward(np.zeros((1, 4, 4, 2)))
