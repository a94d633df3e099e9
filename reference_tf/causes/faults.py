"""Conventions that are not arithmetic: what a layer does to arrays it does not own, and the
dtype of what it returns.

Both are seen directly rather than recomputed. ``in_place_mutation``: the layer changed an
array it was handed (its input, its upstream gradient, a parameter): a fault of the layer's
code (``Case.fault``, with the wording of ``reference_tf.user_code``: "modified ..."). Its
residual is the layer's error on private copies, where the write harms nobody. ``dtype_drift``:
the layer's value has another dtype than the model's. It is compared with TensorFlow's value in
the coarser of the two dtypes, at that dtype's tolerance: returned as float32 from a float64
model it fails float64's tolerance and matches TensorFlow rounded to float32; returned as
float64 from a float32 model it passes anyway, and only the fault names it.
"""

from __future__ import annotations

import re

import numpy as np

from reference_tf.causes.registry import ANY, Case, Variant, convention
from reference_tf.compare import tolerance_for

HANDED = ("input", "output_grad", "params/*")
RESULTS = ("output", "input_grad", "grads/*")
DTYPE = re.compile(r"of dtype (float16|float32|float64)\b")


def _fault_problem(case: Case) -> str:
    return "" if case.fault is None else getattr(case.fault, "problem", "")


@convention("in_place_mutation", kinds=(ANY,), keys=HANDED + RESULTS,
            variant="the layer writes into an array it was handed (its input, its upstream "
                    "gradient or a parameter) instead of into new arrays",
            detection="the layer runs on private copies, which are compared with the originals "
                      "afterwards (a fault); the residual is its error on those copies")
def in_place_mutation(case: Case):
    problem = _fault_problem(case)
    if problem.startswith("modified "):
        what = problem.removeprefix("modified ")
        yield Variant(f"the layer works on private copies: its {case.direction} pass writes into "
                      f"{what}", case.reference, observed=True)


@convention("dtype_drift", kinds=(ANY,), keys=RESULTS,
            variant="an output or gradient in another dtype than the model's (e.g. np.zeros "
                    "without dtype=)",
            detection="the dtype of the layer's value (or the fault naming it); the value "
                      "compared with TensorFlow's in the coarser of the two dtypes, at its "
                      "tolerance")
def dtype_drift(case: Case):
    found = DTYPE.search(_fault_problem(case))
    drifted = np.dtype(found.group(1)) if found else getattr(case.mine, "dtype", case.dtype)
    if drifted == case.dtype or drifted.kind != "f":
        return
    coarse = max(drifted, case.dtype, key=lambda d: np.finfo(d).eps)
    if coarse.name not in ("float32", "float64"):
        return
    kind = "output" if case.direction == "forward" else "grads"
    yield Variant(f"its {drifted.name} result is compared in {coarse.name} (the layer returns "
                  f"{drifted.name} from a {case.dtype.name} model)",
                  np.asarray(case.reference).astype(coarse), observed=True,
                  tolerance=tolerance_for(kind, coarse))
