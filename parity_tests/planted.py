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
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential
from scratch.ops import conv as conv_ops
from scratch.ops import padding as padding_ops
from scratch.ops.padding import Padding1D


def odd_model(dtype="float64") -> Sequential:
    """A small CNN on 15x15 digits: asymmetric SAME padding, overlapping pool windows, and conv
    biases alternating 0.1 / 0 (positive ties in the pools, exactly-zero pre-activations)."""
    layers = [Conv2D(4, 4, strides=2, padding="same"), ReLU(),
              MaxPool2D(3, strides=2, padding="same"), Conv2D(4, (2, 3), padding="same"), ReLU(),
              MaxPool2D(2, padding="same"), Flatten(), Dense(8), ReLU(), Dense(10)]
    model = Sequential(layers, (15, 15, 1), seed=0, dtype=dtype)
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            layer.params["bias"][::2] = 0.1
    return model


def pool_first_model(dtype="float64") -> Sequential:
    """15x15 digits into a VALID conv with bias -0.1 (negative wherever the digit is blank),
    then the first SAME layer: a max-pool whose odd padding goes bottom/right."""
    layers = [Conv2D(4, 2), MaxPool2D(3, strides=2, padding="same"), ReLU(), Flatten(), Dense(10)]
    model = Sequential(layers, (15, 15, 1), seed=0, dtype=dtype)
    model.layers[0].params["bias"][...] = -0.1
    return model


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


def plant_same_padding_all_on_top(monkeypatch):
    """SAME padding puts all of it before (top/left): (2, 0) for a 3x3 window at stride 1."""
    real = padding_ops.window_padding

    def all_before(size, window, stride, padding):
        out, before, after = real(size, window, stride, padding)
        return Padding1D(out, before + after, 0)

    monkeypatch.setattr(padding_ops, "window_padding", all_before)


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


# Conventions the cause catalog names (``reference_tf.causes``), one plant per variant, and
# bugs that are no convention at all. ---------------------------------------------------------

def plant_same_padding_symmetric(monkeypatch):
    """SAME padding split (p, p) with p = ceil(total / 2), as hand-written "pad both sides"
    code does: the same output size, shifted windows."""
    real = padding_ops.window_padding

    def symmetric(size, window, stride, padding):
        out, before, after = real(size, window, stride, padding)
        half = -(-(before + after) // 2)
        return Padding1D(out, half, half)

    monkeypatch.setattr(padding_ops, "window_padding", symmetric)


def plant_pool_pads_zero(monkeypatch):
    """Max-pool SAME padding filled with 0 instead of -inf (forward and backward)."""
    real = ops.max_pool2d_forward

    def forward(x, pool_size=(2, 2), strides=(2, 2), padding="valid"):
        y, cache = real(x, pool_size, strides, padding)
        if not any(cache.pads):
            return y, cache
        xp = np.where(np.isneginf(cache.xp), 0, cache.xp).astype(x.dtype)
        y, _ = real(xp, pool_size, strides, "valid")
        return y, cache._replace(xp=xp, y=y)

    monkeypatch.setattr(ops, "max_pool2d_forward", forward)


def plant_conv_forward_flipped(monkeypatch):
    """The forward pass convolves (kernel flipped by 180 degrees) instead of correlating."""
    real = ops.conv2d_forward

    def convolve(x, kernel, bias, *args, **kwargs):
        return real(x, np.ascontiguousarray(kernel[::-1, ::-1]), bias, *args, **kwargs)

    monkeypatch.setattr(ops, "conv2d_forward", convolve)


def plant_conv_kernel_read_as_oihw(monkeypatch):
    """The conv kernel's memory is read as OIHW (a reshape where a transpose was needed)."""
    real = ops.conv2d_forward

    def misread(x, kernel, bias, *args, **kwargs):
        h, w, i, o = kernel.shape
        used = np.ascontiguousarray(kernel.reshape(o, i, h, w).transpose(2, 3, 1, 0))
        return real(x, used, bias, *args, **kwargs)

    monkeypatch.setattr(ops, "conv2d_forward", misread)


def plant_dense_kernel_out_in(monkeypatch):
    """The dense kernel's memory is read as (out, in), PyTorch's layout, in the forward pass."""
    real = ops.dense_forward

    def misread(x, kernel, bias):
        return real(x, np.ascontiguousarray(kernel.reshape(kernel.shape[::-1]).T), bias)

    monkeypatch.setattr(ops, "dense_forward", misread)


def plant_conv_bias_grad_nchw_axes(monkeypatch):
    """dL/dbias of a convolution summed over axes (0, 2, 3), as for NCHW, of an NHWC dy."""
    real = ops.conv2d_backward

    def backward(dy, cache, *args, **kwargs):
        dx, dkernel, _ = real(dy, cache, *args, **kwargs)
        return dx, dkernel, dy.sum(axis=(0, 2, 3))

    monkeypatch.setattr(ops, "conv2d_backward", backward)


def plant_dense_grads_mean_twice(monkeypatch):
    """Dense parameter gradients divided by N once more (the loss already took the mean)."""
    real = ops.dense_backward

    def backward(dy, cache, *args, **kwargs):
        dx, dkernel, dbias = real(dy, cache, *args, **kwargs)
        return dx, dkernel / len(dy), dbias / len(dy)

    monkeypatch.setattr(ops, "dense_backward", backward)


def plant_loss_label_smoothing(monkeypatch):
    """Cross-entropy against labels smoothed by 0.1 (value and gradient)."""
    def smoothed(logits, labels):
        n, k = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        targets = np.full(logits.shape, 0.1 / k, dtype=logits.dtype)
        targets[np.arange(n), labels] += 0.9
        return float(-(targets * log_p).sum() / n), (np.exp(log_p) - targets) / n

    monkeypatch.setattr(ops, "softmax_cross_entropy", smoothed)


def plant_loss_log_of_softmax_plus_eps(monkeypatch):
    """The loss as -log(softmax(z) + 1e-7), softmax first, then the log (with its gradient)."""
    real = ops.softmax_cross_entropy

    def loss(logits, labels):
        n = len(logits)
        _, dlogits = real(logits, labels)
        p = dlogits * n
        p[np.arange(n), labels] += 1  # dlogits = (softmax - onehot) / N
        p_y = p[np.arange(n), labels]
        scale = (p_y / (p_y + 1e-7))[:, None]
        return float(-np.log(p_y + 1e-7).mean()), (scale * dlogits).astype(logits.dtype)

    monkeypatch.setattr(ops, "softmax_cross_entropy", loss)


def plant_conv_kernel_grad_scaled(monkeypatch):
    """Not a convention: the conv kernel gradient is 1.01 times too large."""
    real = ops.conv2d_backward

    def backward(dy, cache, *args, **kwargs):
        dx, dkernel, dbias = real(dy, cache, *args, **kwargs)
        return dx, dkernel * dkernel.dtype.type(1.01), dbias

    monkeypatch.setattr(ops, "conv2d_backward", backward)


def plant_conv_input_grad_channel_sign(monkeypatch):
    """Not a convention: the sign of dL/dx flipped in one (seeded, random) input channel."""
    real = ops.conv2d_backward

    def backward(dy, cache, *args, **kwargs):
        dx, dkernel, dbias = real(dy, cache, *args, **kwargs)
        if dx is not None:
            channel = np.random.default_rng(dx.shape[3]).integers(dx.shape[3])
            dx[..., channel] *= -1
        return dx, dkernel, dbias

    monkeypatch.setattr(ops, "conv2d_backward", backward)


def plant_relu_other_dtype(monkeypatch):
    """ReLU's output in the other float dtype (float32 from a float64 model and vice versa), as
    code that allocates its result with a fixed dtype does."""
    real = ops.relu_forward

    def forward(x):
        y, cache = real(x)
        other = np.float32 if x.dtype == np.float64 else np.float64
        return y.astype(other), cache

    monkeypatch.setattr(ops, "relu_forward", forward)


def plant_relu_writes_dy(monkeypatch):
    """ReLU's backward zeroes the upstream gradient it was handed, in place, and returns it."""
    def backward(dy, cache):
        dy[cache.y <= 0] = 0
        return dy

    monkeypatch.setattr(ops, "relu_backward", backward)


def plant_relu_writes_x(monkeypatch):
    """ReLU's forward clips the input it was handed in place and returns it."""
    real = ops.relu_forward

    def forward(x):
        np.maximum(x, 0, out=x)
        return real(x)

    monkeypatch.setattr(ops, "relu_forward", forward)
