"""The input of a stride-1 convolution split by a max pool's phases, channels first, batch last.

Arrays here are (C, H, W, N): a spatial slice of them keeps runs of N contiguous values, so the
copies below move long runs, not single pixels. A pool with strides = pool size (ph, pw) over a
convolution's output takes, from each of its windows, the output at offset (a, b): the ph*pw
phases z[a, b][o, p, q, n] = z[o, ph*p + a, pw*q + b, n]. The zero-padded input (C, Hp, Wp, N)
is split the same way into planes xs[c, r, s][P, Q, n] = xp[c, ph*P + r, pw*Q + s, n] of
(Hs, Ws, N) positions, flattened and laid back to back. The input pixel (ph*p + u, pw*q + v) of
a pool block (p, q) is then plane (c, u % ph, v % pw) at the block (p + u // ph, q + v // pw):
over the (q, n) of one row p at once, one contiguous run of Wq*N values of that plane, shifted
by ((u // ph) * Ws + v // pw) * N (the stride-1 trick of ``scratch.ops.conv.window_matrix``,
per pool block). Only the Hq x Wq pool blocks of the output are gathered: the grid's other
positions would reach past the image.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from scratch.ops.padding import window_geometry


class SplitGeometry(NamedTuple):
    x_shape: tuple    # (C, H, W, N), the unpadded input
    pads: tuple       # (top, bottom, left, right), the convolution's zero padding
    pool: tuple       # (ph, pw), also the pool's strides
    split: tuple      # (Hs, Ws): the grid of one phase plane of the padded input, per image
    pooled: tuple     # (Hq, Wq): the pooled output
    span: tuple       # (Dh, Dw): the pool blocks down and across that one pool block's windows
                      # reach
    tail: int         # zeros after the last plane, so that every shifted run lies inside

    @property
    def plane(self) -> int:
        """Positions of one phase plane: Hs*Ws*N."""
        return self.split[0] * self.split[1] * self.x_shape[3]

    @property
    def outputs(self) -> int:
        """Positions whose outputs are computed: the pool blocks of the output, Hq*Wq*N."""
        return self.pooled[0] * self.pooled[1] * self.x_shape[3]

    @property
    def phases(self) -> int:
        return self.pool[0] * self.pool[1]


def split_geometry(x_shape, kernel_hw, padding: str, pool_size) -> SplitGeometry:
    """Where the phase planes of a stride-1 convolution's padded input lie, and their size.
    x_shape is (C, H, W, N)."""
    return _split_geometry(tuple(x_shape), tuple(kernel_hw), padding, tuple(pool_size))


# Training and evaluation meet a handful of shapes, each thousands of times.
@functools.lru_cache(maxsize=64)
def _split_geometry(x_shape: tuple, kernel_hw: tuple, padding: str, pool_size: tuple
                    ) -> SplitGeometry:
    _, h, w, n = x_shape
    kh, kw = kernel_hw
    ph, pw = pool_size
    (ho, wo), pads = window_geometry(h, w, (kh, kw), (1, 1), padding)
    top, bottom, left, right = pads
    hs, ws = -(-(h + top + bottom) // ph), -(-(w + left + right) // pw)
    dh, dw = (ph + kh - 2) // ph + 1, (pw + kw - 2) // pw + 1
    return SplitGeometry(tuple(x_shape), pads, (ph, pw), (hs, ws), (ho // ph, wo // pw), (dh, dw),
                         ((dh - 1) * ws + dw - 1) * n)


@functools.lru_cache(maxsize=64)
def _plane_slices(g: SplitGeometry) -> tuple:
    """For each phase (r, s): the rows and columns of the split grid that hold input pixels, and
    the input's rows and columns for them. Every input pixel lies in exactly one phase."""
    (_, h, w, _), (top, _, left, _), (ph, pw) = g.x_shape, g.pads, g.pool
    slices = []
    for r in range(ph):
        p0 = -(-(top - r) // ph) if top > r else 0   # the first P with ph*P + r >= top
        h0 = ph * p0 + r - top
        rows = len(range(h0, h, ph))
        for s in range(pw):
            q0 = -(-(left - s) // pw) if left > s else 0
            w0 = pw * q0 + s - left
            cols = len(range(w0, w, pw))
            slices.append(((r, s), (slice(p0, p0 + rows), slice(q0, q0 + cols)),
                           (slice(h0, h, ph), slice(w0, w, pw))))
    return tuple(slices)


def _planes(data: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """(C, ph, pw, Hs, Ws, N) view of flat planes (a tail allowed)."""
    c, n = g.x_shape[0], g.x_shape[3]
    return data[:c * g.phases * g.plane].reshape(c, *g.pool, *g.split, n)


def split_planes(x: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """x (C, H, W, N) -> flat (C*ph*pw*Hs*Ws*N + tail,): the padded input's phase planes
    xs[c, r, s], each (Hs, Ws, N), back to back, zero outside the image."""
    flat = np.zeros(g.x_shape[0] * g.phases * g.plane + g.tail, x.dtype)
    planes = _planes(flat, g)
    for (r, s), (rows, cols), (h_in, w_in) in _plane_slices(g):
        planes[:, r, s, rows, cols] = x[:, h_in, w_in]
    return flat


def merge_planes(data: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """The inverse of ``split_planes`` on the image: flat planes -> (C, H, W, N), padding
    dropped."""
    planes = _planes(data, g)
    x = np.empty(g.x_shape, data.dtype)
    for (r, s), (rows, cols), (h_in, w_in) in _plane_slices(g):
        x[:, h_in, w_in] = planes[:, r, s, rows, cols]
    return x


def _block_view(flat: np.ndarray, g: SplitGeometry, writeable: bool) -> np.ndarray:
    c, (ph, pw), (dh, dw), ws, n = g.x_shape[0], g.pool, g.span, g.split[1], g.x_shape[3]
    (hq, wq), item = g.pooled, flat.itemsize
    return as_strided(flat, (dh, ph, dw, pw, c, hq, wq * n),
                      (ws * n * item, pw * g.plane * item, n * item, g.plane * item,
                       g.phases * g.plane * item, ws * n * item, item),
                      writeable=writeable)


def block_windows(flat: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """The window matrix of the pool blocks, as a read-only strided view of the split planes:
    (Dh, ph, Dw, pw, C, Hq, Wq*N), entry [du, r, dv, s, c, p, (q, n)] =
    xp[c, ph*(p + du) + r, pw*(q + dv) + s, n].

    Read as rows (u, v, c) with u = ph*du + r and v = pw*dv + s, it holds every input pixel that
    the windows of the pool block (p, q) cover: the pixel at kernel offset (i, j) of output phase
    (a, b) is row (a + i, b + j, c), so rows in (u, v, c) order meet each phase's window in
    (i, j, c) order, the order of ``scratch.ops.conv.window_matrix``.
    """
    return _block_view(flat, g, writeable=False)


def add_block_windows(windows: np.ndarray, g: SplitGeometry) -> np.ndarray:
    """The adjoint of ``block_windows``: each entry of a (Dh*ph*Dw*pw*C, Hq*Wq*N) matrix added to
    the split-plane position it was read from. Returns flat planes as ``split_planes`` lays
    them out; their padding positions hold garbage that ``merge_planes`` drops."""
    flat = np.zeros(g.x_shape[0] * g.phases * g.plane + g.tail, windows.dtype)
    planes, (dh, dw) = _block_view(flat, g, writeable=True), g.span
    rows = windows.reshape(planes.shape)
    # Within one shift (du, dv) the rows land on distinct positions; shifts overlap one another.
    for du in range(dh):
        for dv in range(dw):
            np.add(planes[du, :, dv], rows[du, :, dv], out=planes[du, :, dv])
    return flat
