"""2-D max pooling, NHWC.

Both passes work on the ph*pw strided views ``xp[:, i::sh, j::sw, :]`` (one per window offset,
each of the output's shape) with whole-array maxima and comparisons, never a multi-axis reduction.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scratch.ops.conv import pad_spatial
from scratch.ops.padding import window_geometry


class MaxPool2DCache(NamedTuple):
    xp: np.ndarray      # (N, Hp, Wp, C): the input padded with -inf (x itself without padding)
    y: np.ndarray       # (N, Ho, Wo, C): the output
    x_shape: tuple      # (N, H, W, C)
    pool_size: tuple    # (ph, pw)
    strides: tuple      # (sh, sw)
    pads: tuple         # (top, bottom, left, right)


def window_views(xp: np.ndarray, pool_size, strides, out_hw) -> list:
    """The ph*pw views xp[:, i + sh*p, j + sw*q, :] of shape (N, Ho, Wo, C), in row-major (i, j)."""
    (ph, pw), (sh, sw), (ho, wo) = pool_size, strides, out_hw
    return [xp[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw, :]
            for i in range(ph) for j in range(pw)]


def elementwise_max(views: list) -> np.ndarray:
    """The elementwise maximum of same-shaped arrays, as a new array."""
    y = np.maximum(views[0], views[1]) if len(views) > 1 else views[0].copy()
    for view in views[2:]:
        np.maximum(y, view, out=y)
    return y


def max_pool_tiles(x: np.ndarray, pool_size, out_hw) -> np.ndarray:
    """Max pooling with strides = pool_size and no padding, over the top-left corner of x.

    Args:
        x: (N, H, W, C) with H >= Ho*ph and W >= Wo*pw; rows and columns beyond are ignored.
        pool_size: (ph, pw); out_hw: (Ho, Wo).

    Returns:
        (N, Ho, Wo, C), the same numbers as ``max_pool2d_forward``. The maximum is taken first
        over the ph rows of each window, whole image rows at a time (long inner loops), then over
        the pw columns of the (N, Ho, W, C) result.
    """
    n, _, w, c = x.shape
    (ph, pw), (ho, wo) = pool_size, out_hw
    rows = x[:, :ho * ph].reshape(n, ho, ph, w * c)
    row_max = elementwise_max([rows[:, :, i] for i in range(ph)]).reshape(n, ho, w, c)
    cols = row_max[:, :, :wo * pw].reshape(n, ho, wo, pw, c)
    return elementwise_max([cols[:, :, :, j] for j in range(pw)])


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
    out_hw, pads = window_geometry(x.shape[1], x.shape[2], pool_size, strides, padding)
    xp = pad_spatial(x, pads, value=-np.inf)
    if tuple(strides) == tuple(pool_size) and not any(pads):
        y = max_pool_tiles(x, pool_size, out_hw)
    else:
        y = elementwise_max(window_views(xp, pool_size, strides, out_hw))
    return y, MaxPool2DCache(xp, y, x.shape, tuple(pool_size), tuple(strides), pads)


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
    (ph, pw), (sh, sw) = cache.pool_size, cache.strides
    out_hw = dy.shape[1:3]
    tiled = (ph, pw) == (sh, sw) and (h + top + bottom, w + left + right) == (out_hw[0] * sh, out_hw[1] * sw)
    # Non-overlapping windows that tile the padded input write every element exactly once.
    dxp = np.empty if tiled else np.zeros
    dxp = dxp((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    views = window_views(cache.xp, cache.pool_size, cache.strides, out_hw)
    targets = window_views(dxp, cache.pool_size, cache.strides, out_hw)
    # Visit the window in row-major order: an element gets the gradient if it equals the maximum
    # and no earlier element did, so on ties the first maximal element wins, which is where
    # TensorFlow's MaxPoolGrad sends the gradient.
    taken = None
    for view, target in zip(views, targets):
        hit = view == cache.y
        if taken is None:
            taken = hit
        else:
            hit &= ~taken
            taken |= hit
        if tiled:
            np.multiply(dy, hit, out=target)
        else:
            target += dy * hit
    return dxp[:, top:top + h, left:left + w, :]
