"""Declared user layers against the Keras twins tfparity builds for them: every convention
converts both ways, and the twin computes exactly what was declared."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_tf import own
from reference_tf.batches import model_batch
from reference_tf.own.conventions import (
    activation_from_user,
    activation_to_user,
    param_from_user,
    param_shape_to_user,
    param_to_user,
)
from reference_tf.testing import assert_layer_parity, assert_model_parity

from own_network_helpers import DTYPES, example

NCHW = {"layout": "NCHW", "kernel_layout": "OIHW", "names": {"kernel": "w", "bias": "b"}}


def padded_functions(c, pads, stride):
    """A user convolution with explicit per-side zero padding, from the CS231n example's
    unpadded convolution: pads ((top, bottom), (left, right))."""
    (top, bottom), (left, right) = pads

    def padded_conv_forward(x, w, b):
        xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        out, cache = c.conv_forward_naive(xp, w, b, {"stride": stride, "pad": 0})
        return out, (cache, x.shape)

    def padded_conv_backward(dout, cache):
        inner, (_, _, h, w) = cache
        dxp, dw, db = c.conv_backward_naive(dout, inner)
        return dxp[:, :, top:top + h, left:left + w], dw, db

    return own.functions(padded_conv_forward, padded_conv_backward)


def padded_pool(c, pads, size, stride):
    """A user max pooling that pads zeros first (as ``np.pad``), per side."""
    (top, bottom), (left, right) = pads
    param = {"pool_height": size, "pool_width": size, "stride": stride}

    def zero_padded_pool_forward(x):
        xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        out, cache = c.max_pool_forward_naive(xp, param)
        return out, (cache, x.shape)

    def zero_padded_pool_backward(dout, cache):
        inner, (_, _, h, w) = cache
        return c.max_pool_backward_naive(dout, inner)[:, :, top:top + h, left:left + w]

    return own.functions(zero_padded_pool_forward, zero_padded_pool_backward)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride, pad, size", [(1, 1, 9), (2, 1, 10), (2, 0, 9), (3, 2, 11)])
def test_conv_nchw_oihw_symmetric_pad_matches_declared_twin(stride, pad, size, dtype):
    c = example("cs231n")
    conv = own.functions(c.conv_forward_naive, c.conv_backward_naive,
                         conv_param={"stride": stride, "pad": pad})
    layer = own.Conv2D(conv, 4, 3, strides=stride, padding=pad, **NCHW)
    assert_layer_parity(layer, None, (3, 2, size, size), dtype)


@pytest.mark.parametrize("pads", [((0, 1), (0, 1)), ((2, 0), (1, 3))])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_per_side_padding_matches_declared_twin(pads, stride):
    layer = own.Conv2D(padded_functions(example("cs231n"), pads, stride), 3, 3, strides=stride,
                       padding=pads, **NCHW)
    assert_layer_parity(layer, None, (2, 2, 8, 8), "float64")


def test_conv_tf_same_at_stride_2_is_one_sided_padding():
    # TF's 'same' at stride 2 on an even input pads (0, 1): the user code that pads so matches
    layer = own.Conv2D(padded_functions(example("cs231n"), ((0, 1), (0, 1)), 2), 3, 3,
                       strides=2, padding="same", **NCHW)
    assert_layer_parity(layer, None, (2, 1, 8, 8), "float64")


@pytest.mark.parametrize("pads", [0, ((1, 0), (0, 1))])
def test_max_pool_zero_padding_matches_declared_twin(pads):
    padding = ((0, 0), (0, 0)) if pads == 0 else pads
    layer = own.MaxPool2D(padded_pool(example("cs231n"), padding, 2, 2), 2, padding=pads,
                          layout="NCHW")
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7))  # negatives: zeros win at pads
    assert_layer_parity(layer, None, x.shape, "float64", x=x)


def test_max_pool_zero_padding_differs_from_same():
    c = example("cs231n")
    layer = own.MaxPool2D(padded_pool(c, ((0, 1), (0, 1)), 2, 2), 2, padding="same",
                          layout="NCHW")
    x = -np.ones((1, 1, 3, 3))  # TF's 'same' pads -inf, the user's code zeros
    with pytest.raises(AssertionError, match="output"):
        assert_layer_parity(layer, None, x.shape, "float64", x=x)


@pytest.mark.parametrize("flatten", ["NCHW", "NHWC"])
def test_dense_flattens_images_in_the_declared_order(flatten):
    c = example("cs231n")
    # affine_forward flattens whatever layout it is given: NCHW images flatten NCHW, NHWC NHWC
    layer = own.Dense(own.functions(c.affine_forward, c.affine_backward), 5, layout=flatten,
                      names={"kernel": "w", "bias": "b"})
    shape = (3, 2, 4, 3) if flatten == "NCHW" else (3, 4, 3, 2)
    assert_layer_parity(layer, None, shape, "float64")


def test_dense_flatten_order_mismatch_fails_forward():
    c = example("cs231n")
    layer = own.Dense(own.functions(c.affine_forward, c.affine_backward), 5, layout="NCHW",
                      flatten="NHWC", names={"kernel": "w", "bias": "b"})
    with pytest.raises(AssertionError, match="output"):
        assert_layer_parity(layer, None, (3, 2, 4, 3), "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_object_layers_out_in_kernel_and_broadcast_bias(dtype):
    o = example("object")
    conventions = {"names": {"kernel": "W", "bias": "b"}}
    assert_layer_parity(own.Dense(o.Linear(6, 4), 4, dense_layout="OI", **conventions), None,
                        (5, 6), dtype)
    assert_layer_parity(own.Conv2D(o.Conv(2, 3), 3, 3, padding="same", bias_shape=(1, 1, 1, -1),
                                   **conventions), None, (2, 6, 6, 2), dtype)
    assert_layer_parity(own.Flatten(o.Flatten()), None, (2, 3, 3, 2), dtype)


def test_flatten_of_nchw_images_in_either_order():
    def flatten_forward(x):  # NCHW images flattened in their memory order
        return x.reshape(len(x), -1), x.shape

    def flatten_backward(dout, shape):
        return dout.reshape(shape)

    def nhwc_flatten_forward(x):  # NCHW images flattened as Keras would flatten them
        return x.transpose(0, 2, 3, 1).reshape(len(x), -1), x.shape

    def nhwc_flatten_backward(dout, shape):
        n, c, h, w = shape
        return dout.reshape(n, h, w, c).transpose(0, 3, 1, 2)

    plain = own.Flatten(own.functions(flatten_forward, flatten_backward), layout="NCHW")
    assert_layer_parity(plain, None, (2, 3, 4, 5), "float64")
    permuted = own.Flatten(own.functions(nhwc_flatten_forward, nhwc_flatten_backward),
                           layout="NCHW", flatten="NHWC")
    assert_layer_parity(permuted, None, (2, 3, 4, 5), "float64")
    assert not isinstance(plain.keras_layer("float64"), keras.Sequential)
    assert [type(part).__name__ for part in permuted.keras_layer("float64").layers] == [
        "Permute", "Flatten"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("style, model", list(itertools.product(["cs231n", "object"],
                                                              ["cnn", "mlp2"])))
def test_example_model_parity(style, model, dtype):
    net = example(style).build(model).rebuilt(seed=1, dtype=dtype)
    x, y = model_batch(net, "strokes", 6, 1)
    comparisons = assert_model_parity(net, x, y)
    names = {"cs231n": "w", "object": "W"}[style]
    assert f"grads/fc1/{names}" in comparisons


def test_example_declarations_are_data():
    net = example("cs231n").build()
    conv1 = net.layers[0].declaration
    assert conv1.keras == "Conv2D" and conv1.config["padding"] == ((1, 1), (1, 1))
    assert conv1.conventions.layout == "NCHW" and conv1.conventions.kernel_layout == "OIHW"
    fc1 = net.layers[6].declaration.to_dict()
    assert fc1["keras"] == "Dense" and fc1["conventions"]["flatten"] == "NCHW"
    assert net.params["conv1/w"].shape == (8, 1, 3, 3)  # the user's layout and name


LAYOUTS = st.permutations("HWIO").map("".join)


@given(LAYOUTS, st.sampled_from(["IO", "OI"]),
       st.sampled_from([None, (1, 1, 1, -1), (-1, 1)]))
def test_param_conversions_are_inverse(kernel_layout, dense_layout, bias_shape):
    conventions = own.Conventions(kernel_layout=kernel_layout, dense_layout=dense_layout,
                                  bias_shape=bias_shape)
    rng = np.random.default_rng(0)
    for kind, shape in (("conv", (3, 2, 4, 5)), ("dense", (6, 7))):
        for key, value in (("kernel", rng.random(shape)), ("bias", rng.random(shape[-1]))):
            user = param_to_user(kind, key, value, conventions)
            assert user.shape == param_shape_to_user(kind, key, value.shape, conventions)
            np.testing.assert_array_equal(param_from_user(kind, key, user, conventions), value)
    kernel = param_to_user("conv", "kernel", np.arange(120.0).reshape(3, 2, 4, 5), conventions)
    assert kernel.shape == tuple({"H": 3, "W": 2, "I": 4, "O": 5}[a] for a in kernel_layout)


@given(st.permutations("HWC").map(lambda axes: "N" + "".join(axes)))
def test_activation_conversions_are_inverse(layout):
    x = np.random.default_rng(0).random((2, 3, 4, 5))
    user = activation_to_user(x, layout)
    assert user.shape == tuple({"N": 2, "H": 3, "W": 4, "C": 5}[a] for a in layout)
    np.testing.assert_array_equal(activation_from_user(user, layout), x)


@pytest.mark.parametrize("changes, match", [
    ({"layout": "CHWN"}, "batch axis N"), ({"layout": "NCH"}, "layout"),
    ({"kernel_layout": "OIHH"}, "kernel_layout"), ({"dense_layout": "IN"}, "dense_layout"),
    ({"bias_shape": (1, 2, -1)}, "bias_shape"), ({"names": {"kernel": "w"}}, "names"),
    ({"names": {"kernel": "w", "bias": "w"}}, "names")])
def test_conventions_reject_malformed_values(changes, match):
    with pytest.raises(ValueError, match=match):
        own.Conventions(**changes)


def test_declaration_rejects_unknown_conventions_and_padding():
    relu = own.functions(lambda x: (x, None), lambda d, c: d)
    with pytest.raises(TypeError, match="colour"):
        own.ReLU(relu, colour="red")
    with pytest.raises(ValueError, match="padding"):
        own.Conv2D(relu, 4, 3, padding=-1)
    with pytest.raises(TypeError, match="forward"):
        own.ReLU(object())
