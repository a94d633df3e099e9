"""The Keras layers that compute exactly what a user layer declares, in the user's layouts.

A declaration becomes one Keras layer or a small ``keras.Sequential`` named like the user layer:

- activations stored as NCHW (or any layout other than NHWC) are permuted to NHWC before a
  convolution or pooling and back after it;
- explicit padding becomes ``ZeroPadding2D`` followed by ``padding="valid"``;
- a Dense on images, and a Flatten, permute the images to the declared flatten order first
  (so an NCHW flatten is ``Permute`` then ``Flatten``);
- a user loss of reduction "mean" or "sum" is Keras's sparse categorical cross-entropy from
  logits with reduction "sum_over_batch_size" or "sum".

Every layer of a stack gets the model's dtype, so nothing is cast on the way.
"""

from __future__ import annotations

import keras

from reference_tf.own.conventions import KERAS_ACTIVATIONS, keras_permute_dims
from reference_tf.own.layers import Conv2D, Dense, Flatten, MaxPool2D, OwnLayer, ReLU

KERAS_REDUCTIONS = {"mean": "sum_over_batch_size", "sum": "sum"}


def _permute(source: str, target: str) -> list[tuple]:
    if source == target:
        return []
    return [(keras.layers.Permute, {"dims": keras_permute_dims(source, target)})]


def _windowed(layer: Conv2D | MaxPool2D) -> list[tuple]:
    padding, stack = layer.padding, []
    if not isinstance(padding, str):
        stack.append((keras.layers.ZeroPadding2D, {"padding": padding}))
        padding = "valid"
    if isinstance(layer, Conv2D):
        stack.append((keras.layers.Conv2D, {"filters": layer.filters,
                                            "kernel_size": layer.kernel_size,
                                            "strides": layer.strides, "padding": padding}))
    else:
        stack.append((keras.layers.MaxPooling2D, {"pool_size": layer.pool_size,
                                                  "strides": layer.strides, "padding": padding}))
    layout = layer.conventions.layout
    return _permute(layout, KERAS_ACTIVATIONS) + stack + _permute(KERAS_ACTIVATIONS, layout)


def _flatten(layer: OwnLayer) -> list[tuple]:
    conventions = layer.conventions
    return (_permute(conventions.layout, conventions.flatten_order)
            + [(keras.layers.Flatten, {})])


def stack(layer: OwnLayer) -> list[tuple]:
    """The declared computation as (Keras layer class, settings) pairs, in order."""
    if isinstance(layer, (Conv2D, MaxPool2D)):
        return _windowed(layer)
    if isinstance(layer, Dense):
        images = len(layer.input_shape) == 3
        return (_flatten(layer) if images else []) + [(keras.layers.Dense,
                                                       {"units": layer.units})]
    if isinstance(layer, Flatten):
        return _flatten(layer)
    if isinstance(layer, ReLU):
        return [(keras.layers.ReLU, {})]
    raise TypeError(f"{layer.owner}: no Keras counterpart for {type(layer).__name__}.")


def keras_layer(layer: OwnLayer, dtype: str) -> keras.layers.Layer:
    """The Keras layer (or ``keras.Sequential``) named ``layer.name`` computing what ``layer``
    declares, on inputs in the user's layout; its variables are "kernel" and "bias"."""
    if not layer.built:
        raise ValueError(f"{layer.owner}: build the layer before asking for its Keras "
                         "counterpart (the input rank decides it).")
    parts = stack(layer)
    if len(parts) == 1:
        cls, settings = parts[0]
        return cls(**settings, name=layer.name, dtype=dtype)
    layers = keras.Sequential([cls(**settings, dtype=dtype) for cls, settings in parts],
                              name=layer.name)
    layers.dtype_policy = keras.DTypePolicy(dtype)  # a Sequential takes no dtype argument
    return layers


def keras_loss(reduction: str, dtype: str):
    """Keras's sparse softmax cross-entropy from logits with the declared ``reduction``."""
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=KERAS_REDUCTIONS[reduction], dtype=dtype)
