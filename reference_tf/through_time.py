"""Diagnosis through time: the first time step where a sequence layer parts from TensorFlow's,
and the gate it is in.

``tfparity diff`` names the layer, the pass and the quantity of the first divergence; for a
recurrent layer (SimpleRNN, LSTM, GRU) or an Embedding this module adds the time step. Both
sides run on the diff's isolated inputs (TensorFlow's input x and upstream gradient dy, the
layer's mask), so the step found is the layer's own.

TensorFlow's per-step values come from Keras's cell formula written with TensorFlow ops on the
layer's weights, step by step under a ``GradientTape`` (``keras_steps``; masked steps carry the
state and ``go_backwards`` reads the sequence from its end, as the Keras layer does): every
step's gate pre-activations and activations, cell state (LSTM) and hidden state, and their
gradients dL/d(pre-activation) and dL/dh_t, dL/dx_t, and every parameter's gradient at each
step (the gradient of a per-step copy of the weights). The loop's output is checked against the
Keras layer's before anything is attributed. The scratch side's are what its cache keeps
(``scratch.ops.recurrent.RecurrentCache``) and what its backward pass computes
(``scratch.ops.recurrent.recurrent_backward_through_time``).

- Forward: steps in processing order; at each step the gates' pre-activations, then their
  activations, then the cell state, then the hidden state. The first that fails names the step
  and the gate (or the state).
- Backward: steps from the last processed to the first, as the gradient flows; at each step
  dL/dh_t (what flows back through time into it), then the gates' dL/d(pre-activation), then
  dL/dx_t. When every step agrees but a parameter's gradient does not, its error is fitted by
  the steps' terms of TensorFlow's gradient (least squares): a term missing or counted wrongly
  at one step shows as that step's coefficient.
- Embedding: the error of each failing row of the gradient is fitted by the contributions
  dy[n, t] of the positions that look the row up; the first miscounted position in time names
  the step (a repeated index counted once: every occurrence but one has coefficient -1).

A step's error is the larger of its share of the relative L2 error (the step's error norm over
the whole array's reference norm) and its max abs error over the whole array's max: the two
metrics of ``reference_tf.compare``, restricted to one step, against the same tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from reference_tf.diff_result import ModelDiff, StepFinding
from scratch.ops import recurrent
from scratch.ops.recurrent import GATES, TANH_GATES, RecurrentCache, gate
from scratch.sequence_layers import GRU, LSTM, Embedding, SimpleRNN

RECURRENT = (SimpleRNN, LSTM, GRU)
EXPLAINED = 1e-2  # a fit leaving under 1% of a parameter gradient's error explains it
COUNTED = 1e-2    # a step whose term's coefficient is off by more than 1% is named
PROBE_ROWS = 1024  # steps x examples of one identity probe (8 MB in float64)


def step_errors(mine: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each step's error, (T,), of time-major arrays (T, ...): max(step's error norm / whole
    reference norm, step's max abs error / whole reference max); NaN or inf where the sides'
    non-finite entries differ."""
    mine, reference = np.asarray(mine, np.float64), np.asarray(reference, np.float64)
    diff = np.where(np.isnan(mine) & np.isnan(reference), 0.0, mine - reference)
    diff = np.where(np.isnan(diff), np.inf, diff).reshape(len(diff), -1)
    tiny = np.finfo(np.float64).tiny
    norm = max(float(np.sqrt(np.nansum(np.square(reference)))), tiny)
    scale = max(float(np.nanmax(np.abs(reference), initial=0.0)), tiny)
    with np.errstate(invalid="ignore", over="ignore"):
        share = np.sqrt(np.square(diff).sum(axis=1)) / norm
    return np.maximum(share, np.abs(diff).max(axis=1, initial=0.0) / scale)


# TensorFlow's steps -------------------------------------------------------------------------

def _keras_cell_step(cell: str, reset_after: bool, x_t, h, c, kernel, recurrent_kernel, bias):
    """Keras's cell formula on one step: (gate pre-activations by name, new h, new c or None).
    The pre-activations are the tensors the rest of the step is computed from."""
    units = h.shape[-1]
    input_bias, recurrent_bias = (bias[0], bias[1]) if bias is not None and bias.shape.rank == 2 \
        else (bias, None)
    xw = tf.matmul(x_t, kernel) + (0 if input_bias is None else input_bias)
    if cell != "gru":
        pre = dict(zip(GATES[cell], tf.split(xw + tf.matmul(h, recurrent_kernel),
                                             len(GATES[cell]), axis=-1)))
        if cell == "simple_rnn":
            new_h = tf.tanh(pre["h"])
            return pre, new_h, None
        i, f, o = (tf.sigmoid(pre[name]) for name in "ifo")
        new_c = f * c + i * tf.tanh(pre["c"])
        return pre, o * tf.tanh(new_c), new_c
    inner = tf.matmul(h, recurrent_kernel) + (0 if recurrent_bias is None else recurrent_bias)
    pre = {"z": xw[:, :units] + inner[:, :units],
           "r": xw[:, units:2 * units] + inner[:, units:2 * units]}
    r = tf.sigmoid(pre["r"])
    recurrent_h = (r * inner[:, 2 * units:] if reset_after else
                   tf.matmul(r * h, recurrent_kernel[:, 2 * units:]))
    pre["h"] = xw[:, 2 * units:] + recurrent_h
    z = tf.sigmoid(pre["z"])
    return pre, z * h + (1 - z) * tf.tanh(pre["h"]), None


@dataclass
class Steps:
    """Per-step values of one side, time-major in processing order: pre, act: gate name ->
    (T, N, U); cells (T, N, U) or None; states (T, N, U) the hidden state after each step;
    dstates (T, N, U) dL/dh_t; dpre: gate name -> (T, N, U); dx (T, N, D); terms: parameter ->
    (T, *shape), each step's part of its gradient (TensorFlow's side only)."""

    pre: dict
    act: dict
    cells: np.ndarray | None
    states: np.ndarray
    dstates: np.ndarray
    dpre: dict
    dx: np.ndarray
    terms: dict = field(default_factory=dict)


def _activate(cell: str, pre: dict) -> dict:
    return {name: tf.tanh(a) if name in TANH_GATES[cell] else tf.sigmoid(a)
            for name, a in pre.items()}


def _time_major(x: np.ndarray, mask, go_backwards: bool):
    xs, masks = np.swapaxes(x, 0, 1), None if mask is None else mask.T[:, :, None]
    if go_backwards:
        xs, masks = xs[::-1], None if masks is None else masks[::-1]
    return np.ascontiguousarray(xs), masks


def keras_steps(layer, x: np.ndarray, dy: np.ndarray) -> tuple[Steps, np.ndarray]:
    """TensorFlow's per-step values of the recurrent ``layer`` (its weights and
    ``input_mask``) on x (N, T, D) with upstream gradient dy (the output's shape).

    Returns:
        (the steps, the loop's output y in the layer's output shape).
    """
    xs, masks = _time_major(x, layer.input_mask, layer.go_backwards)
    steps, n = xs.shape[:2]
    names = list(layer.params)
    xs_t = tf.constant(xs)
    h = c = tf.zeros((n, layer.units), dtype=xs.dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xs_t)
        copies = [{k: tf.identity(tf.constant(layer.params[k])) for k in names}
                  for _ in range(steps)]
        for step in copies:
            tape.watch(list(step.values()))
        pres, acts, states, cells = [], [], [], []
        for t in range(steps):
            w = copies[t]
            pre, new_h, new_c = _keras_cell_step(layer.cell, layer.reset_after, xs_t[t], h, c,
                                                 w["kernel"], w["recurrent_kernel"],
                                                 w.get("bias"))
            if masks is not None:
                new_h = tf.where(masks[t], new_h, h)
                new_c = None if new_c is None else tf.where(masks[t], new_c, c)
            pres.append(pre)
            acts.append(_activate(layer.cell, pre))
            h, c = new_h, new_c
            states.append(h)
            cells.append(c)
        y = tf.transpose(tf.stack(states), (1, 0, 2)) if layer.return_sequences else h
        loss = tf.reduce_sum(y * tf.constant(dy, dtype=y.dtype))
    dstates = tape.gradient(loss, states)
    dpre = tape.gradient(loss, pres)
    dxs, terms = tape.gradient(loss, xs_t), tape.gradient(loss, copies)
    del tape
    gates = GATES[layer.cell]
    result = Steps({g: np.stack([p[g].numpy() for p in pres]) for g in gates},
                   {g: np.stack([a[g].numpy() for a in acts]) for g in gates},
                   None if layer.cell != "lstm" else np.stack([a.numpy() for a in cells]),
                   np.stack([s.numpy() for s in states]),
                   np.stack([_dense(d, s) for d, s in zip(dstates, states)]),
                   {g: np.stack([_dense(d[g], p[g]) for d, p in zip(dpre, pres)]) for g in gates},
                   dxs.numpy(),
                   {k: np.stack([_dense(term[k], copies[0][k]) for term in terms]) for k in names})
    return result, y.numpy()


def _dense(gradient, like) -> np.ndarray:
    return np.zeros(like.shape, like.dtype.as_numpy_dtype) if gradient is None else \
        gradient.numpy()


def _probed_gate_gradients(layer, x: np.ndarray, dy: np.ndarray):
    """Every step's d(pre) (T, N, G*U) and dL/dh_t (T, N, U) of the scratch layer: its backward
    pass on its cache with x replaced by the identity, whose kernel gradient x^T d(pre) is then
    every step's d(pre) (time-major rows). The examples are independent, so they go in groups
    of at most ``PROBE_ROWS`` rows (steps x examples) to bound the identity's size."""
    mask, group = layer.input_mask, max(1, PROBE_ROWS // x.shape[1])
    dpres, dstates = [], []
    try:
        for start in range(0, len(x), group):
            part = slice(start, start + group)
            layer.input_mask = None if mask is None else mask[part]
            layer.forward(x[part])
            cache: RecurrentCache = layer.cache
            steps, n, _ = cache.x.shape
            rows = steps * n
            probe = cache._replace(
                x=np.eye(rows, dtype=cache.x.dtype).reshape(steps, n, rows),
                kernel=np.zeros((rows, cache.kernel.shape[1]), cache.kernel.dtype))
            _, dpre, _, _, dstate = recurrent.recurrent_backward_through_time(dy[part], probe,
                                                                              False)
            dpres.append(dpre.reshape(steps, n, -1))
            dstates.append(dstate)
    finally:
        layer.input_mask = mask
    return np.concatenate(dpres, axis=1), np.concatenate(dstates, axis=1)


def scratch_steps(layer, x: np.ndarray, dy: np.ndarray) -> Steps:
    """The scratch layer's per-step values on x (N, T, D) and dy: a forward pass (its cache
    keeps every step), its backward pass for dL/dx, and dL/dh_t and every step's d(pre) from
    ``_probed_gate_gradients``."""
    layer.forward(x)
    dx = layer.backward(dy)
    cache: RecurrentCache = layer.cache
    dpre, dstates = _probed_gate_gradients(layer, x, dy)
    gates = GATES[layer.cell]
    dxs, _ = _time_major(dx, None, layer.go_backwards)
    return Steps({g: gate(cache.pre, layer.cell, g) for g in gates},
                 {g: gate(cache.act, layer.cell, g) for g in gates},
                 None if cache.cells is None else cache.cells[1:], cache.states[1:], dstates,
                 {g: gate(dpre, layer.cell, g) for g in gates}, dxs)


# (quantity, gate or None, per-step errors (T,))
Check = tuple[str, str | None, np.ndarray]


# Scans --------------------------------------------------------------------------------------

def _forward_checks(cell: str, mine: Steps, ref: Steps) -> list[Check]:
    """(quantity, gate, per-step errors) in the order a forward step computes them."""
    checks = [("pre-activation", g, step_errors(mine.pre[g], ref.pre[g])) for g in GATES[cell]]
    checks += [("activation", g, step_errors(mine.act[g], ref.act[g])) for g in GATES[cell]]
    if ref.cells is not None:
        checks.append(("cell state c", None, step_errors(mine.cells, ref.cells)))
    return checks + [("hidden state h", None, step_errors(mine.states, ref.states))]


def _backward_checks(cell: str, mine: Steps, ref: Steps) -> list[Check]:
    """(quantity, gate, per-step errors) in the order a backward step computes them."""
    checks = [("dL/dh", None, step_errors(mine.dstates, ref.dstates))]
    checks += [("dL/d(pre-activation)", g, step_errors(mine.dpre[g], ref.dpre[g]))
               for g in GATES[cell]]
    return checks + [("dL/dx", None, step_errors(mine.dx, ref.dx))]


def _first_step(checks, order, tolerance: float):
    """The first step of ``order`` where a check fails: (step, the failing checks there in the
    order a step computes them, so the first is where the step goes wrong), or None."""
    for t in order:
        failing = [(q, g, float(e[t])) for q, g, e in checks if not e[t] <= tolerance]
        if failing:
            return t, failing
    return None


def _profile(checks) -> dict:
    return {q if g is None else f"{q} {g}": e for q, g, e in checks}


def _where(layer, t: int, steps: int) -> str:
    """"time step 3 of 28", with go_backwards also its place in the processing order."""
    step = steps - 1 - t if getattr(layer, "go_backwards", False) else t
    words = f"time step {step} of {steps}"
    return words + (f" (processed as step {t}, go_backwards)" if step != t else "")


def _name(quantity: str, gate_name: str | None) -> str:
    """"gate f's pre-activation", "dL/d(pre-activation) of gate f", "dL/dh"."""
    if gate_name is None:
        return quantity
    if quantity.startswith("dL/d"):
        return f"{quantity} of gate {gate_name}"
    return f"gate {gate_name}'s {quantity}"


def _finding(layer, direction, t, steps, quantity, gate_name, error, tolerance, sentence,
             profile) -> StepFinding:
    step = None if t is None else (steps - 1 - t if getattr(layer, "go_backwards", False)
                                   else t)
    return StepFinding(layer.name, direction, step, t, steps, quantity, gate_name, error,
                       tolerance, sentence, profile)


def _scan(layer, direction: str, mine: Steps, ref: Steps, tolerance: float):
    """The first failing step in the pass's order: a finding, or (None, the profile)."""
    steps = len(ref.states)
    if direction == "forward":
        checks, order = _forward_checks(layer.cell, mine, ref), range(steps)
    else:
        checks, order = _backward_checks(layer.cell, mine, ref), range(steps - 1, -1, -1)
    profile = _profile(checks)
    found = _first_step(checks, order, tolerance)
    if found is None:
        return None, profile
    t, failing = found
    quantity, gate_name, error = failing[0]
    others = [_name(q, g) for q, g, _ in failing[1:]]
    named = next(e for q, g, e in checks if (q, g) == (quantity, gate_name))
    count = int((~(named <= tolerance)).sum())
    flow = ("the forward pass, in processing order" if direction == "forward" else
            "the gradient flowing back through time, from the last processed step")
    sentence = (f"following {flow}, the first step that parts from TensorFlow's is "
                f"{_where(layer, t, steps)}: {_name(quantity, gate_name)} (step error "
                f"{error:.2g}, tolerance {tolerance:.0e}; it fails at {count} of the {steps} "
                "steps)")
    if others:
        sentence += f"; also failing at that step: {', '.join(others)}"
    return _finding(layer, direction, t, steps, quantity, gate_name, error, tolerance,
                    sentence, profile), profile


def _attribute(error: np.ndarray, terms: np.ndarray):
    """Least-squares coefficients a (T,) with error ~ sum_t a_t terms[t], each step's share of
    the error |a_t| |terms[t]| / |error|, and the residual's share; None when the steps'
    nonzero terms are not independent. A zero term (step 0's of a recurrent kernel: the
    initial state is zero) gets a = 0."""
    columns = terms.reshape(len(terms), -1).T.astype(np.float64)
    target = error.ravel().astype(np.float64)
    norms = np.linalg.norm(columns, axis=0)
    used = norms > 0
    unit = columns[:, used] / norms[used]
    fitted, _, rank, _ = np.linalg.lstsq(unit, target, rcond=None)
    if rank < used.sum():
        return None
    total = max(float(np.linalg.norm(target)), np.finfo(float).tiny)
    coefficients, shares = np.zeros(len(terms)), np.zeros(len(terms))
    coefficients[used], shares[used] = fitted / norms[used], np.abs(fitted) / total
    return coefficients, shares, float(np.linalg.norm(target - unit @ fitted)) / total


def _term_words(coefficient: float) -> str:
    """What a term's coefficient in the error means (the sum should weight the term by 1)."""
    if abs(coefficient + 1) <= COUNTED:
        return "is missing from the sum"
    if abs(coefficient - 1) <= COUNTED:
        return "is counted twice"
    return f"is weighted {1 + coefficient:.3g} instead of 1"


def _parameter_finding(layer, param: str, mine: np.ndarray, reference: np.ndarray,
                       ref: Steps, tolerance: float, profile: dict) -> StepFinding:
    """Every step agrees: fit the parameter gradient's error by the steps' terms."""
    steps = len(ref.states)
    agree = ("every step's dL/dh, gates' dL/d(pre-activation) and dL/dx agree with "
             "TensorFlow's")
    fit = _attribute(np.asarray(mine) - reference, ref.terms[param])
    if fit is None or fit[2] > EXPLAINED:
        why = ("the steps' terms are not independent" if fit is None else
               f"no combination of the steps' terms explains it (residual {fit[2]:.2g})")
        return _finding(layer, "backward", None, steps, f"term of dL/d{param}", None, None,
                        tolerance, f"{agree}, so the error is in summing dL/d{param} over the "
                        f"steps; {why}", profile)
    coefficients, shares, residual = fit
    named = [t for t in range(steps - 1, -1, -1)
             if abs(coefficients[t]) > COUNTED and shares[t] > COUNTED]
    t = named[0]
    sentence = (f"{agree}, but the error of dL/d{param} is {coefficients[t]:.3g} times the "
                f"term of {_where(layer, t, steps)} in TensorFlow's gradient (residual "
                f"{residual:.1e} of the error): that step's term {_term_words(coefficients[t])}")
    if len(named) > 1:
        sentence += "; other steps' terms are off too: " + ", ".join(
            f"{_where(layer, s, steps).split(' (')[0]} ({coefficients[s]:+.3g})"
            for s in named[1:])
    profile = {**profile, f"coefficient of the term of dL/d{param}": coefficients}
    return _finding(layer, "backward", t, steps, f"term of dL/d{param}", None,
                    float(abs(coefficients[t])), tolerance, sentence, profile)


def recurrent_finding(layer, x: np.ndarray, dy: np.ndarray, direction: str, key: str,
                      arrays: dict, tolerance: float) -> StepFinding:
    """Where through time the recurrent ``layer`` first parts from TensorFlow's.

    Args:
        layer: a built SimpleRNN, LSTM or GRU with its ``input_mask``.
        x: TensorFlow's input (N, T, D); dy: TensorFlow's upstream gradient.
        direction: the pass of the divergence; key: its quantity ("grads/recurrent_kernel").
        arrays: quantity key -> (the layer's isolated value, TensorFlow's value), with
            "output" and the parameters' gradients.
        tolerance: the divergence's tolerance.
    """
    ref, y_loop = keras_steps(layer, x, dy)
    steps = len(ref.states)
    y_error = float(step_errors(y_loop[None], arrays["output"][1][None])[0])
    if not y_error <= tolerance:
        return _finding(layer, direction, None, steps, None, None, None, tolerance,
                        "no step named: Keras's cell formula step by step does not reproduce "
                        f"the Keras layer's output here (error {y_error:.2g})", {})
    finding, profile = _scan(layer, direction, scratch_steps(layer, x, dy), ref, tolerance)
    if finding is not None:
        return finding
    if direction == "backward" and key.startswith("grads/"):
        param = key.split("/", 1)[1]
        return _parameter_finding(layer, param, arrays[key][0], arrays[key][1], ref, tolerance,
                                  profile)
    return _finding(layer, direction, None, steps, None, None, None, tolerance,
                    f"every step of the {direction} pass agrees with TensorFlow's within the "
                    "tolerance, so no single step is named", profile)


def _fit_row(error: np.ndarray, contributions: np.ndarray):
    """Coefficients a with error (E,) ~ a @ contributions (P, E), None when the P
    contributions are not independent."""
    fitted, _, rank, _ = np.linalg.lstsq(contributions.T.astype(np.float64),
                                         error.astype(np.float64), rcond=None)
    return None if rank < len(contributions) else fitted


def embedding_finding(layer, x: np.ndarray, dy: np.ndarray, mine: np.ndarray,
                      reference: np.ndarray, tolerance: float) -> StepFinding:
    """The first time step whose contribution an Embedding's gradient gets wrong.

    Row r of the gradient sums dy[n, t] over the positions (n, t) that look r up. The error of
    each failing row is fitted by its positions' contributions (least squares); a position
    whose coefficient is off by more than 1% is miscounted, and the first of them in time
    names the step.

    Args:
        layer: the Embedding; x: indices (N, T); dy: TensorFlow's upstream gradient
            (N, T, output_dim); mine, reference: the layer's isolated gradient and TensorFlow's
            (input_dim, output_dim).
    """
    steps, quantity = x.shape[1], "dL/dembeddings"
    row_errors = step_errors(mine, reference)
    rows = [int(r) for r in np.flatnonzero(~(row_errors <= tolerance))]
    profile = {"dL/dembeddings by row": row_errors}
    miscounted, unresolved = [], []
    for r in rows:
        positions = np.argwhere(x == r)
        fitted = _fit_row(np.asarray(mine[r]) - reference[r], dy[positions[:, 0], positions[:, 1]])
        if fitted is None:
            unresolved.append(r)
            continue
        miscounted += [(int(t), int(n), r, float(a)) for (n, t), a in zip(positions, fitted)
                       if abs(a) > COUNTED]
    if not miscounted:
        why = (f"rows {unresolved} are looked up at more positions than their "
               f"{dy.shape[-1]} values can tell apart" if unresolved else
               "no position's contribution explains the error")
        return _finding(layer, "backward", None, steps, quantity, None, None, tolerance,
                        f"{len(rows)} rows of the gradient fail; {why}", profile)
    t, n, r, a = min(miscounted)
    looked_up = int((x == r).sum())
    sentence = (f"row {r} of the gradient (looked up at {looked_up} positions) counts the "
                f"contribution dy of example {n} at {_where(layer, t, steps)} with weight "
                f"{round(1 + a, 3) + 0.0:g} instead of 1: that contribution {_term_words(a)}; "
                f"{len(miscounted)} position(s) in {len({m[2] for m in miscounted})} row(s) "
                "are miscounted")
    return _finding(layer, "backward", t, steps, quantity, None, float(row_errors[r]),
                    tolerance, sentence, profile)


def locate(result: ModelDiff) -> StepFinding | None:
    """The step finding of ``result.first_divergence`` when it is an isolated error of a
    recurrent layer or of an Embedding's gradient, else None. Reruns that layer on the
    diff's isolated inputs (its cache and gradients are replaced)."""
    first = result.first_divergence
    if (first is None or first.fault is not None or first.quantity is None
            or first.layer not in result.inputs.layers):  # a whole-model function has none
        return None
    layer = next((layer for layer in getattr(result.inputs.model, "layers", ())
                  if layer.name == first.layer), None)
    if layer is None or first.key.startswith("state/"):
        return None
    x, dy = result.inputs.layers[first.layer]
    layer_diff = next(d for d in result.layers if d.name == first.layer)
    tolerance = first.quantity.tolerance
    arrays = {q.key: q.arrays for q in layer_diff.quantities}
    if isinstance(layer, Embedding) and first.key == "grads/embeddings":
        return embedding_finding(layer, x, dy, *arrays[first.key], tolerance)
    if not isinstance(layer, RECURRENT):
        return None
    return recurrent_finding(layer, x, dy, first.direction, first.key, arrays, tolerance)
