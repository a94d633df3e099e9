"""Finite-difference checks (float64) of every scratch layer, and dtype preservation.

Inputs of the piecewise-linear layers keep a margin from their kinks: ReLU inputs stay at least
0.1 away from 0, and max-pool inputs are a shuffled grid with spacing 0.1, so no window has a
near-tie. The step (1e-6) is far smaller than these margins, so every check is exact up to
rounding and must be below 1e-7.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratch.gradcheck import assert_gradients_match, check_layer_gradients
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

from strategies import away_from_zero

RTOL = 1e-7
SPATIAL = [(5, 6), (4, 5)]  # odd and even heights and widths, never square
BATCHES = [1, 3]
KERNELS = [1, 2, 3, 4, (2, 3), (3, 1)]  # even sizes exercise the asymmetric SAME split
STRIDES = [1, 2, (1, 2)]
PADDINGS = ["valid", "same"]


def distinct_grid(shape, rng, spacing=0.1) -> np.ndarray:
    """All values distinct, at least ``spacing`` apart, in random positions: no max-pool ties."""
    size = int(np.prod(shape))
    return (rng.permutation(size) - size / 2).reshape(shape) * spacing


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("units", [1, 4])
def test_dense_gradients_match_finite_differences(batch, units):
    rng = np.random.default_rng(1)
    layer = Dense(units, name="dense").build((5,), rng, "float64")
    layer.params["bias"][...] = rng.standard_normal(units)  # non-zero bias
    assert_gradients_match(check_layer_gradients(layer, rng.standard_normal((batch, 5))), RTOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", [(6,), (5, 4, 3)])
def test_relu_gradients_match_finite_differences(batch, shape):
    rng = np.random.default_rng(2)
    layer = ReLU(name="relu").build(shape, rng, "float64")
    x = away_from_zero((batch, *shape), rng)
    results = check_layer_gradients(layer, x)
    assert set(results) == {"input"}
    assert_gradients_match(results, RTOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", [(5, 4, 3), (2, 3)])
def test_flatten_gradients_match_finite_differences(batch, shape):
    rng = np.random.default_rng(3)
    layer = Flatten(name="flatten").build(shape, rng, "float64")
    assert_gradients_match(check_layer_gradients(layer, rng.standard_normal((batch, *shape))), RTOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("hw", SPATIAL)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides", STRIDES)
@pytest.mark.parametrize("kernel_size", KERNELS)
def test_conv2d_gradients_match_finite_differences(kernel_size, strides, padding, hw, batch):
    rng = np.random.default_rng(4)
    layer = Conv2D(2, kernel_size, strides=strides, padding=padding, name="conv")
    layer.build((*hw, 2), rng, "float64")
    layer.params["bias"][...] = rng.standard_normal(2)
    results = check_layer_gradients(layer, rng.standard_normal((batch, *hw, 2)))
    assert set(results) == {"input", "kernel", "bias"}
    assert_gradients_match(results, RTOL)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("hw", SPATIAL)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides", [None, 1, 2, (2, 1)])
@pytest.mark.parametrize("pool_size", [2, 3, (2, 3)])
def test_max_pool2d_gradients_match_finite_differences(pool_size, strides, padding, hw, batch):
    rng = np.random.default_rng(5)
    layer = MaxPool2D(pool_size, strides=strides, padding=padding, name="pool")
    layer.build((*hw, 2), rng, "float64")
    results = check_layer_gradients(layer, distinct_grid((batch, *hw, 2), rng))
    assert set(results) == {"input"}
    assert_gradients_match(results, RTOL)


def _layer_and_input(kind: str, dtype: str, rng):
    """A built layer of ``dtype`` and a matching batch of that dtype."""
    layer, shape = {
        "Dense": (Dense(4, name="d"), (5,)),
        "ReLU": (ReLU(name="r"), (4, 4, 2)),
        "Flatten": (Flatten(name="f"), (4, 4, 2)),
        "Conv2D": (Conv2D(3, 3, strides=2, padding="same", name="c"), (5, 5, 2)),
        "MaxPool2D": (MaxPool2D(2, padding="same", name="p"), (5, 5, 2)),
    }[kind]
    return layer.build(shape, rng, dtype), rng.standard_normal((2, *shape)).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["Dense", "ReLU", "Flatten", "Conv2D", "MaxPool2D"])
def test_layer_dtype_preserved_forward_and_backward(kind, dtype):
    rng = np.random.default_rng(6)
    layer, x = _layer_and_input(kind, dtype, rng)
    assert all(p.dtype == dtype for p in layer.params.values())
    y = layer.forward(x)
    assert y.dtype == dtype
    assert y.shape[1:] == layer.compute_output_shape(x.shape[1:])
    dx = layer.backward(rng.standard_normal(y.shape).astype(dtype))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert all(g.dtype == dtype for g in layer.grads.values())


@pytest.mark.parametrize("kind", ["Dense", "Conv2D"])
def test_gradcheck_float32_layer_checked_on_float64_copy(kind):
    rng = np.random.default_rng(7)
    layer, x = _layer_and_input(kind, "float32", rng)
    before = {k: v.copy() for k, v in layer.params.items()}
    results = check_layer_gradients(layer, x)
    assert_gradients_match(results, RTOL)
    assert all(r.analytic.dtype == np.float64 for r in results.values())
    for key, value in layer.params.items():  # the original is untouched
        assert value.dtype == np.float32 and np.array_equal(value, before[key])
