"""A CS231n assignment-2 style layer library with naive loops, as students write it (for tests).

NCHW activations ``(N, C, H, W)``, conv kernels ``(F, C, HH, WW)``, affine weights ``(D, M)``;
every forward returns ``(out, cache)``, every backward takes ``(dout, cache)``. The convolution
and the max-pool loop over examples and output positions, one window at a time, so their sums
round differently from TensorFlow's kernels: what tfparity must not call a bug. ``build()`` at
the end holds the tfparity declarations.
"""

from __future__ import annotations

import numpy as np


def affine_forward(x, w, b):
    """x (N, d_1, ..., d_k) flattened to (N, D), w (D, M), b (M,) -> (out (N, M), cache)."""
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """dout (N, M) -> (dx (N, d_1, ..., d_k), dw (D, M), db (M,))."""
    x, w, _ = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    return dx, dw, np.sum(dout, axis=0)


def relu_forward(x):
    """max(x, 0); cache = x."""
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    """dout where x > 0."""
    dx = dout.copy()
    dx[cache <= 0] = 0
    return dx


def conv_forward_naive(x, w, b, conv_param):
    """x (N, C, H, W), w (F, C, HH, WW), b (F,), conv_param {"stride", "pad"} ->
    (out (N, F, H', W'), cache), H' = 1 + (H + 2 pad - HH) // stride."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, _, h, width = x.shape
    f, _, hh, ww = w.shape
    out_h, out_w = 1 + (h + 2 * pad - hh) // stride, 1 + (width + 2 * pad - ww) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((n, f, out_h, out_w), dtype=x.dtype)
    for i in range(n):
        for r in range(out_h):
            for c in range(out_w):
                window = x_pad[i, :, r * stride:r * stride + hh, c * stride:c * stride + ww]
                out[i, :, r, c] = np.sum(window * w, axis=(1, 2, 3)) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """dout (N, F, H', W') -> (dx (N, C, H, W), dw (F, C, HH, WW), db (F,))."""
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, hh, ww = w.shape
    n, _, out_h, out_w = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    for i in range(n):
        for r in range(out_h):
            for c in range(out_w):
                rows = slice(r * stride, r * stride + hh)
                cols = slice(c * stride, c * stride + ww)
                g = dout[i, :, r, c]
                dw += x_pad[i, :, rows, cols][None] * g[:, None, None, None]
                dx_pad[i, :, rows, cols] += np.sum(w * g[:, None, None, None], axis=0)
    dx = dx_pad[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, np.sum(dout, axis=(0, 2, 3))


def max_pool_forward_naive(x, pool_param):
    """x (N, C, H, W), pool_param {"pool_height", "pool_width", "stride"} -> (out, cache)."""
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, channels, h, w = x.shape
    out = np.zeros((n, channels, 1 + (h - ph) // s, 1 + (w - pw) // s), dtype=x.dtype)
    for i in range(n):
        for r in range(out.shape[2]):
            for c in range(out.shape[3]):
                out[i, :, r, c] = np.max(x[i, :, r * s:r * s + ph, c * s:c * s + pw], axis=(1, 2))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """The whole gradient of each window to its first maximum (row-major), as TensorFlow."""
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    n, channels, out_h, out_w = dout.shape
    for i in range(n):
        for k in range(channels):
            for r in range(out_h):
                for c in range(out_w):
                    window = x[i, k, r * s:r * s + ph, c * s:c * s + pw]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[i, k, r * s + a, c * s + b] += dout[i, k, r, c]
    return dx


def softmax_loss(x, y):
    """Mean softmax cross-entropy of scores x (N, C) and labels y (N,) -> (loss, dx)."""
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    n = x.shape[0]
    loss = -np.sum(log_probs[np.arange(n), y]) / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def build():
    """The course CNN (conv-relu-pool twice, affine-relu-affine) on (1, 28, 28) NCHW images."""
    from reference_tf import own

    conv = own.functions(conv_forward_naive, conv_backward_naive, conv_param={"stride": 1,
                                                                               "pad": 1})
    pool = own.functions(max_pool_forward_naive, max_pool_backward_naive,
                         pool_param={"pool_height": 2, "pool_width": 2, "stride": 2})
    relu = own.functions(relu_forward, relu_backward)
    affine = own.functions(affine_forward, affine_backward)
    return own.Model([own.Conv2D(conv, 8, 3, padding=1, name="conv1"),
                      own.ReLU(relu, name="relu1"), own.MaxPool2D(pool, 2, name="pool1"),
                      own.Conv2D(conv, 8, 3, padding=1, name="conv2"),
                      own.ReLU(relu, name="relu2"), own.MaxPool2D(pool, 2, name="pool2"),
                      own.Dense(affine, 32, name="fc1"), own.ReLU(relu, name="relu3"),
                      own.Dense(affine, 10, name="fc2")],
                     (1, 28, 28), loss=own.Loss(softmax_loss),
                     conventions=own.Conventions(layout="NCHW", kernel_layout="OIHW",
                                                 names={"kernel": "w", "bias": "b"}))
