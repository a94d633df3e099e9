"""Name the cause: the catalog of conventions that explain a divergence from TensorFlow.

Almost every real mismatch between hand-written code and TensorFlow is one of a few known
conventions (symmetric SAME padding, ReLU'(0) = 1, gradient to every tied maximum, NCHW
flatten, a loss summed over the batch, ...). For a quantity whose isolated error exceeds the
tolerance, ``find_cause`` recomputes TensorFlow's value under every variant of every convention
that applies to the layer kind and quantity, and names the one that makes the two agree within
the tolerance, with the residual error; when none does, it says nothing (never a guess).

    from reference_tf.causes import CONVENTIONS, find_cause
    cause = find_cause(case)          # Cause(id, detail, residual) or None

The registry is ``CONVENTIONS`` (``reference_tf.causes.registry``); docs/causes.md lists it
(``catalog_markdown``). NumPy only.
"""

from reference_tf.causes import (  # noqa: F401, I001  (they register, in this order)
    windowed, layers, loss, faults, optim, layouts, normalization)
from reference_tf.causes import sequence  # noqa: F401, I001  (registers after the others)
from reference_tf.causes.cases import (cause_clause, explain, layer_case, layer_kind, loss_case,
                                         tried)
from reference_tf.causes.registry import (
    CONVENTIONS,
    KINDS,
    Case,
    Cause,
    Convention,
    Variant,
    applicable,
    convention,
    find_cause,
)

__all__ = ["CONVENTIONS", "KINDS", "Case", "Cause", "Convention", "Variant", "applicable",
           "catalog_markdown", "cause_clause", "convention", "explain", "find_cause",
           "layer_case", "layer_kind", "loss_case", "tried"]


def catalog_markdown() -> str:
    """The catalog as the Markdown table of docs/causes.md: id, layer kinds, quantities, the
    variant, how it is detected."""
    rows = ["| id | layer kinds | quantities | variant | how it is detected |",
            "| --- | --- | --- | --- | --- |"]
    for c in CONVENTIONS.values():
        rows.append(f"| `{c.id}` | {', '.join(c.kinds)} | {', '.join(c.keys)} | {c.variant} | "
                    f"{c.detection} |")
    return "\n".join(rows) + "\n"
