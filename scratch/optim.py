"""Plain stochastic gradient descent."""

from __future__ import annotations

import math
import numbers

import numpy as np


class SGD:
    """``param -= lr * grad`` in place, in the parameter's dtype (as Keras's SGD does)."""

    def __init__(self, lr: float):
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"SGD: expected a positive finite learning rate, received lr={lr!r}.")
        self.lr = float(lr)

    def step(self, params: dict, grads: dict) -> None:
        """Update every array of ``params`` with the gradient of the same key."""
        if params.keys() != grads.keys():
            raise ValueError(f"SGD: params and grads must have the same keys, received "
                             f"{sorted(params)} and {sorted(grads)}.")
        for key, param in params.items():
            param -= np.asarray(self.lr, dtype=param.dtype) * grads[key]
