"""Real bugs planted in the scratch engine, one function each, shared by the planted-bug tests.

Each ``plant_*(monkeypatch)`` patches the engine where the code looks the function up at call
time: the layers call ``scratch.ops.<fn>`` through the ``ops`` module, ``conv2d_backward`` calls
``conv2d_input_grad`` and the windowed ops call ``window_padding`` from their modules,
``Sequential`` calls ``scratch.ops.softmax_cross_entropy``. The planted code wraps the real
functions, so it does not depend on their internals.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from scratch import ops
from scratch.ops import conv as conv_ops
from scratch.ops import padding as padding_ops
from scratch.ops.padding import Padding1D


def plant_conv_no_flip(monkeypatch):
    """The input gradient correlates with the kernel as it is, not flipped."""
    real = conv_ops.conv2d_input_grad

    def unflipped(dy, kernel, *args, **kwargs):
        # real() flips its kernel argument, so a pre-flipped kernel cancels the flip
        return real(dy, np.ascontiguousarray(kernel[::-1, ::-1]), *args, **kwargs)

    monkeypatch.setattr(conv_ops, "conv2d_input_grad", unflipped)


def plant_same_padding_extra_on_top(monkeypatch):
    """SAME padding puts the odd extra pixel before (top/left) instead of after, as TF does."""
    real = padding_ops.window_padding

    def swapped(size, window, stride, padding):
        out, before, after = real(size, window, stride, padding)
        return Padding1D(out, after, before)

    monkeypatch.setattr(padding_ops, "window_padding", swapped)


def plant_pool_split_ties(monkeypatch):
    """Max-pool backward shares a window's gradient equally among its tied maxima."""
    def backward_splitting_ties(dy, cache):
        (ph, pw), (sh, sw), (ho, wo) = cache.pool_size, cache.strides, dy.shape[1:3]
        windows = [(slice(i, i + (ho - 1) * sh + 1, sh), slice(j, j + (wo - 1) * sw + 1, sw))
                   for i in range(ph) for j in range(pw)]
        masks = [cache.xp[:, rows, cols, :] == cache.y for rows, cols in windows]
        count = sum(masks)
        dxp = np.zeros(cache.xp.shape, dtype=dy.dtype)
        for (rows, cols), mask in zip(windows, masks):
            dxp[:, rows, cols, :] += np.where(mask, dy / count, 0)
        top, _, left, _ = cache.pads
        h, w = cache.x_shape[1:3]
        return dxp[:, top:top + h, left:left + w, :]

    monkeypatch.setattr(ops, "max_pool2d_backward", backward_splitting_ties)


def plant_dense_bias_wrong_axis(monkeypatch):
    """dL/dbias summed over the units instead of over the batch."""
    real = ops.dense_backward

    def backward(dy, cache, *args, **kwargs):
        dx, dkernel, _ = real(dy, cache, *args, **kwargs)
        return dx, dkernel, dy.sum(axis=1)

    monkeypatch.setattr(ops, "dense_backward", backward)


def plant_loss_missing_mean(monkeypatch):
    """dL/dlogits without the 1/N of the mean (the loss value itself is right)."""
    real = ops.softmax_cross_entropy

    def loss(logits, labels):
        value, dlogits = real(logits, labels)
        return value, dlogits * logits.shape[0]

    monkeypatch.setattr(ops, "softmax_cross_entropy", loss)


def plant_loss_sum_instead_of_mean(monkeypatch):
    """The loss and its gradient summed over the batch instead of averaged."""
    real = ops.softmax_cross_entropy

    def summed(logits, labels):
        value, dlogits = real(logits, labels)
        return value * len(logits), dlogits * len(logits)

    monkeypatch.setattr(ops, "softmax_cross_entropy", summed)


XCache = namedtuple("XCache", "x")
ShapeCache = namedtuple("ShapeCache", "shape")


def plant_relu_passes_at_zero(monkeypatch):
    """ReLU's backward uses x >= 0, so the gradient passes where the input is exactly 0."""
    def forward(x):
        return np.maximum(x, 0), XCache(x)

    def backward(dy, cache):
        return dy * (cache.x >= 0)

    monkeypatch.setattr(ops, "relu_forward", forward)
    monkeypatch.setattr(ops, "relu_backward", backward)


def plant_flatten_nchw(monkeypatch):
    """Flatten in channels-first order (PyTorch's), consistently forward and backward."""
    def forward(x):
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1), ShapeCache(x.shape)

    def backward(dy, cache):
        n, h, w, c = cache.shape
        return np.ascontiguousarray(dy.reshape(n, c, h, w).transpose(0, 2, 3, 1))

    monkeypatch.setattr(ops, "flatten_forward", forward)
    monkeypatch.setattr(ops, "flatten_backward", backward)
