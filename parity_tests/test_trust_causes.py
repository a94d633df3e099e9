"""The catalog names what third-party code gets wrong that it missed before (planted in the test
libraries of ``parity_tests/third_party/``, both dtypes): explicit asymmetric padding (which side
and how much), a true convolution (forward and kernel gradient), and a PyTorch-style kernel
layout left undeclared (the declaration that fits)."""

from __future__ import annotations

import pytest

from reference_tf.batches import model_batch
from reference_tf.layerdiff import diff
from reference_tf.own.loading import load_model

from own_network_helpers import (
    DTYPES,
    cs231n_conv_pads_rows_2_0,
    library,
    library_spec,
    rebuilt_with,
)


def _diff(model, dtype: str):
    model = model.rebuilt(dtype=dtype)
    x, y = model_batch(model, "strokes", 4, 0)
    return diff(model, x, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_asymmetric_padding_named_with_side_and_amount(monkeypatch, dtype):
    cs231n_conv_pads_rows_2_0(monkeypatch, library("loops"))
    first = _diff(load_model(library_spec("loops")), dtype).first_divergence
    assert (first.layer, first.direction, first.label) == ("conv1", "forward", "y")
    assert first.cause.id == "padding_sides"
    assert "rows (2, 0) instead of the declared (1, 1): 1 more on top" in first.cause.detail


def _flipped_kernel_grad(backward):
    def flipped(self, dout):
        dx = backward(self, dout)
        self.dW = self.dW[:, :, ::-1, ::-1]
        return dx
    return flipped


def _true_convolution(monkeypatch):
    """Conv2d convolves (kernel flipped) in both passes, consistently."""
    conv = library("objects").Conv2d
    forward, backward = conv.forward, conv.backward

    def flipping(method):
        def run(self, arg):
            self.W = self.W[:, :, ::-1, ::-1]
            try:
                return method(self, arg)
            finally:
                self.W = self.W[:, :, ::-1, ::-1]
        return run

    monkeypatch.setattr(conv, "forward", flipping(forward))
    monkeypatch.setattr(conv, "backward", _flipped_kernel_grad(flipping(backward)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_true_convolution_named_forward_and_kernel_gradient(monkeypatch, dtype):
    _true_convolution(monkeypatch)
    result = _diff(load_model(library_spec("objects")), dtype)
    first = result.first_divergence
    assert (first.layer, first.direction, first.cause.id) == ("conv1", "forward", "kernel_flip")
    kernel_grad = next(layer for layer in result.layers if layer.name == "conv2").get("grads/W")
    assert kernel_grad.cause.id == "kernel_flip"
    assert "true convolution" in kernel_grad.cause.detail


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_gradient_of_a_true_convolution_named(monkeypatch, dtype):
    conv = library("objects").Conv2d
    monkeypatch.setattr(conv, "backward", _flipped_kernel_grad(conv.backward))
    first = _diff(load_model(library_spec("objects")), dtype).first_divergence
    assert (first.layer, first.direction, first.label) == ("conv2", "backward", "dL/dW")
    assert first.cause.id == "kernel_flip"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("declared, layer, hint", [
    ({"dense_layout": "IO"}, "fc1", "declare dense_layout='OI'"),
    ({"kernel_layout": "HWIO"}, "conv1", "declare kernel_layout='OIHW'")])
def test_undeclared_kernel_layout_names_the_declaration(dtype, declared, layer, hint):
    model = rebuilt_with(load_model(library_spec("objects")), **declared)
    first = _diff(model, dtype).first_divergence
    assert first.layer == layer and first.fault is not None and first.fault.fatal
    assert first.cause.id == "kernel_declaration"
    assert hint in first.cause.detail
