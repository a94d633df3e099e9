"""A declaration that does not fit the code: the kernel layout a user layer should declare.

A user layer (``reference_tf.own``) gets its kernel in the layout it declares: (in, out) for a
Dense unless ``dense_layout="OI"``, HWIO for a Conv2D unless ``kernel_layout=...``. Code written
for PyTorch's (out, in) or OIHW kernels then fails with a shape error (a fatal fault: ``x @ W.T``
does not fit) or computes with a transposed kernel. ``kernel_declaration`` runs a float64 copy
of the layer under every other kernel layout; when one runs without a fault and matches
TensorFlow, the cause names the declaration that makes the layer fit.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from reference_tf.causes.registry import Case, Variant, convention
from reference_tf.own.conventions import activation_from_user, activation_to_user
from reference_tf.user_code import UserCodeError

FIELDS = {"conv": "kernel_layout", "dense": "dense_layout"}
# Tried first: where an axis of size 1 makes two layouts read alike, the usual one is named.
USUAL = ("OIHW", "HWIO", "OI", "IO")


def _alternatives(layer) -> list[tuple[str, str]]:
    """(field, layout) for every kernel layout of the layer's kind other than the declared."""
    field = FIELDS[layer.kind]
    declared = getattr(layer.conventions, field)
    layouts = sorted({"".join(order) for order in permutations(declared)} - {declared},
                     key=lambda layout: (layout not in USUAL, layout))
    return [(field, layout) for layout in layouts]


def _run_declared(layer, field: str, layout: str, case: Case):
    """The layer's code run (float64 copy) with the kernel laid out as ``layout``: its output or
    dL/dx in Keras's layouts, or None when it faults."""
    clone = layer.float64_copy()
    keras_params = layer.params_to_keras(layer.params)
    clone.conventions = clone.conventions.updated(**{field: layout})
    clone.params = {k: np.asarray(v, np.float64)
                    for k, v in clone.params_from_keras(keras_params).items()}
    user_layout = clone.conventions.layout
    x = activation_to_user(np.asarray(case.x, np.float64), user_layout)
    try:
        y = clone.call(x)
        if case.key == "output":
            return activation_from_user(y, user_layout)
        dy = activation_to_user(np.asarray(case.dy, np.float64), user_layout)
        return activation_from_user(clone.call_backward(dy), user_layout)
    except (UserCodeError, ValueError, TypeError):
        return None


@convention("kernel_declaration", kinds=("conv", "dense"), keys=("output", "input_grad"),
            variant="a user layer's code written for another kernel layout than declared (e.g. "
                    "PyTorch's (out, in) Dense kernel without dense_layout=\"OI\")",
            detection="a float64 copy of the layer run with each other kernel layout declared; "
                      "one that runs without a fault and matches TensorFlow names the "
                      "declaration to write")
def kernel_declaration(case: Case):
    layer = case.layer
    if getattr(layer, "kind", None) not in FIELDS or getattr(layer, "impl", None) is None:
        return
    for field, layout in _alternatives(layer):
        value = _run_declared(layer, field, layout, case)
        if value is not None and np.shape(value) == np.shape(case.reference):
            yield Variant(f"its kernel is declared {field}={getattr(layer.conventions, field)!r}"
                          f" but the code reads it as {layout!r}: declare {field}={layout!r} "
                          "(in the model's Conventions or on the layer)",
                          case.reference, actual=value, observed=True)
