"""Layer normalization over the last axis, as Keras 3's ``LayerNormalization(axis=-1)``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LayerNormCache(NamedTuple):
    normalized: np.ndarray   # (..., C): (x - mean) / sqrt(var + epsilon)
    inv_std: np.ndarray      # (..., 1): 1 / sqrt(var + epsilon)
    gamma: np.ndarray | None  # (C,)


def layer_norm_forward(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
                       epsilon: float):
    """Normalize every position of x (..., C) over its C features: mean and biased variance of
    the last axis, then scale by gamma (C,) and shift by beta (C,) (None: 1 and 0).

    Keras's arithmetic: ``inv = gamma / sqrt(var + eps)``, ``y = x * inv + (beta - mean * inv)``.

    Returns:
        (y, cache) with y of x's shape.
    """
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = np.mean(centered * centered, axis=-1, keepdims=True)
    inv_std = 1 / np.sqrt(variance + np.asarray(epsilon, dtype=x.dtype))
    inv = inv_std if gamma is None else inv_std * gamma
    shift = -mean * inv
    if beta is not None:
        shift = shift + beta
    return x * inv + shift, LayerNormCache(centered * inv_std, inv_std, gamma)


def layer_norm_backward(dy: np.ndarray, cache: LayerNormCache):
    """Gradients of ``layer_norm_forward`` (docs/derivations.md, "LayerNormalization").

    Args:
        dy: dL/dy (..., C).

    Returns:
        (dx, dgamma, dbeta) with shapes (..., C), (C,), (C,) (dgamma/dbeta summed over every
        position).
    """
    axes = tuple(range(dy.ndim - 1))
    xhat = cache.normalized
    dxhat = dy if cache.gamma is None else dy * cache.gamma
    dx = cache.inv_std * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                          - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
