"""tfparity's from-scratch NumPy engine: layers with hand-derived backward passes, models,
SGD and a training loop. It never imports TensorFlow."""

from scratch.layers import LAYERS, Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU
from scratch.losses import softmax_cross_entropy
from scratch.models import MODELS, Sequential, Trace, build
from scratch.optim import SGD

__all__ = [
    "LAYERS", "MODELS", "SGD", "Conv2D", "Dense", "Flatten", "Layer", "MaxPool2D", "ReLU",
    "Sequential", "Trace", "build", "softmax_cross_entropy",
]
