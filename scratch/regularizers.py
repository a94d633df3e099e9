"""Weight penalties as ``keras.regularizers`` computes them, for ``kernel_regularizer=``."""

from __future__ import annotations

import math
import numbers

import numpy as np

from scratch.optim import keras_cast


class L2:
    """Keras's L2 penalty: ``l2 * sum(w**2)`` added to the loss, so its gradient is ``2 * l2 * w``.

    There is no 1/2 in the penalty: the textbook ``(lambda / 2) * ||w||**2`` has gradient
    ``lambda * w``, half of Keras's for the same number. ``l2`` reaches the variable's dtype as
    Keras casts it (``scratch.optim.keras_cast``: via float32).
    """

    def __init__(self, l2: float = 0.01):
        if (isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not math.isfinite(l2)
                or l2 < 0):
            raise ValueError(f"L2: expected l2 to be a finite number >= 0, received l2={l2!r}.")
        self.l2 = float(l2)

    def __call__(self, w: np.ndarray) -> float:
        """The penalty ``l2 * sum(w**2)`` of a weight array of any shape."""
        return float(keras_cast(self.l2, w.dtype) * np.sum(np.square(w)))

    def gradient(self, w: np.ndarray) -> np.ndarray:
        """d(penalty)/dw = ``l2 * (w * 2)``, w's shape and dtype (TensorFlow's order of the
        products)."""
        return keras_cast(self.l2, w.dtype) * (w * w.dtype.type(2))

    def get_config(self) -> dict:
        """The keyword arguments of ``keras.regularizers.L2``."""
        return {"l2": self.l2}

    def __repr__(self) -> str:
        return f"L2(l2={self.l2!r})"


def check_regularizer(owner: str, name: str, regularizer) -> L2 | None:
    """``regularizer`` if it is None or an ``L2``, else TypeError naming the argument."""
    if regularizer is not None and not isinstance(regularizer, L2):
        raise TypeError(f"{owner}: expected {name} to be None or scratch.regularizers.L2, "
                        f"received {name}={regularizer!r}.")
    return regularizer
