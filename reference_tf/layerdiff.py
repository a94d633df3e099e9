"""Layer by layer comparison of a scratch model with its Keras twin, forward and backward.

Both implementations run on the same weights and batch. Every quantity of every layer (its
output y, the gradient dL/dy it receives, the gradients of its parameters and the gradient dL/dx
it sends back) is compared with TensorFlow's twice:

- *propagated*: each implementation runs end to end, so an error includes whatever the earlier
  layers (forward) or later layers (backward) handed on;
- *isolated*: the scratch layer is given TensorFlow's input and TensorFlow's upstream gradient
  dL/dy, so its error is its own.

Both sides run one training step's pass (``Sequential.trace``; Keras with ``training=True``):
BatchNormalization normalizes with the batch's statistics, and its moving statistics after the
step are compared as forward quantities ("moving_mean", "moving_variance"; isolated: updated
from the state before the step with TensorFlow's input); each Dropout twin applies the scratch
layer's mask, and the isolated pass replays that mask.

The softmax cross-entropy is a last pseudo-layer "loss" (forward: the loss; backward: dL/dlogits).
The *first divergence* is the first quantity whose isolated error exceeds the dtype's tolerance
(``reference_tf.compare``), scanning the forward pass in network order and then the backward
pass in reverse order; the layers after it merely inherit its error.

Any layer the adapter protocol covers (``reference_tf.adapter``) is compared this way, a user's
code included. Its faults (``reference_tf.own.safety``: an exception, a write into an array it
was handed, a result of the wrong shape or dtype) are part of the comparison: the model's own
run goes on past a fault that is not fatal and stops the pass at a fatal one, so everything
before it is still compared; a fault is a divergence at its layer and pass, ahead of the errors
there. A whole-model function (``reference_tf.own.Function``) is compared end to end: the loss
and every parameter gradient, with no per-layer attribution.

Every quantity whose isolated error fails, and a fault that is a divergence, gets a cause from
the convention catalog (``reference_tf.causes``), or None when no known convention explains it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from reference_tf.adapter import declares_counterpart, loss_of
from reference_tf.adapter import label as layer_label
from reference_tf.batches import load_batch
from reference_tf.causes import Cause, explain
from reference_tf.compare import Comparison, Tolerance, compare_arrays, tolerances
from reference_tf.gradients import model_trace
from reference_tf.guarding import guarding
from reference_tf.own.model import Function
from reference_tf.own.safety import Fault, UserCodeError, guarded, result_faults, writes
from reference_tf.twin import twin
from scratch.layers import replaying_masks
from scratch.models import Sequential, Trace, build

LOSS = "loss"


@dataclass
class Quantity:
    """One compared array of one layer.

    key: "output", "output_grad", "input_grad", "grads/<param>" or "state/<variable>"; label:
    "y", "dL/dy", "dL/dx", "dL/d<param>" or the state variable's name ("moving_mean"); shape:
    the reference's shape (with the batch axis); propagated is None where the model's own run
    stopped before it (a fatal fault); isolated is None for dL/dy (the layer does not compute it)
    and where the isolated pass failed; amplification = propagated rel L2 error of this quantity
    / that of what the layer received (y of the previous layer forward, its own dL/dy backward),
    None where undefined; cause: the catalog's explanation of an isolated failure (None: none
    matched, or nothing failed), causes_tried: the ids tried; arrays: (the layer's isolated
    value, TensorFlow's value), for the matcher.
    """

    key: str
    label: str
    pass_: str
    shape: tuple
    tolerance: float
    propagated: Comparison | None
    isolated: Comparison | None = None
    amplification: float | None = None
    cause: Cause | None = None
    causes_tried: list[str] = field(default_factory=list)
    arrays: tuple = field(default=(None, None), repr=False)

    @property
    def isolated_fails(self) -> bool:
        return self.isolated is not None and not self.isolated.passes(self.tolerance)

    @property
    def propagated_fails(self) -> bool:
        return self.propagated is not None and not self.propagated.passes(self.tolerance)


@dataclass
class LayerDiff:
    """The quantities of one layer (or of the loss), forward ones first, and the faults of its
    code (in either run)."""

    name: str
    type: str
    output_shape: tuple
    quantities: list[Quantity] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def get(self, key: str) -> Quantity | None:
        return next((q for q in self.quantities if q.key == key), None)


def key_label(key: str, layer: str = "") -> str:
    """The label of a quantity key, also for what a fault concerns ("input" -> "x",
    "params/w" -> "w")."""
    if key.startswith("grads/"):
        return f"dL/d{key.split('/', 1)[1]}"
    if key.startswith("params/"):
        return key.split("/", 1)[1]
    if layer == LOSS:
        return {"input_grad": "dL/dlogits", "input": "logits"}.get(key, key)
    labels = {"output": "y", "output_grad": "dL/dy", "input_grad": "dL/dx", "input": "x"}
    return labels.get(key, key)


@dataclass
class Divergence:
    """Where the implementations first part ways: a fault of the layer's code, or an isolated
    error above tolerance.

    key, label: the quantity ("input_grad", "dL/dx"), or what the fault concerns; quantity: the
    worst failing quantity of that layer and pass (for a fault, the one it concerns, if any);
    also_failing: labels of the layer's other failing quantities in that pass.
    """

    layer: str
    layer_type: str
    pass_: str
    key: str
    label: str
    quantity: Quantity | None
    also_failing: list[str]
    fault: Fault | None = None
    cause: Cause | None = None  # the convention that explains it (``reference_tf.causes``)
    causes_tried: list[str] = field(default_factory=list)  # the conventions tried on it


@dataclass
class ModelDiff:
    """The whole comparison of one model on one batch."""

    model: str
    dtype: str
    seed: int
    data: str
    batch_shape: tuple
    layers: list[LayerDiff]
    first: Divergence | None
    first_propagated: tuple | None   # (layer, label) of the first propagated failure, scan order
    data_unverified: bool = False    # MNIST used without checking its SHA-256 (--no-verify)
    isolated_inputs: dict = field(repr=False, default_factory=dict)  # for the third opinion
    opinion: object = None           # set by ``reference_tf.finite_diff.third_opinion``
    batch_statistics: bool = False   # the model normalizes with batch statistics (tolerances)
    kind: str = "layers"             # "function": a whole-model function, compared end to end

    @property
    def faults(self) -> list[Fault]:
        """Every fault of the code, in scan order (forward in network order, backward in
        reverse)."""
        return ([f for layer in self.layers for f in layer.faults if f.pass_ == "forward"]
                + [f for layer in reversed(self.layers) for f in layer.faults
                   if f.pass_ == "backward"])

    @property
    def passed(self) -> bool:
        """No quantity fails, isolated or propagated, and no code faulted."""
        return self.first is None and self.first_propagated is None and not self.faults

    @property
    def first_divergence(self) -> Divergence | None:
        return self.first

    def to_dict(self) -> dict:
        """The whole comparison as a JSON-ready dict (see ``to_dict``)."""
        return to_dict(self)


def scan(layers: list[LayerDiff]) -> list[tuple[LayerDiff, Quantity]]:
    """Every quantity in scan order: forward in network order, then backward in reverse."""
    forward = [(layer, q) for layer in layers for q in layer.quantities if q.pass_ == "forward"]
    backward = [(layer, q) for layer in reversed(layers) for q in layer.quantities
                if q.pass_ == "backward"]
    return forward + backward


def safe_compare(actual, expected, name: str) -> Comparison:
    """``compare_arrays``, except that a shape mismatch is an infinite error, not an exception."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape == expected.shape:
        return compare_arrays(actual, expected, name)
    return Comparison(name=name, shape=actual.shape, max_abs=math.inf, max_rel=math.inf,
                      rel_l2=math.inf, scaled_max_abs=math.inf, cosine=math.nan, worst_index=None,
                      worst_actual=math.nan, worst_expected=math.nan, nan_actual=0, nan_expected=0,
                      inf_actual=0, inf_expected=0, nonfinite_match=False)


def _amplification(error: float, received: float) -> float | None:
    """error / received error; None where undefined (a non-finite error, or nothing received)."""
    if not (math.isfinite(error) and math.isfinite(received)) or received == 0:
        return None
    return error / received


def _copy_trace(result: Trace) -> Trace:
    """Private copies of every array (later isolated passes must not alias them)."""
    return Trace(np.array(result.logits), result.loss,
                 {k: np.array(v) for k, v in result.outputs.items()},
                 {k: np.array(v) for k, v in result.output_grads.items()},
                 {k: np.array(v) for k, v in result.grads.items()},
                 None if result.input_grad is None else np.array(result.input_grad),
                 {k: np.array(v) for k, v in result.state.items()})


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
        for layer in reversed(model.layers):
            output_grads[layer.name] = np.array(dy)
            dy, fatal = guarded(faults, layer.call_backward, dy)
            if fatal:
                break
            for key, value in layer.grads.items():  # with the weight penalties, as trace adds
                penalty = layer.regularizers.get(key)
                grads[f"{layer.name}/{key}"] = np.array(
                    value if penalty is None else value + penalty.gradient(layer.params[key]))
        else:
            dx = np.array(dy)
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


HANDED = {"input": "the input it received", "output_grad": "the upstream gradient it received"}
RESULTS = {"output": "output y", "input_grad": "input gradient dx"}


def _own_faults(layer, pass_: str, given: dict, originals: dict, results: dict) -> list[Fault]:
    """Faults of a layer that does not guard itself (tfparity's layer classes, subclasses
    included; ``reference_tf.own`` layers check their own calls): writes into the copies it was
    handed (``given``, against ``originals``) and results (key -> array) of another dtype."""
    method = "call" if pass_ == "forward" else "call_backward"

    def fault(key, problem, fatal, frame=None):
        return Fault(layer.name, f"{type(layer).__name__}.{method}", pass_, key, problem, fatal,
                     frame)

    what = {key: HANDED.get(key) or f"its parameter '{key.split('/', 1)[1]}'" for key in given}
    found = writes(given, originals, what, fault)
    for key, value in results.items():
        label = RESULTS.get(key) or f"gradient d{key.split('/', 1)[1]}"
        found += result_faults(value, key, label, np.shape(value), layer.dtype, "", fault)
    return found


def _isolated(layer, x_ref: np.ndarray, dy_ref: np.ndarray, state_before: dict) -> tuple:
    """The layer on TensorFlow's input and upstream gradient, from the state before the step and
    with the propagated pass's dropout mask: (y, dx, grads, state, faults); None or {} for what a
    fatal fault left uncomputed. A layer that does not guard itself gets private copies, so it
    cannot change TensorFlow's arrays, and its writes and result dtypes become faults."""
    faults: list[Fault] = []
    for key, value in layer.state.items():
        value[...] = state_before[f"{layer.name}/{key}"]
    guards = not declares_counterpart(layer)
    params = {f"params/{k}": v for k, v in layer.params.items()}
    before = {key: np.array(value) for key, value in params.items()} if guards else {}
    x_given = np.array(x_ref) if guards else x_ref
    with replaying_masks([layer]):
        y, fatal = guarded(faults, layer.forward, x_given)
    if fatal:
        return None, None, {}, {}, faults
    if guards:
        faults += _own_faults(layer, "forward", {"input": x_given, **params},
                              {"input": x_ref, **before}, {"output": y})
    state = {k: np.array(v) for k, v in layer.state.items()}
    dy_given = np.array(dy_ref) if guards else dy_ref
    dx, fatal = guarded(faults, layer.backward, dy_given)
    if fatal:
        return y, None, {}, state, faults
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    if guards:
        faults += _own_faults(layer, "backward", {"output_grad": dy_given, **params},
                              {"output_grad": dy_ref, **before},
                              {"input_grad": dx, **{f"grads/{k}": v
                                                     for k, v in layer.grads.items()}})
    return y, dx, grads, state, faults


def _unique(faults: list[Fault]) -> list[Fault]:
    """One fault per (pass, quantity, problem), in order (both runs may find the same one)."""
    seen, out = set(), []
    for fault in faults:
        if (fault.pass_, fault.key, fault.problem) not in seen:
            seen.add((fault.pass_, fault.key, fault.problem))
            out.append(fault)
    return out


def _quantity(key, label, pass_, tolerance: Tolerance, mine, reference,
              isolated=None) -> Quantity:
    """A quantity with its propagated (and isolated) comparison; tolerance by pass."""
    tol = tolerance.forward if pass_ == "forward" else tolerance.gradient
    reference = np.asarray(reference)
    return Quantity(key, label, pass_, tuple(reference.shape), tol,
                    None if mine is None else safe_compare(mine, reference, label),
                    None if isolated is None else safe_compare(isolated, reference, label),
                    arrays=(isolated, reference))


def _layer_diffs(model: Sequential, x, y, mine: Trace, ref: Trace, state_before: dict,
                 faults: list[Fault]) -> tuple[list[LayerDiff], dict]:
    """Propagated and isolated comparisons of every layer and of the loss; ``state_before`` is
    the model's state before the step (keyed like ``model.state``), ``faults`` the model's own
    run's."""
    tol = tolerances(model.dtype, model.mixes_examples)
    layers, inputs = [], {}
    for index, layer in enumerate(model.layers):
        name = layer.name
        previous = model.layers[index - 1].name if index else None
        x_ref = ref.outputs[previous] if previous else x
        dy_ref = ref.output_grads[name]
        inputs[name] = (x_ref, dy_ref)
        y_iso, dx_iso, grads_iso, state_iso, iso_faults = _isolated(layer, x_ref, dy_ref,
                                                                    state_before)
        dx_mine = mine.output_grads.get(previous) if previous else mine.input_grad
        dx_ref = ref.output_grads[previous] if previous else ref.input_grad
        diff = LayerDiff(name, layer_label(layer), model.output_shapes[name],
                         faults=_unique([f for f in faults if f.layer == name] + iso_faults))
        diff.quantities.append(_quantity("output", "y", "forward", tol, mine.outputs.get(name),
                                         ref.outputs[name], y_iso))
        for key in layer.state:
            diff.quantities.append(_quantity(f"state/{key}", key, "forward", tol,
                                             mine.state[f"{name}/{key}"],
                                             ref.state[f"{name}/{key}"], state_iso.get(key)))
        diff.quantities.append(_quantity("output_grad", "dL/dy", "backward", tol,
                                         mine.output_grads.get(name), dy_ref))
        for key in layer.params:
            diff.quantities.append(_quantity(f"grads/{key}", f"dL/d{key}", "backward", tol,
                                             mine.grads.get(f"{name}/{key}"),
                                             ref.grads[f"{name}/{key}"], grads_iso.get(key)))
        diff.quantities.append(_quantity("input_grad", "dL/dx", "backward", tol, dx_mine,
                                         dx_ref, dx_iso))
        layers.append(diff)
    logits = model.layers[-1].name
    loss_faults: list[Fault] = []
    result, fatal = guarded(loss_faults, model.compute_loss, ref.logits, y)
    loss_iso, dlogits_iso = (None, None) if fatal else result
    inputs[LOSS] = (ref.logits, None)
    loss = LayerDiff(LOSS, loss_of(model).label, (),
                     faults=_unique([f for f in faults if f.layer == LOSS] + loss_faults))
    loss.quantities.append(_quantity("output", "loss", "forward", tol,
                                     None if math.isnan(mine.loss) else mine.loss, ref.loss,
                                     loss_iso))
    loss.quantities.append(_quantity("input_grad", "dL/dlogits", "backward", tol,
                                     mine.output_grads.get(logits), ref.output_grads[logits],
                                     dlogits_iso))
    layers.append(loss)
    _amplifications(layers)
    return layers, inputs


def _amplifications(layers: list[LayerDiff]) -> None:
    """Forward: y error / previous y error. Backward: error / the error of the received dL/dy
    (for the loss: of the logits it received)."""
    def error(q: Quantity | None) -> float:
        return math.nan if q is None or q.propagated is None else q.propagated.rel_l2

    previous_y = None
    for layer in layers:
        y = layer.get("output")
        if previous_y is not None:
            y.amplification = _amplification(error(y), error(previous_y))
        received = layer.get("output_grad") or previous_y
        for q in layer.quantities:
            if q.pass_ == "backward" and q.key != "output_grad" and received is not None:
                q.amplification = _amplification(error(q), error(received))
        previous_y = y


def _excess(q: Quantity, comparison: Comparison) -> float:
    return comparison.smallest_passing_tolerance / q.tolerance


def _fault_divergence(layer: LayerDiff, fault: Fault) -> Divergence:
    others = [f.sentence for f in layer.faults if f.pass_ == fault.pass_ and f is not fault]
    return Divergence(layer.name, layer.type, fault.pass_, fault.key,
                      key_label(fault.key, layer.name), layer.get(fault.key), others, fault)


def first_divergence(layers: list[LayerDiff]) -> tuple[Divergence | None, tuple | None]:
    """(first divergence, (layer, label) of the first propagated failure), scan order. At each
    layer and pass a fault of the code comes before an isolated error."""
    order = scan(layers)
    first_propagated = next(((layer.name, q.label) for layer, q in order if q.propagated_fails),
                            None)
    passes = [(layer, "forward") for layer in layers] + [(layer, "backward")
                                                         for layer in reversed(layers)]
    for layer, pass_ in passes:
        fault = next((f for f in layer.faults if f.pass_ == pass_), None)
        if fault is not None:
            return _fault_divergence(layer, fault), first_propagated
        failing = [q for q in layer.quantities if q.pass_ == pass_ and q.isolated_fails]
        if failing:
            worst = max(failing, key=lambda p: _excess(p, p.isolated))
            others = [p.label for p in failing if p is not worst]
            return (Divergence(layer.name, layer.type, pass_, worst.key, worst.label, worst,
                               others), first_propagated)
    return None, first_propagated


def diff_model(model_name: str, dtype: str = "float64", seed: int = 0, batch_size: int = 16,
               data: str = "strokes", weights: dict | None = None,
               verify: bool = True) -> ModelDiff:
    """Compare the scratch model ``model_name`` with its Keras twin on one seeded batch.

    Args:
        model_name: a name in ``scratch.models.MODELS``.
        dtype: "float32" or "float64" (selects the tolerances too).
        seed: seeds the initial weights (unless ``weights``) and the batch.
        batch_size: N, the examples of the batch.
        data: "strokes" or "mnist" (see ``load_batch``).
        weights: parameters keyed like ``Sequential.params`` (e.g. from ``reports.weights``).
        verify: check MNIST's SHA-256 (``scratch.data.load_mnist``).

    Returns:
        The ``ModelDiff`` (no third opinion yet; see ``reference_tf.finite_diff``).
    """
    model = build(model_name, seed=seed, dtype=dtype)
    if weights is not None:
        model.set_params(weights)
    x, y = load_batch(data, batch_size, seed, dtype, verify)
    result = diff(model, x, y, name=model_name, seed=seed, data=data)
    result.data_unverified = data == "mnist" and not verify
    return result


def diff(model: Sequential | Function, x: np.ndarray, y: np.ndarray, *, name: str = "model",
         seed: int | None = None, data: str = "given", counterparts: dict | None = None,
         keras_model=None) -> ModelDiff:
    """Compare any model with its Keras twin (weights copied) on the batch (x, y).

    Args:
        model: a ``scratch.models.Sequential`` (a ``reference_tf.own.Model`` included) or a
            ``reference_tf.own.Function``.
        x: inputs (N, *model.input_shape) of the model's dtype; y: labels (N,).
        name, seed, data: how the result describes the model and the batch.
        counterparts: Keras factories for custom layer classes (``reference_tf.twin.keras_layer``).
        keras_model: the reference, with the model's weights and state (and Dropout masks
            shared); default ``twin(model, counterparts, share_masks=True)``.

    Returns:
        The ``ModelDiff`` with the causes of its isolated failures (of a whole-model function,
        only the conventions that need no layer inputs); no third opinion yet (see
        ``reference_tf.finite_diff.third_opinion``).
    """
    if isinstance(model, Function):
        layers, inputs, statistics = _function_diffs(model, x, y), {"layers": {}}, False
    else:
        if keras_model is None:
            keras_model = twin(model, counterparts, share_masks=True)  # the state before the step
        state_before = {key: np.array(value) for key, value in model.state.items()}
        with guarding(model.layers):
            mine, faults = run_trace(model, x, y)
            ref = model_trace(model, x, y, keras_model=keras_model)
            layers, layer_inputs = _layer_diffs(model, x, y, mine, ref, state_before, faults)
        inputs, statistics = {"layers": layer_inputs}, model.mixes_examples
    first, first_propagated = first_divergence(layers)
    result = ModelDiff(name, model.dtype.name, seed, data, tuple(x.shape), layers, first,
                       first_propagated, batch_statistics=statistics,
                       kind="function" if isinstance(model, Function) else "layers")
    result.isolated_inputs = {"model": model, "x": x, "labels": y, "counterparts": counterparts,
                              **inputs}
    explain(result)
    return result


FUNCTION = "model"


def _function_diffs(model: Function, x: np.ndarray, y: np.ndarray) -> list[LayerDiff]:
    """A whole-model function against the Keras twin of its declared architecture: the loss
    (pseudo-layer "model", with the function's faults) and each declared layer's parameter
    gradients. The function is given TensorFlow's input and weights, so each error counts as
    its own (isolated equals propagated); nothing is attributed to a single layer."""
    tol = tolerances(model.dtype)
    faults: list[Fault] = []
    result, fatal = guarded(faults, model.loss_and_grads, x, y)
    loss, grads = (None, {}) if fatal else result
    ref = model_trace(model.architecture, x, y)

    def quantity(key, label, pass_, mine, reference) -> Quantity:
        return _quantity(key, label, pass_, tol, mine, reference, mine)

    whole = LayerDiff(FUNCTION, f"function ({model.function})", (model.num_classes,),
                      faults=_unique(faults))
    whole.quantities.append(quantity("loss", "loss", "forward", loss, ref.loss))
    layers = [whole]
    for layer in model.layers:
        if layer.params:
            diff = LayerDiff(layer.name, layer_label(layer),
                             model.architecture.output_shapes[layer.name])
            for key in layer.params:
                diff.quantities.append(quantity(f"grads/{key}", f"dL/d{key}", "backward",
                                                grads.get(key), ref.grads[f"{layer.name}/{key}"]))
            layers.append(diff)
    return layers


def comparison_dict(c: Comparison | None) -> dict | None:
    """A comparison as JSON-ready dict (non-finite numbers become None later)."""
    if c is None:
        return None
    out = c._asdict()
    out["shape"] = list(c.shape)
    out["worst_index"] = None if c.worst_index is None else list(c.worst_index)
    out["passes_error"] = c.smallest_passing_tolerance
    return out


def to_dict(result: ModelDiff) -> dict:
    """The whole comparison as a JSON-ready dict (see ``reports.runner.to_json_safe``)."""
    def quantity(q: Quantity) -> dict:
        return {"key": q.key, "label": q.label, "pass": q.pass_, "shape": list(q.shape),
                "tolerance": q.tolerance, "propagated": comparison_dict(q.propagated),
                "isolated": comparison_dict(q.isolated), "amplification": q.amplification,
                "propagated_fails": q.propagated_fails, "isolated_fails": q.isolated_fails,
                "cause": None if q.cause is None else q.cause.to_dict(),
                "causes_tried": q.causes_tried}

    first = None
    if result.first is not None:
        f = result.first
        first = {"layer": f.layer, "type": f.layer_type, "pass": f.pass_, "key": f.key,
                 "label": f.label,
                 "param": f.key.split("/", 1)[1] if f.key.startswith(("grads/", "params/"))
                 else None,
                 "also_failing": f.also_failing,
                 "isolated": None if f.quantity is None else comparison_dict(f.quantity.isolated),
                 "fault": None if f.fault is None else f.fault.to_dict(),
                 "cause": None if f.cause is None else f.cause.to_dict(),
                 "causes_tried": f.causes_tried}
    return {
        "model": result.model, "kind": result.kind, "dtype": result.dtype, "seed": result.seed,
        "data": result.data, "data_unverified": result.data_unverified,
        "batch_shape": list(result.batch_shape),
        "passed": result.passed,
        "first_divergence": first,
        "first_propagated_failure": (None if result.first_propagated is None else
                                     {"layer": result.first_propagated[0],
                                      "label": result.first_propagated[1]}),
        "layers": [{"name": layer.name, "type": layer.type,
                    "output_shape": list(layer.output_shape),
                    "quantities": [quantity(q) for q in layer.quantities],
                    "faults": [fault.to_dict() for fault in layer.faults]}
                   for layer in result.layers],
        "third_opinion": None if result.opinion is None else result.opinion.to_dict(),
    }
