"""Validated loss functions (the unchecked math lives in ``scratch.ops.loss``)."""

from __future__ import annotations

import numpy as np

from scratch import ops
from scratch.checks import check_float_array, check_labels, check_shape


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy from logits (N, K) and integer labels (N,) in [0, K).

    Returns (loss, dlogits) with dlogits (N, K) = (softmax(logits) - onehot(labels)) / N.
    """
    owner = "softmax_cross_entropy"
    check_float_array(owner, "logits", logits)
    check_shape(owner, "logits", logits.shape, (None, None), "(N, num_classes)")
    check_labels(owner, labels, logits.shape[0], logits.shape[1])
    return ops.softmax_cross_entropy(logits, labels)
