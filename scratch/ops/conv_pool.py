"""Conv2D (stride 1) -> ReLU -> MaxPool2D (strides = pool size) as one op, forward and backward.

The three layers one after another are bound by memory traffic, much of it in short strided
runs: the window matrix of a many-channel NHWC input gathers C values at a time, the pool
compares every other pixel, and each layer writes a full-size output for the next to read. This
op works channels first and batch last, (C, H, W, N), on the input split by the pool's phases
(``scratch.ops.phase_split``): the pixels under one pool block's windows are contiguous runs of
the split planes, copied once into one window matrix for all phases; the pool is then an
elementwise maximum over phases. ``scratch.fusion`` converts from and to NHWC once per chain of
such blocks.

The maximum and its first phase are taken over the convolution before the bias, which is then
added to the pool-size smaller maxima: adding a constant and rounding are non-decreasing, so
``max(z) + b == max(z + b)`` exactly, and the first maximal phase of z is a maximal phase of
``z + b``; it is the first one (TensorFlow's tie rule) unless rounding the addition makes two
different values of z equal, a near-tie that the convolution's own summation order can flip
as well. ``relu(max(t)) == max(relu(t))`` exactly; where that maximum is not positive, ReLU's
gradient is zero. So the output and the gradients are the three layers' up to the order in
which BLAS sums the same products. The forward pass marks in ``first`` where ReLU stops the
gradient, so the backward pass needs nothing else to route it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scratch.ops.padding import window_geometry
from scratch.ops.phase_split import (
    SplitGeometry,
    add_block_windows,
    block_windows,
    merge_planes,
    split_geometry,
    split_planes,
)

# Extra elements per row of the large products: BLAS writes rows that lie a multiple of 4 KiB
# apart several times slower (they compete for the same cache sets).
_ROW_PAD = 16
# Kernel gradients with fewer entries than _PLAIN_PRODUCT sum over about _GRAD_CHUNK positions
# per BLAS call (``_summed_products``).
_GRAD_CHUNK = 512
_PLAIN_PRODUCT = 4096
# ``first``'s mark of positions whose gradient no phase receives; pools have fewer phases.
_NO_PHASE = np.uint8(255)


class ConvReluPoolCache(NamedTuple):
    windows: np.ndarray  # (Dh*ph*Dw*pw*C + 1, Hq*Wq*N): the pool blocks' window matrix, then a
                         # row of ones
    first: np.ndarray    # (c_out, Hq*Wq*N) uint8: the first phase holding the maximum of the
                         # convolution, _NO_PHASE where the output is not positive
    kernel: np.ndarray   # (kh, kw, C, c_out)
    weights: np.ndarray  # (ph*pw*c_out, Dh*ph*Dw*pw*C): the kernel as weights of the window rows
    geometry: SplitGeometry


def pool_tiles_conv_output(conv_out_hw, pool_size, pool_strides, pool_padding: str) -> bool:
    """Whether a max pool takes non-overlapping windows of the (Ho, Wo) conv output without padding,
    as the ops of this module require, with fewer than 255 phases (``first`` is uint8)."""
    _, pads = window_geometry(*conv_out_hw, pool_size, pool_strides, pool_padding)
    return (tuple(pool_strides) == tuple(pool_size) and not any(pads)
            and pool_size[0] * pool_size[1] < _NO_PHASE)


def _padded_rows(rows: int, cols: int, dtype) -> np.ndarray:
    """An uninitialized (rows, cols) array whose rows are ``_ROW_PAD`` elements further apart."""
    return np.empty((rows, cols + _ROW_PAD), dtype)[:, :cols]


def _summed_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (A, M) @ b.T (M, B) for M in the thousands of positions.

    With A*B in the hundreds and M in the tens of thousands, one product keeps BLAS far from its
    speed; chunks of about ``_GRAD_CHUNK`` positions, multiplied in one batched call and summed,
    keep it busy. Larger results come from one product with the operand of more rows on the left
    (docs/performance.md has the measurements).
    """
    m = a.shape[1]
    # The fewest chunks of at most _GRAD_CHUNK positions that split M evenly.
    chunks = next(d for d in range(-(-m // _GRAD_CHUNK), m + 1) if m % d == 0)
    if a.shape[0] * b.shape[0] >= _PLAIN_PRODUCT or m // chunks < _GRAD_CHUNK // 8:
        return a @ b.T if a.shape[0] >= b.shape[0] else (b @ a.T).T
    return np.matmul(a.reshape(a.shape[0], chunks, -1).transpose(1, 0, 2),
                     b.reshape(b.shape[0], chunks, -1).transpose(1, 2, 0)).sum(axis=0)


def _pooled(grid: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """A (c_out, Hq*Wq*N) array over the pool blocks as (c_out, Hq, Wq, N)."""
    (hq, wq), n = g.pooled, g.x_shape[3]
    return grid.reshape(-1, hq, wq, n)


def _block_kernel(kernel: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """The kernel (kh, kw, C, c_out) as weights of ``block_windows``' rows: (ph, pw*c_out,
    Dh*ph*Dw*pw*C), row (a, b, o) holding kernel[i, j, c, o] at column (a + i, b + j, c), zeros
    elsewhere: each phase's products come in the (i, j, c) order of
    ``scratch.ops.conv.window_matrix``, with zero terms in between."""
    kh, kw, c, c_out = kernel.shape
    (ph, pw), (dh, dw) = g.pool, g.span
    weights = np.zeros((ph, pw, c_out, dh * ph, dw * pw, c), kernel.dtype)
    for a in range(ph):
        for b in range(pw):
            weights[a, b, :, a:a + kh, b:b + kw] = kernel.transpose(3, 0, 1, 2)
    return weights.reshape(ph, pw * c_out, -1)


def _fold_block_kernel(weights: np.ndarray, kernel_shape: tuple, g: SplitGeometry) -> np.ndarray:
    """The adjoint of ``_block_kernel``: (ph*pw*c_out, Dh*ph*Dw*pw*C) -> (kh, kw, C, c_out), each
    kernel entry summed over the ph*pw places it occupies."""
    kh, kw, c, c_out = kernel_shape
    (ph, pw), (dh, dw) = g.pool, g.span
    blocks = weights.reshape(ph, pw, c_out, dh * ph, dw * pw, c)
    kernel = np.zeros((c_out, kh, kw, c), weights.dtype)
    for a in range(ph):
        for b in range(pw):
            kernel += blocks[a, b, :, a:a + kh, b:b + kw]
    return np.ascontiguousarray(kernel.transpose(1, 2, 3, 0))


def _phase_outputs(x: np.ndarray, kernel: np.ndarray, padding: str, pool_size):
    """The convolution (no bias) of x (C, H, W, N) at every output phase.

    All phases come from one copy of the pool blocks' window matrix (``block_windows``),
    which holds each input pixel Dh*Dw times where per-phase window matrices would hold it
    kh*kw times: less copying, and products with pw*c_out rows where BLAS runs well. Phase row a
    reads only window rows u in [a, a + kh), a contiguous block.

    Returns (geometry, window matrix (Dh*ph*Dw*pw*C + 1, Hq*Wq*N) whose last row is ones (the
    bias's "input" in the backward products), the kernel as weights of its other rows
    (``_block_kernel``), z (ph*pw, c_out, Hq*Wq*N)).
    """
    kh, kw, c, c_out = kernel.shape
    g = split_geometry(x.shape, (kh, kw), padding, pool_size)
    window_view = block_windows(split_planes(x, g), g)
    rows = window_view.size // g.outputs
    windows = _padded_rows(rows + 1, g.outputs, x.dtype)
    np.copyto(windows[:rows].reshape(window_view.shape), window_view)
    windows[rows] = 1
    ph, pw = g.pool
    z = _padded_rows(g.phases * c_out, g.outputs, x.dtype)
    weights, rows = _block_kernel(kernel, g), g.span[1] * pw * c
    for a in range(ph):
        np.matmul(weights[a, :, a * rows:(a + kh) * rows], windows[a * rows:(a + kh) * rows],
                  out=z[a * pw * c_out:(a + 1) * pw * c_out])
    return g, windows, weights, z.reshape(g.phases, c_out, g.outputs)


def _max_and_first(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maximum over the phases of z (phases, c_out, P), computed in place in z[0], and the
    first phase that holds it ((c_out, P) uint8)."""
    m = z[0]
    first = np.zeros(m.shape, np.uint8)
    greater, step = np.empty(m.shape, bool), np.empty(m.shape, np.uint8)
    for phase in range(1, len(z)):
        t = z[phase]
        # Strictly greater: on ties the earlier phase keeps the gradient. Phases only increase,
        # so the latest phase that was greater is a maximum. (uint8 views of the comparisons:
        # arithmetic on bool arrays would cast them.)
        if phase == 1:
            np.greater(t, m, out=first.view(bool))
        else:
            np.greater(t, m, out=greater)
            np.multiply(greater.view(np.uint8), np.uint8(phase), out=step)
            np.maximum(first, step, out=first)
        np.maximum(m, t, out=m)
    return m, first


def conv_relu_pool_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, padding: str,
                           pool_size):
    """Conv2D (stride 1) -> ReLU -> MaxPool2D (strides = pool_size, tiling the conv output).

    Args:
        x: (C, H, W, N), channels first, batch last.
        kernel: (kh, kw, C, c_out); bias: (c_out,).
        padding: the convolution's "valid" or "same".
        pool_size: (ph, pw); the pool must not pad (``pool_tiles_conv_output``).

    Returns:
        (y, cache) with y (c_out, Hq, Wq, N), the three layers' output up to rounding.
    """
    g, windows, weights, z = _phase_outputs(x, kernel, padding, pool_size)
    m, first = _max_and_first(z)
    y = _add_bias_relu(_pooled(m, g), bias)
    # No phase receives a gradient where ReLU stops it.
    stopped = np.less_equal(y, 0).view(np.uint8)
    valid_first = _pooled(first, g)
    np.bitwise_or(valid_first, np.multiply(stopped, _NO_PHASE, out=stopped), out=valid_first)
    return y, ConvReluPoolCache(windows, first, kernel, weights.reshape(-1, weights.shape[-1]), g)


def _add_bias_relu(m: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """relu(m + bias) of the pooled maxima m (c_out, Hq, Wq, N), in a new array.

    The bias is added after the maximum over phases, to a pool-size smaller array: adding a
    constant and rounding are non-decreasing, so ``max(z) + b == max(z + b)`` exactly.
    """
    y = m + bias[:, None, None, None]
    return np.maximum(y, 0, out=y)


def conv_relu_pool_infer(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, padding: str,
                         pool_size) -> np.ndarray:
    """``conv_relu_pool_forward``'s output (c_out, Hq, Wq, N), bit for bit, without a cache."""
    g, _, _, z = _phase_outputs(x, kernel, padding, pool_size)
    m = z[0]
    for phase in range(1, g.phases):
        np.maximum(m, z[phase], out=m)
    return _add_bias_relu(_pooled(m, g), bias)


def conv_relu_pool_routes(cache: ConvReluPoolCache) -> np.ndarray:
    """Where ``conv_relu_pool_backward`` sends each pooled output's gradient: (c_out, Ho, Wo, N)
    bool over the convolution's output, True at the first maximal phase of every window whose
    output is positive (ReLU stops the others)."""
    g = cache.geometry
    (_, h, w, n), (top, bottom, left, right) = g.x_shape, g.pads
    kh, kw, _, c_out = cache.kernel.shape
    (ph, pw), (hq, wq) = g.pool, g.pooled
    first = _pooled(cache.first, g)
    routes = np.zeros((c_out, h + top + bottom - kh + 1, w + left + right - kw + 1, n), bool)
    for a in range(ph):
        for b in range(pw):
            np.equal(first, a * pw + b, out=routes[:, a:hq * ph:ph, b:wq * pw:pw])
    return routes


def conv_relu_pool_backward(dy: np.ndarray, cache: ConvReluPoolCache, need_input_grad: bool = True):
    """Gradients of ``conv_relu_pool_forward``.

    Args:
        dy: dL/dy, (c_out, Hq, Wq, N).
        cache: from ``conv_relu_pool_forward``.
        need_input_grad: False skips dx (returned as None).

    Returns:
        (dx, dkernel, dbias): (C, H, W, N), (kh, kw, C, c_out), (c_out,).
    """
    g = cache.geometry
    c_out = cache.kernel.shape[3]
    grid = np.ascontiguousarray(dy).reshape(cache.first.shape)
    # dL/dz of every phase: dy where that phase held the first maximum and ReLU let it through.
    dz = np.empty((g.phases, c_out, g.outputs), dy.dtype)
    routed = np.empty(grid.shape, bool)
    for phase in range(g.phases):
        # The mask cast to floats by a copy: multiplying by the bools would cast them in a
        # slower buffered loop.
        np.copyto(dz[phase], np.equal(cache.first, phase, out=routed).view(np.uint8))
        np.multiply(dz[phase], grid, out=dz[phase])
    dz = dz.reshape(-1, g.outputs)
    # z = weights @ windows, so dL/dweights = dz @ windows.T and dL/dwindows = weights.T @ dz;
    # the windows' row of ones gives the bias's gradient, summed over the phases.
    products = _summed_products(dz, cache.windows)
    dkernel = _fold_block_kernel(products[:, :-1], cache.kernel.shape, g)
    dbias = products[:, -1].reshape(g.phases, c_out).sum(axis=0)
    if not need_input_grad:
        return None, dkernel, dbias
    dwindows = np.matmul(cache.weights.T, dz,
                         out=_padded_rows(cache.weights.shape[1], g.outputs, dy.dtype))
    return merge_planes(add_block_windows(dwindows, g), g), dkernel, dbias
