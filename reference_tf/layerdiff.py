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
code included. Its faults (``reference_tf.user_code``: an exception, a write into an array it
was handed, a result of the wrong shape or dtype) are part of the comparison: the model's own
run goes on past a fault that is not fatal and stops the pass at a fatal one, so everything
before it is still compared (``reference_tf.tolerant_run``); a fault is a divergence at its
layer and pass, ahead of the errors there. A whole-model function (``reference_tf.own.Function``)
is compared end to end: the loss and every parameter gradient, with no per-layer attribution.

Every quantity whose isolated error fails, and a fault that is a divergence, gets a cause from
the convention catalog (``reference_tf.causes``), or None when no known convention explains it.
A first divergence of a recurrent layer or of an Embedding's gradient gets its time step and
gate (``reference_tf.through_time``).
The result types are in ``reference_tf.diff_result``.
"""

from __future__ import annotations

import math

import numpy as np

from reference_tf.adapter import label as layer_label
from reference_tf.adapter import loss_of
from reference_tf.causes import explain
from reference_tf.compare import Comparison, Tolerance, safe_compare, tolerances
from reference_tf.diff_result import (
    FUNCTION,
    LOSS,
    DiffInputs,
    Divergence,
    LayerDiff,
    ModelDiff,
    Quantity,
    key_label,
    scan,
)
from reference_tf.gradients import model_trace, trace_arrays
from reference_tf.guarding import guarding
from reference_tf.kinks import Flip, agrees, replay
from reference_tf.own.model import Function
from reference_tf.progress import Progress, announcing, silent
from reference_tf.through_time import locate
from reference_tf.tolerant_run import isolated_pass, run_trace, unique_faults
from reference_tf.twin import twin
from reference_tf.user_code import Fault, guarded
from scratch.models import Sequential, Trace


def _amplification(error: float, received: float) -> float | None:
    """error / received error; None where undefined (a non-finite error, or nothing received)."""
    if not (math.isfinite(error) and math.isfinite(received)) or received == 0:
        return None
    return error / received


def _quantity(key, label, direction, tolerance: Tolerance, mine, reference,
              isolated=None) -> Quantity:
    """A quantity with its propagated (and isolated) comparison; tolerance by direction."""
    tol = tolerance.forward if direction == "forward" else tolerance.gradient
    reference = np.asarray(reference)
    return Quantity(key, label, direction, tuple(reference.shape), tol,
                    None if mine is None else safe_compare(mine, reference, label),
                    None if isolated is None else safe_compare(isolated, reference, label),
                    arrays=(isolated, reference))


def _layer_diff(model: Sequential, index: int, x, mine: Trace, ref: Trace, state_before: dict,
                faults: list[Fault]) -> tuple[LayerDiff, tuple]:
    """Propagated and isolated comparisons of layer ``index``, and its isolated inputs
    (TensorFlow's x and dL/dy)."""
    tol = tolerances(model.dtype, model.mixes_examples)
    layer = model.layers[index]
    name = layer.name
    previous = model.layers[index - 1].name if index else None
    x_ref = ref.outputs[previous] if previous else x
    dy_ref = ref.output_grads[name]
    iso = isolated_pass(layer, x_ref, dy_ref, state_before)
    dx_mine = mine.output_grads.get(previous) if previous else mine.input_grad
    dx_ref = ref.output_grads[previous] if previous else ref.input_grad
    diff = LayerDiff(name, layer_label(layer), model.output_shapes[name],
                     faults=unique_faults([f for f in faults if f.layer == name] + iso.faults))
    add = diff.quantities.append
    add(_quantity("output", "y", "forward", tol, mine.outputs.get(name), ref.outputs[name],
                  iso.y))
    for key in layer.state:
        add(_quantity(f"state/{key}", key, "forward", tol, mine.state[f"{name}/{key}"],
                      ref.state[f"{name}/{key}"], iso.state.get(key)))
    add(_quantity("output_grad", "dL/dy", "backward", tol, mine.output_grads.get(name), dy_ref))
    for key in layer.params:
        add(_quantity(f"grads/{key}", f"dL/d{key}", "backward", tol,
                      mine.grads.get(f"{name}/{key}"), ref.grads[f"{name}/{key}"],
                      iso.grads.get(key)))
    add(_quantity("input_grad", "dL/dx", "backward", tol, dx_mine, dx_ref, iso.dx))
    return diff, (x_ref, dy_ref)


def _loss_diff(model: Sequential, y, mine: Trace, ref: Trace, faults: list[Fault]) -> LayerDiff:
    """The loss as a last pseudo-layer: the loss value and dL/dlogits, isolated on TensorFlow's
    logits."""
    tol = tolerances(model.dtype, model.mixes_examples)
    logits = model.layers[-1].name
    loss_faults: list[Fault] = []
    result, fatal = guarded(loss_faults, model.compute_loss, ref.logits, y)
    loss_iso, dlogits_iso = (None, None) if fatal else result
    loss = LayerDiff(LOSS, loss_of(model).label, (),
                     faults=unique_faults([f for f in faults if f.layer == LOSS] + loss_faults))
    loss.quantities.append(_quantity("output", "loss", "forward", tol,
                                     None if math.isnan(mine.loss) else mine.loss, ref.loss,
                                     loss_iso))
    loss.quantities.append(_quantity("input_grad", "dL/dlogits", "backward", tol,
                                     mine.output_grads.get(logits), ref.output_grads[logits],
                                     dlogits_iso))
    return loss


def _layer_diffs(model: Sequential, x, y, mine: Trace, ref: Trace, state_before: dict,
                 faults: list[Fault]) -> tuple[list[LayerDiff], dict]:
    """Propagated and isolated comparisons of every layer and of the loss, and the isolated
    inputs by layer; ``state_before`` is the model's state before the step (keyed like
    ``model.state``), ``faults`` the model's own run's."""
    layers, inputs = [], {}
    for index, layer in enumerate(model.layers):
        diff, inputs[layer.name] = _layer_diff(model, index, x, mine, ref, state_before, faults)
        layers.append(diff)
    layers.append(_loss_diff(model, y, mine, ref, faults))
    inputs[LOSS] = (ref.logits, None)
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
            if q.direction == "backward" and q.key != "output_grad" and received is not None:
                q.amplification = _amplification(error(q), error(received))
        previous_y = y


def _excess(q: Quantity, comparison: Comparison) -> float:
    return comparison.smallest_passing_tolerance / q.tolerance


def _fault_divergence(layer: LayerDiff, fault: Fault) -> Divergence:
    others = [f.sentence for f in layer.faults
              if f.direction == fault.direction and f is not fault]
    return Divergence(layer.name, layer.type, fault.direction, fault.key,
                      key_label(fault.key, layer.name), layer.get(fault.key), others, fault)


def find_first_divergence(layers: list[LayerDiff]) -> Divergence | None:
    """The first divergence in scan order (``scan``): at each layer and pass a fault of the
    code comes before an isolated error; None when nothing diverges."""
    passes = [(layer, "forward") for layer in layers] + [(layer, "backward")
                                                         for layer in reversed(layers)]
    for layer, direction in passes:
        fault = next((f for f in layer.faults if f.direction == direction), None)
        if fault is not None:
            return _fault_divergence(layer, fault)
        failing = [q for q in layer.quantities if q.direction == direction and q.isolated_fails]
        if failing:
            worst = max(failing, key=lambda p: _excess(p, p.isolated))
            others = [p.label for p in failing if p is not worst]
            return Divergence(layer.name, layer.type, direction, worst.key, worst.label, worst,
                              others)
    return None


def find_first_propagated_failure(layers: list[LayerDiff]) -> tuple | None:
    """(layer, label) of the first quantity whose propagated error fails, in scan order."""
    return next(((layer.name, q.label) for layer, q in scan(layers) if q.propagated_fails),
                None)


def diff(model: Sequential | Function, x: np.ndarray, y: np.ndarray, *, name: str = "model",
         seed: int | None = None, data: str = "given", twins: dict | None = None,
         keras_model=None, data_unverified: bool = False,
         progress: Progress | None = None) -> ModelDiff:
    """Compare any model with its Keras twin (weights copied) on the batch (x, y).

    Args:
        model: a ``scratch.models.Sequential`` (a ``reference_tf.own.Model`` included) or a
            ``reference_tf.own.Function``.
        x: inputs (N, *model.input_shape) of the model's dtype; y: labels (N,).
        name, seed, data: how the result describes the model and the batch.
        twins: Keras factories for custom layer classes (``reference_tf.twin.keras_layer``).
        keras_model: the twin, with the model's weights and state (and Dropout masks
            shared); default ``twin(model, twins, share_masks=True)``.
        data_unverified: MNIST was loaded without checking its SHA-256 (the result says so).
        progress: told each phase, layer and pass (``reference_tf.progress``).

    Returns:
        The ``ModelDiff`` with the causes of its isolated failures (of a whole-model function,
        only the conventions that need no layer inputs); no third opinion yet (see
        ``reference_tf.finite_diff.third_opinion``).
    """
    if isinstance(model, Function):
        layers, layer_inputs, statistics, kinks = _function_diffs(model, x, y), {}, False, []
    else:
        if keras_model is None:
            keras_model = twin(model, twins, share_masks=True)  # the state before the step
        state_before = {key: np.array(value) for key, value in model.state.items()}
        dtype, say = model.dtype.name, progress or silent
        with guarding(model.layers):
            with announcing(model.layers, progress, f"{dtype} your model"):
                mine, faults = run_trace(model, x, y)
            say(f"{dtype} TensorFlow")
            ref = model_trace(model, x, y, keras_model=keras_model)
            with announcing(model.layers, progress, f"{dtype} isolated, yours on TensorFlow's "
                                                    "inputs"):
                layers, layer_inputs = _layer_diffs(model, x, y, mine, ref, state_before,
                                                    faults)
            statistics = model.mixes_examples
            kinks = _explaining_kinks(model, x, y, ref, layers, statistics, state_before,
                                      progress)
    result = ModelDiff(name, model.dtype.name, seed, data, tuple(x.shape), layers,
                       find_first_divergence(layers), find_first_propagated_failure(layers),
                       DiffInputs(model, x, y, twins, layer_inputs),
                       data_unverified=data_unverified, batch_statistics=statistics,
                       kind="function" if isinstance(model, Function) else "layers",
                       kinks=kinks)
    (progress or silent)(f"{model.dtype.name} causes")
    explain(result)
    if result.first_divergence is not None:
        result.first_divergence.time = locate(result)
    return result


def _explaining_kinks(model: Sequential, x, y, ref: Trace, layers: list[LayerDiff],
                      statistics: bool, state_before: dict,
                      progress: Progress | None) -> list[Flip]:
    """The rounding-decided kinks (``reference_tf.kinks``) when they explain every failure:
    no layer's own error and no fault, a propagated failure, and the model's code run again
    with TensorFlow's branch at the flips agrees with TensorFlow everywhere; else []."""
    if (find_first_divergence(layers) is not None or find_first_propagated_failure(layers) is None
            or any(layer.faults for layer in layers)):
        return []
    with announcing(model.layers, progress, f"{model.dtype.name} replay with TensorFlow's "
                                            "branch at rounding-decided kinks"):
        replayed, flips = replay(model, x, y, ref, statistics, state_before)
    if replayed is None or not agrees(trace_arrays(replayed), trace_arrays(ref),
                                      model.dtype.name, statistics):
        return []
    return flips


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

    def quantity(key, label, direction, mine, reference) -> Quantity:
        return _quantity(key, label, direction, tol, mine, reference, mine)

    whole = LayerDiff(FUNCTION, f"function ({model.function})", (model.num_classes,),
                      faults=unique_faults(faults))
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
