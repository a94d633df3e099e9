"""The parity checks can fail: each test plants one classic bug in the scratch engine (with
monkeypatch, undone after the test) and asserts that the same helper the suite uses passes on
the clean code and raises AssertionError on the bugged code."""

from __future__ import annotations

import numpy as np
import pytest

import scratch.ops
import scratch.ops.conv
import scratch.ops.padding
from scratch.data.synthetic import strokes
from reference_tf.testing import assert_layer_parity, assert_model_parity
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential, build
from scratch.ops.flatten import FlattenCache
from scratch.ops.padding import Padding1D
from scratch.ops.relu import ReluCache

DTYPES = ["float32", "float64"]


def integers(shape, seed=0, dtype="float64"):
    """Integers in [-2, 2]: exact zeros and exact ties."""
    return np.random.default_rng(seed).integers(-2, 3, size=shape).astype(dtype)


def conv_input_grad_without_flip(monkeypatch):
    original = scratch.ops.conv.conv2d_input_grad
    # Flipping before the correct code flips again: the kernel is used unflipped.
    monkeypatch.setattr(scratch.ops.conv, "conv2d_input_grad",
                        lambda dy, kernel, *rest: original(dy, kernel[::-1, ::-1], *rest))


def same_padding_extra_on_top(monkeypatch):
    original = scratch.ops.padding.window_padding

    def swapped(size, window, stride, padding):
        out, before, after = original(size, window, stride, padding)
        return Padding1D(out, after, before)

    monkeypatch.setattr(scratch.ops.padding, "window_padding", swapped)


def max_pool_tie_split(monkeypatch):
    def backward_splitting_ties(dy, cache):
        (ph, pw), (sh, sw), (ho, wo) = cache.pool_size, cache.strides, dy.shape[1:3]
        windows = [(slice(i, i + (ho - 1) * sh + 1, sh), slice(j, j + (wo - 1) * sw + 1, sw))
                   for i in range(ph) for j in range(pw)]
        masks = [cache.xp[:, rows, cols, :] == cache.y for rows, cols in windows]
        count = sum(masks)
        dxp = np.zeros(cache.xp.shape, dtype=dy.dtype)
        for (rows, cols), mask in zip(windows, masks):
            dxp[:, rows, cols, :] += np.where(mask, dy / count, 0)
        top, _, left, _ = cache.pads
        h, w = cache.x_shape[1:3]
        return dxp[:, top:top + h, left:left + w, :]

    monkeypatch.setattr(scratch.ops, "max_pool2d_backward", backward_splitting_ties)


def dense_bias_grad_wrong_axis(monkeypatch):
    original = scratch.ops.dense_backward

    def bugged(dy, cache, **options):
        dx, dkernel, _ = original(dy, cache, **options)
        return dx, dkernel, dy.sum(axis=1)

    monkeypatch.setattr(scratch.ops, "dense_backward", bugged)


def relu_gradient_at_zero(monkeypatch):
    # The cache marks x >= 0 instead of x > 0, so the gradient passes at exactly 0.
    monkeypatch.setattr(scratch.ops, "relu_forward",
                        lambda x: (np.maximum(x, 0), ReluCache((x >= 0).astype(x.dtype))))


def flatten_nchw(monkeypatch):
    monkeypatch.setattr(scratch.ops, "flatten_forward", lambda x: (
        x.transpose(0, 3, 1, 2).reshape(len(x), -1), FlattenCache(x.shape)))


def loss_sum_instead_of_mean(monkeypatch):
    original = scratch.ops.softmax_cross_entropy

    def summed(logits, labels):
        loss, dlogits = original(logits, labels)
        return loss * len(logits), dlogits * len(logits)

    monkeypatch.setattr(scratch.ops, "softmax_cross_entropy", summed)


# (bug, check): the check is exactly what the suite runs for that layer type.
LAYER_BUGS = {
    "conv_input_grad_without_flip": (conv_input_grad_without_flip, lambda dtype: assert_layer_parity(
        Conv2D(3, (3, 2), padding="same"), None, (2, 6, 5, 2), dtype)),
    "same_padding_extra_on_top": (same_padding_extra_on_top, lambda dtype: assert_layer_parity(
        Conv2D(2, 2, strides=2, padding="same"), None, (2, 7, 7, 1), dtype)),
    "max_pool_tie_split": (max_pool_tie_split, lambda dtype: assert_layer_parity(
        MaxPool2D(2), None, (2, 6, 6, 2), dtype, x=integers((2, 6, 6, 2), dtype=dtype))),
    "dense_bias_grad_wrong_axis": (dense_bias_grad_wrong_axis, lambda dtype: assert_layer_parity(
        Dense(5), None, (5, 7), dtype)),
    "relu_gradient_at_zero": (relu_gradient_at_zero, lambda dtype: assert_layer_parity(
        ReLU(), None, (3, 4, 4, 2), dtype, x=integers((3, 4, 4, 2), dtype=dtype))),
    "flatten_nchw": (flatten_nchw, lambda dtype: assert_layer_parity(
        Flatten(), None, (2, 3, 4, 2), dtype)),
    "loss_sum_instead_of_mean": (loss_sum_instead_of_mean, lambda dtype: assert_model_parity(
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


def odd_model() -> Sequential:
    """A small CNN on 15x15 digits: asymmetric SAME padding, overlapping pool windows, and conv
    biases alternating 0.1 / 0 (positive ties in the pools, exactly-zero pre-activations)."""
    layers = [Conv2D(4, 4, strides=2, padding="same"), ReLU(), MaxPool2D(3, strides=2, padding="same"),
              Conv2D(4, (2, 3), padding="same"), ReLU(), MaxPool2D(2, padding="same"),
              Flatten(), Dense(8), ReLU(), Dense(10)]
    model = Sequential(layers, (15, 15, 1), seed=0, dtype="float64")
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            layer.params["bias"][::2] = 0.1
    return model


@pytest.mark.parametrize("bug", sorted(LAYER_BUGS))
def test_planted_bug_is_caught_by_the_model_check(bug, monkeypatch):
    model = odd_model()
    x = strokes(4, seed=1, dtype="float64", size=15)[0]
    y = np.arange(4)
    assert_model_parity(model, x, y)
    LAYER_BUGS[bug][0](monkeypatch)
    with pytest.raises(AssertionError):
        assert_model_parity(model, x, y)
