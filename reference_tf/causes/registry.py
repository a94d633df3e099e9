"""The convention registry: one entry per known cause, and the matcher that tries them.

A ``Convention`` names one way hand-written code commonly departs from TensorFlow (an id such as
``same_padding_split``), the layer kinds and quantities it can explain, and a function that,
given a ``Case`` (one failing quantity of one layer with TensorFlow's inputs), yields
``Variant``\\ s: the quantity recomputed as TensorFlow would compute it under the other
convention (or the layer's value transformed back). ``find_cause`` tries every variant of every
convention that applies and reports the one that brings the layer's value closest to it, if
that is within the dtype's tolerance; otherwise nothing (it never guesses).

Adding a convention is one decorated function (and one planted test):

    @convention("relu_grad_at_zero", kinds=("relu",), keys=("input_grad",),
                variant="derivative 1 or 0.5 at exactly 0 (TensorFlow: 0)",
                detection="dL/dx recomputed with that derivative at the zeros of x")
    def relu_grad_at_zero(case):
        for slope in (1.0, 0.5):
            yield Variant(f"...", case.dy * ((case.x > 0) + slope * (case.x == 0)))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple

import numpy as np

from reference_tf.compare import compare_arrays

KINDS = ("conv", "pool", "dense", "relu", "flatten", "loss", "optimizer", "other")
KINDS += ("simple_rnn", "lstm", "gru", "sequence_loss")  # reference_tf.causes.sequence
KINDS += ("batchnorm", "layernorm", "groupnorm", "dropout")
ANY = "any"


class Cause(NamedTuple):
    """The convention that explains a divergence: ``id`` (a registry key), ``detail`` (a clause
    completing "matches TensorFlow to <residual> when ...") and ``residual``, the error (the
    larger of relative L2 and scaled max abs) of the layer's value against the variant."""

    id: str
    detail: str
    residual: float

    def to_dict(self) -> dict:
        return {"id": self.id, "detail": self.detail, "residual": self.residual}

    @property
    def sentence(self) -> str:
        """"matches TensorFlow to 2e-16 when <detail>"."""
        return f"matches TensorFlow to {self.residual:.0e} when {self.detail}"


class Variant(NamedTuple):
    """One alternative: ``expected`` is TensorFlow's value recomputed under the other convention;
    ``actual`` (default: the layer's value) is what is compared with it, for conventions that
    transform the layer's value instead. ``observed``: the convention was seen directly (a
    fault, a dtype), not inferred from the numbers, so the variant need not change anything;
    ``tolerance``: the one to judge it by (default the case's)."""

    detail: str
    expected: np.ndarray
    actual: np.ndarray | None = None
    observed: bool = False
    tolerance: float | None = None


@dataclass
class Case:
    """One quantity of one layer whose isolated error exceeds the tolerance, in TensorFlow's
    layouts (NHWC, HWIO, dense (in, out)).

    kind: one of ``KINDS``; key: "output", "input_grad" or "grads/<param>" (the loss: "output" is
    its value, "input_grad" dL/dlogits); direction: "forward" or "backward"; mine: the layer's value
    on TensorFlow's input (and upstream gradient); reference: TensorFlow's value; x: TensorFlow's
    input to the layer (N, ...) (the logits for the loss); dy: TensorFlow's upstream gradient
    (the output's shape; None for the loss); params: the layer's parameters ("kernel", "bias");
    settings: "kernel_size"/"pool_size", "strides", "padding" of windowed layers; labels: the
    loss's (N,); dtype: the model's; tolerance: the quantity's; layer: the layer object (None
    for the loss), for conventions that run it again; name: the layer's name; fault: the fault
    of the layer's code the case is about (``reference_tf.user_code.Fault``), if any.
    """

    kind: str
    key: str
    direction: str
    mine: object
    reference: object
    x: np.ndarray | None
    dy: np.ndarray | None
    dtype: np.dtype
    tolerance: float
    params: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    layer: object = None
    name: str = ""
    fault: object = None

    @property
    def batch(self) -> int:
        return int(np.shape(self.x)[0])

    @property
    def bias(self):
        """The layer's bias, 0.0 for a layer without one (``use_bias=False``)."""
        return self.params.get("bias", 0.0)


@dataclass(frozen=True)
class Convention:
    """One catalog entry. kinds: the layer kinds it applies to (``ANY`` for all); keys: the
    quantity keys ("grads/*": every parameter gradient); variant, detection: what the other
    convention is and how it is recognised (for docs/causes.md); variants: Case -> Variants."""

    id: str
    kinds: tuple
    keys: tuple
    variant: str
    detection: str
    variants: Callable[[Case], Iterable[Variant]]

    def applies(self, case: Case) -> bool:
        kind_ok = ANY in self.kinds or case.kind in self.kinds
        key_ok = case.key in self.keys or ("grads/*" in self.keys
                                           and case.key.startswith("grads/"))
        return kind_ok and key_ok


CONVENTIONS: dict[str, Convention] = {}


def convention(id: str, *, kinds: tuple, keys: tuple, variant: str, detection: str):
    """Register the decorated ``variants(case)`` generator as convention ``id``."""
    unknown = [k for k in kinds if k not in KINDS + (ANY,)]
    if unknown or id in CONVENTIONS:
        raise ValueError(f"convention {id!r}: expected a new id and kinds from {KINDS + (ANY,)}, "
                         f"received kinds {kinds} (ids so far: {sorted(CONVENTIONS)}).")

    def register(fn: Callable[[Case], Iterable[Variant]]):
        CONVENTIONS[id] = Convention(id, tuple(kinds), tuple(keys), variant, detection, fn)
        return fn

    return register


def error(actual, expected) -> float:
    """The larger of relative L2 and scaled max abs error; inf for different shapes or
    non-finite entries in different places."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return math.inf
    return compare_arrays(actual, expected).smallest_passing_tolerance


def informative(expected, reference, tolerance: float) -> bool:
    """False when the variant's values are at the rounding level of TensorFlow's (e.g. a sum
    that cancels to zero): matching them says nothing."""
    scale = float(np.max(np.abs(reference), initial=0.0))
    return float(np.max(np.abs(expected), initial=0.0)) > tolerance * scale > 0


def applicable(case: Case) -> list[Convention]:
    """The conventions that apply to the case's layer kind and quantity, in registry order."""
    return [c for c in CONVENTIONS.values() if c.applies(case)]


def _variants(conv: Convention, case: Case) -> list[Variant]:
    """The convention's variants of the case; none when the case is one it cannot state (a
    user layer of unexpected shapes or layouts makes its arithmetic fail): never a guess, and
    never an exception from the catalog."""
    try:
        return list(conv.variants(case))
    except Exception:  # noqa: BLE001  (any failure means: this convention does not apply)
        return []


def find_cause(case: Case) -> Cause | None:
    """The best-matching variant of every applicable convention, or None.

    A variant matches when it brings the layer's value within the tolerance of it and departs
    from the original comparison by more than the tolerance (it changes TensorFlow's value or
    the layer's), unless its values are mere rounding (``informative``); a variant seen
    directly (``observed``) need only match. Among matches the smallest residual wins (registry
    order on ties). A convention whose arithmetic fails on the case does not match.
    """
    best = None
    for conv in applicable(case):
        for variant in _variants(conv, case):
            actual = case.mine if variant.actual is None else variant.actual
            tolerance = variant.tolerance or case.tolerance
            residual = error(actual, variant.expected)
            if residual > tolerance or (best is not None and residual >= best.residual):
                continue
            moved = (error(variant.expected, case.reference) > case.tolerance
                     or error(actual, case.mine) > case.tolerance)
            if variant.observed or (moved and informative(variant.expected, case.reference,
                                                          case.tolerance)):
                best = Cause(conv.id, variant.detail, residual)
    return best
