"""tfparity's from-scratch NumPy engine: layers with hand-derived backward passes, models,
the Keras optimizers and a training loop. It never imports TensorFlow at import time:
``scratch.from_keras`` (``reference_tf.from_keras.from_keras``) loads Keras when first used.

Names are loaded on first use, so a submodule (``scratch.data``) imports without the rest.
"""

import importlib

_EXPORTS = {
    **{name: "scratch.layers" for name in (
        "LAYERS", "AveragePooling2D", "BatchNormalization", "Conv2D", "Dense", "Dropout",
        "Flatten", "Layer", "LeakyReLU", "MaxPool2D", "ReLU", "Sigmoid", "Softmax", "Tanh")},
    **{name: "scratch.sequence_layers" for name in (
        "SEQUENCE_LAYERS", "Embedding", "GRU", "LSTM", "LayerNormalization", "Reshape",
        "SimpleRNN")},
    "softmax_cross_entropy": "scratch.losses",
    **{name: "scratch.models" for name in ("MODELS", "Sequential", "Trace", "build")},
    **{name: "scratch.optim" for name in ("SGD", "Adam", "AdamW", "RMSprop")},
    "L2": "scratch.regularizers",
    # The Keras side lives in reference_tf.
    "from_keras": "reference_tf.from_keras",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scratch' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
