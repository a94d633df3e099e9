"""Forward and backward passes of Keras models and layers with ``tf.GradientTape``.

Everything runs eagerly (no ``tf.function``, so no retracing per shape, and no XLA) and comes
back as NumPy arrays keyed like the scratch side, ready for ``reference_tf.compare``.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from reference_tf.adapter import keras_weights, loss_of, model_grads
from reference_tf.twin import copy_weights, keras_params, keras_state, twin
from scratch.models import Trace


class LayerPass(NamedTuple):
    """One layer's forward output and its gradients for a given upstream gradient dy.

    output (N, ...); input_grad = dL/dx with L = sum(output * dy), shape of x;
    grads[name] = dL/d(variable), keyed by the variable's name ("kernel", "bias");
    state[name] = the non-trainable variables after the pass ("moving_mean", ...).
    """

    output: np.ndarray
    input_grad: np.ndarray
    grads: dict
    state: dict

    def arrays(self) -> dict:
        """Flat dict: "output", "input_grad", "grads/<name>", "state/<name>"."""
        return {"output": self.output, "input_grad": self.input_grad,
                **{f"grads/{k}": v for k, v in self.grads.items()},
                **{f"state/{k}": v for k, v in self.state.items()}}


def _numpy(gradient, like: tf.Tensor | tf.Variable) -> np.ndarray:
    """A tape gradient as an array; None (not connected) is an exact zero."""
    if gradient is None:
        return np.zeros(like.shape, dtype=like.dtype.as_numpy_dtype)
    if isinstance(gradient, tf.IndexedSlices):
        gradient = tf.convert_to_tensor(gradient)
    return gradient.numpy()


def sparse_cross_entropy(logits: tf.Tensor, labels) -> tf.Tensor:
    """Keras's mean sparse softmax cross-entropy from logits (N, K) and labels (N,), in the logits'
    dtype.

    The Keras loss object casts to its own ``dtype`` (float32 by default), so it is given the
    logits' dtype explicitly: a float64 model keeps a float64 loss.
    """
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=logits.dtype.name)
    return loss(tf.convert_to_tensor(labels), logits)


def layer_pass(keras_layer: keras.layers.Layer, x: np.ndarray, dy: np.ndarray,
               training: bool = True, mask: np.ndarray | None = None) -> LayerPass:
    """Run ``keras_layer`` on x (N, ...) and backpropagate the upstream gradient dy (the output's
    shape).

    ``training`` is passed to the call: True (a training step, as a scratch layer's ``forward``)
    makes BatchNormalization use and record the batch's statistics and Dropout drop units.
    The layer is built by the call if it was not already. ``mask``: bool (N, T), the time
    steps a sequence layer computes (Keras's ``mask=`` argument); None: no mask. Integer
    inputs (Embedding) have no gradient: ``input_grad`` is None.
    """
    x_t = tf.constant(x)
    if not keras_layer.built:
        keras_layer(x_t)
    variables = keras_layer.trainable_weights
    with tf.GradientTape() as tape:
        if x.dtype.kind not in "iu":  # integer inputs (indices) have no gradient
            tape.watch(x_t)
        call_mask = {} if mask is None else {"mask": tf.constant(mask)}
        y = keras_layer(x_t, training=training, **call_mask)
    if tuple(y.shape) != tuple(dy.shape):
        raise ValueError(f"layer_pass: layer '{keras_layer.name}': expected dy of the output's "
                         f"shape {tuple(y.shape)}, received {tuple(dy.shape)}.")
    gradients = tape.gradient(y, [x_t, *variables], output_gradients=tf.constant(dy, dtype=y.dtype))
    return LayerPass(
        output=y.numpy(),
        input_grad=None if x.dtype.kind in "iu" else _numpy(gradients[0], x_t),
        grads={v.name: _numpy(g, v) for v, g in zip(variables, gradients[1:])},
        state={v.name: v.numpy() for v in keras_layer.non_trainable_weights},
    )


def trace(keras_model: keras.Sequential, x: np.ndarray, y: np.ndarray,
          training: bool = True, loss_fn=sparse_cross_entropy) -> Trace:
    """One forward and backward pass of a Keras Sequential with the mean cross-entropy loss
    plus the model's regularization losses (``model.losses``), as Keras trains it.

    Like ``scratch.models.Sequential.trace`` it is a training-mode pass by default (each layer
    is called with ``training=True``: batch statistics, moving statistics updated, dropout).

    Args:
        keras_model: a Sequential whose last layer outputs logits (N, K), e.g. ``twin(model)``.
        x: inputs (N, *input_shape) of the model's dtype.
        y: integer labels (N,).
        training: False runs the inference mode instead.
        loss_fn: (logits tensor, labels) -> scalar tensor; default the mean cross-entropy.

    Returns:
        A ``scratch.models.Trace``: logits (N, K), loss (float), outputs and output_grads keyed
        by layer name, grads keyed "<layer>/<variable>" as scratch params, input_grad dL/dx.
    """
    x_t = tf.constant(x)
    params = keras_params(keras_model)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        outputs = {}
        h = x_t
        for layer in keras_model.layers:  # one by one, so every intermediate output is kept
            h = layer(h, training=training)
            outputs[layer.name] = h
        loss = loss_fn(h, y)
        if keras_model.losses:  # the kernel_regularizer penalties
            loss = loss + tf.add_n(keras_model.losses)
    sources = [*outputs.values(), *params.values(), x_t]
    gradients = tape.gradient(loss, sources)
    n = len(outputs)
    output_grads = {name: _numpy(g, t) for (name, t), g in zip(outputs.items(), gradients[:n])}
    grads = {key: _numpy(g, v) for (key, v), g in zip(params.items(), gradients[n:-1])}
    return Trace(
        logits=h.numpy(), loss=float(loss.numpy()),
        outputs={name: t.numpy() for name, t in outputs.items()},
        output_grads=output_grads, grads=grads,
        input_grad=None if x.dtype.kind in "iu" else _numpy(gradients[-1], x_t),
        state={key: v.numpy() for key, v in keras_state(keras_model).items()},
    )


def trace_arrays(result: Trace) -> dict:
    """Every quantity of a trace as a flat dict of named arrays, the keys ``compare`` reports:

    "logits", "loss", "outputs/<layer>", "output_grads/<layer>", "grads/<layer>/<param>",
    "input_grad" (left out when None: integer inputs), "state/<layer>/<variable>".
    """
    return {
        "logits": result.logits, "loss": np.float64(result.loss),
        **{f"outputs/{k}": v for k, v in result.outputs.items()},
        **{f"output_grads/{k}": v for k, v in result.output_grads.items()},
        **{f"grads/{k}": v for k, v in result.grads.items()},
        **({} if result.input_grad is None else {"input_grad": result.input_grad}),
        **{f"state/{k}": v for k, v in result.state.items()},
    }


def loss_function(model):
    """The Keras twin of ``model``'s loss (its declared reduction, tfparity's mean
    cross-entropy by default) as ``(logits tensor, labels) -> scalar tensor``."""
    keras_loss = loss_of(model).keras(model.dtype.name)
    return lambda logits, labels: keras_loss(tf.convert_to_tensor(labels), logits)


def model_trace(model, x: np.ndarray, y: np.ndarray, twins: dict | None = None,
                keras_model: keras.Sequential | None = None) -> Trace:
    """``trace`` of ``model``'s Keras twin with the model's loss, every array keyed and laid out
    like the model's own trace. ``keras_model``: a twin to reuse (e.g. over seeds, or built
    before the model's step changed its state), into which the model's weights are copied;
    default ``twin(model, twins, share_masks=True)``."""
    if keras_model is None:
        keras_model = twin(model, twins, share_masks=True)
    else:
        copy_weights(keras_weights(model), keras_model)
    result = trace(keras_model, x, y, loss_fn=loss_function(model))
    return result._replace(grads=model_grads(model, result.grads))
