"""Inverted dropout with a given keep mask, computed as TensorFlow's ``tf.nn.dropout`` does.

``rate`` is the probability of *dropping* a unit (Keras's argument). A kept unit is scaled by
``1 / (1 - rate)`` (rounded to the dtype once, as TF converts its scale to a tensor), so the
expected output equals the input: ``y = x * mask`` with ``mask = keep / (1 - rate)``. The keep
mask is drawn by the caller (``keep_mask``), so that a Keras twin can be handed the same one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DropoutCache(NamedTuple):
    mask: np.ndarray  # x's shape: 1 / (1 - rate) where the unit is kept, 0 where it is dropped


def keep_mask(rng: np.random.Generator, shape: tuple, rate: float) -> np.ndarray:
    """A bool array of ``shape``: True (kept) where a uniform draw in [0, 1) is >= rate, as in
    TensorFlow (so each unit is dropped with probability ``rate``)."""
    return rng.random(shape) >= rate


def dropout_forward(x: np.ndarray, keep: np.ndarray, rate: float):
    """``y = x / (1 - rate)`` where ``keep``, 0 elsewhere.

    Args:
        x: any shape; keep: bool of x's shape; rate: the drop probability, in [0, 1).

    Returns:
        (y, cache) with y of x's shape and dtype.
    """
    mask = keep.astype(x.dtype) * x.dtype.type(1 / (1 - rate))
    return x * mask, DropoutCache(mask)


def dropout_backward(dy: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """``dx = dy * mask``: the kept units pass the gradient scaled, the dropped ones pass 0."""
    return dy * cache.mask
