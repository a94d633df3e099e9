"""Reference computations under a chosen convention, in float64 NumPy, for the cause catalog.

The catalog recomputes what TensorFlow would give if it followed another convention (another
padding split, tie rule, kernel layout, ...). It computes everything itself, written plainly
(a loop over the window's offsets), and never calls ``scratch.ops``: the code under test may be
the very thing that is wrong, and planted bugs patch ``scratch.ops``. Layouts are TensorFlow's:
activations NHWC, conv kernels (kh, kw, c_in, c_out).
"""

from __future__ import annotations

import numpy as np

TIE_RULES = ("first", "last", "all", "split")


def same_padding(size: int, window: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow's SAME padding of one axis: (out, before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def geometry(hw: tuple, window: tuple, strides: tuple, padding):
    """((Ho, Wo), (top, bottom, left, right)) of a window over (H, W), as TensorFlow pads;
    ``padding`` "same", "valid" or explicit ((top, bottom), (left, right))."""
    if not isinstance(padding, str):
        (top, bottom), (left, right) = padding
        out = tuple(output_size(n, k, s, *p) for n, k, s, p in zip(hw, window, strides, padding))
        return out, (top, bottom, left, right)
    if padding == "valid":
        out = tuple((n - k) // s + 1 for n, k, s in zip(hw, window, strides))
        return out, (0, 0, 0, 0)
    (ho, top, bottom), (wo, left, right) = (same_padding(n, k, s)
                                            for n, k, s in zip(hw, window, strides))
    return (ho, wo), (top, bottom, left, right)


def output_size(size: int, window: int, stride: int, before: int, after: int) -> int:
    """Positions of a window over ``size`` padded by (before, after)."""
    return (size + before + after - window) // stride + 1


def pad(x: np.ndarray, pads: tuple, value: float = 0.0) -> np.ndarray:
    """x (N, H, W, C) padded on axes 1, 2 by (top, bottom, left, right) with ``value``, float64."""
    top, bottom, left, right = pads
    n, h, w, c = x.shape
    out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=np.float64)
    out[:, top:top + h, left:left + w] = x
    return out


def _views(xp: np.ndarray, window: tuple, strides: tuple, out_hw: tuple):
    """(i, j, view): the window offsets in row-major order and xp's (N, Ho, Wo, C) view there."""
    (kh, kw), (sh, sw), (ho, wo) = window, strides, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]


def conv2d(x: np.ndarray, kernel: np.ndarray, strides: tuple, pads: tuple,
           out_hw: tuple) -> np.ndarray:
    """Correlation of x (N, H, W, c_in) zero-padded by ``pads`` with kernel (kh, kw, c_in,
    c_out): y (N, Ho, Wo, c_out), no bias."""
    kernel = np.asarray(kernel, dtype=np.float64)
    y = np.zeros((x.shape[0], *out_hw, kernel.shape[3]))
    for i, j, view in _views(pad(x, pads), kernel.shape[:2], strides, out_hw):
        y += view @ kernel[i, j]
    return y


def conv2d_input_grad(dy: np.ndarray, kernel: np.ndarray, x_shape: tuple, strides: tuple,
                      pads: tuple) -> np.ndarray:
    """dL/dx (x_shape) of ``conv2d`` for dL/dy dy (N, Ho, Wo, c_out): its adjoint."""
    n, h, w, c_in = x_shape
    top, bottom, left, right = pads
    kernel = np.asarray(kernel, dtype=np.float64)
    dxp = np.zeros((n, h + top + bottom, w + left + right, c_in))
    dy = np.asarray(dy, dtype=np.float64)
    for i, j, view in _views(dxp, kernel.shape[:2], strides, dy.shape[1:3]):
        view += dy @ kernel[i, j].T
    return dxp[:, top:top + h, left:left + w]


def conv2d_kernel_grad(x: np.ndarray, dy: np.ndarray, window: tuple, strides: tuple,
                       pads: tuple) -> np.ndarray:
    """dL/dkernel (kh, kw, c_in, c_out) of ``conv2d`` for dL/dy dy (N, Ho, Wo, c_out)."""
    dy = np.asarray(dy, dtype=np.float64)
    c_in, c_out = x.shape[3], dy.shape[3]
    grad = np.zeros((*window, c_in, c_out))
    for i, j, view in _views(pad(x, pads), window, strides, dy.shape[1:3]):
        grad[i, j] = view.reshape(-1, c_in).T @ dy.reshape(-1, c_out)
    return grad


def max_pool(x: np.ndarray, window: tuple, strides: tuple, pads: tuple, out_hw: tuple,
             pad_value: float = -np.inf) -> np.ndarray:
    """Maximum over each window of x (N, H, W, C) padded with ``pad_value``: (N, Ho, Wo, C)."""
    views = [view for _, _, view in _views(pad(x, pads, pad_value), window, strides, out_hw)]
    return np.maximum.reduce(views)


def max_pool_grad(x: np.ndarray, dy: np.ndarray, window: tuple, strides: tuple, pads: tuple,
                  pad_value: float = -np.inf, ties: str = "first") -> np.ndarray:
    """dL/dx (x's shape) of ``max_pool`` for dy (N, Ho, Wo, C), routing by the tie rule:

    "first" (TensorFlow): the first maximal element of the window in row-major order gets the
    window's gradient; "last": the last one; "all": every maximal element gets all of it;
    "split": the maximal elements share it equally. Overlapping windows add up; gradient routed
    to a padded position is lost.
    """
    n, h, w, c = x.shape
    top, _, left, _ = pads
    dy = np.asarray(dy, dtype=np.float64)
    out_hw = dy.shape[1:3]
    xp = pad(x, pads, pad_value)
    y = max_pool(x, window, strides, pads, out_hw, pad_value)
    hits = [view == y for _, _, view in _views(xp, window, strides, out_hw)]
    if ties in ("first", "last"):
        order = hits if ties == "first" else hits[::-1]
        taken = np.zeros_like(order[0])
        for hit in order:
            hit &= ~taken
            taken |= hit
    share = dy / sum(hits) if ties == "split" else dy
    dxp = np.zeros(xp.shape)
    for (_, _, view), hit in zip(_views(dxp, window, strides, out_hw), hits):
        view += np.where(hit, share, 0.0)
    return dxp[:, top:top + h, left:left + w]


def flatten(x: np.ndarray, order: str = "HWC") -> np.ndarray:
    """x (N, H, W, C) flattened with its axes in ``order`` (a permutation of "HWC"), the last
    varying fastest: (N, H*W*C). Other ranks: (N, -1) as they are."""
    x = np.asarray(x)
    if x.ndim != 4:
        return x.reshape(len(x), -1)
    return x.transpose(0, *(1 + "HWC".index(axis) for axis in order)).reshape(len(x), -1)


def unflatten(flat: np.ndarray, shape: tuple, order: str = "HWC") -> np.ndarray:
    """The inverse of ``flatten``: (N, F) back to ``shape`` (N, H, W, C) (or (N, ...))."""
    if len(shape) != 4:
        return flat.reshape(shape)
    axes = [1 + "HWC".index(axis) for axis in order]
    stored = flat.reshape(shape[0], *(shape[a] for a in axes))
    return stored.transpose(0, *np.argsort(axes) + 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax of logits (N, K), float64, shifted by the row maximum."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def onehot(labels: np.ndarray, classes: int) -> np.ndarray:
    """(N, classes) float64 one-hot rows of integer labels (N,)."""
    out = np.zeros((len(labels), classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over the batch of -sum(targets * log softmax(logits)) and its gradient (N, K), for
    target rows that sum to 1 (one-hot or smoothed)."""
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(z)
    return float(-(targets * log_p).sum() / n), (np.exp(log_p) - targets) / n
