"""Convolution, ReLU and max pooling in one forward pass without caches, for inference.

``relu(conv(x) + bias)`` max-pooled equals ``relu(max(conv(x)) + bias)``: adding a constant and
ReLU are non-decreasing, and so is float rounding, so they commute with the maximum exactly. Pooling
the raw correlation first skips cropping its grid and applies bias and ReLU to a pool-size smaller
array, with the same numbers as the three layers one after another.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from scratch.ops.conv import window_matrix, window_rows
from scratch.ops.padding import window_geometry
from scratch.ops.pool import max_pool_tiles
from scratch.ops.workspace import Workspace

# Below this many contiguous values per window row, the transposed window matrix is faster to build.
MIN_RUN_FOR_ROWS = 8


def pool_tiles_conv_output(conv_out_hw, pool_size, pool_strides, pool_padding: str) -> bool:
    """Whether a max pool takes non-overlapping windows of the (Ho, Wo) conv output without padding,
    as ``conv2d_relu_max_pool2d`` requires."""
    _, pads = window_geometry(*conv_out_hw, pool_size, pool_strides, pool_padding)
    return tuple(pool_strides) == tuple(pool_size) and not any(pads)


def conv2d_relu_max_pool2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, strides,
                           padding: str, pool_size, pool_padding: str,
                           workspace: Workspace | None = None) -> np.ndarray:
    """Conv2D -> ReLU -> MaxPool2D (strides = pool_size) forward, no caches.

    The pool must tile the convolution's output without padding (``pool_tiles_conv_output``).

    Args:
        x: (N, H, W, c_in).
        kernel: (kh, kw, c_in, c_out); bias: (c_out,); strides: the convolution's (sh, sw).
        padding, pool_padding: "valid" or "same", of the convolution and of the pool.
        pool_size: (ph, pw).
        workspace: where the window matrix and the correlation grid live, so that consecutive
            batches reuse them; None allocates them afresh.

    Returns:
        (N, Hq, Wq, c_out), bit for bit the output of the three layers.
    """
    kh, kw, c_in, c_out = kernel.shape
    strides = tuple(strides)
    out_hw, pads = window_geometry(x.shape[1], x.shape[2], (kh, kw), strides, padding)
    pooled_hw, _ = window_geometry(*out_hw, pool_size, pool_size, pool_padding)
    workspace = Workspace() if workspace is None else workspace
    empty = partial(workspace.empty, "windows")
    if strides == (1, 1) and kw * c_in >= MIN_RUN_FOR_ROWS:
        cols, grid = window_rows(x, kh, kw, pads, empty)
    else:
        cols_t, grid = window_matrix(x, kh, kw, strides, pads, out_hw, empty)
        cols = cols_t.T
    y_grid = workspace.empty("grid", (cols.shape[0], c_out), x.dtype)
    np.matmul(cols, kernel.reshape(kh * kw * c_in, c_out), out=y_grid)
    y_grid = y_grid.reshape(x.shape[0], *grid, c_out)
    y = max_pool_tiles(y_grid, pool_size, pooled_hw)
    # Bias over whole rows of Wq*c_out values: NumPy then runs long inner loops.
    rows = y.reshape(-1, pooled_hw[1] * c_out)
    rows += np.tile(bias, pooled_hw[1])
    np.maximum(rows, 0, out=rows)
    return y
