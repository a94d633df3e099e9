"""Real bugs planted in the scratch engine: ``tfparity diff`` must name the layer, pass and
parameter, ``tfparity check`` must fail; without a bug both are clean.

Each planter patches the engine where the code looks the function up at call time: the layers
call ``scratch.ops.<fn>`` through the ``ops`` module, ``conv2d_backward`` calls
``conv2d_input_grad`` from ``scratch.ops.conv``, ``Sequential`` calls
``scratch.ops.softmax_cross_entropy``. The planted code wraps the real functions, so it does not
depend on their internals.
"""

from __future__ import annotations

import json
from collections import namedtuple

import numpy as np
import pytest

from reports.cli import main
from reference_tf.finite_diff import judge
from scratch import ops
from scratch.ops import conv as conv_ops


def plant_conv_no_flip(monkeypatch):
    """The input gradient correlates with the kernel as it is, not flipped."""
    real = conv_ops.conv2d_input_grad

    def unflipped(dy, kernel, *args, **kwargs):
        # real() flips its kernel argument, so a pre-flipped kernel cancels the flip
        return real(dy, np.ascontiguousarray(kernel[::-1, ::-1]), *args, **kwargs)

    monkeypatch.setattr(conv_ops, "conv2d_input_grad", unflipped)


SplitCache = namedtuple("SplitCache", "x y real")


def plant_pool_split_ties(monkeypatch):
    """Max-pool backward shares the gradient equally among tied maxima (2x2, stride 2, tiled)."""
    real_forward = ops.max_pool2d_forward

    def forward(x, pool_size=(2, 2), strides=(2, 2), padding="valid"):
        y, cache = real_forward(x, pool_size, strides, padding)
        assert tuple(pool_size) == tuple(strides) == (2, 2)
        assert x.shape[1] % 2 == x.shape[2] % 2 == 0
        return y, SplitCache(x, y, cache)

    def backward(dy, cache):
        n, h, w, c = cache.x.shape
        windows = cache.x.reshape(n, h // 2, 2, w // 2, 2, c)
        hits = windows == cache.y[:, :, None, :, None, :]
        share = dy[:, :, None, :, None, :] / hits.sum(axis=(2, 4), keepdims=True)
        return (hits * share).reshape(n, h, w, c).astype(dy.dtype)

    monkeypatch.setattr(ops, "max_pool2d_forward", forward)
    monkeypatch.setattr(ops, "max_pool2d_backward", backward)


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


def diff_json(tmp_path, *args) -> tuple[int, dict]:
    path = tmp_path / "diff.json"
    code = main(["diff", *args, "--json", str(path)])
    return code, json.loads(path.read_text())


# (planter, model, expected (layer, pass, quantity key), expected finite-difference verdict)
CASES = {
    "conv_no_flip": (plant_conv_no_flip, "cnn", ("conv2", "backward", "input_grad"), "scratch"),
    "pool_split_ties": (plant_pool_split_ties, "cnn", ("pool2", "backward", "input_grad"), "kink"),
    "dense_bias_wrong_axis": (plant_dense_bias_wrong_axis, "mlp1",
                              ("logits", "backward", "grads/bias"), "scratch"),
    "loss_missing_mean": (plant_loss_missing_mean, "mlp1", ("loss", "backward", "input_grad"),
                          "scratch"),
    "relu_passes_at_zero": (plant_relu_passes_at_zero, "cnn",
                            ("conv2_relu", "backward", "input_grad"), "kink"),
    "flatten_nchw": (plant_flatten_nchw, "cnn", ("flatten", "forward", "output"), "forward"),
}


@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_bug_diff_names_layer_pass_and_side(bug, monkeypatch, tmp_path):
    plant, model, (layer, pass_, key), verdict = CASES[bug]
    plant(monkeypatch)
    code, result = diff_json(tmp_path, model)
    first = result["first_divergence"]
    assert code == 1 and not result["passed"]
    assert (first["layer"], first["pass"], first["key"]) == (layer, pass_, key), first
    assert first["param"] == (key.split("/")[1] if key.startswith("grads/") else None)
    assert result["third_opinion"]["verdict"] == verdict, result["third_opinion"]


@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_bug_check_fails(bug, monkeypatch, capsys):
    plant, model, _, _ = CASES[bug]
    plant(monkeypatch)
    code = main(["check", "--models", model, "--dtype", "both"])
    lines = capsys.readouterr().out.splitlines()
    # The bugs are planted in the layers' ops, which the layer-by-layer trace path runs.
    trace = [line.split()[:4] for line in lines if line.split()[3:4] == ["trace"]]
    assert code == 1 and trace == [["FAIL", model, "float32", "trace"],
                                   ["FAIL", model, "float64", "trace"]], lines


@pytest.mark.parametrize("reference_factor, verdict", [(3.0, "tensorflow"), (2.0, "agree")])
def test_fd_judge_blames_the_side_that_misses_the_derivative(reference_factor, verdict):
    # f(x) = sum(x**2) per row: the derivative is 2x; "mine" is right, the reference is not
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4) + 0.05
    mine = 2 * x
    opinion = judge(x, lambda: (x ** 2).sum(axis=1), lambda: (x ** 2).sum(axis=1), mine,
                    reference_factor * x + (reference_factor == 2.0) * 1e-5 * x, "input gradient")
    assert opinion.verdict == verdict, opinion.sentence


def test_fd_judge_inconclusive_at_a_relu_kink():
    # f(x) = sum(relu(x)) per row at x = 0 (left derivative 0, right derivative 1)
    x = np.array([[0.0, 1.0], [0.0, -1.0]])
    opinion = judge(x, lambda: np.maximum(x, 0).sum(axis=1), lambda: np.maximum(x, 0).sum(axis=1),
                    np.array([[1.0, 1.0], [0.5, 0.0]]), np.array([[0.0, 1.0], [0.0, 0.0]]),
                    "input gradient")
    assert opinion.verdict == "kink"
    assert opinion.details["tensorflow_one_sided"] == 2 and opinion.details["scratch_one_sided"] == 1
