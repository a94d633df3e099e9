"""Conventions of normalization and dropout: epsilon, the variance's divisor, the dropout
probability's reading.

Cases are in Keras's layouts: activations NHWC (or (N, D)), gamma and beta (C,). A batch norm
normalizes each channel over every other axis, a layer norm each example of (N, D) over its
features, a group norm each example's groups of C // groups consecutive channels over the group
and the image. The values are recomputed here in float64 NumPy from TensorFlow's input and
upstream gradient.
"""

from __future__ import annotations

import numpy as np

from reference_tf.causes.registry import Case, Variant, convention

NORMS = ("batchnorm", "layernorm", "groupnorm")
NORM_KEYS = ("output", "input_grad", "grads/gamma")
# 1e-5: CS231n, PyTorch; 1e-3: Keras; 1e-8, 1e-6, 1e-7 (Keras's backend epsilon), 1e-4, 1e-12
EPSILONS = (1e-5, 1e-3, 1e-8, 1e-6, 1e-7, 1e-4, 1e-12)


def _grouping(case: Case):
    """(to_rows, from_rows): x's shape <-> (R, K) with each row one normalized set."""
    shape = np.shape(case.x)
    if case.kind == "batchnorm":
        channels = shape[-1]
        return (lambda a: a.reshape(-1, channels).T), (lambda r: r.T.reshape(shape))
    if case.kind == "layernorm":
        return (lambda a: a.reshape(shape[0], -1)), (lambda r: r.reshape(shape))
    n, h, w, c = shape
    g = case.settings["groups"]
    grouped = (n, h, w, g, c // g)
    return ((lambda a: a.reshape(grouped).transpose(0, 3, 1, 2, 4).reshape(n * g, -1)),
            (lambda r: r.reshape(n, g, h, w, c // g).transpose(0, 2, 3, 1, 4).reshape(shape)))


def normalized(case: Case, epsilon: float, ddof: int):
    """The case's quantity of the normalization with ``epsilon`` and the variance divided by
    K - ddof (K values per normalized set)."""
    to_rows, from_rows = _grouping(case)
    rows = to_rows(np.asarray(case.x, np.float64))
    size = rows.shape[1]
    centered = rows - rows.mean(axis=1, keepdims=True)
    std = np.sqrt((centered ** 2).sum(axis=1, keepdims=True) / (size - ddof) + epsilon)
    xhat = centered / std
    gamma = np.asarray(case.params.get("gamma", 1.0), np.float64)
    if case.key == "output":
        return gamma * from_rows(xhat) + np.asarray(case.params.get("beta", 0.0), np.float64)
    dy = np.asarray(case.dy, np.float64)
    if case.key == "grads/gamma":
        return (dy * from_rows(xhat)).reshape(-1, dy.shape[-1]).sum(axis=0)
    g = to_rows(dy * gamma)
    dx = (g - g.mean(axis=1, keepdims=True)
          - xhat * (g * xhat).sum(axis=1, keepdims=True) / (size - ddof)) / std
    return from_rows(dx)


def _set_size(case: Case) -> int:
    return _grouping(case)[0](np.asarray(case.x)).shape[1]


@convention("norm_epsilon", kinds=NORMS, keys=NORM_KEYS,
            variant="another epsilon added to the variance than the declared one (Keras's "
                    "default 1e-3; CS231n and PyTorch add 1e-5): 1e-3 to 1e-12",
            detection="the normalization recomputed with each epsilon on TensorFlow's input")
def norm_epsilon(case: Case):
    declared = case.settings["epsilon"]
    for epsilon in EPSILONS:
        if not np.isclose(epsilon, declared, rtol=1e-6, atol=0):
            yield Variant(f"the normalization adds epsilon {epsilon:g} to the variance instead "
                          f"of the declared {declared:g} (Keras's default is 1e-3, CS231n and "
                          f"PyTorch add 1e-5): declare epsilon={epsilon:g}",
                          normalized(case, epsilon, 0))


@convention("norm_variance", kinds=NORMS, keys=NORM_KEYS,
            variant="the unbiased variance (divided by K - 1, np.var(ddof=1), torch.var's "
                    "default) instead of Keras's biased one (divided by the K values "
                    "normalized together)",
            detection="the normalization recomputed with the variance divided by K - 1")
def norm_variance(case: Case):
    size = _set_size(case)
    if size > 1:
        yield Variant(f"the variance is the unbiased one, divided by K - 1 = {size - 1} "
                      f"(np.var(ddof=1), torch.var's default) instead of Keras's biased one, "
                      f"divided by the K = {size} values normalized together",
                      normalized(case, case.settings["epsilon"], 1))


@convention("dropout_probability", kinds=("dropout",), keys=("output", "input_grad"),
            variant="the dropout probability read the other way: kept units scaled by 1 / rate "
                    "instead of Keras's 1 / (1 - rate) (CS231n's p keeps a unit, Keras's rate "
                    "drops one)",
            detection="TensorFlow's value (the user's mask replayed) times (1 - rate) / rate")
def dropout_probability(case: Case):
    rate = case.settings["rate"]
    yield Variant(f"the code scales kept units by 1 / {rate:g} where Keras's rate {rate:g} "
                  f"scales them by 1 / {1 - rate:g}: the declared probability is read the other "
                  "way (CS231n's p keeps a unit, Keras's rate drops one); declare the other "
                  "dropout convention ('keep' or 'rate')",
                  np.asarray(case.reference, np.float64) * (1 - rate) / rate)
