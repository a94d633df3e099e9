"""Softmax cross-entropy over every step of a sequence, with Keras's masked reduction."""

from __future__ import annotations

import numpy as np

from scratch.ops.loss import softmax_cross_entropy


def sequence_softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray,
                                   mask: np.ndarray | None = None):
    """Mean softmax cross-entropy over the unmasked steps of a batch of sequences, and its
    gradient.

    Keras's reduction (``SparseCategoricalCrossentropy(from_logits=True)``, "sum_over_batch_size",
    the mask taken from the logits' ``_keras_mask``) weights every unmasked step
    ``total / valid`` (total = N*T, valid = the unmasked count) and divides the weighted sum by
    ``total``: the mean over the unmasked steps, i.e. the divisor is ``valid``, not N*T. With no
    unmasked step the loss and its gradient are 0 (Keras's ``divide_no_nan``).

    Args:
        logits: scores (N, T, V).
        labels: integer classes (N, T) in [0, V).
        mask: bool (N, T), True at the steps that count; None: every step counts.

    Returns:
        (loss, dlogits): a Python float and (N, T, V); masked steps get a zero gradient.
    """
    classes = logits.shape[-1]
    flat, targets = logits.reshape(-1, classes), labels.ravel()
    if mask is None:
        loss, dflat = softmax_cross_entropy(flat, targets)
        return loss, dflat.reshape(logits.shape)
    keep = mask.ravel()
    dlogits = np.zeros_like(flat)
    if not keep.any():
        return 0.0, dlogits.reshape(logits.shape)
    loss, dlogits[keep] = softmax_cross_entropy(flat[keep], targets[keep])
    return loss, dlogits.reshape(logits.shape)
