"""The built models: finite-difference checks of every parameter gradient (float64), dtype
preservation, seeded initialisation and Keras's Glorot fan rules."""

from __future__ import annotations

import numpy as np
import pytest

from scratch.fusion import EVAL_CHUNK
from scratch.gradcheck import assert_gradients_match, check_model_gradients
from scratch.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    replaying_masks,
)
from scratch.losses import softmax_cross_entropy
from scratch.models import IMAGE_MODELS, Sequential, build

from helpers import assert_fast_path_matches

RTOL = 1e-7
# Large tensors (hidden1/kernel has up to 25088 entries) are checked on a random subset of this
# many entries; every smaller tensor is checked in full.
MAX_ELEMENTS = 150


def _batch(n: int, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1)).astype(dtype), rng.integers(0, 10, n)


def _model_with_zero_band_batch(name: str, dtype: str, model_seed: int, data_seed: int, n: int,
                                zero_rows: int):
    """A built model with uniform biases and images (n, 28, 28, 1) whose top ``zero_rows`` rows
    are exact zeros (windows of ties at the bias), both drawn from one rng, returned for more
    draws."""
    model = build(name, seed=model_seed, dtype=dtype)
    rng = np.random.default_rng(data_seed)
    _with_uniform_biases(model, rng)
    x = rng.random((n, 28, 28, 1)).astype(dtype)
    x[:, :zero_rows] = 0
    return model, rng, x


def _with_uniform_biases(model, rng: np.random.Generator) -> None:
    """Biases drawn from U(-0.1, 0.1) with ``rng``, in parameter order."""
    for key, value in model.params.items():
        if key.endswith("/bias"):
            value[...] = rng.uniform(-0.1, 0.1, value.shape)


def _with_random_biases(model, seed: int = 1):
    """Biases start at zero; make them non-zero so that their effect is checked too."""
    rng = np.random.default_rng(seed)
    for key, value in model.params.items():
        if key.endswith("/bias"):
            value[...] = 0.1 * rng.standard_normal(value.shape)
    return model


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_parameter_gradients_match_finite_differences(name, batch):
    model = _with_random_biases(build(name, seed=0, dtype="float64"))
    x, y = _batch(batch, "float64")
    results = check_model_gradients(model, x, y, max_elements=MAX_ELEMENTS)
    assert set(results) == set(model.params)
    assert_gradients_match(results, RTOL)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_dtype_preserved(name, dtype):
    model = build(name, seed=0, dtype=dtype)
    x, y = _batch(2, dtype)
    assert all(p.dtype == dtype for p in model.params.values())
    trace = model.trace(x, y)
    assert trace.logits.dtype == dtype and trace.logits.shape == (2, 10)
    assert model.forward(x).dtype == dtype
    for layer_name, output in trace.outputs.items():
        assert output.dtype == dtype, layer_name
        assert trace.output_grads[layer_name].dtype == dtype, layer_name
    assert all(g.dtype == dtype for g in trace.grads.values())
    assert trace.input_grad.dtype == dtype and trace.input_grad.shape == x.shape


@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_same_seed_identical_weights(name):
    first, second = build(name, seed=7), build(name, seed=7)
    assert list(first.params) == list(second.params)
    for key in first.params:
        assert first.params[key].tobytes() == second.params[key].tobytes(), key


@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_different_seeds_differ(name):
    first, second = build(name, seed=7), build(name, seed=8)
    for key in first.params:
        if key.endswith("/kernel"):
            assert not np.array_equal(first.params[key], second.params[key]), key


@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_float32_weights_are_rounded_float64_weights(name):
    single, double = build(name, seed=3, dtype="float32"), build(name, seed=3, dtype="float64")
    for key in single.params:
        np.testing.assert_array_equal(single.params[key], double.params[key].astype(np.float32))


# Keras's fans (computed by hand from keras.initializers.GlorotUniform's compute_fans):
# conv kernel (5, 3, 32, 64): receptive field 5*3 = 15, fan_in = 15*32 = 480,
# fan_out = 15*64 = 960, limit = sqrt(6 / 1440) = 0.0645497...; the "channels only" rule would
# give sqrt(6 / 96) = 0.25. Dense kernel (300, 100): limit = sqrt(6 / 400) = 0.1224744...
@pytest.mark.parametrize("layer, input_shape, limit", [
    (Conv2D(64, (5, 3), name="conv"), (8, 8, 32), np.sqrt(6.0 / 1440.0)),
    (Dense(100, name="dense"), (300,), np.sqrt(6.0 / 400.0)),
])
def test_glorot_uniform_limit_follows_keras_fans(layer, input_shape, limit):
    kernel = layer.build(input_shape, np.random.default_rng(0), "float64").params["kernel"]
    # 30000 uniform draws: the extremes are within limit/1000 of +-limit with overwhelming
    # probability (each side misses with probability 0.9995**30000 ~ exp(-15)).
    assert np.abs(kernel).max() <= limit
    assert kernel.max() > 0.999 * limit and kernel.min() < -0.999 * limit
    np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3.0), rtol=0.02)
    assert np.all(layer.params["bias"] == 0)


def test_sequential_default_names_follow_keras():
    # Keras's to_snake_case with _1, _2 suffixes: Conv2D -> conv2d, ReLU -> re_lu, MaxPool2D ->
    # max_pool2d.
    layers = [Conv2D(2, 3), ReLU(), MaxPool2D(), Conv2D(2, 3), ReLU(), Flatten(), Dense(10)]
    model = Sequential(layers, (8, 8, 1))
    assert [layer.name for layer in model.layers] == [
        "conv2d", "re_lu", "max_pool2d", "conv2d_1", "re_lu_1", "flatten", "dense"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(IMAGE_MODELS))
def test_model_inference_path_equals_layers(name, dtype):
    # forward, evaluate and predict run the fused units (a cache-free Conv2D -> ReLU -> MaxPool2D
    # chain for the cnn); they must give the logits of the layers' inference passes one by one
    # (the trace's logits, but for batch norm and dropout, whose training passes differ) up to
    # BLAS summation order, ties of exact zeros included.
    model, rng, x = _model_with_zero_band_batch(name, dtype, model_seed=3, data_seed=0, n=7,
                                                zero_rows=12)
    labels = rng.integers(0, 10, 7)
    logits = model.forward(x)
    by_layer = x
    for layer in model.layers:
        by_layer = layer.infer(by_layer)
    assert_fast_path_matches({"logits": logits}, {"logits": by_layer}, dtype)
    if not any(isinstance(layer, (BatchNormalization, Dropout)) for layer in model.layers):
        assert_fast_path_matches({"logits": logits}, {"logits": model.trace(x, labels).logits},
                                 dtype)
    loss, accuracy = model.evaluate(x, labels, batch_size=3)
    batches = [(model.forward(x[s:s + 3]), labels[s:s + 3]) for s in range(0, 7, 3)]
    total = sum(softmax_cross_entropy(logits, y)[0] * len(y) for logits, y in batches)
    assert_fast_path_matches({"loss": np.array(loss)}, {"loss": np.array(total / 7)}, dtype)
    assert accuracy == np.mean(np.concatenate([logits.argmax(axis=1) for logits, _ in batches])
                               == labels)
    np.testing.assert_array_equal(model.predict(x, batch_size=3), logits.argmax(axis=1))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_model_fast_step_gradients_match_trace(name, dtype):
    model, rng, x = _model_with_zero_band_batch(name, dtype, model_seed=2, data_seed=3, n=9,
                                                zero_rows=10)
    y = rng.integers(0, 10, 9)
    loss, grads = model.loss_and_grads(x, y)
    fast = {"loss": np.array(loss), **{k: v.copy() for k, v in grads.items()}}
    with replaying_masks(model.layers):  # the trace drops the units the step dropped
        reference = model.trace(x, y)
    expected = {"loss": np.array(reference.loss), **reference.grads}
    assert_fast_path_matches(fast, expected, dtype)


def test_model_evaluation_in_chunks_equals_forward():
    # More images than one evaluation chunk: chunk by chunk, the training path gives its own logits
    # of the whole batch and the layers' logits, both up to BLAS summation order (bit for bit
    # only with some thread counts: single-threaded, OpenBLAS picks its kernels by matrix size).
    model = build("cnn", seed=4, dtype="float32")
    x = np.random.default_rng(5).random((2 * EVAL_CHUNK + 17, 28, 28, 1)).astype("float32")
    chain = model.units[0]
    logits = model.forward(x)
    whole = chain.infer_chunk(x)
    for unit in model.units[1:]:
        whole = unit.infer(whole)
    assert_fast_path_matches({"logits": logits}, {"logits": whole}, "float32")
    labels = np.zeros(len(x), dtype=np.int64)
    assert_fast_path_matches({"logits": logits}, {"logits": model.trace(x, labels).logits},
                             "float32")
