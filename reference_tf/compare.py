"""The comparison engine: error statistics between named arrays, tolerances and failure messages.

Two arrays ``actual`` (the implementation under test) and ``expected`` (the reference) are
compared in float64. A quantity passes a tolerance ``tol`` when both its relative L2 error
``||a - b|| / ||b||`` and its scaled max error ``max|a - b| / max|b|`` are at most ``tol`` and
both arrays have their NaN/inf in the same places; so the smallest passing tolerance is the
larger of the two errors. The first metric judges the array as a whole, the second a single
wrong element hidden in a large array. Element-wise relative error is reported (it locates a
problem) but not judged: it is unbounded wherever the reference is nearly 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# Tolerances, per dtype and per kind of quantity ("forward": outputs, logits, loss;
# "gradient": every derivative). Both implementations round every operation correctly, but
# they sum in different orders (BLAS blocking, im2col vs. Eigen's convolution, a tape vs. a
# hand-written chain), so they differ by rounding alone. A sum of n terms carries a relative
# error of about sqrt(n) * u * kappa (u the unit roundoff, kappa = sum|x_i| / |sum x_i| the
# cancellation of the sum) in the typical case and n * u * kappa at worst.
#
# float64, u = 1.1e-16: the longest reduction of the models is the conv1 kernel gradient,
# n = N * 28 * 28 <= 8 * 784 = 6272, sqrt(n) * u ~ 1e-14; with kappa up to ~10 and a handful of
# chained layers the errors stay near 1e-14..1e-13, so 1e-12 leaves an order of magnitude and
# still catches any convention bug (those are O(1) errors).
FLOAT64_FORWARD_TOL = 1e-12
FLOAT64_GRADIENT_TOL = 1e-12
# float32, u = 6.0e-8: forward reductions are at most 784 long (a dense layer on a flattened
# image), sqrt(784) * u ~ 1.7e-6; with kappa ~ 5 this is ~1e-5. Gradients chain through more
# reductions (up to 6272 terms for a conv kernel, sqrt(n) * u ~ 5e-6) and cancel more (a weight
# gradient sums contributions of both signs), so they get a factor 10 more.
FLOAT32_FORWARD_TOL = 1e-5
FLOAT32_GRADIENT_TOL = 1e-4
# Training trajectories (parameters and losses after every SGD step, 100 steps): a step adds
# lr * (gradient error), and the difference is carried along by the (mildly expanding) training
# map, so after k steps the relative difference is of order k * (per-pass error). float64:
# 100 * 1e-13 = 1e-11 < 1e-10 (the required bound). float32: a pass typically differs by
# sqrt(n) * u ~ 1e-6 (n ~ 300-term reductions), so 100 steps give ~1e-4.
FLOAT64_TRAJECTORY_TOL = 1e-10
FLOAT32_TRAJECTORY_TOL = 1e-4
# Recurrent layers keep these tolerances (FLOAT64_RECURRENT_NOTE). Backpropagation through T
# steps chains T products h R (U terms each) and T gate derivatives, so rounding grows like
# sqrt(T * U) * u times the chain's gain; the gates' sigmoid and tanh have slopes <= 1, which
# keeps the gain near 1 with Keras's initial weights (orthogonal R) and with the uniform(-1, 1)
# weights of the layer tests (T <= 5). float64: the 28-step models (U = 64, sqrt(1792) * u ~
# 5e-15) measured at most 1.5e-15 (`tfparity check --models rnn lstm gru`), three orders
# below 1e-12. float32: 8.7e-7 against 1e-4. 40 float64 training steps of the stacked
# LSTM -> GRU -> SimpleRNN model of parity_tests/test_tf_sequence.py stay within 1e-9 of Keras.


# float32 models with batch statistics (BatchNormalization in training mode): TensorFlow adds the
# M = N*H*W values of a channel's mean and variance one at a time (relative error ~ sqrt(M) u,
# 6.7e-6 for the M = 12544 of 16 images of 28x28; scratch sums them pairwise, ~1e-7), and the
# normalized output divides by the standard deviation, so every forward quantity downstream of a
# batch normalization carries that error: `tfparity check --models cnn_bn` measured 1.1e-5 to
# 2.3e-5 on 8 batches of 16. Their forward tolerance is the gradient one; float64 is unaffected.
FLOAT32_BATCH_STATISTICS_FORWARD_TOL = 1e-4


class Tolerance(NamedTuple):
    """The tolerances of one dtype."""

    forward: float
    gradient: float
    trajectory: float


TOLERANCES = {
    "float64": Tolerance(FLOAT64_FORWARD_TOL, FLOAT64_GRADIENT_TOL, FLOAT64_TRAJECTORY_TOL),
    "float32": Tolerance(FLOAT32_FORWARD_TOL, FLOAT32_GRADIENT_TOL, FLOAT32_TRAJECTORY_TOL),
}

FORWARD_KEYS = ("logits", "loss", "outputs", "output", "state")


def tolerances(dtype, batch_statistics: bool = False) -> Tolerance:
    """The ``Tolerance`` of ``dtype`` ("float32" or "float64"); ``batch_statistics``: of a model
    that normalizes with batch statistics (see ``FLOAT32_BATCH_STATISTICS_FORWARD_TOL``)."""
    name = np.dtype(dtype).name
    if name not in TOLERANCES:
        raise ValueError(f"tolerances: expected dtype float32 or float64, received {name}.")
    if batch_statistics and name == "float32":
        return TOLERANCES[name]._replace(forward=FLOAT32_BATCH_STATISTICS_FORWARD_TOL)
    return TOLERANCES[name]


def kind(name: str) -> str:
    """"forward" if the key's first component is logits, loss, outputs, output or state (moving
    statistics, computed by the forward pass), else "gradient"."""
    return "forward" if name.split("/")[0] in FORWARD_KEYS else "gradient"


def tolerance_for(name: str, dtype, batch_statistics: bool = False) -> float:
    """The tolerance of quantity ``name`` in ``dtype``; ``batch_statistics``: see ``tolerances``."""
    return getattr(tolerances(dtype, batch_statistics), kind(name))


class Comparison(NamedTuple):
    """Error statistics of ``actual`` against ``expected`` (the reference), one quantity.

    worst_index is the index of the largest absolute error (None for empty arrays), with the
    two values there. Errors are computed on the entries finite in both arrays; ``nonfinite_match``
    says whether the NaN/+inf/-inf entries coincide.
    """

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    rel_l2: float
    scaled_max_abs: float
    cosine: float
    worst_index: tuple | None
    worst_actual: float
    worst_expected: float
    nan_actual: int
    nan_expected: int
    inf_actual: int
    inf_expected: int
    nonfinite_match: bool

    @property
    def smallest_passing_tolerance(self) -> float:
        """The smallest ``tol`` with ``passes(tol)`` (inf if the NaN/inf entries differ)."""
        return max(self.rel_l2, self.scaled_max_abs) if self.nonfinite_match else math.inf

    def passes(self, tol: float) -> bool:
        return self.nonfinite_match and self.smallest_passing_tolerance <= tol

    def format(self, tol: float | None = None) -> str:
        """A one-paragraph report: the quantity, the errors, the worst index and both values."""
        where = ("(empty)" if self.worst_index is None else
                 f"worst at index {self.worst_index}: actual {self.worst_actual!r}, "
                 f"expected {self.worst_expected!r}")
        verdict = "" if tol is None else (f" {'passes' if self.passes(tol) else 'FAILS'} "
                                          f"tolerance {tol:.1e};")
        text = (f"{self.name} {self.shape}:{verdict} rel L2 {self.rel_l2:.3e}, scaled max abs "
                f"{self.scaled_max_abs:.3e}, max abs {self.max_abs:.3e}, max rel "
                f"{self.max_rel:.3e}, cosine {self.cosine:.12f}; {where}")
        if self.nan_actual or self.nan_expected or self.inf_actual or self.inf_expected:
            text += (f"; NaN {self.nan_actual} vs {self.nan_expected}, inf {self.inf_actual} vs "
                     f"{self.inf_expected}"
                     f"{'' if self.nonfinite_match else ' (in different places)'}")
        return text


def _ratio(num: float, den: float) -> float:
    """num / den with 0/0 = 0 and x/0 = inf."""
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return num / den


def compare_arrays(actual, expected, name: str = "value") -> Comparison:
    """Compare two arrays (or scalars) of the same shape; see ``Comparison``.

    Raises:
        ValueError: the shapes differ (naming ``name`` and both shapes).
    """
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"compare: '{name}': expected shape {b.shape} (the reference), "
                         f"received {a.shape}.")
    finite = np.isfinite(a) & np.isfinite(b)
    nonfinite_match = bool(np.array_equal(a[~finite], b[~finite], equal_nan=True)
                           and np.array_equal(np.isfinite(a), np.isfinite(b)))
    af, bf = np.where(finite, a, 0.0), np.where(finite, b, 0.0)
    diff = np.abs(af - bf)
    if a.size:
        worst = np.unravel_index(int(np.argmax(diff)), a.shape)
        worst_index = tuple(int(i) for i in worst)
        worst_actual, worst_expected = float(a[worst]), float(b[worst])
    else:
        worst_index, worst_actual, worst_expected = None, math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(bf))
    max_abs = float(diff.max(initial=0.0))
    norm_a, norm_b = float(np.linalg.norm(af)), float(np.linalg.norm(bf))
    if norm_a == 0 or norm_b == 0:
        cosine = 1.0 if norm_a == norm_b else 0.0
    else:
        cosine = float(np.dot(af.ravel(), bf.ravel()) / (norm_a * norm_b))
    return Comparison(
        name=name, shape=a.shape, max_abs=max_abs, max_rel=float(rel.max(initial=0.0)),
        rel_l2=_ratio(float(np.linalg.norm(diff)), norm_b),
        scaled_max_abs=_ratio(max_abs, float(np.abs(bf).max(initial=0.0))),
        cosine=cosine, worst_index=worst_index, worst_actual=worst_actual,
        worst_expected=worst_expected,
        nan_actual=int(np.isnan(a).sum()), nan_expected=int(np.isnan(b).sum()),
        inf_actual=int(np.isinf(a).sum()), inf_expected=int(np.isinf(b).sum()),
        nonfinite_match=nonfinite_match,
    )


def safe_compare(actual, expected, name: str) -> Comparison:
    """``compare_arrays``, except that a shape mismatch is an infinite error, not an exception."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape == expected.shape:
        return compare_arrays(actual, expected, name)
    return Comparison(name=name, shape=actual.shape, max_abs=math.inf, max_rel=math.inf,
                      rel_l2=math.inf, scaled_max_abs=math.inf, cosine=math.nan, worst_index=None,
                      worst_actual=math.nan, worst_expected=math.nan, nan_actual=0, nan_expected=0,
                      inf_actual=0, inf_expected=0, nonfinite_match=False)


def compare(actual: dict, expected: dict) -> dict[str, Comparison]:
    """Compare two dicts of named arrays with the same keys, in ``expected``'s key order.

    Raises:
        ValueError: the keys differ (naming the missing and unexpected keys) or a shape differs.
    """
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing or extra:
        raise ValueError(f"compare: keys differ; missing {missing}, unexpected {extra}.")
    return {key: compare_arrays(actual[key], expected[key], key) for key in expected}


def failures(comparisons: dict[str, Comparison], dtype,
             batch_statistics: bool = False) -> list[Comparison]:
    """The comparisons that exceed ``tolerance_for(name, dtype, batch_statistics)``."""
    return [c for c in comparisons.values()
            if not c.passes(tolerance_for(c.name, dtype, batch_statistics))]


def assert_all_close(actual: dict, expected: dict, dtype, context: str = "",
                     batch_statistics: bool = False) -> dict[str, Comparison]:
    """Compare and raise AssertionError listing every failing quantity; returns the comparisons.

    A shape or key mismatch is an AssertionError too, since it is a parity failure.
    ``batch_statistics`` selects the tolerances as in ``tolerances``.
    """
    try:
        comparisons = compare(actual, expected)
    except ValueError as error:
        raise AssertionError(f"{context}: {error}" if context else str(error)) from None
    failed = failures(comparisons, dtype, batch_statistics)
    if failed:
        header = f"{context}: " if context else ""
        raise AssertionError(f"{header}{len(failed)} of {len(comparisons)} quantities differ "
                             f"({np.dtype(dtype).name}):\n"
                             + "\n".join(c.format(tolerance_for(c.name, dtype, batch_statistics))
                                         for c in failed))
    return comparisons
