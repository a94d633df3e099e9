"""Fully connected layer: ``y = x @ kernel + bias``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DenseCache(NamedTuple):
    x: np.ndarray       # (N, in)
    kernel: np.ndarray  # (in, out)


def dense_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None):
    """Affine map of a batch, applied to the last axis (per time step of a sequence).

    Args:
        x: inputs, shape (N, in) or (N, T, in).
        kernel: weights, shape (in, out) (Keras layout).
        bias: shape (out,), or None for no bias.

    Returns:
        (y, cache) with y of shape (N, out) or (N, T, out).
    """
    y = x @ kernel
    if bias is not None:
        y += bias
    return y, DenseCache(x, kernel)


def dense_backward(dy: np.ndarray, cache: DenseCache, need_input_grad: bool = True):
    """Gradients of an affine map.

    Args:
        dy: dL/dy, shape (N, out) or (N, T, out).
        cache: from ``dense_forward``.
        need_input_grad: False skips dx (returned as None), e.g. for a model's first layer.

    Returns:
        (dx, dkernel, dbias) with shapes x's, (in, out), (out,); the parameter gradients sum
        over the batch and the time steps.
    """
    dx = dy @ cache.kernel.T if need_input_grad else None
    x, dy = cache.x.reshape(-1, cache.x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return dx, x.T @ dy, dy.sum(axis=0)
