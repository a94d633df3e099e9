"""BatchNormalization, Dropout, AveragePooling2D and the activations (LeakyReLU, Sigmoid, Tanh,
Softmax) against Keras: each layer on Hypothesis-drawn shapes and
settings in both dtypes (forward output, input gradient, parameter gradients and, for batch
normalization, the moving statistics after the training step), the inference modes, the
conventions where hand-written code and Keras part ways (each also planted to show the check
catches it), and whole models built from these layers.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reference_tf.compare import assert_all_close
from reference_tf.from_keras import from_keras
from reference_tf.gradients import layer_pass, trace, trace_arrays
from reference_tf.testing import assert_layer_parity, assert_model_parity
from reference_tf.twin import SharedMaskDropout, copy_state, keras_layer, keras_state, twin
from reports.cli import main
from scratch import ops
from scratch.data.synthetic import strokes
from scratch.layers import (
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from scratch.models import Sequential, build

from helpers import DTYPES
from strategies import batches, channels, sample_input, seeds, sizes, windowed

EXAMPLES = 15

# (N, F) after a Dense layer or (N, H, W, C) after a convolution.
feature_shapes = st.one_of(st.tuples(batches, st.integers(1, 12)),
                           st.tuples(batches, sizes, sizes, channels))


def randomized_batch_norm(shape, dtype, seed, **settings_) -> BatchNormalization:
    """A BatchNormalization built for ``shape[1:]``, random gamma, beta and moving statistics."""
    rng = np.random.default_rng(seed)
    layer = BatchNormalization(**settings_).build(shape[1:], rng, dtype)
    for value in layer.params.values():
        value[...] = rng.uniform(0.5, 1.5, value.shape) * rng.choice([-1, 1], value.shape)
    layer.state["moving_mean"][...] = rng.standard_normal(shape[-1])
    layer.state["moving_variance"][...] = rng.uniform(0.2, 3.0, shape[-1])
    return layer


# With M values per channel the input gradient is dy minus its projection on span{1, x_hat};
# for M <= 2 that span is everything and the normalized output is nearly a constant (for M = 2
# it is +-sqrt(var / (var + eps)) whatever x is), so the gradient is all cancellation, condition
# number ~ (var + eps) / eps, and neither side gets it to float32 accuracy. Batch normalization
# is drawn with at least 3 values per channel.
bn_shapes = feature_shapes.filter(lambda shape: np.prod(shape[:-1]) >= 3)
bn_settings = st.fixed_dictionaries({
    "momentum": st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    "epsilon": st.sampled_from([1e-3, 1e-5, 0.1]),
    "center": st.booleans(),
    "scale": st.booleans(),
})


# Each layer on its own ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=bn_shapes, options=bn_settings, seed=seeds)
def test_batch_norm_training_step_matches_keras(dtype, shape, options, seed):
    layer = randomized_batch_norm(shape, dtype, seed, **options)
    # Not from the stream of dy (``seed``): x = 3 dy + 1 would put dy in span{1, x_hat}.
    x = (3 * np.random.default_rng(seed + 1).standard_normal(shape) + 1).astype(dtype)
    result = assert_layer_parity(layer, None, shape, dtype, x=x, seed=seed)
    assert {"state/moving_mean", "state/moving_variance"} <= result.keys()


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=feature_shapes, options=bn_settings, seed=seeds)
def test_batch_norm_inference_matches_keras(dtype, shape, options, seed):
    # Inference uses the moving statistics as constants: output and every gradient.
    layer = randomized_batch_norm(shape, dtype, seed, **options)
    rng = np.random.default_rng(seed + 1)
    x, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    twin_layer = keras_layer(layer, dtype)
    twin_layer.build((None, *shape[1:]))
    for variable in twin_layer.weights:
        variable.assign({**layer.params, **layer.state}[variable.name])
    reference = layer_pass(twin_layer, x, dy, training=False)
    y, cache = ops.batch_norm_inference_forward(x, layer.params.get("gamma"),
                                                layer.params.get("beta"), *layer.state.values(),
                                                layer.epsilon)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, cache)
    grads = {"gamma": dgamma, "beta": dbeta}
    mine = {"output": layer.infer(x), "input_grad": dx,
            **{f"grads/{k}": grads[k] for k in layer.params},
            **{f"state/{k}": v for k, v in layer.state.items()}}
    np.testing.assert_array_equal(mine["output"], y)
    assert_all_close(mine, reference.arrays(), dtype, context=f"{layer!r} inference")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=feature_shapes, rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]), seed=seeds)
def test_dropout_with_shared_mask_matches_keras(dtype, shape, rate, seed):
    assert_layer_parity(Dropout(rate, seed=seed % 1000), None, shape, dtype, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.7])
def test_dropout_equals_keras_dropout_given_its_mask(dtype, rate):
    # keras.layers.Dropout itself, with its own random mask: read the mask off its output (the
    # input has no zeros), hand it to the scratch op, and get Keras's output and input gradient
    # bit for bit: the same drop probability, the same inverted scaling, the same arithmetic.
    rng = np.random.default_rng(int(rate * 10))
    x = rng.uniform(0.5, 2.0, (6, 5, 5, 3)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    reference = layer_pass(keras.layers.Dropout(rate, seed=3, dtype=dtype), x, dy)
    keep = reference.output != 0
    assert 0 < keep.mean() < 1
    y, cache = ops.dropout_forward(x, keep, rate)
    np.testing.assert_array_equal(y, reference.output)
    np.testing.assert_array_equal(ops.dropout_backward(dy, cache), reference.input_grad)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(case=windowed(), seed=seeds)
def test_avg_pool2d_matches_keras(dtype, case, seed):
    shape, pool, strides, padding = case
    assert_layer_parity(AveragePooling2D(pool, strides=strides, padding=padding), None, shape,
                        dtype, seed=seed)


activations = st.sampled_from([Sigmoid, Tanh, Softmax, LeakyReLU,
                               lambda: LeakyReLU(0.01), lambda: Softmax(axis=1)])


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=2 * EXAMPLES)
@given(make=activations, shape=feature_shapes, seed=seeds, integers=st.booleans())
def test_activation_matches_keras(dtype, make, shape, seed, integers):
    # Normal inputs times 4 reach the saturated ends; small integers put LeakyReLU inputs at
    # exactly 0 and give Softmax tied scores.
    layer = make()
    # A softmax over an axis of size 1 is the constant 1 (Keras warns); its gradient is 0
    # exactly on one side and rounding noise on the other.
    assume(not isinstance(layer, Softmax) or shape[layer.axis] > 1)
    x = sample_input(shape, seed, integers, dtype) * (1 if integers else 4)
    assert_layer_parity(layer, None, shape, dtype, x=x.astype(dtype), seed=seed)


# Conventions, at the points where they matter ----------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_at_exactly_zero_gets_the_slope(dtype):
    x = np.array([[-2.0, 0.0, 0.0, 3.0]], dtype=dtype)
    layer = LeakyReLU(0.2)
    assert_layer_parity(layer, None, x.shape, dtype, x=x, dy=np.ones_like(x))
    s = np.float32(0.2)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), [[s, s, s, 1]])


def test_leaky_relu_float64_slope_is_tensorflows_float32_attribute():
    # Keras's float64 LeakyReLU(0.3) multiplies by float32(0.3) = 0.30000001192092896: an exact
    # 0.3 differs by 4e-8 relative, far above the float64 tolerance.
    y = keras.layers.LeakyReLU(0.3, dtype="float64")(np.array([[-1.0]])).numpy()
    assert y[0, 0] == -float(np.float32(0.3)) != -0.3
    exact = ops.leaky_relu_forward(np.array([[-1.0]]), 0.3)[0]
    with pytest.raises(AssertionError, match="output"):
        assert_all_close({"output": exact}, {"output": y}, "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_tied_and_huge_scores_match_keras(dtype):
    x = np.array([[2.0, 2.0, 2.0, 2.0], [1e4, 1e4 - 1, -1e4, 1e4], [0.0, 0.0, 1.0, 1.0]],
                 dtype=dtype)
    dy = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, -1.0, 2.0, 0.0], [1.0, 2.0, 3.0, 4.0]], dtype=dtype)
    assert_layer_parity(Softmax(), None, x.shape, dtype, x=x, dy=dy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d_same_edge_windows_match_keras(dtype):
    # 5x5 input, 3x3 windows, stride 2, SAME: every edge window hangs over the padding.
    x = np.arange(50, dtype=dtype).reshape(1, 5, 5, 2)
    assert_layer_parity(AveragePooling2D(3, strides=2, padding="same"), None, x.shape, dtype, x=x)


REAL_BATCH_NORM = ops.batch_norm_forward


def unbiased_batch_norm(x, gamma, beta, epsilon):
    """PyTorch's convention: normalize with the biased variance, record the unbiased one."""
    y, cache, mean, variance = REAL_BATCH_NORM(x, gamma, beta, epsilon)
    m = x.size // x.shape[-1]
    return y, cache, mean, variance * m / (m - 1)


PLANTED = {
    # PyTorch's momentum read the Keras way round: moving = (1 - m) * moving + m * batch.
    "pytorch_momentum": ("scratch.ops.moving_average",
                         lambda moving, batch, m: moving * (1 - m) + batch * m),
    "unbiased_variance": ("scratch.ops.batch_norm_forward", unbiased_batch_norm),
    # PyTorch's epsilon 1e-5 where Keras adds 1e-3 (4.6% at variance 0.01).
    "pytorch_epsilon": ("scratch.ops.batch_norm_forward",
                        lambda x, gamma, beta, epsilon: REAL_BATCH_NORM(x, gamma, beta, 1e-5)),
}


# The unbiased variance changes the moving variance by (1 - momentum) var / (M - 1) =
# 0.1 * 0.01 / 127 = 8e-6 here, below float32's resolution of the moving variance (~1): only
# float64 sees it.
@pytest.mark.parametrize("bug, dtype", [(bug, dtype) for bug in sorted(PLANTED) for dtype in DTYPES
                                        if (bug, dtype) != ("unbiased_variance", "float32")])
def test_batch_norm_planted_pytorch_convention_is_caught(bug, dtype, monkeypatch):
    shape = (8, 4, 4, 3)
    x = (0.1 * np.random.default_rng(0).standard_normal(shape)).astype(dtype)
    layer = randomized_batch_norm(shape, dtype, seed=1, momentum=0.9)
    monkeypatch.setattr(*PLANTED[bug])
    with pytest.raises(AssertionError, match="state/moving_|output"):
        assert_layer_parity(layer, None, shape, dtype, x=x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d_planted_divisor_counting_padding_is_caught(dtype, monkeypatch):
    def full_windows(h, w, pool_size, strides, pads, out_hw, dtype_):
        return np.full((1, *out_hw, 1), pool_size[0] * pool_size[1], dtype=dtype_)

    monkeypatch.setattr("scratch.ops.avgpool.avg_pool_divisor", full_windows)
    with pytest.raises(AssertionError, match="output"):
        assert_layer_parity(AveragePooling2D(2, padding="same"), None, (2, 5, 5, 1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_planted_missing_scaling_is_caught(dtype, monkeypatch):
    monkeypatch.setattr("scratch.ops.dropout_forward",
                        lambda x, keep, rate: (x * keep, ops.dropout.DropoutCache(keep * 1.0)))
    with pytest.raises(AssertionError, match="output"):
        assert_layer_parity(Dropout(0.5), None, (4, 10), dtype)


# Twins and whole models --------------------------------------------------------------------

def test_twin_of_cnn_bn_layers_state_and_masks():
    model = build("cnn_bn", seed=1, dtype="float64")
    model.state["bn1/moving_mean"][...] = 0.5
    plain, shared = twin(model), twin(model, share_masks=True)
    assert [layer.name for layer in plain.layers] == [layer.name for layer in model.layers]
    assert type(plain.get_layer("dropout")) is keras.layers.Dropout
    assert isinstance(shared.get_layer("dropout"), SharedMaskDropout)
    assert not plain.get_layer("conv1").use_bias
    state = keras_state(plain)
    assert list(state) == list(model.state)
    np.testing.assert_array_equal(state["bn1/moving_mean"].numpy(), model.state["bn1/moving_mean"])
    back = build("cnn_bn", seed=2, dtype="float64")
    copy_state(plain, back)
    for key, value in model.state.items():
        np.testing.assert_array_equal(back.state[key], value, err_msg=key)


def test_shared_mask_dropout_without_scratch_pass_rejected():
    model = build("cnn_bn", dtype="float32")
    with pytest.raises(ValueError, match=r"SharedMaskDropout 'dropout'.*none.*trace"):
        trace(twin(model, share_masks=True), np.zeros((2, 28, 28, 1), "float32"), np.arange(2))


def every_layer_family(dtype) -> Sequential:
    """A model with a layer of every family here (and every batch-norm setting) on an odd input
    size."""
    layers = [Conv2D(4, 3, padding="same", use_bias=False), BatchNormalization(),
              LeakyReLU(0.1), AveragePooling2D(3, strides=2, padding="same"),
              Conv2D(3, (2, 3), use_bias=False), BatchNormalization(momentum=0.5, center=False),
              Tanh(), Flatten(), Dense(12, use_bias=False),
              BatchNormalization(epsilon=1e-5, scale=False), Sigmoid(),
              Dropout(0.3), Dense(8), Softmax(), Dense(10), ReLU()]
    return Sequential(layers, (11, 9, 2), seed=4, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_with_every_layer_family_matches_keras(dtype):
    model = every_layer_family(dtype)
    x = np.random.default_rng(2).standard_normal((6, 11, 9, 2)).astype(dtype)
    result = assert_model_parity(model, x, np.arange(6))
    assert {f"state/{key}" for key in model.state} <= result.keys()


@pytest.mark.parametrize("dtype", DTYPES)
def test_cnn_bn_two_steps_then_inference_match_keras(dtype):
    # Two training-mode passes (new masks each time, moving statistics accumulating on both
    # sides), then the inference pass with those statistics.
    model = build("cnn_bn", seed=3, dtype=dtype)
    keras_model = twin(model, share_masks=True)
    for step in range(2):
        x, y = strokes(6, seed=step, dtype=dtype)
        mine, theirs = trace_arrays(model.trace(x, y)), trace_arrays(trace(keras_model, x, y))
        assert_all_close(mine, theirs, dtype, context=f"step {step}", batch_statistics=True)
    x, _ = strokes(5, seed=9, dtype=dtype)
    logits = keras_model(tf.constant(x), training=False).numpy()
    assert_all_close({"logits": model.forward(x)}, {"logits": logits}, dtype,
                     context="inference", batch_statistics=True)


def forgot_mean_of_dy(real):
    """batch_norm_backward without the -mean(dy) term of the batch-statistics gradient."""
    def backward(dy, cache):
        dx, dgamma, dbeta = real(dy, cache)
        scale = cache.inv_std if cache.gamma is None else cache.gamma * cache.inv_std
        return (dy - cache.x_hat * (dgamma * dy.shape[-1] / dy.size)) * scale, dgamma, dbeta
    return backward


DIFF_PLANTED = {  # bug -> (function patched, replacement of the real one, layer, label, verdict)
    "batch_norm_gradient": ("batch_norm_backward", forgot_mean_of_dy, "bn2", "dL/dx",
                            "scratch"),
    "dropout_gradient_unscaled": ("dropout_backward",
                                  lambda real: lambda dy, cache: dy * (cache.mask != 0),
                                  "dropout", "dL/dx", "scratch"),
    "pytorch_momentum": ("moving_average",
                         lambda real: lambda moving, batch, m: moving * (1 - m) + batch * m,
                         "bn1", "moving_mean", "forward"),
}


@pytest.mark.parametrize("bug", sorted(DIFF_PLANTED))
def test_diff_cnn_bn_names_planted_bug_and_side(bug, monkeypatch, tmp_path):
    name, replacement, layer, label, verdict = DIFF_PLANTED[bug]
    monkeypatch.setattr(ops, name, replacement(getattr(ops, name)))
    path = tmp_path / "diff.json"
    assert main(["diff", "cnn_bn", "--batch-size", "4", "--json", str(path)]) == 1
    result = json.loads(path.read_text())
    first = result["first_divergence"]
    assert (first["layer"], first["label"]) == (layer, label), first
    assert result["third_opinion"]["verdict"] == verdict, result["third_opinion"]


def keras_cnn_bn(dtype: str) -> keras.Sequential:
    """cnn_bn as its users write it in Keras (the ReLU inside the Dense layer)."""
    kw = {"dtype": dtype}
    blocks = [layer for i in (1, 2) for layer in (
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"conv{i}", **kw),
        keras.layers.BatchNormalization(name=f"bn{i}", **kw),
        keras.layers.ReLU(name=f"conv{i}_relu", **kw),
        keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{i}", **kw))]
    return keras.Sequential([
        keras.Input((28, 28, 1), dtype=dtype), *blocks, keras.layers.Flatten(name="flatten", **kw),
        keras.layers.Dense(32, activation="relu", name="hidden1", **kw),
        keras.layers.Dropout(0.5, name="dropout", **kw),
        keras.layers.Dense(10, name="logits", **kw),
    ])


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_keras_cnn_bn_is_the_scratch_model_with_keras_numbers(dtype):
    # Moving statistics away from their start, so that copying them is checked too.
    keras_model = keras_cnn_bn(dtype)
    x, y = strokes(6, seed=5, dtype=dtype)
    keras_model(x, training=True)
    model = from_keras(keras_model)
    reference = build("cnn_bn", dtype=dtype)
    assert [(type(a).__name__, a.name) for a in model.layers] == \
        [(type(b).__name__, b.name) for b in reference.layers]
    assert list(model.params) == list(reference.params)
    assert list(model.state) == list(reference.state)
    for key, variable in keras_state(keras_model).items():
        np.testing.assert_array_equal(model.state[key], variable.numpy(), err_msg=key)
    # Inference is deterministic on both sides: Keras's own model, not a twin.
    assert_all_close({"logits": model.forward(x)},
                     {"logits": keras_model(x, training=False).numpy()}, dtype,
                     context="from_keras(cnn_bn) inference", batch_statistics=True)
    # A training step: Keras's layers with Keras's weights, the dropout mask shared.
    shared = twin(model, share_masks=True)
    mine, theirs = trace_arrays(model.trace(x, y)), trace_arrays(trace(shared, x, y))
    assert_all_close(mine, theirs, dtype, context="from_keras(cnn_bn) training step",
                     batch_statistics=True)
    again = from_keras(twin(model))  # scratch -> Keras -> scratch
    for key, value in {**model.params, **model.state}.items():
        np.testing.assert_array_equal({**again.params, **again.state}[key], value, err_msg=key)
