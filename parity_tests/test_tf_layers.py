"""Every layer on its own against Keras: forward output, input gradient and parameter gradients
for a random upstream gradient, over random shapes and settings drawn by Hypothesis.

Shapes: batch 1-8, spatial sizes 1-15 (odd and even), channels 1-5, kernels 1-4 (square and not),
strides 1-3, SAME and VALID. Max-pool and ReLU inputs are small integers half of the time, so
windows hold exact ties and pre-activations sit exactly at 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_tf.testing import assert_layer_parity
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

from helpers import DTYPES
from strategies import batches, channels, sample_input, seeds, sizes, windowed

EXAMPLES = 100

@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(case=windowed(), filters=channels, seed=seeds)
def test_conv2d_matches_keras(dtype, case, filters, seed):
    shape, kernel, strides, padding = case
    assert_layer_parity(Conv2D(filters, kernel, strides=strides, padding=padding), None, shape,
                        dtype, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(case=windowed(), seed=seeds, integers=st.booleans())
def test_max_pool2d_matches_keras(dtype, case, seed, integers):
    shape, pool, strides, padding = case
    x = sample_input(shape, seed, integers, dtype)
    assert_layer_parity(MaxPool2D(pool, strides=strides, padding=padding), None, shape, dtype,
                        x=x, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=st.tuples(batches, st.integers(1, 30)), units=st.integers(1, 10), seed=seeds)
def test_dense_matches_keras(dtype, shape, units, seed):
    assert_layer_parity(Dense(units), None, shape, dtype, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=st.tuples(batches, sizes, sizes, channels), seed=seeds, integers=st.booleans())
def test_relu_matches_keras(dtype, shape, seed, integers):
    x = sample_input(shape, seed, integers, dtype)
    assert_layer_parity(ReLU(), None, shape, dtype, x=x, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=st.tuples(batches, sizes, sizes, channels), seed=seeds)
def test_flatten_matches_keras(dtype, shape, seed):
    assert_layer_parity(Flatten(), None, shape, dtype, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_at_exactly_zero_passes_no_gradient(dtype):
    # Hand-worked: x = [-1, 0, 0, 2], dy = [1, 1, 1, 1] -> dx = [0, 0, 0, 1] on both sides.
    x = np.array([[-1.0, 0.0, 0.0, 2.0]], dtype=dtype)
    layer = ReLU()
    assert_layer_parity(layer, None, x.shape, dtype, x=x, dy=np.ones_like(x))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), [[0, 0, 0, 1]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_tie_gradient_goes_whole_to_the_first_maximum(dtype):
    # One 2x2 window of equal values: TensorFlow sends all of dy to the top-left element.
    x = np.full((1, 2, 2, 1), 3.0, dtype=dtype)
    dy = np.full((1, 1, 1, 1), 5.0, dtype=dtype)
    layer = MaxPool2D(2)
    assert_layer_parity(layer, None, x.shape, dtype, x=x, dy=dy)
    np.testing.assert_array_equal(layer.backward(dy)[0, :, :, 0], [[5, 0], [0, 0]])
