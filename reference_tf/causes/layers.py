"""Conventions of ReLU, flattening and parameter gradients."""

from __future__ import annotations

from itertools import combinations, permutations

import numpy as np

from reference_tf.causes import numeric
from reference_tf.causes.registry import ANY, Case, Variant, convention

TF_FLATTEN = "HWC"
SLOPES = {1.0: "1 (x >= 0 passes the gradient)", 0.5: "0.5 (the subgradient's midpoint)"}


@convention("relu_grad_at_zero", kinds=("relu",), keys=("input_grad",),
            variant="ReLU derivative 1 or 0.5 at exactly 0 instead of TensorFlow's 0",
            detection="dL/dx recomputed with that derivative where TensorFlow's input is "
                      "exactly 0")
def relu_grad_at_zero(case: Case):
    x, dy = np.asarray(case.x, np.float64), np.asarray(case.dy, np.float64)
    for slope, words in SLOPES.items():
        yield Variant(f"ReLU's derivative at exactly 0 is taken as {words} instead of "
                      "TensorFlow's 0", dy * ((x > 0) + slope * (x == 0)))


def _orders(reference: str):
    """Every order of (H, W, C) other than the twin's."""
    return [order for order in map("".join, permutations(TF_FLATTEN)) if order != reference]


def _words(order: str, reference: str) -> str:
    first = " (channels first, as NCHW code flattens)" if order == "CHW" else ""
    whose = "TensorFlow's" if reference == TF_FLATTEN else "the declared"
    return (f"features are flattened in ({', '.join(order)}) order{first} instead of "
            f"{whose} ({', '.join(reference)})")


@convention("flatten_order", kinds=("flatten", "dense"),
            keys=("output", "input_grad", "grads/kernel"),
            variant="(C, H, W) (or another) order instead of (H, W, C) (or the declared one), "
                    "in a Flatten or a Dense that flattens an image itself",
            detection="the quantity recomputed with the image's axes transposed before "
                      "flattening (and back for dL/dx)")
def flatten_order(case: Case):
    x = np.asarray(case.x, np.float64)
    if x.ndim != 4 or (case.kind == "flatten" and case.key == "grads/kernel"):
        return
    reference = case.settings.get("flatten", TF_FLATTEN)
    for order in _orders(reference):
        flat = numeric.flatten(x, order)
        dy = None if case.dy is None else np.asarray(case.dy, np.float64)
        if case.kind == "flatten":
            value = flat if case.key == "output" else numeric.unflatten(dy, x.shape, order)
        elif case.key == "output":
            value = flat @ case.params["kernel"] + case.bias
        elif case.key == "input_grad":
            value = numeric.unflatten(dy @ case.params["kernel"].T, x.shape, order)
        else:
            value = flat.T @ dy
        yield Variant(_words(order, reference), value)


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


AXIS_NAMES = {2: ("the batch", "the units"),
              4: ("the batch", "the rows", "the columns", "the channels")}


@convention("bias_grad_axis", kinds=("conv", "dense"), keys=("grads/bias",),
            variant="bias gradient summed over other axes of dL/dy than all but the last",
            detection="dL/dy summed over every other set of axes, compared where the shapes "
                      "agree")
def bias_grad_axis(case: Case):
    dy = np.asarray(case.dy, np.float64)
    names = AXIS_NAMES.get(dy.ndim, tuple(f"axis {a}" for a in range(dy.ndim)))
    right = tuple(range(dy.ndim - 1))
    for count in range(1, dy.ndim + 1):
        for axes in combinations(range(dy.ndim), count):
            if axes != right:
                over = _listing([names[a] for a in axes])
                yield Variant(f"the bias gradient sums dL/dy over {over} (axes {axes}) instead "
                              f"of TensorFlow's {right}", dy.sum(axis=axes))


@convention("batch_mean_missing", kinds=(ANY,), keys=("grads/*",),
            variant="a parameter gradient off by exactly the batch size N (times N or divided "
                    "by N once more)",
            detection="TensorFlow's gradient times N and divided by N")
def batch_mean_missing(case: Case):
    n = case.batch
    reference = np.asarray(case.reference, np.float64)
    yield Variant(f"the parameter gradient is N = {n} times larger: the batch mean's 1/N is "
                  "missing", reference * n)
    yield Variant(f"the parameter gradient is divided by N = {n} once more: the batch mean is "
                  "applied twice", reference / n)
