"""TensorFlow's padding arithmetic for convolution and pooling windows."""

from __future__ import annotations

from typing import NamedTuple


class Padding1D(NamedTuple):
    """Output length and the zeros added before and after one spatial axis."""

    out: int
    before: int
    after: int


def window_padding(size: int, window: int, stride: int, padding: str) -> Padding1D:
    """Output length and padding of one axis, exactly as TensorFlow computes them.

    VALID: ``out = floor((size - window) / stride) + 1``, no padding.
    SAME: ``out = ceil(size / stride)``, total padding ``max((out-1)*stride + window - size, 0)``
    with ``before = total // 2``: an odd total puts the extra row/column at the bottom/right.
    Returns ``out <= 0`` when a VALID window does not fit; callers report that.
    """
    if padding == "valid":
        return Padding1D((size - window) // stride + 1 if size >= window else 0, 0, 0)
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return Padding1D(out, total // 2, total - total // 2)


def window_geometry(h: int, w: int, window, strides, padding: str):
    """Output size and TF padding of a (kh, kw) window sliding over (h, w) with (sh, sw) strides.

    Returns ((Ho, Wo), (top, bottom, left, right)).
    """
    rows = window_padding(h, window[0], strides[0], padding)
    cols = window_padding(w, window[1], strides[1], padding)
    return (rows.out, cols.out), (rows.before, rows.after, cols.before, cols.after)
