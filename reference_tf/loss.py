"""The loss a model declares: tfparity's mean softmax cross-entropy, or the user's own function.

A model's ``loss`` attribute (``reference_tf.adapter.loss_of``) is a ``Loss``: the comparison
calls ``Loss.compute`` for the scratch side (the user's code on private copies, its results
checked, ``reference_tf.user_code``) and ``Loss.keras`` for the twin. NumPy only: Keras is
imported when the twin's loss is first built.
"""

from __future__ import annotations

import numbers

import numpy as np

from reference_tf.user_code import Fault, UserCodeError, call_user, result_faults, writes
from scratch import ops

LOSS = "loss"  # the loss's name as a pseudo-layer of the comparison and in faults
REDUCTIONS = ("mean", "sum")
KERAS_REDUCTIONS = {"mean": "sum_over_batch_size", "sum": "sum"}


def loss_value(value, fault) -> tuple[float, list[Fault]]:
    """A user's loss value as a float, or a fatal fault."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value), []
    if isinstance(value, np.ndarray) and value.shape == ():
        return float(value), []
    shape = getattr(value, "shape", None)
    kind = f"shape {shape}" if shape is not None else type(value).__name__
    return 0.0, [fault(LOSS, f"returned a loss of {kind}, expected a scalar", True)]


class Loss:
    """Softmax cross-entropy of logits (N, K) and integer labels (N,), as the user computes it.

    Args:
        fn: ``loss, dlogits = fn(logits, labels)``, like CS231n's ``softmax_loss``; None is
            tfparity's own (``scratch.ops.softmax_cross_entropy``).
        reduction: "mean" (over the batch) or "sum"; the Keras twin uses the same.
    """

    per_step = False  # True: logits (N, T, K) and labels (N, T) (``own.SequenceLoss``)

    def __init__(self, fn=None, reduction: str = "mean"):
        if fn is not None and not callable(fn):
            raise TypeError(f"Loss: expected fn to be a function (logits, labels) -> (loss, "
                            f"dlogits), received {type(fn).__name__}.")
        if reduction not in REDUCTIONS:
            raise ValueError(f"Loss: expected reduction in {REDUCTIONS}, received "
                             f"reduction={reduction!r}.")
        if fn is None and reduction != "mean":
            raise ValueError("Loss: tfparity's own loss is the mean; give fn for another "
                             f"reduction, received reduction={reduction!r}.")
        self.fn, self.reduction = fn, reduction

    @property
    def function(self) -> str:
        return "tfparity" if self.fn is None else getattr(self.fn, "__name__", "loss")

    @property
    def label(self) -> str:
        return f"SoftmaxCrossEntropy ({self.reduction})"

    def arguments(self, logits: np.ndarray, labels: np.ndarray) -> tuple:
        """The arguments of ``fn``: (logits, labels)."""
        return logits, labels

    def _fault(self, key, problem, fatal, frame=None) -> Fault:
        return Fault(LOSS, self.function, "forward" if key == LOSS else "backward", key, problem,
                     fatal, frame)

    def compute(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss, dL/dlogits (N, K)), the user's code run on copies and checked."""
        if self.fn is None:
            return ops.softmax_cross_entropy(logits, labels)
        given, labels_given = logits.copy(), labels.copy()
        result = call_user(self.fn, self.arguments(given, labels_given), {}, LOSS, self._fault)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise UserCodeError([self._fault(LOSS, f"returned {type(result).__name__}, expected "
                                                   "a pair (loss, dlogits)", True)])
        loss, faults = loss_value(result[0], self._fault)
        faults += result_faults(result[1], "input_grad", "dlogits", logits.shape, logits.dtype,
                                "", self._fault)
        if any(f.fatal for f in faults):
            raise UserCodeError(faults)
        dlogits = result[1].astype(logits.dtype, copy=False)
        faults += writes({"input": given, "labels": labels_given},
                         {"input": logits, "labels": labels},
                         {"input": "the logits it received",
                          "labels": "the labels it received"}, self._fault)
        if faults:
            raise UserCodeError(faults, value=(loss, dlogits))
        return loss, dlogits

    def keras(self, dtype: str):
        """Keras's sparse softmax cross-entropy from logits with the same reduction: the twin's
        loss."""
        import keras

        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction=KERAS_REDUCTIONS[self.reduction], dtype=dtype)
