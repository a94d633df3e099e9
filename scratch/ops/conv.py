"""2-D convolution (cross-correlation, as in TensorFlow), NHWC, kernel (kh, kw, c_in, c_out).

The forward pass and the input gradient are each one valid correlation computed as a window
matrix times the kernel matrix (im2col + a single GEMM); the input gradient correlates the
stride-dilated, padded upstream gradient with the flipped kernel.

Two layout choices make this fast in NumPy without changing what is summed:

- The window matrix is built transposed, (kh*kw*C, positions): each of its rows is copied from
  the input in one long strided run, not in one short run per output pixel.
- With stride 1 the windows are placed on the padded input's own grid (Hp, Wp), so row (i, j, c)
  of the window matrix is the flattened padded batch shifted by i*Wp + j: one contiguous slice.
  Grid positions outside the output (p >= Ho or q >= Wo) straddle an image edge; their outputs
  are computed and dropped, and in the backward pass they meet zero gradients.

``scratch.ops.conv_pool`` builds the same kind of matrix on the input split by the pool's phases,
for Conv2D -> ReLU -> MaxPool2D in one op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from scratch.ops.padding import window_geometry


class Conv2DCache(NamedTuple):
    cols_t: np.ndarray   # (kh*kw*c_in, N*Hg*Wg): the windows, transposed, rows ordered (i, j, c)
    grid: tuple          # (Hg, Wg): the positions of the columns, (Ho, Wo) or the padded (Hp, Wp)
    kernel: np.ndarray   # (kh, kw, c_in, c_out)
    x_shape: tuple       # (N, H, W, c_in)
    strides: tuple       # (sh, sw)
    pads: tuple          # (top, bottom, left, right)


def pad_spatial(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    """Pad axes 1 and 2 of an NHWC array by (top, bottom, left, right) with ``value``."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, h, w, c = x.shape
    out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = x
    return out


def padded_flat(x: np.ndarray, kh: int, kw: int, pads):
    """x (N, H, W, C) zero-padded by (top, bottom, left, right), flattened, with a zero tail.

    Returns (flat, (Hp, Wp)): the padded images back to back, then (kh-1)*Wp + kw-1 zero pixels
    so that every stride-1 window starting at a grid position (n, p, q) lies inside ``flat``.
    """
    n, h, w, c = x.shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    size = n * hp * wp * c
    flat = np.zeros(size + ((kh - 1) * wp + kw - 1) * c, dtype=x.dtype)
    flat[:size].reshape(n, hp, wp, c)[:, top:top + h, left:left + w, :] = x
    return flat, (hp, wp)


def window_matrix(x: np.ndarray, kh: int, kw: int, strides, pads, out_hw):
    """The windows of zero-padded x as columns.

    Args:
        x: (N, H, W, C), unpadded.
        kh, kw: window size; strides: (sh, sw); pads: (top, bottom, left, right); out_hw: (Ho, Wo).

    Returns:
        (cols_t, grid): cols_t of shape (kh*kw*C, N*Hg*Wg) with cols_t[(i, j, c), (n, p, q)] =
        xp[n, p*sh + i, q*sw + j, c]; grid = (Hg, Wg) is (Hp, Wp) for stride 1 (the columns of
        positions p >= Ho or q >= Wo are garbage) and (Ho, Wo) otherwise.
    """
    n, c = x.shape[0], x.shape[3]
    item = x.itemsize
    if tuple(strides) == (1, 1):
        flat, (hp, wp) = padded_flat(x, kh, kw, pads)
        grid = (hp, wp)
        windows = as_strided(flat, shape=(kh, kw, c, n * hp * wp),
                             strides=(wp * c * item, c * item, item, c * item), writeable=False)
    else:
        xp = pad_spatial(x, pads)
        sn, sh, sw, sc = xp.strides
        grid = tuple(out_hw)
        windows = as_strided(xp, shape=(kh, kw, c, n, *grid),
                             strides=(sh, sw, sc, sn, sh * strides[0], sw * strides[1]),
                             writeable=False)
    cols_t = np.empty(windows.shape, x.dtype)
    np.copyto(cols_t, windows)
    return cols_t.reshape(kh * kw * c, -1), grid


def crop_grid(y_grid: np.ndarray, out_hw, bias: np.ndarray | None = None) -> np.ndarray:
    """y_grid (N, Hg, Wg, C) -> its top-left (N, Ho, Wo, C) corner, contiguous, plus ``bias`` (C,)."""
    n, hg, wg, c = y_grid.shape
    ho, wo = out_hw
    # Broadcast the bias over whole rows of Wo*C values: NumPy then runs long inner loops.
    row = None if bias is None else np.tile(bias, wo)
    if (hg, wg) == (ho, wo):
        if row is not None:
            y_grid.reshape(n * ho, wo * c)[...] += row
        return y_grid
    out = np.empty((n, ho, wo, c), dtype=y_grid.dtype)
    corner = y_grid.reshape(n, hg, wg * c)[:, :ho, :wo * c]
    if row is None:
        np.copyto(out.reshape(n, ho, wo * c), corner)
    else:
        np.add(corner, row, out=out.reshape(n, ho, wo * c))
    return out


def correlate_valid(x: np.ndarray, kernel: np.ndarray, strides, pads, out_hw):
    """Valid correlation of x zero-padded by ``pads`` with kernel (kh, kw, C, c_out).

    Returns (y_grid (N, Hg, Wg, c_out), cols_t, grid); see ``window_matrix`` for the grid.
    """
    kh, kw, c_in, c_out = kernel.shape
    cols_t, grid = window_matrix(x, kh, kw, strides, pads, out_hw)
    y = cols_t.T @ kernel.reshape(kh * kw * c_in, c_out)
    return y.reshape(x.shape[0], grid[0], grid[1], c_out), cols_t, grid


def conv2d_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, strides=(1, 1),
                   padding: str = "valid"):
    """Convolve a batch of images.

    Args:
        x: (N, H, W, c_in).
        kernel: (kh, kw, c_in, c_out).
        bias: (c_out,), or None for no bias.
        strides: (sh, sw).
        padding: "valid" or "same" (TensorFlow's split of the padding).

    Returns:
        (y, cache) with y of shape (N, Ho, Wo, c_out).
    """
    kh, kw = kernel.shape[:2]
    strides = tuple(strides)
    out_hw, pads = window_geometry(x.shape[1], x.shape[2], (kh, kw), strides, padding)
    y_grid, cols_t, grid = correlate_valid(x, kernel, strides, pads, out_hw)
    y = crop_grid(y_grid, out_hw, bias)
    return y, Conv2DCache(cols_t, grid, kernel, x.shape, strides, pads)


def conv2d_input_grad(dy: np.ndarray, kernel: np.ndarray, x_shape, strides, pads) -> np.ndarray:
    """dL/dx of a convolution: a full correlation of dy with the flipped kernel.

    dxp[n, p, q, c] = sum_{i, j, o} dyd[n, p - i, q - j, o] * kernel[i, j, c, o], where dyd is dy
    with (s - 1) zeros inserted between neighbours (stride dilation) and dxp the padded input
    gradient. Only the unpadded part is computed: dx[a, b] is the valid correlation of the frame
    F[u, v] = dyd[u + top - (kh-1), v + left - (kw-1)], of size (H + kh - 1, W + kw - 1), with
    the flipped kernel kernel[kh-1-i, kw-1-j].

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
    top, _, left, _ = pads
    ho, wo = dy.shape[1:3]
    r0, c0 = kh - 1 - top, kw - 1 - left  # where dy[:, 0, 0] lands in the frame
    if (sh, sw) == (1, 1):
        frame, frame_pads = dy, (r0, h + kh - 1 - r0 - ho, c0, w + kw - 1 - c0 - wo)
    else:
        frame = np.zeros((n, h + kh - 1, w + kw - 1, c_out), dtype=dy.dtype)
        frame[:, r0:r0 + (ho - 1) * sh + 1:sh, c0:c0 + (wo - 1) * sw + 1:sw, :] = dy
        frame_pads = (0, 0, 0, 0)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    dx_grid, _, _ = correlate_valid(frame, flipped, (1, 1), frame_pads, (h, w))
    return crop_grid(dx_grid, (h, w))


def conv2d_backward(dy: np.ndarray, cache: Conv2DCache, need_input_grad: bool = True):
    """Gradients of a convolution.

    Args:
        dy: dL/dy, shape (N, Ho, Wo, c_out).
        cache: from ``conv2d_forward``.
        need_input_grad: False skips dx (returned as None), e.g. for a model's first layer.

    Returns:
        (dx, dkernel, dbias) with shapes (N, H, W, c_in), (kh, kw, c_in, c_out), (c_out,).
    """
    n, ho, wo, c_out = dy.shape
    hg, wg = cache.grid
    if (hg, wg) == (ho, wo):
        dy_grid = dy.reshape(-1, c_out)
    else:  # zeros at the dropped grid positions, so their garbage columns add nothing
        dy_grid = np.zeros((n, hg, wg * c_out), dtype=dy.dtype)
        dy_grid[:, :ho, :wo * c_out] = dy.reshape(n, ho, wo * c_out)
        dy_grid = dy_grid.reshape(-1, c_out)
    dkernel = (cache.cols_t @ dy_grid).reshape(cache.kernel.shape)
    # Sum whole rows first (long inner loops), then the Wo positions of the summed row.
    dbias = dy.reshape(n * ho, wo * c_out).sum(axis=0).reshape(wo, c_out).sum(axis=0)
    dx = None
    if need_input_grad:
        dx = conv2d_input_grad(dy, cache.kernel, cache.x_shape, cache.strides, cache.pads)
    return dx, dkernel, dbias
