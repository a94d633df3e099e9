"""Conv2D (stride 1) -> ReLU -> MaxPool2D (strides = pool size) as one op, forward and backward.

The three layers one after another spend most of their time on short strided runs: the window
matrix of a many-channel NHWC input gathers C values at a time, and the pool compares every other
pixel. This op computes the same numbers on a layout where each of those steps is a few long
contiguous runs:

- Channels first. The op takes and returns (C, N, H, W) arrays, so that one channel of the whole
  batch is contiguous; ``scratch.fusion`` converts from and to NHWC once per chain of such blocks.
- Phases. The pool's window offset (a, b) splits the convolution's outputs into ph*pw phases,
  z[a, b][o, n, p, q] = conv(x)[o, n, ph*p + a, pw*q + b]. The pool is the elementwise maximum of
  the phases, and its gradient goes to the first phase (row-major: TensorFlow's tie rule) that
  holds the maximum.
- Split input. The zero-padded input is split the same way into planes
  xs[c, r, s][n, P, Q] = xp[c, n, ph*P + r, pw*Q + s], each flattened with the images back to
  back. Row (i, j, c) of the window matrix of phase (a, b) is then one contiguous run of one plane,
  shifted by ((a+i) // ph) * Ws + (b+j) // pw, as in ``scratch.ops.conv.window_matrix`` with
  stride 1. Runs cover every (P, Q) of the (Hs, Ws) split grid; positions with p >= Hq or q >= Wq
  straddle an image edge, are computed, and get zero gradient.

``relu(max(t)) == max(relu(t))`` exactly, and where that maximum is positive the first maximal
phase of ``t = z + bias`` is the first maximal phase of ``relu(t)``; where it is not, ReLU's
gradient is zero. So forward and backward are those of the three layers, up to the order in which
BLAS sums a dot product.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from scratch.ops.padding import window_geometry

# Extra elements per row of the large products: BLAS writes rows that lie a multiple of 4 KiB
# apart several times slower (they compete for the same cache sets).
_ROW_PAD = 16
# The kernel gradient sums over about this many positions per BLAS call (see ``_kernel_grad``).
_GRAD_CHUNK = 2048


class SplitGeometry(NamedTuple):
    x_shape: tuple    # (C, N, H, W), the unpadded input
    pads: tuple       # (top, bottom, left, right), the convolution's zero padding
    pool: tuple       # (ph, pw), also the pool's strides
    split: tuple      # (Hs, Ws): the grid of one phase plane of the padded input, per image
    pooled: tuple     # (Hq, Wq): the pooled output
    tail: int         # zeros after the last plane, so that every shifted run lies inside

    @property
    def plane(self) -> int:
        """Positions of one phase plane: N*Hs*Ws."""
        return self.x_shape[1] * self.split[0] * self.split[1]

    @property
    def phases(self) -> int:
        return self.pool[0] * self.pool[1]


class ConvReluPoolCache(NamedTuple):
    cols_t: np.ndarray   # (kh*kw*C, ph*pw*N*Hs*Ws): windows, rows (i, j, c), columns (a, b, n, p, q)
    t: np.ndarray        # (c_out, ph*pw, N*Hs*Ws): conv + bias on the split grid, per phase
    m: np.ndarray        # (c_out, N*Hs*Ws): the maximum over phases
    y: np.ndarray        # (c_out, N, Hq, Wq): the output, relu(m) on the valid grid
    kernel: np.ndarray   # (kh, kw, C, c_out)
    geometry: SplitGeometry


def pool_tiles_conv_output(conv_out_hw, pool_size, pool_strides, pool_padding: str) -> bool:
    """Whether a max pool takes non-overlapping windows of the (Ho, Wo) conv output without padding,
    as the ops of this module require."""
    _, pads = window_geometry(*conv_out_hw, pool_size, pool_strides, pool_padding)
    return tuple(pool_strides) == tuple(pool_size) and not any(pads)


def split_geometry(x_shape, kernel_hw, padding: str, pool_size) -> SplitGeometry:
    """Where the phase planes of a stride-1 convolution's padded input lie, and their size.
    x_shape is (C, N, H, W)."""
    _, _, h, w = x_shape
    kh, kw = kernel_hw
    ph, pw = pool_size
    (ho, wo), pads = window_geometry(h, w, (kh, kw), (1, 1), padding)
    top, bottom, left, right = pads
    hs, ws = -(-(h + top + bottom) // ph), -(-(w + left + right) // pw)
    tail = ((ph + kh - 2) // ph) * ws + (pw + kw - 2) // pw
    return SplitGeometry(tuple(x_shape), pads, (ph, pw), (hs, ws), (ho // ph, wo // pw), tail)


def _plane_slices(g: SplitGeometry):
    """For each phase (r, s): the rows and columns of the split grid that hold input pixels, and
    the input's rows and columns for them. Every input pixel lies in exactly one phase."""
    (_, _, h, w), (top, _, left, _), (ph, pw) = g.x_shape, g.pads, g.pool
    for r in range(ph):
        p0 = -(-(top - r) // ph) if top > r else 0   # the first P with ph*P + r >= top
        h0 = ph * p0 + r - top
        rows = len(range(h0, h, ph))
        for s in range(pw):
            q0 = -(-(left - s) // pw) if left > s else 0
            w0 = pw * q0 + s - left
            cols = len(range(w0, w, pw))
            yield (r, s), (slice(p0, p0 + rows), slice(q0, q0 + cols)), (slice(h0, h, ph), slice(w0, w, pw))


def _planes(data: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """(C, ph, pw, N, Hs, Ws) view of flat planes (a tail allowed) or of (C, ph*pw*N*Hs*Ws) rows."""
    c, n = g.x_shape[:2]
    if data.ndim == 1:
        data = data[:c * g.phases * g.plane]
    return data.reshape(c, *g.pool, n, *g.split)


def split_planes(x: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """x (C, N, H, W) -> flat (C*ph*pw*N*Hs*Ws + tail,): the padded input's phase planes xs[c, r, s],
    each (N, Hs, Ws), back to back, zero outside the image."""
    flat = np.zeros(g.x_shape[0] * g.phases * g.plane + g.tail, x.dtype)
    planes = _planes(flat, g)
    for (r, s), (rows, cols), (h_in, w_in) in _plane_slices(g):
        planes[:, r, s, :, rows, cols] = x[:, :, h_in, w_in]
    return flat


def merge_planes(data: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """The inverse of ``split_planes`` on the image: planes as ``_planes`` takes them ->
    (C, N, H, W), padding dropped."""
    planes = _planes(data, g)
    x = np.empty(g.x_shape, data.dtype)
    for (r, s), (rows, cols), (h_in, w_in) in _plane_slices(g):
        x[:, :, h_in, w_in] = planes[:, r, s, :, rows, cols]
    return x


@lru_cache(maxsize=64)
def _window_starts(g: SplitGeometry, kh: int, kw: int) -> np.ndarray:
    """Where each row of the window matrix starts in the flat planes: (kh, kw, C, ph*pw) int64;
    row (i, j, c) of phase (a, b) is plane (c, (a+i) % ph, (b+j) % pw) shifted by
    ((a+i) // ph) * Ws + (b+j) // pw."""
    (ph, pw), ws = g.pool, g.split[1]
    i, j, c, a, b = np.ix_(range(kh), range(kw), range(g.x_shape[0]), range(ph), range(pw))
    u, v = a + i, b + j
    starts = ((c * ph + u % ph) * pw + v % pw) * g.plane + (u // ph) * ws + v // pw
    return starts.reshape(kh, kw, g.x_shape[0], ph * pw)


def split_window_matrix(flat: np.ndarray, g: SplitGeometry, kh: int, kw: int) -> np.ndarray:
    """The window matrix (kh*kw*C, ph*pw*N*Hs*Ws) of the split planes: rows (i, j, c), columns
    (a, b, n, p, q) with entry xp[c, n, ph*p + a + i, pw*q + b + j]; one gather of contiguous runs."""
    runs = sliding_window_view(flat, g.plane)
    return runs[_window_starts(g, kh, kw).ravel()].reshape(kh * kw * g.x_shape[0], -1)


@lru_cache(maxsize=64)
def _input_grad_starts(g: SplitGeometry, kh: int, kw: int, c_out: int) -> np.ndarray:
    """Where each row of the input gradient's window matrix starts in the flat output gradient:
    (kh*kw*c_out*ph*pw,) in the order (i, j, o, r, s). Input phase (r, s) at (P, Q) receives
    kernel offset (i, j) from output phase a = (r-i) % ph, b = (s-j) % pw at
    (P - (a+i) // ph, Q - (b+j) // pw): the run of plane (o, a, b) shifted back by that much."""
    (ph, pw), ws = g.pool, g.split[1]
    i, j, o, r, s = np.ix_(range(kh), range(kw), range(c_out), range(ph), range(pw))
    a, b = (r - i) % ph, (s - j) % pw
    starts = g.tail + ((o * ph + a) * pw + b) * g.plane - ((a + i) // ph) * ws - (b + j) // pw
    return starts.ravel()


def _padded_rows(rows: int, cols: int, dtype) -> np.ndarray:
    """An uninitialized (rows, cols) array whose rows are ``_ROW_PAD`` elements further apart."""
    return np.empty((rows, cols + _ROW_PAD), dtype)[:, :cols]


def _correlate_split(x: np.ndarray, kernel: np.ndarray, padding: str, pool_size):
    """The convolution of x (C, N, H, W) without bias on the split grid:
    (geometry, cols_t, z (c_out, ph*pw, N*Hs*Ws))."""
    kh, kw, c, c_out = kernel.shape
    g = split_geometry(x.shape, (kh, kw), padding, pool_size)
    cols_t = split_window_matrix(split_planes(x, g), g, kh, kw)
    z = _padded_rows(c_out, cols_t.shape[1], x.dtype)
    np.matmul(kernel.reshape(kh * kw * c, c_out).T, cols_t, out=z)
    return g, cols_t, z.reshape(c_out, g.phases, g.plane)


def _kernel_grad(cols_t: np.ndarray, dz: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """cols_t (K, M) @ dz.T (M, c_out) as a sum of products over chunks of whole images' grids.

    With K and c_out in the tens and M in the tens of thousands, one product runs BLAS at a fifth
    of its speed; chunks of about ``_GRAD_CHUNK`` positions, multiplied in one batched call and
    summed, keep it fast (measured 0.80 -> 0.15 ms for conv1 of the cnn at batch 100).
    """
    per_image = g.split[0] * g.split[1]
    images = g.phases * g.x_shape[1]
    step = max(d for d in range(1, images + 1) if images % d == 0 and d * per_image <= max(_GRAD_CHUNK, per_image))
    chunks = images // step
    a = cols_t.reshape(cols_t.shape[0], chunks, -1).transpose(1, 0, 2)
    b = dz.reshape(dz.shape[0], chunks, -1).transpose(1, 2, 0)
    return np.matmul(a, b).sum(axis=0)


def _phase_max(t: np.ndarray) -> np.ndarray:
    """The elementwise maximum (c_out, M) over the phases of t (c_out, phases, M)."""
    m = np.maximum(t[:, 0], t[:, 1]) if t.shape[1] > 1 else t[:, 0].copy()
    for k in range(2, t.shape[1]):
        np.maximum(m, t[:, k], out=m)
    return m


def _valid(grid: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """The (c_out, N, Hq, Wq) valid corner of a (c_out, N*Hs*Ws) array on the split grid."""
    (hq, wq), n = g.pooled, g.x_shape[1]
    return grid.reshape(-1, n, *g.split)[:, :, :hq, :wq]


def conv_relu_pool_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, padding: str,
                           pool_size):
    """Conv2D (stride 1) -> ReLU -> MaxPool2D (strides = pool_size, tiling the conv output).

    Args:
        x: (C, N, H, W), channels first.
        kernel: (kh, kw, C, c_out); bias: (c_out,).
        padding: the convolution's "valid" or "same".
        pool_size: (ph, pw); the pool must not pad (``pool_tiles_conv_output``).

    Returns:
        (y, cache) with y (c_out, N, Hq, Wq), the three layers' output, channels first.
    """
    g, cols_t, t = _correlate_split(x, kernel, padding, pool_size)
    t += bias[:, None, None]
    m = _phase_max(t)
    y = np.maximum(_valid(m, g), 0)
    return y, ConvReluPoolCache(cols_t, t, m, y, kernel, g)


def conv_relu_pool_infer(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, padding: str,
                         pool_size) -> np.ndarray:
    """``conv_relu_pool_forward``'s output (c_out, N, Hq, Wq), bit for bit, without a cache.

    The bias is added after the maximum over phases, to a pool-size smaller array: adding a
    constant and rounding are non-decreasing, so ``max(z) + b == max(z + b)`` exactly.
    """
    g, _, z = _correlate_split(x, kernel, padding, pool_size)
    y = _valid(_phase_max(z), g) + bias[:, None, None, None]
    return np.maximum(y, 0, out=y)


def conv_relu_pool_backward(dy: np.ndarray, cache: ConvReluPoolCache, need_input_grad: bool = True):
    """Gradients of ``conv_relu_pool_forward``.

    Args:
        dy: dL/dy, (c_out, N, Hq, Wq).
        cache: from ``conv_relu_pool_forward``.
        need_input_grad: False skips dx (returned as None).

    Returns:
        (dx, dkernel, dbias): (C, N, H, W), (kh, kw, C, c_out), (c_out,).
    """
    t, m, g = cache.t, cache.m, cache.geometry
    kh, kw, c, c_out = cache.kernel.shape
    # dL/dm on the split grid: ReLU's gradient on the valid corner, zero at straddling positions.
    dm = np.zeros_like(m)
    np.multiply(dy, cache.y > 0, out=_valid(dm, g))
    # The first phase holding the maximum takes the gradient. dz sits after ``tail`` zeros, where
    # the input gradient's windows reach back to.
    dz_flat = np.empty(g.tail + t.size, dy.dtype)
    dz_flat[:g.tail] = 0
    dz = dz_flat[g.tail:].reshape(c_out, -1)
    dz_phases = dz.reshape(t.shape)
    taken = None
    for k in range(g.phases):
        hit = t[:, k] == m
        if taken is None:
            taken = hit
        else:
            hit &= ~taken
            taken |= hit
        np.multiply(dm, hit, out=dz_phases[:, k])
    dkernel = _kernel_grad(cache.cols_t, dz, g).reshape(cache.kernel.shape)
    dbias = dm.sum(axis=1)
    dx = None
    if need_input_grad:
        # dL/dx = sum over (i, j, o) of kernel[i, j, c, o] times dz shifted back: a window matrix of
        # dz (rows (i, j, o), columns (r, s, n, P, Q)) times the kernel, on the input's split grid.
        windows = sliding_window_view(dz_flat, g.plane)[_input_grad_starts(g, kh, kw, c_out)]
        dxs = _padded_rows(c, g.phases * g.plane, dy.dtype)
        np.matmul(cache.kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * c_out),
                  windows.reshape(kh * kw * c_out, -1), out=dxs)
        dx = merge_planes(dxs, g)
    return dx, dkernel, dbias
