"""Guidance, not crashes: a user layer that diverges, raises, or keeps its parameters as
attributes gets the normal comparison (a failing quantity, a fault with "no cause"), never an
exception from tfparity's code, in ``check``, ``diff``, ``assert_layer_parity`` and
``assert_model_parity``."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

from reference_tf import own
from reference_tf.finite_diff import third_opinion
from reference_tf.layerdiff import diff
from reference_tf.parity_check import check
from reference_tf.testing import assert_layer_parity, assert_model_parity
from reports.cli import main
from scratch import layers
from scratch.models import Sequential

from own_network_helpers import library, library_spec


class Diverging(layers.Dense):
    """A subclass whose forward pass is 1 % off and whose training path calls tfparity's
    ``backward_params`` with a cache of another kind."""

    def call(self, x):
        return self.save_for_backward(x @ self.params["kernel"] * 1.01 + self.params["bias"], x)

    def call_backward(self, dy):
        self.grads["kernel"], self.grads["bias"] = self.cache.T @ dy, dy.sum(axis=0)
        return dy @ self.params["kernel"].T


class Raising(layers.Dense):
    """A subclass whose backward pass raises (the kernel not transposed)."""

    def call_backward(self, dy):
        return dy @ self.params["kernel"]


class Declared(layers.Layer):
    """A layer of the adapter protocol without ``reference_tf.own`` conventions, computing twice
    what it declares."""

    def __init__(self, units, name=None):
        super().__init__(name)
        self.units = units

    def output_shape_for(self, input_shape):
        return (self.units,)

    def init_params(self, input_shape, rng):
        return {"w": rng.standard_normal((input_shape[0], self.units)).astype(self.dtype)}

    def call(self, x):
        return self.save_for_backward(2 * x @ self.params["w"], x)

    def call_backward(self, dy):
        self.grads["w"] = self.cache.T @ dy
        return dy @ self.params["w"].T

    def keras_layer(self, dtype):
        return keras.layers.Dense(self.units, use_bias=False, dtype=dtype, name=self.name)

    def params_to_keras(self, params):
        return {"kernel": params["w"]}

    def params_from_keras(self, arrays):
        return {"w": arrays["kernel"]}

    def float64_copy(self):
        clone = copy.copy(self)
        clone.dtype = np.dtype(np.float64)
        clone.params = {k: v.astype(np.float64) for k, v in self.params.items()}
        clone.grads = {}
        return clone


ODD = {"diverging": Diverging, "raising": Raising, "declared": Declared}


def _model(kind: str) -> Sequential:
    return Sequential([layers.Flatten(name="flat"), ODD[kind](10, name="odd")], (4, 4, 1),
                      dtype="float64")


def _batch():
    return np.random.default_rng(0).standard_normal((3, 4, 4, 1)), np.array([1, 2, 3])


@pytest.mark.parametrize("kind", ODD)
def test_check_odd_layer_fails_without_exception(kind):
    result = check(_model(kind), *_batch())
    assert not result.passed
    if kind == "raising":
        fault = result.paths["trace"].fault
        assert (fault.layer, fault.function, fault.direction) == ("odd", "Raising.call_backward",
                                                               "backward")
        assert "ValueError" in fault.problem and "call_backward" in fault.frame


@pytest.mark.parametrize("kind", ODD)
def test_diff_odd_layer_names_the_layer_with_no_cause(kind):
    result = diff(_model(kind), *_batch())
    third_opinion(result)
    first = result.first_divergence
    assert (first.layer, first.direction) == (("odd", "backward") if kind == "raising"
                                         else ("odd", "forward"))
    assert first.cause is None
    assert result.to_dict()["first_divergence"]["layer"] == "odd"


@pytest.mark.parametrize("kind", ODD)
def test_assert_layer_parity_odd_layer_raises_assertion_error(kind):
    with pytest.raises(AssertionError, match="odd2"):
        assert_layer_parity(ODD[kind](10, name="odd2"), None, (3, 16), "float64")


@pytest.mark.parametrize("kind", ODD)
def test_assert_model_parity_odd_layer_raises_assertion_error(kind):
    with pytest.raises(AssertionError, match="first divergence: layer 'odd'"):
        assert_model_parity(_model(kind), *_batch())


class AttributeDense:
    """An affine object keeping its weights as attributes: weight (in, out), bias; gradients in
    grad_weight, grad_bias."""

    def __init__(self, n_in, n_out):
        self.weight, self.bias = np.zeros((n_in, n_out)), np.zeros(n_out)

    def forward(self, x):
        self.x = x
        return x @ self.weight + self.bias

    def backward(self, dy):
        self.grad_weight, self.grad_bias = self.x.T @ dy, dy.sum(axis=0)
        return dy @ self.weight.T


def _attribute_model(impl) -> own.Model:
    return own.Model([own.Flatten(own.functions(lambda x: (x.reshape(len(x), -1), x.shape),
                                                lambda dy, shape: dy.reshape(shape))),
                      own.Dense(impl, 10, name="fc")], (4, 4, 1), dtype="float64")


def test_attribute_parameters_declared_with_methods_pass():
    impl = own.methods(AttributeDense(16, 10), params={"kernel": "weight", "bias": "bias"},
                       grads={"kernel": "grad_weight", "bias": "grad_bias"})
    assert check(_attribute_model(impl), *_batch()).passed


def test_attribute_parameters_named_like_the_parameters_are_found():
    class Found(AttributeDense):
        def __init__(self, n_in, n_out):
            self.kernel, self.bias = np.zeros((n_in, n_out)), np.zeros(n_out)

        def forward(self, x):
            self.x = x
            return x @ self.kernel + self.bias

        def backward(self, dy):
            self.dkernel, self.dbias = self.x.T @ dy, dy.sum(axis=0)
            return dy @ self.kernel.T

    assert check(_attribute_model(Found(16, 10)), *_batch()).passed


def test_attribute_parameters_undeclared_name_the_declaration():
    with pytest.raises(ValueError, match=r"own\.methods\(obj, params=.*'weight', 'bias'"):
        _attribute_model(AttributeDense(16, 10))


def test_cli_check_lists_every_fault_of_a_path(monkeypatch, capsys):
    lib = library("loops")

    def relu_forward(x):  # float64 out of a float32 model (not fatal: cast to go on)
        return np.maximum(0, x).astype(np.float64), x

    def relu_backward(dout, cache):  # writes into the upstream gradient (not fatal)
        dout[cache <= 0] = 0
        return dout

    monkeypatch.setattr(lib, "relu_forward", relu_forward)
    monkeypatch.setattr(lib, "relu_backward", relu_backward)
    code = main(["check", "--model", library_spec("loops"), "--dtype", "float32",
                 "--batch-size", "2", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    trace = [line for line in out.splitlines() if line.startswith("FAIL") and " trace " in line]
    assert "layer 'relu1' (relu_forward) returned output y of dtype float64" in trace[0]
    also = out.split(trace[0], 1)[1].split("\nFAIL")[0]
    assert "also: layer 'relu2' (relu_forward) returned output y of dtype float64" in also
    assert "also: layer 'relu3' (relu_backward) modified the upstream gradient" in also
