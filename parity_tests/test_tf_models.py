"""Whole models against their Keras twins: logits, loss, every parameter gradient, every layer
output and every layer-output gradient, on ordinary inputs and on inputs that stress conventions.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from reference_tf.compare import assert_all_close
from reference_tf.gradients import sparse_cross_entropy
from reference_tf.testing import assert_model_parity
from scratch.data.synthetic import strokes
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.losses import softmax_cross_entropy
from scratch.models import IMAGE_MODELS, Sequential, build

from helpers import DTYPES


def labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=n)


def with_positive_biases(model: Sequential, seed: int = 0) -> Sequential:
    """Every bias in [0.05, 0.15): blank regions give equal positive activations (exact ties)."""
    rng = np.random.default_rng(seed)
    for key, value in model.params.items():
        if key.endswith("/bias"):
            value[...] = rng.uniform(0.05, 0.15, size=value.shape)
    return model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_matches_keras_on_normal_inputs(name, dtype):
    model = build(name, seed=0, dtype=dtype)
    x = np.random.default_rng(1).standard_normal((5, 28, 28, 1)).astype(dtype)
    result = assert_model_parity(model, x, labels(5))
    # Every quantity of every layer was compared.
    assert {f"outputs/{layer.name}" for layer in model.layers} <= result.keys()
    assert {f"output_grads/{layer.name}" for layer in model.layers} <= result.keys()
    assert {f"grads/{key}" for key in model.params} <= result.keys()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_matches_keras_on_digits_with_positive_biases(name, dtype):
    model = with_positive_biases(build(name, seed=0, dtype=dtype))
    x = strokes(8, seed=2, dtype=dtype)[0]
    assert_model_parity(model, x, labels(8, seed=2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cnn_max_pool_windows_full_of_exact_ties(dtype):
    model = with_positive_biases(build("cnn", seed=0, dtype=dtype))
    x = strokes(8, seed=3, dtype=dtype)[0]
    assert_model_parity(model, x, labels(8, seed=3))
    # The case is really exercised: many pool1 windows hold four equal values.
    relu = model.trace(x, labels(8, seed=3)).outputs["conv1_relu"]
    windows = relu.reshape(8, 14, 2, 14, 2, 8)
    ties = (windows == windows.max(axis=(2, 4), keepdims=True)).sum(axis=(2, 4)) == 4
    assert ties.mean() > 0.5, ties.mean()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mlp2", "cnn"])
def test_model_matches_keras_with_pre_activations_at_exactly_zero(name, dtype):
    # Zero biases and blank pixels: conv pre-activations are exactly 0, and an all-zero image
    # gives exactly-0 pre-activations in every hidden dense layer too.
    model = build(name, seed=0, dtype=dtype)
    x = strokes(6, seed=4, dtype=dtype)[0]
    x[0] = 0
    first = model.layers[0] if name == "cnn" else model.layers[1]
    y = labels(6, seed=4)
    assert (model.trace(x, y).outputs[first.name][0] == 0).all()
    assert_model_parity(model, x, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("input_shape", [(13, 11, 1), (15, 9, 2), (7, 7, 3)])
def test_custom_model_odd_sizes_with_same_padding(input_shape, dtype):
    layers = [Conv2D(4, 4, strides=2, padding="same"), ReLU(),
              MaxPool2D(3, strides=2, padding="same"),
              Conv2D(3, (2, 3), strides=(1, 2), padding="same"), ReLU(),
              MaxPool2D(2, padding="same"), Flatten(), Dense(10)]
    model = Sequential(layers, input_shape, seed=5, dtype=dtype)
    x = np.random.default_rng(5).standard_normal((4, *input_shape)).astype(dtype)
    assert_model_parity(model, x, labels(4, seed=5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_loss_matches_keras_for_logits_of_magnitude_1e4(scale, dtype):
    rng = np.random.default_rng(6)
    logits = (scale * rng.standard_normal((16, 10))).astype(dtype)
    logits[0] = scale  # a row of exact ties at 1e4
    y = labels(16, seed=6)
    loss, dlogits = softmax_cross_entropy(logits, y)
    z = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(z)
        reference = sparse_cross_entropy(z, y)
    expected = {"loss": reference.numpy(),
                "output_grads/logits": tape.gradient(reference, z).numpy()}
    assert np.isfinite(loss) and abs(loss) > 1e2  # the regime is really reached
    assert_all_close({"loss": loss, "output_grads/logits": dlogits}, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_model_matches_keras_with_logits_of_magnitude_1e4(dtype):
    model = build("linear", seed=0, dtype=dtype)
    model.params["logits/kernel"] *= 1e4 / 3
    x = strokes(8, seed=7, dtype=dtype)[0]
    y = labels(8, seed=7)
    assert np.abs(model.forward(x)).max() > 1e3
    assert_model_parity(model, x, y)
