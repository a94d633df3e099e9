"""tfparity's from-scratch NumPy engine: layers with hand-derived backward passes, models,
the Keras optimizers and a training loop. It never imports TensorFlow at import time:
``scratch.from_keras`` (``reference_tf.from_keras.from_keras``) loads Keras when first used."""

from scratch.layers import (LAYERS, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
                            Flatten, Layer, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh)
from scratch.losses import softmax_cross_entropy
from scratch.models import MODELS, Sequential, Trace, build
from scratch.optim import SGD, Adam, AdamW, RMSprop
from scratch.regularizers import L2

__all__ = [
    "L2", "LAYERS", "MODELS", "SGD", "Adam", "AdamW", "AveragePooling2D", "BatchNormalization",
    "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "LeakyReLU", "MaxPool2D", "RMSprop", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "Tanh", "Trace", "build", "from_keras",
    "softmax_cross_entropy",
]


def __getattr__(name: str):
    if name == "from_keras":  # the Keras side lives in reference_tf; imported on first use
        from reference_tf.from_keras import from_keras

        return from_keras
    raise AttributeError(f"module 'scratch' has no attribute {name!r}")
