"""2-D convolution written as plain loops: the version to read first.

The same cross-correlation as ``scratch.ops.conv`` (NHWC input, HWIO kernel, TensorFlow's SAME
padding), one output position at a time, with no window matrix and no strided views. It is slow
and exists to be read and to pin the fast op: the tests compare ``conv2d_forward`` and
``conv2d_backward`` with these two functions on shapes, strides and paddings drawn by Hypothesis.
"""

from __future__ import annotations

import numpy as np

from scratch.ops.conv import pad_spatial
from scratch.ops.padding import window_geometry


def conv2d_forward_loops(x, kernel, bias, strides=(1, 1), padding="valid"):
    """y[n, p, q, o] = bias[o] + sum_{i, j, c} xp[n, p*sh + i, q*sw + j, c] * kernel[i, j, c, o].

    Args:
        x: (N, H, W, c_in). kernel: (kh, kw, c_in, c_out). bias: (c_out,) or None.
        strides: (sh, sw). padding: "valid" or "same".

    Returns:
        y of shape (N, Ho, Wo, c_out).
    """
    kh, kw, _, c_out = kernel.shape
    (ho, wo), pads = window_geometry(x.shape[1], x.shape[2], (kh, kw), strides, padding)
    xp = pad_spatial(x, pads)
    y = np.zeros((x.shape[0], ho, wo, c_out), dtype=x.dtype)
    for p in range(ho):
        for q in range(wo):
            window = xp[:, p * strides[0]:p * strides[0] + kh, q * strides[1]:q * strides[1] + kw]
            y[:, p, q, :] = np.tensordot(window, kernel, axes=3)  # sum over (i, j, c)
    return y if bias is None else y + bias


def conv2d_backward_loops(dy, x, kernel, strides=(1, 1), padding="valid"):
    """(dx, dkernel, dbias): each output position sends dy back to the window it read.

    Args:
        dy: (N, Ho, Wo, c_out). x: (N, H, W, c_in), the forward input. kernel: (kh, kw, c_in,
        c_out). strides, padding: as in the forward pass.

    Returns:
        dx (N, H, W, c_in), dkernel (kh, kw, c_in, c_out), dbias (c_out,).
    """
    kh, kw, _, _ = kernel.shape
    n, h, w, _ = x.shape
    _, pads = window_geometry(h, w, (kh, kw), strides, padding)
    top, left = pads[0], pads[2]
    xp = pad_spatial(x, pads)
    dxp = np.zeros_like(xp)
    dkernel = np.zeros_like(kernel)
    for p in range(dy.shape[1]):
        for q in range(dy.shape[2]):
            rows = slice(p * strides[0], p * strides[0] + kh)
            cols = slice(q * strides[1], q * strides[1] + kw)
            g = dy[:, p, q, :]                                          # (N, c_out)
            dkernel += np.tensordot(xp[:, rows, cols], g, axes=([0], [0]))
            dxp[:, rows, cols] += np.tensordot(g, kernel, axes=([1], [3]))
    dx = dxp[:, top:top + h, left:left + w]
    return dx, dkernel, dy.sum(axis=(0, 1, 2))
