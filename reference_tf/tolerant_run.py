"""The scratch side of a diff, run so that a fault of the code is found, not raised.

``run_trace`` is the model's own run on the trace path (``Sequential.trace``): when the code
faults (``reference_tf.user_code``: an exception, a write into an array it was handed, a result
of the wrong shape or dtype) it goes on past a fault that is not fatal and stops the pass at a
fatal one, so everything before it can still be compared. ``isolated_pass`` runs one layer on
TensorFlow's input and upstream gradient, so that its error is its own. NumPy only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from reference_tf.adapter import declares_twin
from reference_tf.user_code import Fault, UserCodeError, guarded, result_faults, writes
from scratch.layers import replaying_masks
from scratch.models import Sequential, Trace

HANDED = {"input": "the input it received", "output_grad": "the upstream gradient it received"}
RESULTS = {"output": "output y", "input_grad": "input gradient dx"}


def _copy_trace(result: Trace) -> Trace:
    """Private copies of every array (later isolated passes must not alias them)."""
    return Trace(np.array(result.logits), result.loss,
                 {k: np.array(v) for k, v in result.outputs.items()},
                 {k: np.array(v) for k, v in result.output_grads.items()},
                 {k: np.array(v) for k, v in result.grads.items()},
                 None if result.input_grad is None else np.array(result.input_grad),
                 {k: np.array(v) for k, v in result.state.items()})


def _backward(model: Sequential, dy: np.ndarray, faults: list) -> tuple:
    """The backward pass from dL/dlogits, going on past faults that are not fatal:
    (output_grads in reverse order, grads with the weight penalties, dL/dx or None)."""
    output_grads, grads = {}, {}
    for layer in reversed(model.layers):
        output_grads[layer.name] = np.array(dy)
        dy, fatal = guarded(faults, layer.call_backward, dy)
        if fatal:
            return output_grads, grads, None
        for key, value in layer.grads.items():  # with the weight penalties, as trace adds
            penalty = layer.regularizers.get(key)
            grads[f"{layer.name}/{key}"] = np.array(
                value if penalty is None else value + penalty.gradient(layer.params[key]))
    return output_grads, grads, np.array(dy)


def _tolerant_trace(model: Sequential, x: np.ndarray, y: np.ndarray, faults: list) -> Trace:
    """``Sequential.trace`` (private copies of every array) going on past a fault of the code
    that is not fatal and stopping the pass at a fatal one; what it never computed is absent
    (logits and input_grad None, loss NaN). Faults are appended to ``faults``."""
    outputs, h = {}, x
    for layer in model.layers:
        h, fatal = guarded(faults, layer.call, h)
        if fatal:
            break
        outputs[layer.name] = np.array(h)
    logits = outputs.get(model.layers[-1].name)
    loss, dy, output_grads, grads, dx = math.nan, None, {}, {}, None
    if logits is not None:
        result, fatal = guarded(faults, model.compute_loss, logits, y)
        if not fatal:
            loss, dy = result
    if dy is not None:
        output_grads, grads, dx = _backward(model, dy, faults)
    return Trace(logits, loss + model.regularization_loss(), outputs,
                 dict(reversed(output_grads.items())),
                 {key: grads[key] for key in model.params if key in grads}, dx,
                 {key: np.array(value) for key, value in model.state.items()})


def run_trace(model: Sequential, x: np.ndarray, y: np.ndarray) -> tuple[Trace, list[Fault]]:
    """The model's own trace (``Sequential.trace``, private copies of every array) and the
    faults of its code. When the code faults, the state is put back and the pass runs again,
    going on past faults that are not fatal and stopping at a fatal one (the arrays it never
    computed are absent: logits and input_grad None, loss NaN).

    Returns:
        (the trace, the faults in the order they happened).
    """
    state_before = {key: np.array(value) for key, value in model.state.items()}
    try:
        return _copy_trace(model.trace(x, y)), []
    except UserCodeError:
        model.set_state(state_before)
    faults: list[Fault] = []
    return _tolerant_trace(model, x, y, faults), faults


def _own_faults(layer, direction: str, given: dict, originals: dict,
                results: dict) -> list[Fault]:
    """Faults of a layer that does not guard itself (tfparity's layer classes, subclasses
    included; ``reference_tf.own`` layers check their own calls): writes into the copies it was
    handed (``given``, against ``originals``) and results (key -> array) of another dtype."""
    method = "call" if direction == "forward" else "call_backward"

    def fault(key, problem, fatal, frame=None):
        return Fault(layer.name, f"{type(layer).__name__}.{method}", direction, key, problem,
                     fatal, frame)

    what = {key: HANDED.get(key) or f"its parameter '{key.split('/', 1)[1]}'" for key in given}
    found = writes(given, originals, what, fault)
    for key, value in results.items():
        label = RESULTS.get(key) or f"gradient d{key.split('/', 1)[1]}"
        found += result_faults(value, key, label, np.shape(value), layer.dtype, "", fault)
    return found


class IsolatedPass(NamedTuple):
    """One layer's pass on TensorFlow's input and upstream gradient: y, dx (None where a fatal
    fault left them uncomputed), grads and state (parameter or variable name -> array; empty
    where uncomputed), and the faults of the layer's code."""

    y: np.ndarray | None
    dx: np.ndarray | None
    grads: dict
    state: dict
    faults: list[Fault]


def isolated_pass(layer, x_ref: np.ndarray, dy_ref: np.ndarray,
                  state_before: dict) -> IsolatedPass:
    """The layer on TensorFlow's input x_ref and upstream gradient dy_ref, from the state before
    the step (keyed like ``Sequential.state``) and with the propagated pass's dropout mask. A
    layer that does not guard itself gets private copies, so it cannot change TensorFlow's
    arrays, and its writes and result dtypes become faults."""
    faults: list[Fault] = []
    for key, value in layer.state.items():
        value[...] = state_before[f"{layer.name}/{key}"]
    guards = not declares_twin(layer)
    params = {f"params/{k}": v for k, v in layer.params.items()}
    before = {key: np.array(value) for key, value in params.items()} if guards else {}
    x_given = np.array(x_ref) if guards else x_ref
    with replaying_masks([layer]):
        y, fatal = guarded(faults, layer.forward, x_given)
    if fatal:
        return IsolatedPass(None, None, {}, {}, faults)
    if guards:
        faults += _own_faults(layer, "forward", {"input": x_given, **params},
                              {"input": x_ref, **before}, {"output": y})
    state = {k: np.array(v) for k, v in layer.state.items()}
    dy_given = np.array(dy_ref) if guards else dy_ref
    dx, fatal = guarded(faults, layer.backward, dy_given)
    if fatal:
        return IsolatedPass(y, None, {}, state, faults)
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    if guards:
        faults += _own_faults(layer, "backward", {"output_grad": dy_given, **params},
                              {"output_grad": dy_ref, **before},
                              {**({} if layer.takes_indices else {"input_grad": dx}),
                               **{f"grads/{k}": v for k, v in layer.grads.items()}})
    return IsolatedPass(y, dx, grads, state, faults)


def unique_faults(faults: list[Fault]) -> list[Fault]:
    """One fault per (direction, quantity, problem), in order (both runs may find the same
    one)."""
    seen, out = set(), []
    for fault in faults:
        if (fault.direction, fault.key, fault.problem) not in seen:
            seen.add((fault.direction, fault.key, fault.problem))
            out.append(fault)
    return out
