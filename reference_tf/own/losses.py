"""Adapters from the loss functions people write to ``Loss``'s ``(loss, dlogits) = fn(logits,
labels)`` with integer labels.

    own.Loss(own.one_hot(my_loss))                       # my_loss(scores, onehot (N, K))
    own.Loss(own.value_and_gradient(value, gradient))    # two functions of (scores, labels)
    own.Loss(own.value_and_gradient(value, gradient, one_hot=True))

The adapted function keeps the user's name (faults and tables say ``my_loss``, or
``value/gradient``), and an exception inside the user's code is reported at its own frame.
NumPy only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _check(fn, role: str, owner: str) -> None:
    if not callable(fn):
        raise TypeError(f"{owner}: expected {role} to be a function, received "
                        f"{type(fn).__name__}.")


def one_hot_rows(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Integer labels (N,) as one-hot rows (N, K) in the logits' dtype, K = logits.shape[1]."""
    rows = np.zeros(logits.shape, dtype=logits.dtype)
    rows[np.arange(len(labels)), labels] = 1
    return rows


def one_hot(fn: Callable) -> Callable:
    """``fn(logits (N, K), onehot (N, K)) -> (loss, dlogits)`` as a function of integer labels."""
    _check(fn, "fn", "one_hot")

    def adapted(logits, labels):
        return fn(logits, one_hot_rows(labels, logits))

    adapted.__name__ = _name(fn)
    return adapted


def value_and_gradient(value: Callable, gradient: Callable, one_hot: bool = False) -> Callable:
    """A loss given as two functions, ``value(logits, labels) -> loss`` and ``gradient(logits,
    labels) -> dlogits (N, K)``, as one returning both; ``one_hot``: they take one-hot rows (N, K)
    instead of integer labels (N,)."""
    _check(value, "value", "value_and_gradient")
    _check(gradient, "gradient", "value_and_gradient")

    def adapted(logits, labels):
        targets = one_hot_rows(labels, logits) if one_hot else labels
        return value(logits, targets), gradient(logits, targets)

    adapted.__name__ = f"{_name(value)}/{_name(gradient)}"
    return adapted
