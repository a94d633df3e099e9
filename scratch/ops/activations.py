"""Elementwise activations and softmax over one axis, with TensorFlow's conventions.

Each backward pass reads what it needs from the forward pass: sigmoid and tanh their outputs
(``y (1 - y)`` and ``1 - y^2``), softmax its output (the Jacobian-vector product
``y * (dy - sum(dy * y))``), LeakyReLU which inputs were positive.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class OutputCache(NamedTuple):
    y: np.ndarray  # the output, x's shape


class SoftmaxCache(NamedTuple):
    y: np.ndarray  # the output, x's shape
    axis: int      # the normalized axis


class LeakyReluCache(NamedTuple):
    positive: np.ndarray  # bool, x's shape: x > 0
    slope: float          # the slope applied where x <= 0


def sigmoid_forward(x: np.ndarray):
    """``y = 1 / (1 + exp(-x))`` elementwise; any shape. Returns (y, cache).

    Computed from ``e = exp(-|x|) <= 1`` as ``1 / (1 + e)`` for x >= 0 and ``e / (1 + e)``
    otherwise, so exp never overflows and tiny outputs keep their relative precision.
    """
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1, e) / (1 + e)
    return y, OutputCache(y)


def sigmoid_backward(dy: np.ndarray, cache: OutputCache) -> np.ndarray:
    """``dx = dy * y * (1 - y)``, as TensorFlow's SigmoidGrad."""
    return dy * (cache.y * (1 - cache.y))


def tanh_forward(x: np.ndarray):
    """``y = tanh(x)`` elementwise; any shape. Returns (y, cache)."""
    y = np.tanh(x)
    return y, OutputCache(y)


def tanh_backward(dy: np.ndarray, cache: OutputCache) -> np.ndarray:
    """``dx = dy * (1 - y^2)``, as TensorFlow's TanhGrad."""
    return dy * (1 - cache.y * cache.y)


def softmax_forward(x: np.ndarray, axis: int = -1):
    """``y = exp(x) / sum(exp(x))`` along ``axis``. Returns (y, cache).

    The inputs are shifted by their maximum along the axis first (the result does not change):
    every exponent is at most 0, so inputs of magnitude 1e4 give exact, finite results.
    """
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, SoftmaxCache(y, axis)


def softmax_backward(dy: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    """``dx = y * (dy - sum(dy * y, axis))``: the softmax Jacobian ``diag(y) - y y^T`` applied
    to dy along the axis (TensorFlow's SoftmaxGrad)."""
    y = cache.y
    return y * (dy - np.sum(dy * y, axis=cache.axis, keepdims=True))


def leaky_relu_forward(x: np.ndarray, slope: float):
    """``y = x`` where x > 0, ``slope * x`` elsewhere; any shape. Returns (y, cache)."""
    positive = x > 0
    return np.where(positive, x, x * x.dtype.type(slope)), LeakyReluCache(positive, slope)


def leaky_relu_backward(dy: np.ndarray, cache: LeakyReluCache) -> np.ndarray:
    """``dx = dy`` where x > 0, ``slope * dy`` elsewhere: at exactly 0 the derivative is the
    slope (the left derivative), as in TensorFlow's LeakyReluGrad."""
    return np.where(cache.positive, dy, dy * dy.dtype.type(cache.slope))
