"""tfparity's from-scratch NumPy engine: layers with hand-derived backward passes, models,
SGD and a training loop. It never imports TensorFlow."""

from scratch.layers import (LAYERS, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
                            Flatten, Layer, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh)
from scratch.losses import softmax_cross_entropy
from scratch.models import MODELS, Sequential, Trace, build
from scratch.optim import SGD

__all__ = [
    "LAYERS", "MODELS", "SGD", "AveragePooling2D", "BatchNormalization", "Conv2D", "Dense",
    "Dropout", "Flatten", "Layer", "LeakyReLU", "MaxPool2D", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "Sequential", "Trace", "build", "softmax_cross_entropy",
]
