"""Keras 3 twins of scratch models: same architecture, layer names, dtype, weights and state.

Dropout is the one layer whose twin cannot reproduce the scratch numbers by itself (the masks
come from different random generators). ``share_masks=True`` (what the parity checks use)
makes each Dropout's twin a ``SharedMaskDropout``: Keras's Dropout applying the keep mask that
the scratch layer drew in its last training pass, with ``tf.nn.dropout``'s arithmetic. Without
it (training, benchmarks) the twin is a plain ``keras.layers.Dropout`` with its own masks.

A layer that declares its own twin (``reference_tf.adapter``; the layers of
``reference_tf.own``) gets that one, and its weights converted to Keras's layouts.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from reference_tf.adapter import declares_twin, keras_weights
from scratch import layers as scratch_layers
from scratch import sequence_layers
from scratch.models import Sequential


class SharedMaskDropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` that drops the units a scratch Dropout dropped in its last
    training pass (``source.keep``), so both sides compute the same function.

    Training mode returns ``where(keep, x * scale, 0)`` with ``scale = 1 / (1 - rate)`` converted
    to the input's dtype, exactly what ``tf.nn.experimental.stateless_dropout`` (Keras's TF
    backend) computes once it has drawn its mask; inference is the identity, as in Keras. Run
    the scratch pass first: the mask is read when this layer is called.
    """

    def __init__(self, source: scratch_layers.Dropout, **kwargs):
        super().__init__(source.rate, **kwargs)
        self.source = source

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        keep = self.source.keep
        if keep is None or tuple(keep.shape) != tuple(inputs.shape):
            raise ValueError(
                f"SharedMaskDropout '{self.name}': expected the mask of a scratch training pass "
                f"over a batch of shape {tuple(inputs.shape)}, found "
                f"{'none' if keep is None else f'a mask of shape {keep.shape}'}; run the scratch "
                "model's trace (or the layer's forward) first.")
        scale = tf.constant(1 / (1 - self.rate), dtype=inputs.dtype)
        return tf.where(tf.constant(keep), inputs * scale, tf.zeros_like(inputs))


def keras_layer(layer: scratch_layers.Layer, dtype: str, twins: dict | None = None, *,
                share_masks: bool = False) -> keras.layers.Layer:
    """The Keras layer matching one scratch layer (same name, settings and dtype policy).

    ``twins`` maps further scratch layer classes to ``factory(layer, dtype) -> Keras layer``
    (checked first), for layers written outside ``scratch.layers``. ``share_masks``: a Dropout
    becomes a ``SharedMaskDropout`` of ``layer`` instead of ``keras.layers.Dropout``. A layer
    that declares its twin (``reference_tf.adapter``) builds it itself.
    """
    if declares_twin(layer):
        return layer.keras_layer(dtype)
    for cls, factory in (twins or {}).items():
        if isinstance(layer, cls):
            return factory(layer, dtype)
    common = {"name": layer.name, "dtype": dtype}
    if isinstance(layer, (scratch_layers.Dense, scratch_layers.Conv2D)):
        penalty = layer.kernel_regularizer
        regularizer = None if penalty is None else keras.regularizers.L2(**penalty.get_config())
    if isinstance(layer, scratch_layers.Dense):
        return keras.layers.Dense(layer.units, use_bias=layer.use_bias,
                                  kernel_regularizer=regularizer, **common)
    if isinstance(layer, scratch_layers.Conv2D):
        return keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                                   padding=layer.padding, use_bias=layer.use_bias,
                                   kernel_regularizer=regularizer, **common)
    if isinstance(layer, scratch_layers.MaxPool2D):
        return keras.layers.MaxPooling2D(layer.pool_size, strides=layer.strides,
                                         padding=layer.padding, **common)
    if isinstance(layer, scratch_layers.ReLU):
        return keras.layers.ReLU(**common)
    if isinstance(layer, scratch_layers.Flatten):
        return keras.layers.Flatten(**common)
    if isinstance(layer, scratch_layers.AveragePooling2D):
        return keras.layers.AveragePooling2D(layer.pool_size, strides=layer.strides,
                                             padding=layer.padding, **common)
    if isinstance(layer, scratch_layers.BatchNormalization):
        return keras.layers.BatchNormalization(axis=-1, momentum=layer.momentum,
                                               epsilon=layer.epsilon, center=layer.center,
                                               scale=layer.scale, **common)
    if isinstance(layer, scratch_layers.Dropout):
        if share_masks:
            return SharedMaskDropout(layer, **common)
        return keras.layers.Dropout(layer.rate, seed=layer.seed, **common)
    if isinstance(layer, scratch_layers.Sigmoid):
        return keras.layers.Activation("sigmoid", **common)
    if isinstance(layer, scratch_layers.Tanh):
        return keras.layers.Activation("tanh", **common)
    if isinstance(layer, scratch_layers.Softmax):
        return keras.layers.Softmax(axis=layer.axis, **common)
    if isinstance(layer, scratch_layers.LeakyReLU):
        return keras.layers.LeakyReLU(negative_slope=layer.negative_slope, **common)
    sequence = sequence_twin(layer, common)
    if sequence is not None:
        return sequence
    known = sorted([*scratch_layers.LAYERS, *(c.__name__ for c in sequence_layers.SEQUENCE_LAYERS)])
    raise TypeError(f"twin: no Keras twin for layer '{layer.name}' of type "
                    f"{type(layer).__name__}; expected one of {known} or a class given in twins=.")


def sequence_twin(layer: scratch_layers.Layer, common: dict) -> keras.layers.Layer | None:
    """The Keras twin of a ``scratch.sequence_layers`` layer (None for any other layer);
    ``common``: the name and dtype."""
    if isinstance(layer, sequence_layers.Embedding):
        return keras.layers.Embedding(layer.input_dim, layer.output_dim,
                                      mask_zero=layer.mask_zero, **common)
    recurrent = {sequence_layers.SimpleRNN: keras.layers.SimpleRNN,
                 sequence_layers.LSTM: keras.layers.LSTM, sequence_layers.GRU: keras.layers.GRU}
    for cls, keras_cls in recurrent.items():
        if isinstance(layer, cls):
            extra = {"reset_after": layer.reset_after} if cls is sequence_layers.GRU else {}
            return keras_cls(layer.units, return_sequences=layer.return_sequences,
                             go_backwards=layer.go_backwards, use_bias=layer.use_bias,
                             **extra, **common)
    if isinstance(layer, sequence_layers.LayerNormalization):
        return keras.layers.LayerNormalization(axis=-1, epsilon=layer.epsilon,
                                               center=layer.center, scale=layer.scale, **common)
    if isinstance(layer, sequence_layers.Reshape):
        return keras.layers.Reshape(layer.target_shape, **common)
    return None


def keras_params(model: keras.Model) -> dict[str, keras.Variable]:
    """The trainable variables of a Keras model keyed like scratch params:
    "<layer>/<kernel|bias>"."""
    return {f"{layer.name}/{variable.name}": variable
            for layer in model.layers for variable in layer.trainable_weights}


def keras_state(model: keras.Model) -> dict[str, keras.Variable]:
    """The non-trainable variables of a Keras model keyed like scratch state:
    "<layer>/<moving_mean|moving_variance>"."""
    return {f"{layer.name}/{variable.name}": variable
            for layer in model.layers for variable in layer.non_trainable_weights}


def twin(model: Sequential, twins: dict | None = None, *,
         share_masks: bool = False) -> keras.Sequential:
    """A Keras Sequential with the architecture, layer names and dtype of ``model``, its weights
    and its state (moving statistics).

    ``twins``: Keras factories for custom layer classes, as in ``keras_layer``.
    ``share_masks``: Dropout twins apply the scratch layers' masks (see the module docstring).
    """
    dtype = model.dtype.name
    input_dtype = "int32" if model.layers[0].takes_indices else dtype
    keras_model = keras.Sequential(
        [keras.Input(shape=model.input_shape, dtype=input_dtype)]
        + [keras_layer(layer, dtype, twins, share_masks=share_masks)
           for layer in model.layers],
        name="twin",
    )
    copy_weights(keras_weights(model), keras_model)
    copy_state(model, keras_model)
    return keras_model


def _as_arrays(side, what: str, caller: str) -> tuple[dict, str]:
    if isinstance(side, Sequential):
        return getattr(side, what), "scratch"
    if isinstance(side, keras.Model):
        return (keras_params if what == "params" else keras_state)(side), "keras"
    if isinstance(side, dict):
        return side, "dict"
    raise TypeError(f"{caller}: expected a scratch Sequential, a Keras model or a dict of arrays, "
                    f"received {type(side).__name__}.")


def _copy(src, dst, what: str, caller: str) -> None:
    source, source_kind = _as_arrays(src, what, caller)
    target, target_kind = _as_arrays(dst, what, caller)
    missing, extra = sorted(set(target) - set(source)), sorted(set(source) - set(target))
    if missing or extra:
        raise ValueError(f"{caller}: {source_kind} -> {target_kind}: keys differ; missing in the "
                         f"source {missing}, not in the target {extra}.")
    for key, dest in target.items():
        value = np.asarray(source[key])
        dest_dtype = np.dtype(dest.dtype if isinstance(dest, np.ndarray) else dest.dtype)
        if tuple(value.shape) != tuple(dest.shape):
            raise ValueError(f"{caller}: '{key}': expected shape {tuple(dest.shape)}, "
                             f"received {tuple(value.shape)}.")
        if value.dtype != dest_dtype:
            raise ValueError(f"{caller}: '{key}': expected dtype {dest_dtype.name}, "
                             f"received {value.dtype.name}; nothing is cast silently.")
        if isinstance(dest, np.ndarray):
            dest[...] = value
        else:
            dest.assign(value)


def copy_weights(src, dst) -> None:
    """Copy every parameter from ``src`` to ``dst`` (scratch model, Keras model or dict), exactly.

    Keys, shapes and dtypes must match; a mismatch raises ValueError naming the key.
    """
    _copy(src, dst, "params", "copy_weights")


def copy_state(src, dst) -> None:
    """Copy the non-trainable state (moving statistics) from ``src`` to ``dst`` (scratch model,
    Keras model or dict), exactly, with the checks of ``copy_weights``."""
    _copy(src, dst, "state", "copy_state")
