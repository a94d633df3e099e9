"""2-D average pooling, NHWC, with TensorFlow's divisor.

With SAME padding a window that hangs over the edge is averaged over the input cells it
covers only: the padded cells are left out of the sum *and* of the divisor. Along one axis the
count of covered cells is ``min(start + k, H) - max(start, 0)`` for a window starting at
``start = p*s - top``, and a window's divisor is the product of its row and column counts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scratch.ops.conv import pad_spatial
from scratch.ops.padding import window_geometry
from scratch.ops.pool import window_views


class AvgPool2DCache(NamedTuple):
    x_shape: tuple          # (N, H, W, C)
    pool_size: tuple        # (ph, pw)
    strides: tuple          # (sh, sw)
    pads: tuple             # (top, bottom, left, right)
    divisor: np.ndarray     # (1, Ho, Wo, 1): the input cells each window covers


def covered_counts(size: int, window: int, stride: int, before: int, out: int) -> np.ndarray:
    """(out,) int: how many of the ``size`` input cells each window of one axis covers."""
    starts = np.arange(out) * stride - before
    return np.minimum(starts + window, size) - np.maximum(starts, 0)


def avg_pool_divisor(h: int, w: int, pool_size, strides, pads, out_hw, dtype) -> np.ndarray:
    """(1, Ho, Wo, 1) of ``dtype``: each window's count of input (not padding) cells."""
    top, _, left, _ = pads
    rows = covered_counts(h, pool_size[0], strides[0], top, out_hw[0])
    cols = covered_counts(w, pool_size[1], strides[1], left, out_hw[1])
    return np.outer(rows, cols).astype(dtype)[None, :, :, None]


def avg_pool2d_forward(x: np.ndarray, pool_size=(2, 2), strides=(2, 2), padding: str = "valid"):
    """Mean over each window's input cells.

    Args:
        x: (N, H, W, C).
        pool_size: (ph, pw).
        strides: (sh, sw).
        padding: "valid" or "same" (split as TensorFlow does; padded cells are not counted).

    Returns:
        (y, cache) with y of shape (N, Ho, Wo, C).
    """
    n, h, w, _ = x.shape
    out_hw, pads = window_geometry(h, w, pool_size, strides, padding)
    views = window_views(pad_spatial(x, pads), pool_size, strides, out_hw)
    total = views[0].copy()
    for view in views[1:]:
        total += view
    divisor = avg_pool_divisor(h, w, pool_size, strides, pads, out_hw, x.dtype)
    return total / divisor, AvgPool2DCache(x.shape, tuple(pool_size), tuple(strides), pads,
                                           divisor)


def avg_pool2d_backward(dy: np.ndarray, cache: AvgPool2DCache) -> np.ndarray:
    """Spread each upstream gradient evenly over its window's input cells.

    Args:
        dy: (N, Ho, Wo, C).
        cache: from ``avg_pool2d_forward``.

    Returns:
        dx of shape (N, H, W, C): ``dx[n, h, w, c] = sum over the windows covering (h, w) of
        dy[n, p, q, c] / divisor[p, q]``; the share of the padded cells is dropped.
    """
    n, h, w, c = cache.x_shape
    top, bottom, left, right = cache.pads
    share = dy / cache.divisor
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for target in window_views(dxp, cache.pool_size, cache.strides, dy.shape[1:3]):
        target += share
    return dxp[:, top:top + h, left:left + w, :]
