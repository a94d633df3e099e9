"""An object-style NHWC layer library, written from scratch, and its tfparity declarations.

Each layer is an object with ``forward(x)`` and ``backward(dy) -> dx``; layers with weights keep
them in ``params`` and their gradients in ``grads``, under their own names: "W" and "b".
Activations are NHWC ``(N, H, W, C)``, conv filters ``(size, size, c_in, c_out)`` with biases of
shape ``(1, 1, 1, c_out)`` (they broadcast over NHWC outputs), and ``Linear`` keeps its weights
as ``(out, in)``. Convolutions pad ``size // 2`` zeros on every side.

``build()`` at the end holds the only tfparity code: the declarations that say which Keras
layer each object computes and in which conventions. ``tfparity check --model
examples/own_network/object_style.py:build`` checks it.
"""

from __future__ import annotations

import numpy as np


class Conv:
    """Convolution (cross-correlation) of NHWC images, ``size // 2`` zeros on every side.

    params: "W" (size, size, c_in, c_out), "b" (1, 1, 1, c_out). forward: (N, H, W, c_in) ->
    (N, H', W', c_out) with H' = (H + 2 * (size // 2) - size) // stride + 1, likewise W'.
    """

    def __init__(self, in_channels, out_channels, size=3, stride=1, seed=0):
        rng = np.random.default_rng(seed)
        scale = np.sqrt(2.0 / (size * size * in_channels))
        self.params = {"W": rng.normal(0.0, scale, (size, size, in_channels, out_channels)),
                       "b": np.zeros((1, 1, 1, out_channels))}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.stride, self.pad = stride, size // 2

    def _windows(self, a, out_h, out_w):
        """(i, j, the (N, out_h, out_w, C) slice that kernel offset (i, j) reads), every offset."""
        size, s = self.params["W"].shape[0], self.stride
        for i in range(size):
            for j in range(size):
                yield i, j, a[:, i:i + s * out_h:s, j:j + s * out_w:s, :]

    def forward(self, x):
        w, p = self.params["W"], self.pad
        self.xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        out_h = (self.xp.shape[1] - w.shape[0]) // self.stride + 1
        out_w = (self.xp.shape[2] - w.shape[1]) // self.stride + 1
        y = np.zeros((x.shape[0], out_h, out_w, w.shape[3]), dtype=x.dtype)
        for i, j, window in self._windows(self.xp, out_h, out_w):
            y += window @ w[i, j]
        return y + self.params["b"]

    def backward(self, dy):
        w, p = self.params["W"], self.pad
        out_h, out_w = dy.shape[1:3]
        dxp, dw = np.zeros_like(self.xp), np.zeros_like(w)
        for i, j, window in self._windows(self.xp, out_h, out_w):
            dw[i, j] = np.einsum("nhwc,nhwf->cf", window, dy, optimize=True)
        for i, j, dwindow in self._windows(dxp, out_h, out_w):
            dwindow += dy @ w[i, j].T
        self.grads["W"], self.grads["b"] = dw, dy.sum(axis=(0, 1, 2), keepdims=True)
        h, width = dxp.shape[1] - 2 * p, dxp.shape[2] - 2 * p
        return dxp[:, p:p + h, p:p + width, :]


class ReLU:
    """max(x, 0); the gradient passes where x > 0 (not at 0)."""

    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy):
        return dy * self.mask


class MaxPool:
    """size x size max pooling with stride ``size``, no padding: (N, H, W, C) -> (N, H // size,
    W // size, C). The first maximum of a window (row-major) takes its whole gradient."""

    def __init__(self, size=2):
        self.size = size

    def forward(self, x):
        n, h, w, c = x.shape
        s = self.size
        self.x = x[:, :h // s * s, :w // s * s, :]
        blocks = self.x.reshape(n, h // s, s, w // s, s, c).transpose(0, 1, 3, 5, 2, 4)
        self.argmax = blocks.reshape(*blocks.shape[:4], s * s).argmax(axis=-1)
        self.shape = x.shape
        return blocks.max(axis=(4, 5))

    def backward(self, dy):
        n, ho, wo, c = dy.shape
        s = self.size
        blocks = np.zeros((n, ho, wo, c, s * s), dtype=dy.dtype)
        np.put_along_axis(blocks, self.argmax[..., None], dy[..., None], axis=-1)
        dx = np.zeros(self.shape, dtype=dy.dtype)
        dx[:, :ho * s, :wo * s, :] = (blocks.reshape(n, ho, wo, c, s, s).transpose(0, 1, 4, 2, 5, 3)
                                      .reshape(n, ho * s, wo * s, c))
        return dx


class Flatten:
    """(N, H, W, C) -> (N, H * W * C), in NHWC order."""

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.shape)


class Linear:
    """y = x @ W.T + b with params "W" (out, in) and "b" (out,)."""

    def __init__(self, in_features, out_features, seed=0):
        rng = np.random.default_rng(seed)
        scale = np.sqrt(2.0 / in_features)
        self.params = {"W": rng.normal(0.0, scale, (out_features, in_features)),
                       "b": np.zeros(out_features)}
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dy):
        self.grads["W"] = dy.T @ self.x
        self.grads["b"] = dy.sum(axis=0)
        return dy @ self.params["W"]


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy of logits (N, K) and labels (N,): returns (loss, dlogits)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.log(probs[rows, labels]).mean()
    probs[rows, labels] -= 1
    return loss, probs / len(labels)


# The tfparity declarations -----------------------------------------------------------------

def build(model: str = "cnn"):
    """The course CNN or the two-hidden-layer MLP of this library's objects, declared for
    tfparity: images (N, 28, 28, 1) -> 10 logits."""
    from reference_tf import own

    conv = {"bias_shape": (1, 1, 1, -1)}
    if model == "cnn":
        layers = [own.Conv2D(Conv(1, 8), 8, 3, padding="same", name="conv1", **conv),
                  own.ReLU(ReLU(), name="relu1"), own.MaxPool2D(MaxPool(2), 2, name="pool1"),
                  own.Conv2D(Conv(8, 8), 8, 3, padding="same", name="conv2", **conv),
                  own.ReLU(ReLU(), name="relu2"), own.MaxPool2D(MaxPool(2), 2, name="pool2"),
                  own.Flatten(Flatten(), name="flatten"),
                  own.Dense(Linear(392, 32), 32, name="fc1"), own.ReLU(ReLU(), name="relu3")]
    elif model == "mlp2":
        layers = [own.Flatten(Flatten(), name="flatten"),
                  own.Dense(Linear(784, 32), 32, name="fc1"), own.ReLU(ReLU(), name="relu1"),
                  own.Dense(Linear(32, 32), 32, name="fc2"), own.ReLU(ReLU(), name="relu2")]
    else:
        raise ValueError(f"build: expected model 'cnn' or 'mlp2', received {model!r}.")
    layers.append(own.Dense(Linear(32, 10), 10, name="logits"))
    return own.Model(layers, (28, 28, 1), loss=own.Loss(softmax_cross_entropy, reduction="mean"),
                     conventions=own.Conventions(layout="NHWC", dense_layout="OI",
                                                 names={"kernel": "W", "bias": "b"}))
