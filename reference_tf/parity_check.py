"""The CI gate behind ``tfparity check``: one forward/backward pass of a model on both paths.

A scratch model computes gradients on two paths: ``trace`` (layer by layer, every output and
gradient: what ``diff`` compares) and ``loss_and_grads`` (the fused units a training step runs).
Both are compared with the Keras twin's trace on the same batch and weights: the trace path on
every quantity (logits, loss, each layer's output and output gradient, every parameter gradient,
the input gradient and the moving statistics after the step), the training path on the loss and
every parameter gradient. Both paths are training-mode passes: the Keras twin is built before
the step (with the moving statistics before it) and shares the scratch Dropout masks, which the
training path replays.

Any model the adapter protocol covers is checked so (``reference_tf.adapter``), a user's
``reference_tf.own.Model`` included: a fault of its code fails the path it happened on. A
``reference_tf.own.Function`` has one path, "function": its loss and parameter gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from reference_tf.compare import safe_compare, tolerance_for
from reference_tf.gradients import model_trace, trace_arrays
from reference_tf.own.model import Function
from reference_tf.tolerant_run import run_trace
from reference_tf.twin import twin
from reference_tf.user_code import Fault, guarded
from scratch.layers import replaying_masks
from scratch.models import Sequential

PATHS = ("trace", "training")


class PathCheck(NamedTuple):
    """One path's verdict: its worst quantity, that quantity's error (the larger of relative L2
    and scaled max abs) and tolerance, how many quantities were compared, and the first fault of
    the code on this path (then ``worst`` is the quantity the fault concerns)."""

    path: str
    passed: bool
    worst: str
    error: float
    tolerance: float
    quantities: int
    fault: Fault | None = None


class Failure(NamedTuple):
    """The first thing that failed: a fault, or a quantity above its tolerance."""

    path: str
    key: str
    error: float
    tolerance: float
    fault: Fault | None


@dataclass
class CheckResult:
    """``check`` of one model on one batch: a ``PathCheck`` per path and the first failure
    (faults first, then quantities in ``diff``'s scan order: forward in network order, backward
    in reverse)."""

    model: str
    dtype: str
    batch_shape: tuple
    paths: dict[str, PathCheck]
    first_divergence: Failure | None

    @property
    def passed(self) -> bool:
        return all(path.passed for path in self.paths.values())

    def to_frame(self):
        """One row per path as a pandas DataFrame (``reference_tf.display.check_frame``)."""
        from reference_tf.display import check_frame

        return check_frame(self)

    def __repr__(self) -> str:
        from reference_tf.display import check_text

        return check_text(self)

    def _repr_html_(self) -> str:
        from reference_tf.display import check_html

        return check_html(self)

    def to_dict(self) -> dict:
        """JSON-ready (non-finite numbers become None later)."""
        def failure(f: Failure | None) -> dict | None:
            return None if f is None else {
                **f._asdict(), "fault": None if f.fault is None else f.fault.to_dict()}

        return {"model": self.model, "dtype": self.dtype, "batch_shape": list(self.batch_shape),
                "passed": self.passed, "first_divergence": failure(self.first_divergence),
                "paths": {name: {**p._asdict(), "fault": None if p.fault is None else
                                 p.fault.to_dict()} for name, p in self.paths.items()}}


def _scored(mine: dict, reference: dict, dtype: str, batch_statistics: bool = False
            ) -> list[tuple]:
    """(error / tolerance, key, error, tolerance) per reference quantity; a quantity the model
    did not compute has an infinite error."""
    scored = []
    for key, expected in reference.items():
        tolerance = tolerance_for(key, dtype, batch_statistics)
        error = (math.inf if mine.get(key) is None
                 else safe_compare(mine[key], expected, key).smallest_passing_tolerance)
        scored.append((error / tolerance, key, error, tolerance))
    return scored


def _path(path: str, scored: list[tuple], faults: list[Fault]) -> PathCheck:
    if faults:
        return PathCheck(path, False, faults[0].key, math.inf, math.nan, len(scored), faults[0])
    ratio, key, error, tolerance = max(scored)
    return PathCheck(path, all(s[0] <= 1 for s in scored), key, error, tolerance, len(scored))


def _scan_position(names: list[str], key: str) -> tuple:
    """Where a trace quantity comes in ``diff``'s scan order."""
    last = len(names) - 1
    kind, _, rest = key.partition("/")
    layer = rest.split("/")[0]
    if kind == "outputs":
        return (0, names.index(layer))
    if key in ("logits", "loss"):
        return (0, last + (key == "loss"))
    if kind in ("output_grads", "grads"):
        return (1, last - names.index(layer), kind == "grads")
    return (1, last + 1, 0)


def _first(path: str, scored: list[tuple], names: list[str]) -> Failure | None:
    failing = [s for s in scored if s[0] > 1]
    if not failing:
        return None
    _, key, error, tolerance = min(failing, key=lambda s: _scan_position(names, s[1]))
    return Failure(path, key, error, tolerance, None)


def check(model: Sequential | Function, x: np.ndarray, y: np.ndarray,
          twins: dict | None = None, *, name: str = "model", keras_model=None
          ) -> CheckResult:
    """Every path of ``model`` against its Keras twin on (x (N, *input_shape), y (N,)).

    ``keras_model``: a twin to reuse (``gradients.model_trace``), e.g. over many seeds; built
    before the step by default.

    Returns:
        A ``CheckResult``: paths "trace" and "training" ("function" for a ``Function``).
    """
    dtype = model.dtype.name
    if isinstance(model, Function):
        return _check_function(model, x, y, name, keras_model)
    statistics = model.mixes_examples
    if keras_model is None:  # the moving statistics before the step
        keras_model = twin(model, twins, share_masks=True)
    names = [layer.name for layer in model.layers]
    mine, trace_faults = run_trace(model, x, y)
    reference = trace_arrays(model_trace(model, x, y, keras_model=keras_model))
    traced = _scored(trace_arrays(mine), reference, dtype, statistics)
    training_faults: list[Fault] = []
    with replaying_masks(model.layers):
        result, _ = guarded(training_faults, model.loss_and_grads, x, y)
    computed = {} if training_faults else {"loss": np.float64(result[0]),
                                           **{f"grads/{k}": v for k, v in result[1].items()}}
    trained = _scored(computed, {k: reference[k] for k in reference
                                 if k == "loss" or k.startswith("grads/")}, dtype, statistics)
    paths = {"trace": _path("trace", traced, trace_faults),
             "training": _path("training", trained, training_faults)}
    faults = [("trace", f) for f in trace_faults] + [("training", f) for f in training_faults]
    first = (Failure(faults[0][0], faults[0][1].key, math.inf, math.nan, faults[0][1]) if faults
             else _first("trace", traced, names) or _first("training", trained, names))
    return CheckResult(name, dtype, tuple(x.shape), paths, first)


def _check_function(model: Function, x, y, name: str, keras_model) -> CheckResult:
    dtype = model.dtype.name
    ref = model_trace(model.architecture, x, y, keras_model=keras_model)
    reference = {"loss": np.float64(ref.loss),
                 **{f"grads/{k}": ref.grads[key] for k, key in model.keys.items()}}
    faults: list[Fault] = []
    result, _ = guarded(faults, model.loss_and_grads, x, y)
    mine = {} if faults else {"loss": np.float64(result[0]),
                              **{f"grads/{k}": v for k, v in result[1].items()}}
    scored = _scored(mine, reference, dtype)
    # the last layer's parameters first, as the backward pass meets them
    order = ["loss"] + [f"grads/{k}" for k in reversed(list(model.keys))]
    failing = sorted((s for s in scored if s[0] > 1), key=lambda s: order.index(s[1]))
    first = (Failure("function", faults[0].key, math.inf, math.nan, faults[0]) if faults else
             Failure("function", *failing[0][1:], None) if failing else None)
    return CheckResult(name, dtype, tuple(x.shape), {"function": _path("function", scored, faults)},
                       first)
