"""Shared helpers of the ``test_own_network_*`` tests: the two example libraries of
``examples/own_network`` and the bugs a user could have written into them.

Each planter monkeypatches the example module that ``tfparity check --model`` imports
(``reference_tf.own.loading.import_target`` returns the same module object), so a patched
function or method, or a patched ``build``, is what the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from reference_tf import own
from reference_tf.own.loading import import_target
from reference_tf.own.model import fresh_copy
from reports.cli import main

from helpers import DTYPES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "own_network"
STYLES = {"cs231n": "cs231n_style.py", "object": "object_style.py"}
# Libraries written for the tests as third parties write them (parity_tests/third_party/).
THIRD_PARTY = Path(__file__).resolve().parent / "third_party"
LIBRARIES = {"loops": "cs231n_loops.py", "objects": "objects_nchw.py"}
__all__ = ["BUGS", "DTYPES", "EXAMPLES", "LIBRARIES", "STYLES", "THIRD_PARTY", "diff_json",
           "example", "library", "library_spec", "plant", "spec"]


def spec(style: str) -> str:
    """The ``--model`` argument of an example."""
    return f"{EXAMPLES / STYLES[style]}:build"


def library_spec(name: str, factory: str = "build") -> str:
    """The ``--model`` argument of a third-party test library."""
    return f"{THIRD_PARTY / LIBRARIES[name]}:{factory}"


def library(name: str):
    """A third-party test library's module, the very object the command line loads."""
    return import_target(str(THIRD_PARTY / LIBRARIES[name]))


def example(style: str):
    """The example's module, the very object the command line loads."""
    return import_target(str(EXAMPLES / STYLES[style]))


def diff_json(tmp_path: Path, *args: str) -> tuple[int, dict]:
    """``tfparity diff ARGS --json FILE``: (exit code, the JSON)."""
    path = tmp_path / "diff.json"
    code = main(["diff", *args, "--json", str(path)])
    return code, json.loads(path.read_text())


def rebuilt_with(model: own.Model, layers: dict | None = None, **conventions) -> own.Model:
    """The model's declarations with some layers replaced (index -> layer) or some model-wide
    conventions changed."""
    fresh = [fresh_copy(layer) for layer in model.layers]
    for index, layer in (layers or {}).items():
        fresh[index] = layer
    return own.Model(fresh, model.input_shape, loss=model.loss,
                     conventions=model.conventions.updated(**conventions),
                     seed=model.seed, dtype=model.dtype)


def patch_build(monkeypatch, module, change: Callable) -> None:
    """``module.build`` returning ``change(the real model)``."""
    real = module.build
    monkeypatch.setattr(module, "build", lambda *args, **kwargs: change(real(*args, **kwargs)))


# The planted bugs, CS231n style ---------------------------------------------------------------

def cs231n_relu_at_zero(monkeypatch, c):
    def relu_backward(dout, cache):
        return dout * (cache >= 0)

    monkeypatch.setattr(c, "relu_backward", relu_backward)


def cs231n_pool_every_tie(monkeypatch, c):
    def max_pool_backward_naive(dout, cache):
        x, pool_param = cache
        ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        out, _ = c.max_pool_forward_naive(x, pool_param)
        rows, cols = s * out.shape[2], s * out.shape[3]
        dx = np.zeros_like(x)
        for i in range(ph):
            for j in range(pw):
                window = x[:, :, i:i + rows:s, j:j + cols:s]
                dx[:, :, i:i + rows:s, j:j + cols:s] += dout * (window == out)
        return dx

    monkeypatch.setattr(c, "max_pool_backward_naive", max_pool_backward_naive)


def cs231n_writes_dy(monkeypatch, c):
    def relu_backward(dout, cache):
        dout[cache <= 0] = 0
        return dout

    monkeypatch.setattr(c, "relu_backward", relu_backward)


def cs231n_flatten_nhwc_weights(monkeypatch, c):
    # the affine flattens NCHW, the weights it is given are ordered like an NHWC flatten
    patch_build(monkeypatch, c, lambda model: rebuilt_with(model, flatten="NHWC"))


def summed_over_batch(loss):
    """A CS231n loss ``(loss, dx) = loss(x, y)`` summed over the batch instead of averaged."""
    def summed(x, y):
        value, dx = loss(x, y)
        return value * len(x), dx * len(x)

    return summed


def cs231n_loss_summed(monkeypatch, c):
    monkeypatch.setattr(c, "softmax_loss", summed_over_batch(c.softmax_loss))


def cs231n_same_at_stride_2(monkeypatch, c):
    conv = own.functions(c.conv_forward_naive, c.conv_backward_naive,
                         conv_param={"stride": 2, "pad": 1})
    layer = own.Conv2D(conv, 8, 3, strides=2, padding="same", name="conv1")
    patch_build(monkeypatch, c, lambda model: rebuilt_with(model, {0: layer}))


def cs231n_no_flip(monkeypatch, c):
    real = c.conv_backward_naive

    def conv_backward_naive(dout, cache):
        x, w, b, conv_param = cache
        dx, _, _ = real(dout, (x, np.ascontiguousarray(w[:, :, ::-1, ::-1]), b, conv_param))
        _, dw, db = real(dout, cache)
        return dx, dw, db

    monkeypatch.setattr(c, "conv_backward_naive", conv_backward_naive)


def cs231n_raises_in_backward(monkeypatch, c):
    def max_pool_backward_naive(dout, cache):
        x, _ = cache
        return dout.reshape(x.shape)  # forgot to scatter into the windows

    monkeypatch.setattr(c, "max_pool_backward_naive", max_pool_backward_naive)


def cs231n_float64_out(monkeypatch, c):
    real = c.conv_forward_naive

    def conv_forward_naive(x, w, b, conv_param):
        out, cache = real(x, w, b, conv_param)
        return out.astype(np.float64), cache  # as np.zeros((N, F, H, W)) without a dtype

    monkeypatch.setattr(c, "conv_forward_naive", conv_forward_naive)


# The planted bugs, object style ---------------------------------------------------------------

def object_relu_at_zero(monkeypatch, o):
    def forward(self, x):
        self.mask = x >= 0
        return x * self.mask

    monkeypatch.setattr(o.ReLU, "forward", forward)


def object_pool_every_tie(monkeypatch, o):
    def backward(self, dy):
        n, ho, wo, c = dy.shape
        s = self.size
        blocks = self.x.reshape(n, ho, s, wo, s, c)
        ties = blocks == blocks.max(axis=(2, 4), keepdims=True)
        dx = np.zeros(self.shape, dtype=dy.dtype)
        dx[:, :ho * s, :wo * s, :] = (ties * dy[:, :, None, :, None, :]).reshape(n, ho * s,
                                                                                wo * s, c)
        return dx

    monkeypatch.setattr(o.MaxPool, "backward", backward)


def object_writes_dy(monkeypatch, o):
    def backward(self, dy):
        dy[~self.mask] = 0
        return dy

    monkeypatch.setattr(o.ReLU, "backward", backward)


def object_flatten_nchw(monkeypatch, o):
    def forward(self, x):
        self.shape = x.shape
        return x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)

    def backward(self, dy):
        n, h, w, c = self.shape
        return dy.reshape(n, c, h, w).transpose(0, 2, 3, 1)

    monkeypatch.setattr(o.Flatten, "forward", forward)
    monkeypatch.setattr(o.Flatten, "backward", backward)


def object_loss_summed(monkeypatch, o):
    real = o.softmax_cross_entropy

    def loss(logits, labels):
        value, dlogits = real(logits, labels)
        return value * len(labels), dlogits * len(labels)

    monkeypatch.setattr(o, "softmax_cross_entropy", loss)


def object_same_at_stride_2(monkeypatch, o):
    layer = own.Conv2D(o.Conv(1, 8, stride=2), 8, 3, strides=2, padding="same", name="conv1",
                       bias_shape=(1, 1, 1, -1))
    patch_build(monkeypatch, o, lambda model: rebuilt_with(model, {0: layer}))


def object_no_flip(monkeypatch, o):
    real = o.Conv.backward

    def backward(self, dy):
        kernel = self.params["W"]
        self.params["W"] = np.ascontiguousarray(kernel[::-1, ::-1])
        dx = real(self, dy)  # the kernel gradient does not depend on the kernel
        self.params["W"] = kernel
        return dx

    monkeypatch.setattr(o.Conv, "backward", backward)


def object_raises_in_backward(monkeypatch, o):
    def backward(self, dy):
        return dy.reshape(self.shape)  # forgot to scatter into the windows

    monkeypatch.setattr(o.MaxPool, "backward", backward)


def object_float64_out(monkeypatch, o):
    real = o.Conv.forward
    monkeypatch.setattr(o.Conv, "forward", lambda self, x: real(self, x).astype(np.float64))


class Bug(NamedTuple):
    """A planted bug: its planter per style, where diff must find it (layer, pass, quantity key)
    per style, the dtype it shows in, and the words of a fault's sentence (None: not a fault)."""

    planters: dict
    expected: dict
    dtype: str = "float64"
    fault: str | None = None


BUGS = {
    "relu_gradient_at_zero": Bug(
        {"cs231n": cs231n_relu_at_zero, "object": object_relu_at_zero},
        {"cs231n": ("relu2", "backward", "input_grad"),
         "object": ("relu2", "backward", "input_grad")}),
    "pool_gradient_to_every_tie": Bug(
        {"cs231n": cs231n_pool_every_tie, "object": object_pool_every_tie},
        {"cs231n": ("pool2", "backward", "input_grad"),
         "object": ("pool2", "backward", "input_grad")}),
    "backward_writes_into_dy": Bug(
        {"cs231n": cs231n_writes_dy, "object": object_writes_dy},
        {"cs231n": ("relu3", "backward", "output_grad"),
         "object": ("relu3", "backward", "output_grad")},
        fault="modified the upstream gradient it received"),
    "nchw_flatten_nhwc_weights": Bug(
        {"cs231n": cs231n_flatten_nhwc_weights, "object": object_flatten_nchw},
        {"cs231n": ("fc1", "forward", "output"), "object": ("flatten", "forward", "output")}),
    "loss_summed_over_batch": Bug(
        {"cs231n": cs231n_loss_summed, "object": object_loss_summed},
        {"cs231n": ("loss", "forward", "output"), "object": ("loss", "forward", "output")}),
    "symmetric_pad_declared_same_at_stride_2": Bug(
        {"cs231n": cs231n_same_at_stride_2, "object": object_same_at_stride_2},
        {"cs231n": ("conv1", "forward", "output"), "object": ("conv1", "forward", "output")}),
    "input_gradient_without_kernel_flip": Bug(
        {"cs231n": cs231n_no_flip, "object": object_no_flip},
        {"cs231n": ("conv2", "backward", "input_grad"),
         "object": ("conv2", "backward", "input_grad")}),
    "exception_in_backward": Bug(
        {"cs231n": cs231n_raises_in_backward, "object": object_raises_in_backward},
        {"cs231n": ("pool2", "backward", "input_grad"),
         "object": ("pool2", "backward", "input_grad")},
        fault="raised ValueError"),
    "float64_from_float32_model": Bug(
        {"cs231n": cs231n_float64_out, "object": object_float64_out},
        {"cs231n": ("conv1", "forward", "output"), "object": ("conv1", "forward", "output")},
        dtype="float32", fault="returned output y of dtype float64 from a float32 model"),
}


def plant(bug: str, style: str, monkeypatch) -> Bug:
    """Plant ``bug`` into the example of ``style``; returns the bug's description."""
    BUGS[bug].planters[style](monkeypatch, example(style))
    return BUGS[bug]


# Conventions the cause catalog names (``reference_tf.causes``), beyond ``BUGS`` -------------

def cs231n_affine_reads_w_transposed(monkeypatch, c):
    # the (D, M) weights' memory read as PyTorch's (M, D)
    def affine_forward(x, w, b):
        return x.reshape(x.shape[0], -1) @ w.reshape(w.shape[::-1]).T + b, (x, w, b)

    monkeypatch.setattr(c, "affine_forward", affine_forward)


def object_conv_reads_w_as_oihw(monkeypatch, o):
    real = o.Conv.forward

    def forward(self, x):
        kernel = self.params["W"]
        h, w, i, f = kernel.shape
        self.params["W"] = np.ascontiguousarray(kernel.reshape(f, i, h, w).transpose(2, 3, 1, 0))
        y = real(self, x)
        self.params["W"] = kernel
        return y

    monkeypatch.setattr(o.Conv, "forward", forward)


def cs231n_conv_pads_rows_2_0(monkeypatch, c):
    """conv_forward_naive pads the rows (2, 0) instead of the declared (1, 1) (any CS231n-style
    module ``c``: the examples' or parity_tests/third_party's)."""
    forward, backward = c.conv_forward_naive, c.conv_backward_naive

    def conv_forward_naive(x, w, b, conv_param):
        padded = np.pad(x, ((0, 0), (0, 0), (2, 0), (1, 1)))
        out, cache = forward(padded, w, b, {**conv_param, "pad": 0})
        return out, (cache, x.shape)

    def conv_backward_naive(dout, cache):
        inner, (_, _, h, w) = cache
        dx, dw, db = backward(dout, inner)
        return dx[:, :, 2:2 + h, 1:1 + w], dw, db

    monkeypatch.setattr(c, "conv_forward_naive", conv_forward_naive)
    monkeypatch.setattr(c, "conv_backward_naive", conv_backward_naive)


def object_linear_declared_in_out(monkeypatch, o):
    # the (out, in) Linear weights without dense_layout="OI": x @ W.T does not fit
    patch_build(monkeypatch, o, lambda model: rebuilt_with(model, dense_layout="IO"))


def nchw_objects_pool_every_tie(monkeypatch, o):
    """parity_tests/third_party/objects_nchw.py's MaxPool2d sends each window's gradient to
    every tied maximum."""
    def backward(self, dout):
        n, c, h, w = self.x_shape
        k = self.k
        hits = self.flat == self.flat.max(axis=-1, keepdims=True)
        routed = np.where(hits, dout[..., None], 0).astype(dout.dtype)
        return routed.reshape(n, c, h // k, w // k, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
            n, c, h, w)

    monkeypatch.setattr(o.MaxPool2d, "backward", backward)


def nchw_objects_relu_at_zero(monkeypatch, o):
    """objects_nchw.py's ReLU passes the gradient at exactly 0 too (ReLU'(0) = 1)."""
    forward = o.ReLU.forward

    def remembering(self, x):
        self.x = x
        return forward(self, x)

    monkeypatch.setattr(o.ReLU, "forward", remembering)
    monkeypatch.setattr(o.ReLU, "backward",
                        lambda self, dout: np.where(self.x >= 0, dout, 0).astype(dout.dtype))


def cs231n_affine_grads_mean_twice(monkeypatch, c):
    real = c.affine_backward

    def affine_backward(dout, cache):
        dx, dw, db = real(dout, cache)
        return dx, dw / len(dout), db

    monkeypatch.setattr(c, "affine_backward", affine_backward)


def object_linear_grads_summed(monkeypatch, o):
    # the gradient of a summed loss: N times the mean's
    real = o.Linear.backward

    def backward(self, dy):
        dx = real(self, dy)
        self.grads["W"] = self.grads["W"] * len(dy)
        return dx

    monkeypatch.setattr(o.Linear, "backward", backward)


def cs231n_loss_label_smoothing(monkeypatch, c):
    def softmax_loss(x, y):
        n, k = x.shape
        shifted = x - x.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        targets = np.full(x.shape, 0.1 / k)
        targets[np.arange(n), y] += 0.9
        return -(targets * log_probs).sum() / n, (np.exp(log_probs) - targets) / n

    monkeypatch.setattr(c, "softmax_loss", softmax_loss)


def object_loss_log_of_softmax_plus_eps(monkeypatch, o):
    def softmax_cross_entropy(logits, labels):
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        rows = np.arange(len(labels))
        p_y = probs[rows, labels]
        loss = -np.log(p_y + 1e-7).mean()
        probs[rows, labels] -= 1
        return loss, (p_y / (p_y + 1e-7))[:, None] * probs / len(labels)

    monkeypatch.setattr(o, "softmax_cross_entropy", softmax_cross_entropy)


def cs231n_conv_float32_out(monkeypatch, c):
    real = c.conv_forward_naive

    def conv_forward_naive(x, w, b, conv_param):
        out, cache = real(x, w, b, conv_param)
        return out.astype(np.float32), cache  # as np.zeros(..., dtype=np.float32)

    monkeypatch.setattr(c, "conv_forward_naive", conv_forward_naive)


class ZeroPaddedPool:
    """An NHWC max-pool with TensorFlow's SAME split whose padding holds zeros (``np.pad``'s
    default) instead of -inf: (N, H, W, C) -> (N, ceil(H / stride), ceil(W / stride), C)."""

    def __init__(self, size=3, stride=2):
        self.size, self.stride = size, stride

    def forward(self, x):
        k, s = self.size, self.stride
        out = [-(-n // s) for n in x.shape[1:3]]
        pads = [max((o - 1) * s + k - n, 0) for o, n in zip(out, x.shape[1:3])]
        self.top, self.left = pads[0] // 2, pads[1] // 2
        self.xp = np.pad(x, ((0, 0), (self.top, pads[0] - self.top),
                             (self.left, pads[1] - self.left), (0, 0)))
        self.shape, self.out = x.shape, out
        windows = [self.xp[:, i:i + s * out[0]:s, j:j + s * out[1]:s] for i in range(k)
                   for j in range(k)]
        self.y = np.max(windows, axis=0)
        return self.y

    def backward(self, dy):
        k, s, out = self.size, self.stride, self.out
        dxp, taken = np.zeros_like(self.xp), np.zeros(dy.shape, dtype=bool)
        for i in range(k):
            for j in range(k):
                window = (slice(None), slice(i, i + s * out[0], s), slice(j, j + s * out[1], s))
                hit = (self.xp[window] == self.y) & ~taken
                taken |= hit
                dxp[window] += dy * hit
        h, w = self.shape[1:3]
        return dxp[:, self.top:self.top + h, self.left:self.left + w]


def object_zero_padded_pool(o, dtype: str) -> own.Model:
    """The object example with pool1 replaced by a 3x3, stride-2 SAME pool padded with zeros,
    before relu1 (the two commute), and conv1's bias -0.1: blank borders are negative there."""
    model = o.build()
    layers = {1: own.MaxPool2D(ZeroPaddedPool(3, 2), 3, strides=2, padding="same", name="pool1"),
              2: own.ReLU(o.ReLU(), name="relu1")}
    model = rebuilt_with(model, layers)
    model = own.Model(model.layers, model.input_shape, loss=model.loss,
                      conventions=model.conventions, seed=model.seed, dtype=dtype)
    model.params["conv1/b"][...] = -0.1
    return model
