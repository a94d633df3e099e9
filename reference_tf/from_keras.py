"""Keras models in: the scratch model of a ``keras.Sequential``, with its weights.

    import keras
    from reference_tf.from_keras import from_keras      # also scratch.from_keras (lazy)

    keras_model = keras.Sequential([keras.Input((28, 28, 1)),
                                    keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                                    keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                                    keras.layers.Dense(10)])
    model = from_keras(keras_model)     # conv2d, conv2d_relu, max_pooling2d, flatten, dense

Each Keras layer becomes the scratch layer of the same name and settings; an ``activation="relu"``
(or "sigmoid", "tanh") of a Dense or Conv2D becomes a separate ``ReLU`` named ``"<layer>_relu"``
(the course models' naming; ``Sigmoid``, ``Tanh`` likewise). BatchNormalization's moving
statistics are copied with the weights. ``reference_tf.twin.twin`` goes the other way, so
``from_keras(twin(model))`` rebuilds ``model``. A layer or setting scratch cannot compute
raises an error naming the layer.
"""

from __future__ import annotations

from typing import Callable

import keras

from reference_tf.twin import copy_state, copy_weights
from scratch import layers as scratch_layers
from scratch import sequence_layers
from scratch.models import Sequential
from scratch.regularizers import L2


def _unsupported(layer, setting: str, value, expected: str) -> ValueError:
    return ValueError(f"from_keras: layer '{layer.name}' ({type(layer).__name__}): {setting}="
                      f"{value!r} is not supported; expected {expected}.")


def _require_none(layer, settings: tuple, source=None) -> None:
    """Raise unless every one of ``settings`` of ``source`` (default the layer; a recurrent
    layer's cell) is None: regularizers and constraints scratch does not apply."""
    for setting in settings:
        value = getattr(layer if source is None else source, setting, None)
        if value is not None:
            raise _unsupported(layer, setting, value, "None")


def _check_channels_last(layer) -> None:
    if layer.data_format != "channels_last":
        raise _unsupported(layer, "data_format", layer.data_format, "'channels_last' (NHWC)")


# Keras activation functions scratch computes as a layer of its own, with its name suffix.
ACTIVATIONS = {keras.activations.relu: (scratch_layers.ReLU, "relu"),
               keras.activations.sigmoid: (scratch_layers.Sigmoid, "sigmoid"),
               keras.activations.tanh: (scratch_layers.Tanh, "tanh")}


def _activation(layer, activation) -> list[scratch_layers.Layer]:
    """The scratch layers after a Keras layer with ``activation``: none, or one activation."""
    if activation is keras.activations.linear:
        return []
    if activation in ACTIVATIONS:
        cls, suffix = ACTIVATIONS[activation]
        return [cls(name=f"{layer.name}_{suffix}")]
    name = getattr(activation, "__name__", activation)
    hint = (" (scratch models output logits and the loss applies the softmax: end the Keras "
            "model in a linear layer)" if name == "softmax" else "")
    raise _unsupported(layer, "activation", name,
                       f"None, 'linear', 'relu', 'sigmoid' or 'tanh'{hint}")


def _kernel_regularizer(layer) -> L2 | None:
    """The scratch penalty of a Dense/Conv2D, after checking the settings it cannot take."""
    _require_none(layer, ("bias_regularizer", "activity_regularizer", "kernel_constraint",
                          "bias_constraint"))
    regularizer = layer.kernel_regularizer
    if regularizer is None:
        return None
    if type(regularizer) is not keras.regularizers.L2:
        raise _unsupported(layer, "kernel_regularizer", regularizer,
                           "None or keras.regularizers.L2")
    return L2(regularizer.l2)


def _dense(layer: keras.layers.Dense) -> list[scratch_layers.Layer]:
    dense = scratch_layers.Dense(layer.units, use_bias=layer.use_bias,
                                 kernel_regularizer=_kernel_regularizer(layer), name=layer.name)
    return [dense, *_activation(layer, layer.activation)]


def _conv2d(layer: keras.layers.Conv2D) -> list[scratch_layers.Layer]:
    _check_channels_last(layer)
    if tuple(layer.dilation_rate) != (1, 1):
        raise _unsupported(layer, "dilation_rate", layer.dilation_rate, "(1, 1)")
    if layer.groups != 1:
        raise _unsupported(layer, "groups", layer.groups, "1")
    conv = scratch_layers.Conv2D(layer.filters, tuple(layer.kernel_size),
                                 strides=tuple(layer.strides), padding=layer.padding,
                                 use_bias=layer.use_bias,
                                 kernel_regularizer=_kernel_regularizer(layer), name=layer.name)
    return [conv, *_activation(layer, layer.activation)]


def _max_pool2d(layer: keras.layers.MaxPooling2D) -> list[scratch_layers.Layer]:
    _check_channels_last(layer)
    return [scratch_layers.MaxPool2D(tuple(layer.pool_size), strides=tuple(layer.strides),
                                     padding=layer.padding, name=layer.name)]


def _relu(layer: keras.layers.ReLU) -> list[scratch_layers.Layer]:
    for setting in ("max_value", "negative_slope", "threshold"):
        value = getattr(layer, setting)
        if value not in (None, 0):
            raise _unsupported(layer, setting, value, "the default (a plain ReLU)")
    return [scratch_layers.ReLU(name=layer.name)]


def _activation_layer(layer: keras.layers.Activation) -> list[scratch_layers.Layer]:
    if layer.activation is keras.activations.softmax:
        return [scratch_layers.Softmax(name=layer.name)]
    if layer.activation not in ACTIVATIONS:
        name = getattr(layer.activation, "__name__", layer.activation)
        raise _unsupported(layer, "activation", name, "'relu', 'sigmoid', 'tanh' or 'softmax'")
    return [ACTIVATIONS[layer.activation][0](name=layer.name)]


def _average_pool2d(layer: keras.layers.AveragePooling2D) -> list[scratch_layers.Layer]:
    _check_channels_last(layer)
    return [scratch_layers.AveragePooling2D(tuple(layer.pool_size), strides=tuple(layer.strides),
                                            padding=layer.padding, name=layer.name)]


NORMALIZATION_PENALTIES = ("gamma_regularizer", "beta_regularizer", "gamma_constraint",
                           "beta_constraint")


def _batch_norm(layer: keras.layers.BatchNormalization) -> list[scratch_layers.Layer]:
    rank = len(layer.input.shape)
    if layer.axis not in (-1, rank - 1):
        raise _unsupported(layer, "axis", layer.axis, "-1 (the channels of NHWC, the features)")
    if layer.renorm:
        raise _unsupported(layer, "renorm", True, "False")
    _require_none(layer, NORMALIZATION_PENALTIES)
    return [scratch_layers.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon,
                                              center=layer.center, scale=layer.scale,
                                              name=layer.name)]


def _dropout(layer: keras.layers.Dropout) -> list[scratch_layers.Layer]:
    if layer.noise_shape is not None:
        raise _unsupported(layer, "noise_shape", layer.noise_shape, "None")
    return [scratch_layers.Dropout(layer.rate, seed=layer.seed, name=layer.name)]


def _softmax(layer: keras.layers.Softmax) -> list[scratch_layers.Layer]:
    if not isinstance(layer.axis, int):
        raise _unsupported(layer, "axis", layer.axis, "one axis")
    return [scratch_layers.Softmax(axis=layer.axis, name=layer.name)]


def _leaky_relu(layer: keras.layers.LeakyReLU) -> list[scratch_layers.Layer]:
    return [scratch_layers.LeakyReLU(layer.negative_slope, name=layer.name)]


def _flatten(layer: keras.layers.Flatten) -> list[scratch_layers.Layer]:
    _check_channels_last(layer)
    return [scratch_layers.Flatten(name=layer.name)]


def _embedding(layer: keras.layers.Embedding) -> list[scratch_layers.Layer]:
    _require_none(layer, ("embeddings_regularizer", "embeddings_constraint",
                          "activity_regularizer"))
    if getattr(layer, "lora_rank", None):
        raise _unsupported(layer, "lora_rank", layer.lora_rank, "None")
    return [sequence_layers.Embedding(layer.input_dim, layer.output_dim,
                                      mask_zero=layer.mask_zero, name=layer.name)]


def _recurrent(layer) -> list[scratch_layers.Layer]:
    """SimpleRNN, LSTM or GRU with Keras's activations, no dropout and no state kept."""
    cell = layer.cell
    if cell.activation is not keras.activations.tanh:
        raise _unsupported(layer, "activation", getattr(cell.activation, "__name__", None),
                           "'tanh'")
    recurrent_activation = getattr(cell, "recurrent_activation", keras.activations.sigmoid)
    if recurrent_activation is not keras.activations.sigmoid:
        raise _unsupported(layer, "recurrent_activation",
                           getattr(recurrent_activation, "__name__", None), "'sigmoid'")
    for setting in ("dropout", "recurrent_dropout"):
        if getattr(cell, setting):
            raise _unsupported(layer, setting, getattr(cell, setting), "0")
    for setting in ("stateful", "return_state"):
        if getattr(layer, setting):
            raise _unsupported(layer, setting, True, "False")
    _require_none(layer, ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                          "kernel_constraint", "recurrent_constraint", "bias_constraint"), cell)
    _require_none(layer, ("activity_regularizer",))
    settings = {"return_sequences": layer.return_sequences, "go_backwards": layer.go_backwards,
                "use_bias": cell.use_bias, "name": layer.name}
    if isinstance(layer, keras.layers.GRU):
        return [sequence_layers.GRU(layer.units, reset_after=cell.reset_after, **settings)]
    if isinstance(layer, keras.layers.LSTM):
        return [sequence_layers.LSTM(layer.units, **settings)]
    return [sequence_layers.SimpleRNN(layer.units, **settings)]


def _layer_norm(layer: keras.layers.LayerNormalization) -> list[scratch_layers.Layer]:
    rank = len(layer.input.shape)
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    if axis not in (-1, rank - 1, [rank - 1], (rank - 1,), (-1,)):
        raise _unsupported(layer, "axis", layer.axis, "-1 (the last axis)")
    if layer.rms_scaling:
        raise _unsupported(layer, "rms_scaling", True, "False")
    _require_none(layer, NORMALIZATION_PENALTIES)
    return [sequence_layers.LayerNormalization(epsilon=layer.epsilon, center=layer.center,
                                               scale=layer.scale, name=layer.name)]


def _reshape(layer: keras.layers.Reshape) -> list[scratch_layers.Layer]:
    if -1 in tuple(layer.target_shape):
        raise _unsupported(layer, "target_shape", layer.target_shape, "no -1 entry")
    return [sequence_layers.Reshape(tuple(layer.target_shape), name=layer.name)]


CONVERTERS: dict[type, Callable[[keras.layers.Layer], list[scratch_layers.Layer]]] = {
    keras.layers.Dense: _dense, keras.layers.Conv2D: _conv2d,
    keras.layers.MaxPooling2D: _max_pool2d, keras.layers.ReLU: _relu,
    keras.layers.Activation: _activation_layer, keras.layers.Flatten: _flatten,
    keras.layers.AveragePooling2D: _average_pool2d, keras.layers.BatchNormalization: _batch_norm,
    keras.layers.Dropout: _dropout, keras.layers.Softmax: _softmax,
    keras.layers.LeakyReLU: _leaky_relu, keras.layers.Embedding: _embedding,
    keras.layers.SimpleRNN: _recurrent, keras.layers.LSTM: _recurrent, keras.layers.GRU: _recurrent,
    keras.layers.LayerNormalization: _layer_norm, keras.layers.Reshape: _reshape,
}


def _model_dtype(keras_model: keras.Sequential) -> str:
    """The one dtype every layer computes and stores its variables in (float32 or float64)."""
    dtypes = {layer.name: (layer.dtype_policy.compute_dtype, layer.dtype_policy.variable_dtype)
              for layer in keras_model.layers}
    found = sorted(set(dtypes.values()))
    if len(found) != 1 or found[0][0] != found[0][1] or found[0][0] not in ("float32", "float64"):
        raise ValueError(f"from_keras: expected every layer to compute and keep its variables in "
                         f"float32, or every layer in float64; received (compute, variable) "
                         f"dtypes {dtypes}.")
    return found[0][0]


def from_keras(keras_model: keras.Sequential, converters: dict | None = None) -> Sequential:
    """The scratch model computing what ``keras_model`` computes, with a copy of its weights.

    Args:
        keras_model: a built ``keras.Sequential`` (made with ``keras.Input(shape)``) of the
            layers in ``CONVERTERS`` (Dense, Conv2D, MaxPooling2D, AveragePooling2D,
            BatchNormalization, Dropout, ReLU, LeakyReLU, Softmax, Activation("relu" |
            "sigmoid" | "tanh" | "softmax"), Flatten, Reshape, Embedding, SimpleRNN, LSTM, GRU,
            LayerNormalization), all of one dtype (an Embedding's integer input aside), ending
            in logits (N, K).
        converters: further Keras layer classes -> ``converter(keras_layer) -> [scratch
            layers]``, checked first, for layers written outside ``scratch.layers``.

    Returns:
        A ``scratch.models.Sequential`` of the same input shape, dtype and K classes; its params
        ("<layer>/kernel", ...) and state ("<layer>/moving_mean", ...) equal the Keras variables.

    Raises:
        TypeError: not a Sequential, or a layer without a scratch layer (named).
        ValueError: the model is not built, or a setting scratch cannot compute (layer named).
    """
    if not isinstance(keras_model, keras.Sequential):
        raise TypeError(f"from_keras: expected a keras.Sequential, received "
                        f"{type(keras_model).__name__}.")
    if not keras_model.built or not keras_model.layers:
        raise ValueError(f"from_keras: model '{keras_model.name}' has no input shape yet; build "
                         f"it with keras.Input(shape=...) as its first entry.")
    converters = {**CONVERTERS, **(converters or {})}
    layers = []
    for layer in keras_model.layers:
        convert = converters.get(type(layer))
        if convert is None:
            raise TypeError(f"from_keras: layer '{layer.name}' ({type(layer).__name__}) has no "
                            f"scratch layer; supported: "
                            f"{sorted(cls.__name__ for cls in converters)}.")
        layers.extend(convert(layer))
    output_shape = tuple(keras_model.output_shape[1:])
    if len(output_shape) != 1:
        raise ValueError(f"from_keras: expected the model to end in logits (N, K), received "
                         f"output shape {keras_model.output_shape}.")
    model = Sequential(layers, tuple(keras_model.input_shape[1:]), dtype=_model_dtype(keras_model),
                       num_classes=output_shape[0])
    copy_weights(keras_model, model)
    copy_state(keras_model, model)
    return model
