"""Every bad input raises the stated error, naming who complains and what was received."""

from __future__ import annotations

import numpy as np
import pytest

from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.losses import softmax_cross_entropy
from scratch.models import Sequential, build
from scratch.optim import SGD


@pytest.fixture
def conv():
    return Conv2D(2, 3, name="c").build((5, 5, 2), None, "float64")


@pytest.fixture
def mlp1():
    return build("mlp1", dtype="float64")


def _images(n=2, channels=1, dtype="float64"):
    return np.zeros((n, 28, 28, channels), dtype=dtype)


def test_dense_wrong_rank_names_layer_and_shape():
    layer = Dense(4, name="d").build((3,), None, "float64")
    with pytest.raises(ValueError, match=r"Layer 'd' \(Dense\): expected an input of rank 2 "
                                         r"\(N, features\) or 3 \(N, steps, features\), received "
                                         r"per-example shape \(3, 1, 1\)"):
        layer.forward(np.zeros((2, 3, 1, 1)))


def test_layer_forward_without_batch_axis_rejected():
    layer = Dense(4, name="d").build((3,), None, "float64")
    with pytest.raises(ValueError, match=r"Layer 'd' \(Dense\).*rank >= 2, received shape \(3,\)"):
        layer.forward(np.zeros(3))


def test_conv2d_build_wrong_rank_rejected():
    with pytest.raises(ValueError, match=r"Layer 'c' \(Conv2D\): expected an input of rank 4 "
                                         r"\(N, H, W, C\), received per-example shape \(28, 28\)"):
        Conv2D(2, 3, name="c").build((28, 28))


def test_conv2d_wrong_channel_count_rejected(conv):
    with pytest.raises(ValueError, match=r"Layer 'c' \(Conv2D\): expected 2 input channel\(s\), "
                                         r"received per-example input shape \(5, 5, 3\) with 3"):
        conv.forward(np.zeros((1, 5, 5, 3)))


def test_model_wrong_channel_count_rejected():
    with pytest.raises(ValueError, match=r"Sequential input: expected x of shape \(N, 28, 28, 1\), "
                                         r"received shape \(2, 28, 28, 3\)"):
        build("cnn", dtype="float64").forward(_images(channels=3))


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool", "float16"])
def test_layer_non_float_dtype_rejected(conv, dtype):
    with pytest.raises(TypeError, match=rf"Layer 'c' \(Conv2D\): expected input of dtype float32 "
                                        rf"or float64, received dtype {dtype}"):
        conv.forward(np.zeros((1, 5, 5, 2), dtype=dtype))


def test_layer_dtype_different_from_layer_rejected(conv):
    with pytest.raises(TypeError, match=r"Layer 'c' \(Conv2D\): expected input of dtype float64 "
                                        r"\(the layer's dtype\), received dtype float32"):
        conv.forward(np.zeros((1, 5, 5, 2), dtype="float32"))


def test_model_dtype_different_from_model_rejected():
    with pytest.raises(TypeError, match=r"Sequential input: expected x of dtype float32 .*"
                                        r"received dtype float64"):
        build("linear", dtype="float32").forward(_images(dtype="float64"))


def test_layer_backward_dtype_different_rejected():
    layer = ReLU(name="r").build((3,), None, "float32")
    layer.forward(np.ones((1, 3), dtype="float32"))
    with pytest.raises(TypeError, match=r"Layer 'r' \(ReLU\): expected upstream gradient dy of "
                                        r"dtype float32 .*received dtype float64"):
        layer.backward(np.ones((1, 3)))


@pytest.mark.parametrize("bad, shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_layer_non_finite_input_rejected(conv, bad, shown):
    x = np.zeros((1, 5, 5, 2))
    x[0, 1, 2, 1] = bad
    with pytest.raises(ValueError, match=rf"Layer 'c' \(Conv2D\): expected finite values in input, "
                                         rf"received 1 NaN/inf value\(s\), the first at index "
                                         rf"\(0, 1, 2, 1\) = {shown}\."):
        conv.forward(x)


def test_model_non_finite_input_rejected(mlp1):
    x = _images()
    x[1, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"Sequential input: expected finite values in x, .*"
                                         r"index \(1, 3, 4, 0\) = nan"):
        mlp1.trace(x, np.array([0, 1]))


@pytest.mark.parametrize("label", [10, -1, 255])
def test_model_label_outside_range_rejected(mlp1, label):
    with pytest.raises(ValueError, match=rf"Sequential input: expected labels in \[0, 10\), "
                                         rf"received a label {label}\."):
        mlp1.trace(_images(), np.array([0, label]))


@pytest.mark.parametrize("labels, received", [
    (np.array([0.0, 1.0]), "received dtype float64"),
    (np.array([True, False]), "received dtype bool"),
    (np.array(["0", "1"]), "received dtype str"),
])
def test_model_non_integer_labels_rejected(mlp1, labels, received):
    with pytest.raises(TypeError, match=rf"Sequential input: expected integer labels .*{received}"):
        mlp1.trace(_images(), labels)


def test_model_label_list_rejected(mlp1):
    with pytest.raises(TypeError, match=r"Sequential input: expected labels as a numpy array, "
                                        r"received list"):
        mlp1.trace(_images(), [0, 1])


def test_model_label_count_mismatch_rejected(mlp1):
    with pytest.raises(ValueError, match=r"expected labels of shape \(2,\), received shape \(3,\)"):
        mlp1.trace(_images(), np.array([0, 1, 2]))


def test_loss_label_outside_classes_rejected():
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: expected labels in \[0, 3\), "
                                         r"received a label 3\."):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


@pytest.mark.parametrize("make, error, message", [
    (lambda: Dense(0, name="d"), ValueError, r"Layer 'd' \(Dense\): .*received units=0\."),
    (lambda: Dense(2.5, name="d"), TypeError, r"Layer 'd' \(Dense\): .*received units=2\.5\."),
    (lambda: Conv2D(0, 3, name="c"), ValueError, r"Layer 'c' \(Conv2D\): .*received filters=0\."),
    (lambda: Conv2D(2, 3, padding="full", name="c"), ValueError,
     r"Layer 'c' \(Conv2D\): expected padding='valid' or 'same', received padding='full'\."),
    (lambda: Conv2D(2, (0, 3), name="c"), ValueError,
     r"Layer 'c' \(Conv2D\): expected kernel_size to be positive, received kernel_size=\(0, 3\)\."),
    (lambda: Conv2D(2, (2, 3, 1), name="c"), TypeError,
     r"Layer 'c' \(Conv2D\): expected kernel_size to be an int or a pair of ints, "
     r"received kernel_size=\(2, 3, 1\)\."),
    (lambda: Conv2D(2, 3, strides="a", name="c"), TypeError,
     r"Layer 'c' \(Conv2D\): expected strides to be an int or a pair of ints, received "
     r"strides='a'\."),
    (lambda: MaxPool2D((2, 0), name="p"), ValueError,
     r"Layer 'p' \(MaxPool2D\): expected pool_size to be positive, received pool_size=\(2, 0\)\."),
    (lambda: MaxPool2D(2, padding=None, name="p"), ValueError,
     r"Layer 'p' \(MaxPool2D\): .*received padding=None\."),
    (lambda: Flatten(name="a/b"), ValueError, r"Flatten: .*without '/', received name='a/b'\."),
], ids=["units0", "units_float", "filters0", "padding_full", "kernel_zero", "kernel_triple",
        "strides_str", "pool_zero", "pool_padding_none", "name_slash"])
def test_layer_invalid_constructor_settings_rejected(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("layer, shape, message", [
    (Conv2D(2, 5, name="c"), (3, 4, 1),
     r"Layer 'c' \(Conv2D\): window \(5, 5\) does not fit an input of 3x4 with padding='valid'"),
    (Conv2D(2, (2, 6), name="c"), (8, 5, 1),
     r"Layer 'c' \(Conv2D\): window \(2, 6\) does not fit an input of 8x5"),
    (MaxPool2D(3, name="p"), (2, 5, 1),
     r"Layer 'p' \(MaxPool2D\): window \(3, 3\) does not fit an input of 2x5"),
])
def test_valid_window_larger_than_input_rejected(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.build(shape)


def test_same_window_larger_than_input_accepted():
    layer = Conv2D(2, 5, padding="same", name="c").build((3, 4, 1))
    assert layer.compute_output_shape((3, 4, 1)) == (3, 4, 2)


def test_sequential_duplicate_layer_names_rejected():
    with pytest.raises(ValueError, match=r"Sequential: layer names must be unique, "
                                         r"received duplicates \['a'\]"):
        Sequential([Flatten(name="a"), Dense(10, name="a")], (4, 4, 1))


def test_sequential_wrong_number_of_logits_rejected():
    with pytest.raises(ValueError, match=r"Sequential: expected the last layer to produce \(10,\) "
                                         r"logits per example, received output shape \(7,\)"):
        Sequential([Flatten(), Dense(7)], (4, 4, 1))


def test_build_unknown_model_name_rejected():
    with pytest.raises(ValueError, match=r"build: expected a model name in \['linear', 'mlp1', "
                                         r"'mlp2', 'cnn', 'cnn_bn', 'rnn', 'lstm', 'gru', "
                                         r"'tokens'\], received 'resnet'"):
        build("resnet")


@pytest.mark.parametrize("dtype", ["int32", "float16", "complex64", "nonsense"])
def test_build_non_float_dtype_rejected(dtype):
    with pytest.raises(TypeError, match=rf"Sequential: expected dtype 'float32' or 'float64', "
                                        rf"received dtype='{dtype}'"):
        build("linear", dtype=dtype)


@pytest.mark.parametrize("lr, shown", [
    (0, "0"), (-0.1, r"-0\.1"), (float("nan"), "nan"), (float("inf"), "inf"), (True, "True"),
    ("0.1", r"'0\.1'"), (None, "None"),
])
def test_sgd_bad_learning_rate_rejected(lr, shown):
    with pytest.raises(ValueError, match=rf"SGD: expected a positive finite learning rate, "
                                         rf"received learning_rate={shown}\."):
        SGD(lr)


def test_layer_backward_before_forward_rejected():
    layer = Dense(3, name="d").build((2,), None, "float64")
    with pytest.raises(ValueError, match=r"Layer 'd' \(Dense\): call forward\(\) before backward"):
        layer.backward(np.zeros((1, 3)))


def test_layer_forward_before_build_rejected():
    with pytest.raises(ValueError, match=r"Layer 'd' \(Dense\): call build"):
        Dense(3, name="d").forward(np.zeros((1, 2)))
