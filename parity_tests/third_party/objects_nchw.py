"""An object-style NCHW layer library, as PyTorch users write NumPy code (for tests).

Layers are objects with ``forward(x)`` and ``backward(dout)``; their weights are attributes,
``W`` and ``b``, and ``backward`` leaves the gradients in ``dW`` and ``db``. Activations are
NCHW ``(N, C, H, W)``, conv weights ``(out, in, kh, kw)`` and ``Linear`` weights ``(out, in)``.
The convolution is an im2col matrix product, so its sums round differently from TensorFlow's.
``build()`` at the end holds the tfparity declarations; the loader finds the attributes.
"""

from __future__ import annotations

import numpy as np


def _im2col(x, k, stride, pad):
    """x (N, C, H, W) -> columns (N, Ho, Wo, C * k * k) of every k x k window, and (Ho, Wo)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((n, ho, wo, c, k, k), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, :, i, j] = xp[:, :, i:i + stride * ho:stride,
                                        j:j + stride * wo:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n, ho, wo, c * k * k), (ho, wo)


class Conv2d:
    """Cross-correlation with ``pad`` zeros on every side. W (out, in, k, k), b (out,)."""

    def __init__(self, in_channels, out_channels, k=3, stride=1, pad=1, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0.0, np.sqrt(2.0 / (in_channels * k * k)),
                            (out_channels, in_channels, k, k))
        self.b = np.zeros(out_channels)
        self.k, self.stride, self.pad = k, stride, pad

    def forward(self, x):
        self.x_shape = x.shape
        self.cols, (ho, wo) = _im2col(x, self.k, self.stride, self.pad)
        out = self.cols @ self.W.reshape(len(self.W), -1).T + self.b
        return out.transpose(0, 3, 1, 2)

    def backward(self, dout):
        n, c, h, w = self.x_shape
        k, s, p = self.k, self.stride, self.pad
        g = dout.transpose(0, 2, 3, 1)  # (N, Ho, Wo, out)
        self.dW = (g.reshape(-1, g.shape[-1]).T
                   @ self.cols.reshape(-1, self.cols.shape[-1])).reshape(self.W.shape)
        self.db = dout.sum(axis=(0, 2, 3))
        dcols = (g @ self.W.reshape(len(self.W), -1)).reshape(*g.shape[:3], c, k, k)
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=dout.dtype)
        ho, wo = g.shape[1:3]
        for i in range(k):
            for j in range(k):
                dxp[:, :, i:i + s * ho:s, j:j + s * wo:s] += dcols[:, :, :, :, i, j].transpose(
                    0, 3, 1, 2)
        return dxp[:, :, p:p + h, p:p + w]


class FFTConv2d(Conv2d):
    """``Conv2d`` whose forward pass correlates through the FFT (stride 1), as libraries built
    on ``scipy.signal.fftconvolve`` do: correct up to rounding, but an all-zero window gives
    +-1e-9 (float32) instead of exactly 0, so ReLUs and max-pools downstream decide their ties
    and zeros differently from TensorFlow."""

    def forward(self, x):
        out = super().forward(x)  # keeps the columns for the backward pass
        k, p = self.k, self.pad
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        size = xp.shape[2:]
        spectrum = np.einsum("nchw,ochw->nohw", np.fft.rfft2(xp),
                             np.fft.rfft2(self.W[:, :, ::-1, ::-1], s=size))
        full = np.fft.irfft2(spectrum, s=size)
        ho, wo = out.shape[2:]
        return (full[:, :, k - 1:k - 1 + ho, k - 1:k - 1 + wo]
                + self.b[:, None, None]).astype(x.dtype)


class ReLU:
    """max(x, 0); the gradient passes where x > 0."""

    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, 0).astype(x.dtype)

    def backward(self, dout):
        return np.where(self.positive, dout, 0).astype(dout.dtype)


class MaxPool2d:
    """k x k max pooling at stride k; the first maximum (row-major) takes the gradient."""

    def __init__(self, k=2):
        self.k = k

    def forward(self, x):
        n, c, h, w = x.shape
        k = self.k
        blocks = x.reshape(n, c, h // k, k, w // k, k).transpose(0, 1, 2, 4, 3, 5)
        self.flat = blocks.reshape(n, c, h // k, w // k, k * k)
        self.x_shape = x.shape
        return self.flat.max(axis=-1)

    def backward(self, dout):
        n, c, h, w = self.x_shape
        k = self.k
        picked = np.zeros_like(self.flat, dtype=dout.dtype)
        np.put_along_axis(picked, self.flat.argmax(axis=-1)[..., None], dout[..., None], -1)
        return (picked.reshape(n, c, h // k, w // k, k, k).transpose(0, 1, 2, 4, 3, 5)
                .reshape(n, c, h, w))


class Linear:
    """y = x W^T + b on x (N, D) or images flattened in NCHW order. W (out, in), b (out,)."""

    def __init__(self, in_features, out_features, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0.0, np.sqrt(2.0 / in_features), (out_features, in_features))
        self.b = np.zeros(out_features)

    def forward(self, x):
        self.x_shape = x.shape
        self.x = x.reshape(len(x), -1)
        return self.x @ self.W.T + self.b

    def backward(self, dout):
        self.dW = dout.T @ self.x
        self.db = dout.sum(axis=0)
        return (dout @ self.W).reshape(self.x_shape)


class CrossEntropy:
    """Mean softmax cross-entropy with one-hot targets: ``value(scores, onehot)`` and
    ``gradient(scores, onehot)``, as two functions."""

    @staticmethod
    def value(scores, onehot):
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -(onehot * log_probs).sum() / len(scores)

    @staticmethod
    def gradient(scores, onehot):
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True) - onehot) / len(scores)


def build(conv=Conv2d):
    """Two conv-relu-pool blocks and two Linear layers on (1, 28, 28) NCHW images; ``conv``: the
    convolution class (``FFTConv2d`` for ``build_fft``)."""
    from reference_tf import own

    loss = own.Loss(own.value_and_gradient(CrossEntropy.value, CrossEntropy.gradient,
                                           one_hot=True))
    return own.Model([own.Conv2D(conv(1, 8), 8, 3, padding=1, name="conv1"),
                      own.ReLU(ReLU(), name="relu1"), own.MaxPool2D(MaxPool2d(2), 2, name="pool1"),
                      own.Conv2D(conv(8, 8, seed=1), 8, 3, padding=1, name="conv2"),
                      own.ReLU(ReLU(), name="relu2"), own.MaxPool2D(MaxPool2d(2), 2, name="pool2"),
                      own.Dense(Linear(392, 32), 32, name="fc1"), own.ReLU(ReLU(), name="relu3"),
                      own.Dense(Linear(32, 10, seed=1), 10, name="fc2")],
                     (1, 28, 28), loss=loss,
                     conventions=own.Conventions(layout="NCHW", kernel_layout="OIHW",
                                                 dense_layout="OI", names={"kernel": "W",
                                                                           "bias": "b"}))


def build_fft():
    """``build`` with the FFT convolution."""
    return build(FFTConv2d)
