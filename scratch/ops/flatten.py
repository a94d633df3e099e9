"""Flatten (N, ...) to (N, features) in C order, which for NHWC is Keras's channels-last order."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class FlattenCache(NamedTuple):
    shape: tuple  # the input shape, (N, ...)


def flatten_forward(x: np.ndarray):
    """(N, H, W, C) -> (N, H*W*C), the channel index varying fastest. Returns (y, cache)."""
    return x.reshape(x.shape[0], -1), FlattenCache(x.shape)


def flatten_backward(dy: np.ndarray, cache: FlattenCache) -> np.ndarray:
    """(N, H*W*C) -> (N, H, W, C)."""
    return dy.reshape(cache.shape)
