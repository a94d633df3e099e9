"""Conventions of the loss (the mean sparse softmax cross-entropy from logits)."""

from __future__ import annotations

import numpy as np

from reference_tf.causes import numeric
from reference_tf.causes.registry import Case, Variant, convention

EPSILONS = (1e-7, 1e-8, 1e-10, 1e-12, 1e-15)  # 1e-7: Keras's backend epsilon
SMOOTHING = (0.1, 0.05, 0.2, 0.01, 0.3)


def _value_or_grad(case: Case, value: float, grad: np.ndarray):
    return np.float64(value) if case.key == "output" else grad


@convention("loss_reduction", kinds=("loss",), keys=("output", "input_grad"),
            variant="loss (and its gradient) summed over the batch instead of averaged "
                    "(factor N), or averaged over the N * classes entries (factor 1/K)",
            detection="TensorFlow's value times N and divided by K")
def loss_reduction(case: Case):
    n, k = case.x.shape
    reference = np.asarray(case.reference, np.float64)
    what = "loss" if case.key == "output" else "loss gradient dL/dlogits"
    yield Variant(f"the {what} is summed over the batch (N = {n}) instead of averaged",
                  reference * n)
    yield Variant(f"the {what} is averaged over the N * classes = {n * k} entries instead of the "
                  f"N = {n} examples", reference / k)


def _clipped(case: Case, eps: float, additive: bool):
    """-mean log(p_y + eps) or -mean log(clip(p_y, eps, 1 - eps)) with its exact gradient."""
    n, k = case.x.shape
    p = numeric.softmax(case.x)
    target = numeric.onehot(case.labels, k)
    p_y = p[np.arange(n), case.labels]
    if additive:
        value, row_scale = -np.log(p_y + eps).mean(), p_y / (p_y + eps)
    else:
        value = -np.log(np.clip(p_y, eps, 1 - eps)).mean()
        row_scale = ((p_y > eps) & (p_y < 1 - eps)).astype(np.float64)
    return _value_or_grad(case, value, row_scale[:, None] * (p - target) / n)


@convention("loss_clipping", kinds=("loss",), keys=("output", "input_grad"),
            variant="softmax, then the log of probabilities clipped to [eps, 1 - eps] or plus "
                    "eps (eps from 1e-7 to 1e-15); label smoothing 0.01 to 0.3",
            detection="the loss and dL/dlogits recomputed under each variant on TensorFlow's "
                      "logits")
def loss_clipping(case: Case):
    for eps in EPSILONS:
        yield Variant(f"the loss takes log(clip(softmax(z), {eps:g}, 1 - {eps:g})) (softmax, then "
                      "log) instead of TensorFlow's log-softmax of the logits",
                      _clipped(case, eps, additive=False))
        yield Variant(f"the loss takes log(softmax(z) + {eps:g}) (softmax, then log) instead of "
                      "TensorFlow's log-softmax of the logits", _clipped(case, eps, additive=True))
    k = case.x.shape[1]
    for smoothing in SMOOTHING:
        targets = (1 - smoothing) * numeric.onehot(case.labels, k) + smoothing / k
        yield Variant(f"the labels are smoothed by {smoothing:g} (targets (1 - {smoothing:g}) * "
                      f"onehot + {smoothing:g} / {k}) instead of TensorFlow's one-hot labels",
                      _value_or_grad(case, *numeric.cross_entropy(case.x, targets)))
