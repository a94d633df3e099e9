"""No substitution, ever: a subclass of a tfparity layer, and every user layer, runs its own code
in training, evaluation and prediction; the training path's fused units take only tfparity's
exact classes.

NumPy only (no TensorFlow).
"""

from __future__ import annotations

import numpy as np
import pytest

from scratch.fusion import ConvChain
from scratch.layers import Conv2D, ReLU
from scratch.models import Sequential, build
from scratch.train import fit


class DoubledBiasConv(Conv2D):
    """A Conv2D whose backward pass doubles the bias gradient, and that records its calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def call(self, x):
        self.calls.append("call")
        return super().call(x)

    def call_backward(self, dy):
        self.calls.append("call_backward")
        dx = super().call_backward(dy)
        self.grads["bias"] = 2 * self.grads["bias"]
        return dx

    def backward_params(self, dy):
        self.calls.append("backward_params")
        super().backward_params(dy)
        self.grads["bias"] = 2 * self.grads["bias"]


class CountingReLU(ReLU):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def call(self, x):
        self.calls.append("call")
        return super().call(x)


def _cnn_with(conv1: Conv2D, relu1: ReLU, dtype: str) -> Sequential:
    """The course CNN with conv1 and its ReLU replaced, same names and seed as build("cnn")."""
    layers = build("cnn").layers
    layers[0], layers[1] = conv1, relu1
    return Sequential(layers, (28, 28, 1), seed=0, dtype=dtype)


def _data(n: int, dtype: str):
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28, 1)).astype(dtype), rng.integers(0, 10, n)


def test_subclass_never_fused():
    model = _cnn_with(DoubledBiasConv(8, 3, padding="same", name="conv1"),
                      CountingReLU(name="conv1_relu"), "float32")
    chains = [unit for unit in model.units if isinstance(unit, ConvChain)]
    assert model.units[:3] == model.layers[:3]
    # the second block is tfparity's own and still fused
    assert [[conv.name for conv, _ in chain.blocks] for chain in chains] == [["conv2"]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_subclass_backward_runs_in_fit(dtype):
    x, y = _data(20, dtype)
    plain = build("cnn", seed=0, dtype=dtype)
    conv = DoubledBiasConv(8, 3, padding="same", name="conv1")
    own = _cnn_with(conv, CountingReLU(name="conv1_relu"), dtype)
    for model in (plain, own):  # one SGD step on the whole batch, no evaluation sets
        fit(model, x, y, epochs=1, lr=0.1, batch_size=20)
    assert "backward_params" in conv.calls or "call_backward" in conv.calls
    moved_plain, moved_own = plain.params["conv1/bias"], own.params["conv1/bias"]  # from zeros
    rtol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(moved_own, 2 * moved_plain, rtol=rtol)
    assert np.abs(moved_plain).max() > 0


@pytest.mark.parametrize("method", ["evaluate", "predict", "forward"])
def test_subclass_call_runs_in_evaluation(method):
    x, y = _data(10, "float32")
    relu = CountingReLU(name="conv1_relu")
    model = _cnn_with(DoubledBiasConv(8, 3, padding="same", name="conv1"), relu, "float32")
    args = (x, y) if method == "evaluate" else (x,)
    getattr(model, method)(*args)
    assert relu.calls == ["call"] and model.layers[0].calls == ["call"]
