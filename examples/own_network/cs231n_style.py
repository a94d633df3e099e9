"""A CS231n-style layer library, written from scratch, and its tfparity declarations.

The nine functions have the names and signatures of the CS231n assignments: activations are
NCHW ``(N, C, H, W)``, conv kernels ``(F, C, HH, WW)``, affine weights ``(D, M)``, every forward
returns ``(out, cache)`` and every backward takes ``(dout, cache)``. They are vectorised over the
batch and the output positions (loops run over the kernel or pooling window only), so a check
takes seconds, and they compute exactly what the one-output-at-a-time loops would.

``build()`` at the end holds the only tfparity code: the declarations that say which Keras
layer each function pair computes and in which conventions. A student checks their own module
with the same declarations: ``build("cnn", lib=my_layers)``, or from the command line
``tfparity check --model examples/own_network/cs231n_style.py:build``.
"""

from __future__ import annotations

import sys

import numpy as np


def affine_forward(x, w, b):
    """Affine layer on inputs flattened in their own (here NCHW) order.

    Inputs:
    - x: (N, d_1, ..., d_k), flattened to (N, D) with D = d_1 * ... * d_k
    - w: weights (D, M)
    - b: biases (M,)

    Returns (out, cache): out (N, M), cache = (x, w, b).
    """
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Backward pass of ``affine_forward``.

    Inputs: dout (N, M) upstream gradient; cache from ``affine_forward``.
    Returns (dx, dw, db) of shapes (N, d_1, ..., d_k), (D, M), (M,).
    """
    x, w, _ = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """max(x, 0) elementwise; any shape. Returns (out, cache) with cache = x."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dout where the input was positive, 0 elsewhere (0 at exactly 0, as TensorFlow)."""
    return dout * (cache > 0)


def _windows(a, height, width, stride, out_h, out_w):
    """For each window offset (i, j): (i, j, the (N, C, out_h, out_w) slice a[..., i::s, j::s])."""
    for i in range(height):
        for j in range(width):
            yield i, j, a[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]


def conv_forward_naive(x, w, b, conv_param):
    """Convolution (cross-correlation) with symmetric zero padding.

    Inputs:
    - x: (N, C, H, W)
    - w: filters (F, C, HH, WW)
    - b: biases (F,)
    - conv_param: {"stride": s, "pad": p}, p zeros on every side of H and W

    Returns (out, cache): out (N, F, H', W') with H' = 1 + (H + 2p - HH) // s and
    W' = 1 + (W + 2p - WW) // s; cache = (x, w, b, conv_param).
    """
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, _, h, width = x.shape
    f, _, hh, ww = w.shape
    out_h, out_w = 1 + (h + 2 * pad - hh) // stride, 1 + (width + 2 * pad - ww) // stride
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, f, out_h, out_w), dtype=x.dtype)
    for i, j, window in _windows(xp, hh, ww, stride, out_h, out_w):
        out += np.einsum("nchw,fc->nfhw", window, w[:, :, i, j], optimize=True)
    out += b[None, :, None, None]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Backward pass of ``conv_forward_naive``.

    Inputs: dout (N, F, H', W'); cache from ``conv_forward_naive``.
    Returns (dx, dw, db) of shapes (N, C, H, W), (F, C, HH, WW), (F,). Every output position
    sends dout * w back to the input window it read, which is the correlation of dout with the
    flipped kernel.
    """
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    h, width = x.shape[2:]
    _, _, hh, ww = w.shape
    out_h, out_w = dout.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i, j, window in _windows(xp, hh, ww, stride, out_h, out_w):
        dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, window, optimize=True)
    for i, j, dwindow in _windows(dxp, hh, ww, stride, out_h, out_w):
        dwindow += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j], optimize=True)
    db = dout.sum(axis=(0, 2, 3))
    return dxp[:, :, pad:pad + h, pad:pad + width], dw, db


def max_pool_forward_naive(x, pool_param):
    """Max pooling without padding.

    Inputs: x (N, C, H, W); pool_param {"pool_height": ph, "pool_width": pw, "stride": s}.
    Returns (out, cache): out (N, C, 1 + (H - ph) // s, 1 + (W - pw) // s), cache = (x, pool_param).
    """
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, h, w = x.shape
    out_h, out_w = 1 + (h - ph) // stride, 1 + (w - pw) // stride
    out = np.full((n, c, out_h, out_w), -np.inf, dtype=x.dtype)
    for _, _, window in _windows(x, ph, pw, stride, out_h, out_w):
        np.maximum(out, window, out=out)
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Backward pass of ``max_pool_forward_naive``: each window's gradient goes to its maximum.

    Inputs: dout (N, C, H', W'); cache from ``max_pool_forward_naive``. Returns dx (N, C, H, W).
    On ties the first maximum in row-major order takes the whole gradient (as TensorFlow does).
    """
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    out, _ = max_pool_forward_naive(x, pool_param)
    out_h, out_w = out.shape[2:]
    dx = np.zeros_like(x)
    routed = np.zeros(out.shape, dtype=bool)  # windows whose maximum was already found
    dx_windows = _windows(dx, ph, pw, stride, out_h, out_w)
    for (_, _, window), (_, _, dwindow) in zip(_windows(x, ph, pw, stride, out_h, out_w),
                                               dx_windows):
        first = (window == out) & ~routed
        routed |= first
        dwindow += dout * first
    return dx


def softmax_loss(x, y):
    """Mean softmax cross-entropy.

    Inputs: x scores (N, C); y labels (N,) with 0 <= y[i] < C.
    Returns (loss, dx): the loss (a scalar) and its gradient (N, C).
    """
    shifted = x - x.max(axis=1, keepdims=True)  # exp never overflows
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


# The tfparity declarations -----------------------------------------------------------------

def build(model: str = "cnn", lib=None):
    """The course CNN or the two-hidden-layer MLP from ``lib``'s nine functions (default: this
    module's), declared for tfparity: images (N, 1, 28, 28) -> 10 scores."""
    from reference_tf import own

    lib = lib or sys.modules[__name__]
    conv = own.functions(lib.conv_forward_naive, lib.conv_backward_naive,
                         conv_param={"stride": 1, "pad": 1})
    pool = own.functions(lib.max_pool_forward_naive, lib.max_pool_backward_naive,
                         pool_param={"pool_height": 2, "pool_width": 2, "stride": 2})
    relu = own.functions(lib.relu_forward, lib.relu_backward)
    affine = own.functions(lib.affine_forward, lib.affine_backward)
    if model == "cnn":
        layers = [own.Conv2D(conv, 8, 3, padding=1, name="conv1"), own.ReLU(relu, name="relu1"),
                  own.MaxPool2D(pool, 2, name="pool1"),
                  own.Conv2D(conv, 8, 3, padding=1, name="conv2"), own.ReLU(relu, name="relu2"),
                  own.MaxPool2D(pool, 2, name="pool2"),
                  own.Dense(affine, 32, name="fc1"), own.ReLU(relu, name="relu3")]
    elif model == "mlp2":
        layers = [own.Dense(affine, 32, name="fc1"), own.ReLU(relu, name="relu1"),
                  own.Dense(affine, 32, name="fc2"), own.ReLU(relu, name="relu2")]
    else:
        raise ValueError(f"build: expected model 'cnn' or 'mlp2', received {model!r}.")
    layers.append(own.Dense(affine, 10, name="scores"))
    conventions = own.Conventions(layout="NCHW", kernel_layout="OIHW", flatten="NCHW",
                                  names={"kernel": "w", "bias": "b"})
    return own.Model(layers, (1, 28, 28), loss=own.Loss(lib.softmax_loss, reduction="mean"),
                     conventions=conventions)
