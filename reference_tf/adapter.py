"""The one protocol through which the comparison engine sees a layer, whoever wrote it.

The engine (``reference_tf.twin``, ``gradients.model_trace``, ``layerdiff``, ``finite_diff``,
``check``, ``testing``) reaches a model's layers only through the functions here. A
``scratch.layers.Layer`` (its ``name``, ``params``, ``grads``, ``forward``, ``backward`` and hooks)
is enough for tfparity's own layers: their Keras twins come from ``reference_tf.twin.keras_layer``
with the same parameter names and layouts. A layer written in other conventions declares its
twin by implementing four more methods, as ``reference_tf.own`` layers do:

    keras_layer(dtype) -> keras.layers.Layer    the Keras layer computing what the layer
                                                computes, on inputs in the layer's layout
    params_to_keras(params) -> dict             its parameters as the Keras variables hold them
                                                ("kernel", "bias")
    params_from_keras(arrays) -> dict           Keras arrays (values or gradients) as the layer
                                                holds them
    float64_copy() -> layer                     an independent float64 copy (finite differences)

and, optionally, ``label`` (the type column of ``tfparity diff``). A model's loss is its ``loss``
attribute (a ``reference_tf.own.Loss``), tfparity's mean softmax cross-entropy without one.
NumPy only.
"""

from __future__ import annotations

from reference_tf.loss import Loss
from scratch.gradcheck import float64_copy

DECLARED = ("keras_layer", "params_to_keras", "params_from_keras", "float64_copy")


def declares_twin(layer) -> bool:
    """True if the layer brings its own Keras twin and conversions (see the module)."""
    return all(callable(getattr(layer, method, None)) for method in DECLARED)


def to_keras(layer, params: dict) -> dict:
    """The layer's parameters (or arrays keyed like them) keyed and laid out like its Keras
    twin's variables."""
    return layer.params_to_keras(params) if declares_twin(layer) else dict(params)


def from_keras(layer, arrays: dict) -> dict:
    """Arrays keyed like the Keras twin's variables, keyed and laid out like the layer's
    parameters."""
    return layer.params_from_keras(arrays) if declares_twin(layer) else dict(arrays)


def float64_layer(layer):
    """An independent float64 copy of a built layer."""
    return layer.float64_copy() if declares_twin(layer) else float64_copy(layer)


def label(layer) -> str:
    """What ``tfparity diff`` shows as the layer's type."""
    return getattr(layer, "label", None) or type(layer).__name__


def loss_of(model) -> Loss:
    """The model's loss (tfparity's mean softmax cross-entropy unless it declares another)."""
    loss = getattr(model, "loss", None)
    return loss if isinstance(loss, Loss) else Loss()


def keras_weights(model) -> dict:
    """Every parameter of ``model`` as its Keras twin holds it: "<layer>/<kernel|bias>"."""
    return {f"{layer.name}/{key}": value for layer in model.layers
            for key, value in to_keras(layer, layer.params).items()}


def model_grads(model, keras_grads: dict) -> dict:
    """Gradients keyed "<layer>/<Keras variable>" (a Keras twin's) keyed and laid out like
    ``model.params``."""
    out = {}
    for layer in model.layers:
        prefix = f"{layer.name}/"
        mine = {k[len(prefix):]: v for k, v in keras_grads.items() if k.startswith(prefix)}
        if mine:
            out.update({f"{prefix}{k}": v for k, v in from_keras(layer, mine).items()})
    return out
