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

A path whose only failures come from ties or zeros that rounding decided differently on the two
sides (``reference_tf.kinks``: a ReLU input of +1e-9 against -1e-10, a max-pool tie) passes with
status "KINK": the model's code run again with TensorFlow's branch at those positions matches
TensorFlow within the tolerance, and the path lists the flips. A real bug at a tie or a zero
still fails: the replay takes TensorFlow's branch only where rounding decided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from reference_tf.compare import safe_compare, tolerance_for
from reference_tf.gradients import model_trace, trace_arrays
from reference_tf.guarding import guarding
from reference_tf.kinks import Flip, replay
from reference_tf.own.model import Function
from reference_tf.progress import Progress, announcing, silent
from reference_tf.tolerant_run import run_trace
from reference_tf.twin import twin
from reference_tf.user_code import Fault, guarded
from scratch.layers import replaying_masks
from scratch.models import Sequential, Trace

PATHS = ("trace", "training")


class PathCheck(NamedTuple):
    """One path's verdict: its worst quantity, that quantity's error (the larger of relative L2
    and scaled max abs) and tolerance, how many quantities were compared, the first fault of the
    code on this path (then ``worst`` is the quantity the fault concerns) and every fault, and
    the rounding-decided kinks that explain its differences (then ``worst`` and ``error`` are
    those of the replay with TensorFlow's branch at the flips, and ``status`` is "KINK")."""

    path: str
    passed: bool
    worst: str
    error: float
    tolerance: float
    quantities: int
    fault: Fault | None = None
    faults: tuple[Fault, ...] = ()
    kinks: tuple[Flip, ...] = ()

    @property
    def status(self) -> str:
        """"PASS", "KINK" (passed: differences decided by rounding at ties or zeros) or
        "FAIL"."""
        return "FAIL" if not self.passed else "KINK" if self.kinks else "PASS"

    def to_dict(self) -> dict:
        return {**self._asdict(), "status": self.status,
                "fault": None if self.fault is None else self.fault.to_dict(),
                "faults": [f.to_dict() for f in self.faults],
                "kinks": [k.to_dict() for k in self.kinks]}


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

    @property
    def kinks(self) -> list[Flip]:
        """The rounding-decided flips of every path, without repeats."""
        return list(dict.fromkeys(k for path in self.paths.values() for k in path.kinks))

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
                "kinks": [k.to_dict() for k in self.kinks],
                "paths": {name: p.to_dict() for name, p in self.paths.items()}}


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


def _path(path: str, scored: list[tuple], faults: list[Fault],
          kinks: list[Flip] | None = None) -> PathCheck:
    """A path's verdict; ``kinks``: the flips whose replay ``scored`` is (it then passes)."""
    if faults:
        return PathCheck(path, False, faults[0].key, math.inf, math.nan, len(scored), faults[0],
                         tuple(faults))
    ratio, key, error, tolerance = max(scored)
    return PathCheck(path, all(s[0] <= 1 for s in scored), key, error, tolerance, len(scored),
                     kinks=tuple(kinks or ()))


def _failing(scored: list[tuple]) -> bool:
    return any(s[0] > 1 for s in scored)


def _explained(model, x, y, ref, mine: Trace, computed: dict, statistics: bool,
               state_before: dict) -> tuple[list | None, list | None, list[Flip]]:
    """Rounding-decided kinks (``reference_tf.kinks``): (the trace's scores of its replay with
    TensorFlow's branch at the flips, if that replay passes; the training path's scores against
    the model's own trace, if the replay passes and they agree: the same code, the same flips;
    the flips). None where not explained. ``state_before``: the model's state before the step."""
    replayed, flips = replay(model, x, y, ref, statistics, state_before)
    if replayed is None:
        return None, None, flips
    dtype = model.dtype.name
    again = _scored(trace_arrays(replayed), trace_arrays(ref), dtype, statistics)
    if _failing(again):
        return None, None, flips
    own_trace = trace_arrays(mine)
    own = _scored(computed, {k: own_trace[k] for k in computed}, dtype, statistics)
    return again, (None if _failing(own) else own), flips


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
          twins: dict | None = None, *, name: str = "model", keras_model=None,
          progress: Progress | None = None) -> CheckResult:
    """Every path of ``model`` against its Keras twin on (x (N, *input_shape), y (N,)).

    ``keras_model``: a twin to reuse (``gradients.model_trace``), e.g. over many seeds; built
    before the step by default. ``progress``: told each phase, layer and pass
    (``reference_tf.progress``).

    Returns:
        A ``CheckResult``: paths "trace" and "training" ("function" for a ``Function``).
    """
    dtype = model.dtype.name
    if isinstance(model, Function):
        (progress or silent)(f"{dtype} function path")
        return _check_function(model, x, y, name, keras_model)
    statistics = model.mixes_examples
    if keras_model is None:  # the moving statistics before the step
        keras_model = twin(model, twins, share_masks=True)
    names = [layer.name for layer in model.layers]
    say = progress or silent
    state_before = {key: np.array(value) for key, value in model.state.items()}
    with guarding(model.layers):
        with announcing(model.layers, progress, f"{dtype} trace path, yours"):
            mine, trace_faults = run_trace(model, x, y)
        say(f"{dtype} trace path, TensorFlow")
        ref = model_trace(model, x, y, keras_model=keras_model)
        reference = trace_arrays(ref)
        traced = _scored(trace_arrays(mine), reference, dtype, statistics)
        training_faults: list[Fault] = []
        with (replaying_masks(model.layers),
              announcing(model.layers, progress, f"{dtype} training path, yours")):
            result, _ = guarded(training_faults, model.loss_and_grads, x, y)
        computed = {} if training_faults else {"loss": np.float64(result[0]),
                                               **{f"grads/{k}": v for k, v in result[1].items()}}
        trained = _scored(computed, {k: reference[k] for k in reference
                                     if k == "loss" or k.startswith("grads/")}, dtype, statistics)
        trace_kinks, training_kinks = [], []
        if (_failing(traced) or _failing(trained)) and not (trace_faults or training_faults):
            with announcing(model.layers, progress,
                            f"{dtype} replay with TensorFlow's branch at rounding-decided kinks"):
                again, own, flips = _explained(model, x, y, ref, mine, computed, statistics,
                                               state_before)
            if again is not None and _failing(traced):
                traced, trace_kinks = again, flips
            if own is not None and _failing(trained):
                trained, training_kinks = own, flips
        paths = {"trace": _path("trace", traced, trace_faults, trace_kinks),
                 "training": _path("training", trained, training_faults, training_kinks)}
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
