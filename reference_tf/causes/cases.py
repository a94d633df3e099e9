"""From a failing comparison to a ``Case`` of the catalog, and the causes of a whole ``diff``.

A quantity gets a cause only when its isolated error exceeds the tolerance (the matcher costs
nothing on a clean run). The case is stated in TensorFlow's layouts with TensorFlow's inputs to
the layer, so every convention sees the layer's own error and nothing inherited.
"""

from __future__ import annotations

import numpy as np

from reference_tf.adapter import declares_twin, loss_of, to_keras
from reference_tf.causes.registry import Case, Cause, applicable, find_cause
from reference_tf.own.conventions import activation_from_user, param_from_user
from scratch import layers as scratch_layers

LOSS = "loss"  # the loss pseudo-layer of ``reference_tf.layerdiff``
WINDOWED = {scratch_layers.Conv2D: ("conv", "kernel_size"),
            scratch_layers.MaxPool2D: ("pool", "pool_size")}
SIMPLE = {scratch_layers.Dense: "dense", scratch_layers.ReLU: "relu",
          scratch_layers.Flatten: "flatten"}
DECLARED = {"Conv2D": "conv", "MaxPooling2D": "pool", "Dense": "dense", "ReLU": "relu",
            "Flatten": "flatten"}  # the Keras class a ``reference_tf.own`` layer declares
DECLARED.update({"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"})
DECLARED.update(BatchNormalization="batchnorm", LayerNormalization="layernorm",
                GroupNormalization="groupnorm", Dropout="dropout")  # settings: their config
ACTIVATIONS = ("output", "input_grad", "input", "output_grad")


def layer_kind(layer) -> tuple[str, dict]:
    """(kind, settings) of a layer: "conv"/"pool" with {"window", "strides", "padding"} (padding
    "same", "valid" or ((top, bottom), (left, right))), "dense", "relu", "flatten", or "other".
    A ``reference_tf.own`` layer's are those it declares, with "flatten": its flatten order."""
    declaration = getattr(layer, "declaration", None)
    if declaration is not None:
        kind, config = DECLARED.get(declaration.keras, "other"), declaration.config
        settings = {"flatten": declaration.conventions.flatten_order.replace("N", "")}
        if kind in ("simple_rnn", "lstm", "gru", "batchnorm", "layernorm", "groupnorm", "dropout"):
            settings.update(config)
        if kind in ("conv", "pool"):
            settings.update(window=tuple(config.get("kernel_size") or config["pool_size"]),
                            strides=tuple(config["strides"]), padding=config["padding"])
        return kind, settings
    for cls, (kind, window) in WINDOWED.items():
        if isinstance(layer, cls):
            return kind, {"window": tuple(getattr(layer, window)),
                          "strides": tuple(layer.strides), "padding": layer.padding}
    for cls, kind in SIMPLE.items():
        if isinstance(layer, cls):
            return kind, {}
    return "other", {}


def _in_keras_layouts(layer, key: str, value):
    """(key, value) of a declared layer's array in Keras's naming and layouts (activations NHWC,
    "grads/kernel" in HWIO or (in, out)); as given where it does not convert (a wrong shape)."""
    conventions = getattr(layer, "conventions", None)
    if conventions is None:  # a layer of the adapter protocol without declared conventions
        return key, value
    try:
        if key in ACTIVATIONS and np.ndim(value) == 4:
            return key, activation_from_user(np.asarray(value), conventions.layout)
        if key.startswith(("grads/", "params/")):
            prefix, name = key.split("/", 1)
            keras = {user: keras for keras, user in layer.param_names.items()}.get(name)
            if keras is not None and layer.kind is not None:  # conv and dense kernels
                return f"{prefix}/{keras}", param_from_user(layer.kind, keras, np.asarray(value),
                                                           conventions)
    except ValueError:
        pass
    return key, value


def layer_case(layer, key: str, direction: str, mine, reference, x: np.ndarray,
               dy: np.ndarray | None, tolerance: float) -> Case:
    """The case of quantity ``key`` of a layer given TensorFlow's input x (N, ...) and upstream
    gradient dy (the output's shape): ``mine`` is the layer's value, ``reference`` TensorFlow's.
    A layer in other conventions (``reference_tf.own``) is stated in Keras's layouts."""
    kind, settings = layer_kind(layer)
    params = dict(layer.params)
    if declares_twin(layer):
        params = to_keras(layer, params)
        x = _in_keras_layouts(layer, "input", x)[1]
        dy = None if dy is None else _in_keras_layouts(layer, "output_grad", dy)[1]
        reference = _in_keras_layouts(layer, key, reference)[1]
        key, mine = _in_keras_layouts(layer, key, mine)
    return Case(kind, key, direction, mine, reference, x, dy, np.dtype(layer.dtype), tolerance,
                params=params, settings=settings, layer=layer, name=layer.name)


def loss_case(key: str, direction: str, mine, reference, logits: np.ndarray, labels: np.ndarray,
              dtype, tolerance: float, settings: dict | None = None) -> Case:
    """The case of the loss value ("output") or of dL/dlogits ("input_grad") on TensorFlow's
    logits (N, K) and the labels (N,); a per-step loss's logits (N, T, K) and labels (N, T)
    make a "sequence_loss" case, ``settings`` its declaration (reduction, pad)."""
    kind = "sequence_loss" if np.ndim(logits) == 3 else "loss"
    return Case(kind, key, direction, mine, reference, logits, None, np.dtype(dtype), tolerance,
                settings=dict(settings or {}), labels=np.asarray(labels), name=LOSS)


def tried(case: Case) -> list[str]:
    """The ids of the conventions the matcher tries on ``case``."""
    return [c.id for c in applicable(case)]


def cause_clause(cause: Cause | None, tried: list[str]) -> str:
    """"it matches TensorFlow to 2e-16 when ... (cause: <id>)", or why no cause is named."""
    if cause is not None:
        return f"it {cause.sentence} (cause: {cause.id})"
    if not tried:
        return "no convention in the catalog applies to it"
    return f"no known convention explains it (tried: {', '.join(tried)})"


def _case(result, diff, q, key: str | None = None, fault=None) -> Case:
    """The case of quantity q of layer ``diff`` (a ``diff_result.LayerDiff``) of ``result``;
    ``key`` and ``fault`` for a fault's case (q is then the pass's worst quantity)."""
    inputs = result.inputs
    mine, reference = q.arrays
    key = q.key if key is None else key
    if diff.name not in inputs.layers:
        # a whole-model function: no layer's own inputs, so only conventions that need none
        case = Case("other", key, q.direction, mine, reference, inputs.x, None,
                    np.dtype(result.dtype), q.tolerance, name=diff.name)
        case.fault = fault
        return case
    x, dy = inputs.layers[diff.name]
    if diff.name == LOSS:
        case = loss_case(key, q.direction, mine, reference, x, inputs.labels, result.dtype,
                         q.tolerance, getattr(loss_of(inputs.model), "settings", None))
    else:
        layer = next(layer for layer in inputs.model.layers if layer.name == diff.name)
        case = layer_case(layer, key, q.direction, mine, reference, x, dy, q.tolerance)
    case.fault = fault
    return case


def _fault_cause(result, first) -> tuple[Cause | None, list[str]]:
    """The cause of a divergence that is a fault of the layer's code: judged on the layer's
    worst isolated quantity of that pass (its value on private copies), or, when a fatal fault
    left none, on the quantity the fault concerns (the conventions that run the layer again)."""
    diff = next(layer for layer in result.layers if layer.name == first.layer)
    compared = [q for q in diff.quantities
                if q.direction == first.direction and q.isolated is not None]
    concerned = diff.get(first.fault.key)
    if not compared and (concerned is None or concerned.arrays[1] is None):
        return None, []
    worst = (max(compared, key=lambda q: q.isolated.smallest_passing_tolerance / q.tolerance)
             if compared else concerned)
    case = _case(result, diff, worst, first.fault.key, first.fault)
    return find_cause(case), tried(case)


def explain(result) -> Cause | None:
    """Set ``cause`` and ``causes_tried`` on every quantity of a ``diff_result.ModelDiff`` whose
    isolated error fails, and on ``result.first_divergence``; returns the first divergence's
    cause."""
    for diff in result.layers:
        for q in diff.quantities:
            if q.isolated_fails:
                case = _case(result, diff, q)
                q.cause, q.causes_tried = find_cause(case), tried(case)
    first = result.first_divergence
    if first is None:
        return None
    if getattr(first, "fault", None) is not None:
        first.cause, first.causes_tried = _fault_cause(result, first)
    else:
        first.cause, first.causes_tried = first.quantity.cause, first.quantity.causes_tried
    return first.cause
