"""``tfparity diff`` as text: the forward and backward tables and the first-divergence sentence,
both naming the cause where the convention catalog (``reference_tf.causes``) finds one."""

from __future__ import annotations

from reference_tf.causes import cause_clause
from reference_tf.compare import Comparison, tolerances
from reference_tf.diff_result import LOSS, ModelDiff, Quantity, scan
from reports.render.formatting import scientific


def _shape(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _error(c: Comparison | None, expected_shape: tuple) -> str:
    if c is None:
        return "-"
    if tuple(c.shape) != tuple(expected_shape):
        return f"shape {_shape(c.shape)}"
    return scientific(c.rel_l2)


def _status(q: Quantity, faulted: bool) -> str:
    if faulted:
        return "FAULT"
    if q.isolated_fails:
        return "OWN ERROR"
    if q.propagated is None:
        return "not run"
    return "inherited" if q.propagated_fails else "ok"


def _cause(q: Quantity, faulted: bool, fault_cause) -> str:
    """The cause column: the catalog id, "none" (no convention matched) or "-" (not failing,
    or a fault after the first divergence); the first divergence's faulted quantity shows its
    fault's cause (``fault_cause``: a ``Cause``, or "none")."""
    if faulted:
        return "-" if fault_cause is None else getattr(fault_cause, "id", fault_cause)
    if not q.isolated_fails:
        return "-"
    return "none" if q.cause is None else q.cause.id


def cause_line(result: ModelDiff) -> str:
    """The first divergence's cause in one line ("" without a divergence), for the heat map."""
    first = result.first_divergence
    if first is None:
        return ""
    if first.cause is None:
        return "cause: none of the catalog's conventions matches"
    return f"cause: {first.cause.id}, {first.cause.sentence}"


def _row(layer: str, kind: str, q: Quantity, faulted: bool, fault_cause=None) -> list[str]:
    p = q.propagated
    if p is None:
        return [layer, kind, q.label, _shape(q.shape), "-", "-", "-", "-",
                _error(q.isolated, q.shape), "-", _status(q, faulted),
                _cause(q, faulted, fault_cause)]
    shape_ok = tuple(p.shape) == tuple(q.shape)
    worst = "-" if p.worst_index is None or not shape_ok else _shape(p.worst_index)
    return [layer, kind, q.label, _shape(q.shape), _error(p, q.shape),
            scientific(p.max_abs) if shape_ok else "-",
            f"{p.cosine:.9f}" if shape_ok else "-", worst,
            _error(q.isolated, q.shape), scientific(q.amplification), _status(q, faulted),
            _cause(q, faulted, fault_cause)]


DATA_NAMES = {"strokes": "strokes (digit-like)", "mnist": "MNIST"}
HEADER = ["layer", "type", "quantity", "shape", "rel L2", "max abs", "cosine", "worst index",
          "isolated", "amplif.", "status", "cause"]


def _table(rows: list[list[str]]) -> str:
    rows = [HEADER] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def tables(result: ModelDiff) -> str:
    """The forward table (network order) and the backward table (reverse order)."""
    rows = {"forward": [], "backward": []}
    last = {"forward": None, "backward": None}
    for layer, q in scan(result.layers):
        first_of_layer = last[q.direction] != layer.name
        last[q.direction] = layer.name
        faulted = any(f.direction == q.direction and f.key == q.key for f in layer.faults)
        first = result.first_divergence
        fault_cause = None
        if (first is not None and first.fault is not None
                and (first.layer, first.direction, first.key) == (layer.name, q.direction, q.key)):
            fault_cause = first.cause or "none"
        rows[q.direction].append(_row(layer.name if first_of_layer else "",
                                  layer.type if first_of_layer else "", q, faulted, fault_cause))
    forward, backward = rows["forward"], rows["backward"]
    text = ("Forward pass, network order (y = the layer's output):\n" + _table(forward)
            + "\n\nBackward pass, reverse order (dL/dy received, parameter gradients, dL/dx sent "
              "back):\n" + _table(backward))
    if result.faults:
        text += "\n\nFaults of the code under test:\n" + "\n".join(
            f"- {fault.direction} pass: {fault.sentence}" for fault in result.faults)
    return text


def _describe(layer: str, q: Quantity, logits: str) -> str:
    if layer == LOSS:
        return ("the loss value" if q.direction == "forward" else
                f"the loss gradient dL/dlogits (the output gradient of layer '{logits}')")
    if q.key == "loss":
        return "the loss value"
    if q.key == "output":
        return "output y"
    if q.key == "input_grad":
        return "input gradient (dL/dx)"
    if q.key.startswith("state/"):
        return f"moving statistic '{q.label}' after the training step"
    return f"gradient of parameter '{q.key.split('/', 1)[1]}' ({q.label})"


def time_clause(first) -> str:
    """The first divergence's time step for its sentence ("" when none is named)."""
    return "" if first.time is None else first.time.clause()


def first_divergence_sentence(result: ModelDiff) -> str:
    """One sentence naming the culprit layer, pass and quantity, with the third opinion."""
    tol = tolerances(result.dtype, result.batch_statistics)
    if result.first_divergence is None:
        if result.first_propagated_failure is None:
            return (f"No divergence: every output and gradient agrees with TensorFlow within the "
                    f"{result.dtype} tolerances (forward {tol.forward:.0e}, gradient "
                    f"{tol.gradient:.0e}).")
        layer, label = result.first_propagated_failure
        return (f"No single layer exceeds the {result.dtype} tolerances with TensorFlow's inputs, "
                f"but the propagated {label} of '{layer}' does: rounding accumulated across "
                "layers.")
    first = result.first_divergence
    name = "the loss (softmax cross-entropy)" if first.layer == LOSS else \
        f"layer '{first.layer}' ({first.layer_type})"
    if first.fault is not None:
        sentence = (f"First divergence: {name}, {first.direction} pass, {first.label}: "
                    f"{first.fault.sentence}; {cause_clause(first.cause, first.causes_tried)}")
        return sentence + ("; " + result.opinion.sentence if result.opinion is not None else ".")
    q = first.quantity
    logits = result.layers[-2].name
    iso = q.isolated
    if tuple(iso.shape) != tuple(q.shape):
        error = f"shape {_shape(iso.shape)} where TensorFlow's is {_shape(q.shape)}"
    else:
        error = f"relative L2 error {iso.rel_l2:.2g} (max abs {iso.max_abs:.2g})"
    given = ("the logits" if first.layer == LOSS else
             "the input and weights" if result.kind == "function" else
             "the input" if first.direction == "forward" else "the input and upstream gradient")
    sentence = (f"First divergence: {name}, {first.direction} pass, "
                f"{_describe(first.layer, q, logits)}{time_clause(first)}: {error} with {given} "
                "taken from TensorFlow")
    if first.also_failing:
        sentence += f" (also failing there: {', '.join(first.also_failing)})"
    sentence += "; " + cause_clause(first.cause, first.causes_tried)
    if result.opinion is not None:
        sentence += "; " + result.opinion.sentence
    else:
        sentence += "."
    return sentence


def render(result: ModelDiff) -> str:
    """The whole text report of ``tfparity diff``."""
    tol = tolerances(result.dtype, result.batch_statistics)
    data = DATA_NAMES.get(result.data, result.data)
    if result.data_unverified:
        data += " (SHA-256 not checked, --no-verify)"
    head = (f"tfparity diff {result.model}: {result.dtype}, batch {_shape(result.batch_shape)} of "
            f"{data} data, seed {result.seed}. Errors against "
            "TensorFlow: relative L2 (propagated: each side end to end; isolated: the scratch "
            "layer on TensorFlow's input "
            f"and upstream gradient); tolerance forward {tol.forward:.0e}, gradient "
            f"{tol.gradient:.0e}.")
    first = result.first_divergence
    parts = [head, tables(result), first_divergence_sentence(result)]
    if first is not None and first.time is not None:
        parts.append(first.time.paragraph())
    return "\n\n".join(parts)
