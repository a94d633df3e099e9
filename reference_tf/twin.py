"""Keras 3 twins of scratch models: same architecture, layer names, dtype and weights.

A layer that declares its own counterpart (``reference_tf.adapter``; the layers of
``reference_tf.own``) gets that one, and its weights converted to Keras's layouts.
"""

from __future__ import annotations

import keras
import numpy as np

from reference_tf.adapter import declares_counterpart, keras_weights
from scratch import layers as scratch_layers
from scratch.models import Sequential


def keras_layer(layer: scratch_layers.Layer, dtype: str, counterparts: dict | None = None) -> keras.layers.Layer:
    """The Keras layer matching one scratch layer (same name, settings and dtype policy).

    ``counterparts`` maps further scratch layer classes to ``factory(layer, dtype) -> Keras layer``
    (checked first), for layers written outside ``scratch.layers``; a layer that declares its
    counterpart (``reference_tf.adapter``) builds it itself.
    """
    if declares_counterpart(layer):
        return layer.keras_layer(dtype)
    for cls, factory in (counterparts or {}).items():
        if isinstance(layer, cls):
            return factory(layer, dtype)
    common = {"name": layer.name, "dtype": dtype}
    if isinstance(layer, scratch_layers.Dense):
        return keras.layers.Dense(layer.units, **common)
    if isinstance(layer, scratch_layers.Conv2D):
        return keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                                   padding=layer.padding, **common)
    if isinstance(layer, scratch_layers.MaxPool2D):
        return keras.layers.MaxPooling2D(layer.pool_size, strides=layer.strides,
                                         padding=layer.padding, **common)
    if isinstance(layer, scratch_layers.ReLU):
        return keras.layers.ReLU(**common)
    if isinstance(layer, scratch_layers.Flatten):
        return keras.layers.Flatten(**common)
    raise TypeError(f"twin: no Keras counterpart for layer '{layer.name}' of type "
                    f"{type(layer).__name__}; expected one of {sorted(scratch_layers.LAYERS)} "
                    f"or a class given in counterparts=.")


def keras_params(model: keras.Model) -> dict[str, keras.Variable]:
    """The trainable variables of a Keras model keyed like scratch params: "<layer>/<kernel|bias>"."""
    return {f"{layer.name}/{variable.name}": variable
            for layer in model.layers for variable in layer.trainable_weights}


def twin(model: Sequential, counterparts: dict | None = None) -> keras.Sequential:
    """A Keras Sequential with the architecture, layer names and dtype of ``model`` and its weights.

    ``counterparts``: Keras factories for custom layer classes, as in ``keras_layer``.
    """
    dtype = model.dtype.name
    keras_model = keras.Sequential(
        [keras.Input(shape=model.input_shape, dtype=dtype)]
        + [keras_layer(layer, dtype, counterparts) for layer in model.layers],
        name="twin",
    )
    copy_weights(keras_weights(model), keras_model)
    return keras_model


def _as_arrays(side) -> tuple[dict, str]:
    if isinstance(side, Sequential):
        return side.params, "scratch"
    if isinstance(side, keras.Model):
        return keras_params(side), "keras"
    if isinstance(side, dict):
        return side, "dict"
    raise TypeError(f"copy_weights: expected a scratch Sequential, a Keras model or a dict of arrays, "
                    f"received {type(side).__name__}.")


def copy_weights(src, dst) -> None:
    """Copy every parameter from ``src`` to ``dst`` (scratch model, Keras model or dict), exactly.

    Keys, shapes and dtypes must match; a mismatch raises ValueError naming the key.
    """
    source, source_kind = _as_arrays(src)
    target, target_kind = _as_arrays(dst)
    missing, extra = sorted(set(target) - set(source)), sorted(set(source) - set(target))
    if missing or extra:
        raise ValueError(f"copy_weights: {source_kind} -> {target_kind}: keys differ; missing in the "
                         f"source {missing}, not in the target {extra}.")
    for key, dest in target.items():
        value = np.asarray(source[key])
        dest_dtype = np.dtype(dest.dtype if isinstance(dest, np.ndarray) else dest.dtype)
        if tuple(value.shape) != tuple(dest.shape):
            raise ValueError(f"copy_weights: '{key}': expected shape {tuple(dest.shape)}, "
                             f"received {tuple(value.shape)}.")
        if value.dtype != dest_dtype:
            raise ValueError(f"copy_weights: '{key}': expected dtype {dest_dtype.name}, "
                             f"received {value.dtype.name}; nothing is cast silently.")
        if isinstance(dest, np.ndarray):
            dest[...] = value
        else:
            dest.assign(value)
