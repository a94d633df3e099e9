"""Keras twins: architecture, names, dtypes, exact weight round trips and clear mismatch errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from reference_tf.twin import copy_weights, keras_params, twin
from scratch.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU
from scratch.models import MODELS, Sequential, build

from helpers import DTYPES


def custom_model(dtype) -> Sequential:
    """Not one of the four built-ins: odd input size, non-square kernels, auto-named layers."""
    layers = [Conv2D(3, (2, 3), strides=(2, 1), padding="same"), ReLU(),
              MaxPool2D((3, 2), strides=(1, 2), padding="valid"), Flatten(), Dense(10)]
    return Sequential(layers, (9, 7, 2), seed=3, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_twin_weight_round_trip_is_exact(name, dtype):
    model = build(name, seed=1, dtype=dtype)
    keras_model = twin(model)
    back = build(name, seed=2, dtype=dtype)  # different weights, overwritten by the copy
    copy_weights(keras_model, back)
    assert back.params.keys() == model.params.keys()
    for key, value in model.params.items():
        assert back.params[key].dtype == value.dtype
        np.testing.assert_array_equal(back.params[key], value, err_msg=key)


@pytest.mark.parametrize("dtype", DTYPES)
def test_twin_custom_model_same_layers_names_and_dtype(dtype):
    model = custom_model(dtype)
    keras_model = twin(model)
    assert [layer.name for layer in keras_model.layers] == [layer.name for layer in model.layers]
    assert all(layer.dtype == dtype for layer in keras_model.layers)
    assert tuple(keras_model.output_shape[1:]) == (10,)
    params = keras_params(keras_model)
    assert list(params) == list(model.params)
    for key, value in model.params.items():
        np.testing.assert_array_equal(params[key].numpy(), value, err_msg=key)


def test_copy_weights_missing_key_is_named():
    model = build("mlp1", dtype="float64")
    values = dict(model.params)
    del values["hidden1/bias"]
    with pytest.raises(ValueError, match=r"hidden1/bias"):
        copy_weights(values, twin(model))


def test_copy_weights_wrong_shape_is_named():
    model = build("linear", dtype="float32")
    values = {**model.params, "logits/bias": np.zeros(11, dtype="float32")}
    with pytest.raises(ValueError, match=r"'logits/bias'.*\(10,\).*\(11,\)"):
        copy_weights(values, model)


def test_copy_weights_wrong_dtype_is_named():
    with pytest.raises(ValueError, match=r"'conv1/kernel'.*float32.*float64"):
        copy_weights(build("cnn", dtype="float64"), twin(build("cnn", dtype="float32")))


def test_twin_unknown_layer_type_raises():
    class Tanh(Layer):
        def _forward(self, x):
            return np.tanh(x)

    model = Sequential([Flatten(), Dense(10), Tanh(name="tanh")], (4, 4, 1), dtype="float64")
    with pytest.raises(TypeError, match=r"'tanh'.*Tanh"):
        twin(model)


def test_keras_params_keys_are_scratch_keys():
    keras_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(10, name="logits")])
    assert list(keras_params(keras_model)) == ["logits/kernel", "logits/bias"]
