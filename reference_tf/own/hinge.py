"""The multiclass hinge loss of CS231n's ``svm_loss(x, y)``, and its Keras-side twin.

``HingeLoss(svm_loss)`` declares ``loss, dscores = svm_loss(scores, labels)`` as the mean (or
sum) over the batch of sum over j != y of max(0, s_j - s_y + 1). Keras has no layer for it
(``CategoricalHinge`` takes the largest wrong score only), so the twin is written with
``keras.ops``; its derivative at a margin of exactly 0 is 0, as ``margins > 0`` in CS231n.
"""

from __future__ import annotations

from reference_tf.loss import KERAS_REDUCTIONS, Loss

MARGIN = 1.0


class HingeLoss(Loss):
    """Multiclass hinge loss of scores (N, K) and integer labels (N,), as the user computes it.

    Args:
        fn: ``loss, dscores = fn(scores, labels)``, like CS231n's ``svm_loss``.
        reduction: "mean" (over the batch, as ``svm_loss``) or "sum".
    """

    def __init__(self, fn, reduction: str = "mean"):
        if fn is None:
            raise TypeError("HingeLoss: expected fn to be a function (scores, labels) -> (loss, "
                            "dscores), received None.")
        super().__init__(fn, reduction)

    @property
    def label(self) -> str:
        return f"MulticlassHinge ({self.reduction})"

    def keras(self, dtype: str):
        """``(labels, scores tensor) -> scalar tensor``, as a Keras loss object is called."""
        from keras import ops

        reduce = ops.mean if KERAS_REDUCTIONS[self.reduction] == "sum_over_batch_size" else ops.sum

        def hinge(labels, scores):
            wrong = 1 - ops.one_hot(labels, ops.shape(scores)[1], dtype=dtype)
            correct = ops.sum(scores * (1 - wrong), axis=1, keepdims=True)
            return reduce(ops.sum(ops.relu(scores - correct + MARGIN) * wrong, axis=1))

        return hinge
