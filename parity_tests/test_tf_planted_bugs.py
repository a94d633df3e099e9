"""The parity checks can fail: each test plants one classic bug in the scratch engine (with
monkeypatch, undone after the test) and asserts that the same helper the suite uses passes on
the clean code and raises AssertionError on the bugged code."""

from __future__ import annotations

import numpy as np
import pytest

from reference_tf.testing import assert_layer_parity, assert_model_parity
from scratch.data.synthetic import strokes
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import build

from helpers import DTYPES, integers
from planted import (
    odd_model,
    plant_conv_no_flip,
    plant_dense_bias_wrong_axis,
    plant_flatten_nchw,
    plant_loss_sum_instead_of_mean,
    plant_pool_split_ties,
    plant_relu_passes_at_zero,
    plant_same_padding_extra_on_top,
)

# (bug, check): the check is exactly what the suite runs for that layer type.
LAYER_BUGS = {
    "conv_input_grad_without_flip": (plant_conv_no_flip, lambda dtype: assert_layer_parity(
        Conv2D(3, (3, 2), padding="same"), None, (2, 6, 5, 2), dtype)),
    "same_padding_extra_on_top": (plant_same_padding_extra_on_top,
                                  lambda dtype: assert_layer_parity(
        Conv2D(2, 2, strides=2, padding="same"), None, (2, 7, 7, 1), dtype)),
    "max_pool_tie_split": (plant_pool_split_ties, lambda dtype: assert_layer_parity(
        MaxPool2D(2), None, (2, 6, 6, 2), dtype, x=integers((2, 6, 6, 2), dtype=dtype))),
    "dense_bias_grad_wrong_axis": (plant_dense_bias_wrong_axis, lambda dtype: assert_layer_parity(
        Dense(5), None, (5, 7), dtype)),
    "relu_gradient_at_zero": (plant_relu_passes_at_zero, lambda dtype: assert_layer_parity(
        ReLU(), None, (3, 4, 4, 2), dtype, x=integers((3, 4, 4, 2), dtype=dtype))),
    "flatten_nchw": (plant_flatten_nchw, lambda dtype: assert_layer_parity(
        Flatten(), None, (2, 3, 4, 2), dtype)),
    "loss_sum_instead_of_mean": (plant_loss_sum_instead_of_mean, lambda dtype: assert_model_parity(
        build("mlp1", dtype=dtype), strokes(4, dtype=dtype)[0], np.arange(4))),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", sorted(LAYER_BUGS))
def test_planted_bug_is_caught(bug, dtype, monkeypatch):
    plant, check = LAYER_BUGS[bug]
    check(dtype)  # the clean code passes this very check
    plant(monkeypatch)
    with pytest.raises(AssertionError) as info:
        check(dtype)
    print(f"{bug} ({dtype}) caught:\n{info.value}")


@pytest.mark.parametrize("bug", sorted(LAYER_BUGS))
def test_planted_bug_is_caught_by_the_model_check(bug, monkeypatch):
    model = odd_model()
    x = strokes(4, seed=1, dtype="float64", size=15)[0]
    y = np.arange(4)
    assert_model_parity(model, x, y)
    LAYER_BUGS[bug][0](monkeypatch)
    with pytest.raises(AssertionError):
        assert_model_parity(model, x, y)
