"""Softmax cross-entropy from logits, fused, with integer labels."""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean softmax cross-entropy over the batch and its gradient.

    Args:
        logits: scores z, shape (N, K).
        labels: integer classes, shape (N,), values in [0, K).

    Returns:
        (loss, dlogits): loss a Python float, dlogits = (softmax(z) - onehot(y)) / N of shape (N,
        K).
    """
    n = logits.shape[0]
    # Shift by the row maximum: exp never overflows and the largest term is exactly exp(0) = 1,
    # so logits of magnitude 1e4 give finite, exact results. Non-finite logits (a diverged run)
    # propagate as NaN instead of raising.
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        nll = np.log(sum_exp[:, 0]) - shifted[rows, labels]
        dlogits = exp / sum_exp
    dlogits[rows, labels] -= 1
    dlogits /= n
    return float(nll.mean()), dlogits
