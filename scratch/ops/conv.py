"""2-D convolution (cross-correlation, as in TensorFlow), NHWC, kernel (kh, kw, c_in, c_out).

Both the forward pass and the input gradient are one valid correlation computed as
im2col + a single matrix product; the input gradient correlates the stride-dilated,
padded upstream gradient with the flipped kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from scratch.ops.padding import window_padding


class Conv2DCache(NamedTuple):
    cols: np.ndarray     # (N*Ho*Wo, kh*kw*c_in): the padded input's windows, row-major (i, j, c)
    kernel: np.ndarray   # (kh, kw, c_in, c_out)
    x_shape: tuple       # (N, H, W, c_in)
    strides: tuple       # (sh, sw)
    pads: tuple          # (top, bottom, left, right)


def conv2d_geometry(h: int, w: int, kh: int, kw: int, strides, padding: str):
    """Output size and TF padding: returns ((Ho, Wo), (top, bottom, left, right))."""
    rows = window_padding(h, kh, strides[0], padding)
    cols = window_padding(w, kw, strides[1], padding)
    return (rows.out, cols.out), (rows.before, rows.after, cols.before, cols.after)


def pad_spatial(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    """Pad axes 1 and 2 of an NHWC array by (top, bottom, left, right) with ``value``."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, h, w, c = x.shape
    out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = x
    return out


def im2col(xp: np.ndarray, kh: int, kw: int, strides, out_hw) -> np.ndarray:
    """Windows of a padded NHWC array as rows: (N*Ho*Wo, kh*kw*C), ordered (i, j, c)."""
    n, _, _, c = xp.shape
    ho, wo = out_hw
    sn, sh, sw, sc = xp.strides
    windows = as_strided(
        xp,
        shape=(n, ho, wo, kh, kw, c),
        strides=(sn, sh * strides[0], sw * strides[1], sh, sw, sc),
        writeable=False,
    )
    return windows.reshape(n * ho * wo, kh * kw * c)


def correlate_valid(xp: np.ndarray, kernel: np.ndarray, strides, out_hw):
    """Valid correlation of a padded input with a kernel: ((N, Ho, Wo, c_out), cols)."""
    kh, kw, c_in, c_out = kernel.shape
    cols = im2col(xp, kh, kw, strides, out_hw)
    y = cols @ kernel.reshape(kh * kw * c_in, c_out)
    return y.reshape(xp.shape[0], out_hw[0], out_hw[1], c_out), cols


def conv2d_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, strides=(1, 1),
                   padding: str = "valid"):
    """Convolve a batch of images.

    Args:
        x: (N, H, W, c_in).
        kernel: (kh, kw, c_in, c_out).
        bias: (c_out,).
        strides: (sh, sw).
        padding: "valid" or "same" (TensorFlow's split of the padding).

    Returns:
        (y, cache) with y of shape (N, Ho, Wo, c_out).
    """
    kh, kw = kernel.shape[:2]
    out_hw, pads = conv2d_geometry(x.shape[1], x.shape[2], kh, kw, strides, padding)
    y, cols = correlate_valid(pad_spatial(x, pads), kernel, strides, out_hw)
    y += bias
    return y, Conv2DCache(cols, kernel, x.shape, tuple(strides), pads)


def conv2d_input_grad(dy: np.ndarray, kernel: np.ndarray, x_shape, strides, pads) -> np.ndarray:
    """dL/dx of a convolution: a full correlation of dy with the flipped kernel.

    dxp[n, p, q, c] = sum_{i, j, o} dyd[n, p - i, q - j, o] * kernel[i, j, c, o], where dyd is dy
    with (s - 1) zeros inserted between neighbours (stride dilation) and dxp the padded input
    gradient; rows/columns of the padded input that no window reached get zero.

    Args:
        dy: (N, Ho, Wo, c_out).
        kernel: (kh, kw, c_in, c_out).
        x_shape: (N, H, W, c_in).
        strides: (sh, sw).
        pads: (top, bottom, left, right).

    Returns:
        dx of shape x_shape.
    """
    n, h, w, c_in = x_shape
    kh, kw, _, c_out = kernel.shape
    sh, sw = strides
    top, bottom, left, right = pads
    ho, wo = dy.shape[1:3]
    # Dilate by the stride and pad by kernel-1 on every side: a "full" correlation.
    used_h, used_w = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    dyp = np.zeros((n, used_h + kh - 1, used_w + kw - 1, c_out), dtype=dy.dtype)
    dyp[:, kh - 1:kh - 1 + (ho - 1) * sh + 1:sh, kw - 1:kw - 1 + (wo - 1) * sw + 1:sw, :] = dy
    flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    dxp_used, _ = correlate_valid(dyp, flipped, (1, 1), (used_h, used_w))
    hp, wp = h + top + bottom, w + left + right
    if (used_h, used_w) != (hp, wp):  # trailing rows/columns that no window covered
        dxp = np.zeros((n, hp, wp, c_in), dtype=dy.dtype)
        dxp[:, :used_h, :used_w, :] = dxp_used
    else:
        dxp = dxp_used
    return dxp[:, top:top + h, left:left + w, :]


def conv2d_backward(dy: np.ndarray, cache: Conv2DCache):
    """Gradients of a convolution.

    Args:
        dy: dL/dy, shape (N, Ho, Wo, c_out).
        cache: from ``conv2d_forward``.

    Returns:
        (dx, dkernel, dbias) with shapes (N, H, W, c_in), (kh, kw, c_in, c_out), (c_out,).
    """
    c_out = cache.kernel.shape[3]
    dy2d = dy.reshape(-1, c_out)
    dkernel = (cache.cols.T @ dy2d).reshape(cache.kernel.shape)
    dx = conv2d_input_grad(dy, cache.kernel, cache.x_shape, cache.strides, cache.pads)
    return dx, dkernel, dy2d.sum(axis=0)
