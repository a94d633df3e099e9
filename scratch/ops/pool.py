"""2-D max pooling, NHWC."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scratch.ops.conv import pad_spatial
from scratch.ops.padding import window_padding


class MaxPool2DCache(NamedTuple):
    argmax: np.ndarray  # (N, Ho, Wo, C) int: window offset i*pw + j of the first maximum
    x_shape: tuple      # (N, H, W, C)
    pool_size: tuple    # (ph, pw)
    strides: tuple      # (sh, sw)
    pads: tuple         # (top, bottom, left, right)


def _window_slice(offset: int, stride: int, out: int) -> slice:
    return slice(offset, offset + (out - 1) * stride + 1, stride)


def max_pool2d_geometry(h: int, w: int, pool_size, strides, padding: str):
    """Output size and TF padding: returns ((Ho, Wo), (top, bottom, left, right))."""
    rows = window_padding(h, pool_size[0], strides[0], padding)
    cols = window_padding(w, pool_size[1], strides[1], padding)
    return (rows.out, cols.out), (rows.before, rows.after, cols.before, cols.after)


def max_pool2d_forward(x: np.ndarray, pool_size=(2, 2), strides=(2, 2), padding: str = "valid"):
    """Maximum over each window.

    Args:
        x: (N, H, W, C).
        pool_size: (ph, pw).
        strides: (sh, sw).
        padding: "valid" or "same"; SAME pads with -inf, so a padded position is never selected.

    Returns:
        (y, cache) with y of shape (N, Ho, Wo, C).
    """
    ph, pw = pool_size
    (ho, wo), pads = max_pool2d_geometry(x.shape[1], x.shape[2], pool_size, strides, padding)
    xp = pad_spatial(x, pads, value=-np.inf)
    y = xp[:, _window_slice(0, strides[0], ho), _window_slice(0, strides[1], wo), :].copy()
    argmax = np.zeros(y.shape, dtype=np.int32)
    # Visit the window in row-major order and replace only on a strictly larger value: on ties
    # the first maximal element wins, which is where TensorFlow's MaxPoolGrad sends the gradient.
    for k in range(1, ph * pw):
        i, j = divmod(k, pw)
        candidate = xp[:, _window_slice(i, strides[0], ho), _window_slice(j, strides[1], wo), :]
        larger = candidate > y
        np.copyto(y, candidate, where=larger)
        np.copyto(argmax, k, where=larger)
    return y, MaxPool2DCache(argmax, x.shape, tuple(pool_size), tuple(strides), pads)


def max_pool2d_backward(dy: np.ndarray, cache: MaxPool2DCache) -> np.ndarray:
    """Route each upstream gradient to its window's first maximum (whole, never split).

    Args:
        dy: (N, Ho, Wo, C).
        cache: from ``max_pool2d_forward``.

    Returns:
        dx of shape (N, H, W, C); overlapping windows add up.
    """
    n, h, w, c = cache.x_shape
    top, bottom, left, right = cache.pads
    ph, pw = cache.pool_size
    sh, sw = cache.strides
    ho, wo = dy.shape[1:3]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for k in range(ph * pw):
        i, j = divmod(k, pw)
        dxp[:, _window_slice(i, sh, ho), _window_slice(j, sw, wo), :] += np.where(
            cache.argmax == k, dy, 0
        )
    return dxp[:, top:top + h, left:left + w, :]
