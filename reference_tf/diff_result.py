"""What ``tfparity diff`` finds: the compared quantities of every layer, the first divergence,
and the whole result as a JSON-ready dict.

``reference_tf.layerdiff`` fills these types; ``reference_tf.causes`` explains their failures,
``reference_tf.finite_diff`` gives a third opinion on the first divergence, and
``reference_tf.display`` words and draws them (a notebook's HTML, the command line's text and
heat map). NumPy only at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from reference_tf.causes.registry import Cause
from reference_tf.compare import Comparison
from reference_tf.loss import LOSS
from reference_tf.user_code import Fault

FUNCTION = "model"  # the pseudo-layer of a whole-model function (``reference_tf.own.Function``)


@dataclass
class Quantity:
    """One compared array of one layer.

    key: "output", "output_grad", "input_grad", "grads/<param>" or "state/<variable>"; label:
    "y", "dL/dy", "dL/dx", "dL/d<param>" or the state variable's name ("moving_mean");
    direction: "forward" or "backward", the pass that computes it; shape: the twin's shape
    (with the batch axis); propagated is None where the model's own run stopped before it (a
    fatal fault); isolated is None for dL/dy (the layer does not compute it) and where the
    isolated pass failed; amplification = propagated rel L2 error of this quantity / that of
    what the layer received (y of the previous layer forward, its own dL/dy backward), None
    where undefined; cause: the catalog's explanation of an isolated failure (None: none
    matched, or nothing failed), causes_tried: the ids tried; arrays: (the layer's isolated
    value, TensorFlow's value), for the matcher.
    """

    key: str
    label: str
    direction: str
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
class StepFinding:
    """Where through time a sequence layer first parts from TensorFlow's
    (``reference_tf.through_time``).

    time_step: the index on the input's time axis (``x[:, time_step]``), None when no single
    step is found; processing_step: the same step in processing order (differs with
    ``go_backwards``); steps: T; quantity: "pre-activation", "activation", "cell state c",
    "hidden state h", "dL/dh", "dL/d(pre-activation)", "dL/dx", "term of dL/d<param>" or
    "dL/dembeddings"; gate: the gate's name (Keras's order, ``GATES``) or None;
    error: the step's error (see the module docstring; for a term of a parameter's gradient,
    the size of its coefficient); profile: per-step errors by quantity (processing order), and
    the terms' coefficients, for the JSON.
    """

    layer: str
    direction: str
    time_step: int | None
    processing_step: int | None
    steps: int
    quantity: str | None
    gate: str | None
    error: float | None
    tolerance: float
    sentence: str  # without a final period
    profile: dict = field(default_factory=dict, repr=False)

    def clause(self) -> str:
        """", from time step 14 (gate f)" for the first-divergence sentence ("" without a
        step)."""
        if self.time_step is None:
            return ""
        return f", from time step {self.time_step}" + (
            "" if self.gate is None else f" (gate {self.gate})")

    def paragraph(self) -> str:
        """The finding as the text report's paragraph."""
        return (f"Through time (layer '{self.layer}', {self.steps} steps, the layer on "
                f"TensorFlow's input and upstream gradient): {self.sentence}.")

    def to_dict(self) -> dict:
        return {"layer": self.layer, "pass": self.direction, "time_step": self.time_step,
                "processing_step": self.processing_step, "steps": self.steps,
                "quantity": self.quantity, "gate": self.gate, "error": self.error,
                "tolerance": self.tolerance, "sentence": self.sentence,
                "profile": {k: [float(e) for e in v] for k, v in self.profile.items()}}


@dataclass
class Divergence:
    """Where the implementations first part ways: a fault of the layer's code, or an isolated
    error above tolerance.

    direction: the pass, "forward" or "backward"; key, label: the quantity ("input_grad",
    "dL/dx"), or what the fault concerns; quantity: the worst failing quantity of that layer and
    pass (for a fault, the one it concerns, if any); also_failing: labels of the layer's other
    failing quantities in that pass; time: for an isolated error of a recurrent layer or of an
    Embedding's gradient, where through time it starts (``reference_tf.through_time``: the
    time step and the gate), else None.
    """

    layer: str
    layer_type: str
    direction: str
    key: str
    label: str
    quantity: Quantity | None
    also_failing: list[str]
    fault: Fault | None = None
    cause: Cause | None = None  # the convention that explains it (``reference_tf.causes``)
    causes_tried: list[str] = field(default_factory=list)  # the conventions tried on it
    time: StepFinding | None = None


class DiffInputs(NamedTuple):
    """What the comparison ran on, kept for the causes and the third opinion.

    model: the scratch model (or ``reference_tf.own.Function``); x (N, ...), labels (N,): the
    batch; twins: the Keras factories of custom layer classes the twin was built with;
    layers: layer name -> (TensorFlow's input x, TensorFlow's upstream gradient dL/dy) of its
    isolated pass; the loss's entry is (the twin's logits, None); empty for a whole-model
    function.
    """

    model: object
    x: np.ndarray
    labels: np.ndarray
    twins: dict | None
    layers: dict[str, tuple]


@dataclass
class ModelDiff:
    """The whole comparison of one model on one batch.

    first_divergence: the first isolated failure or fault in scan order (``scan``), None when
    there is none; first_propagated_failure: (layer, label) of the first propagated failure in
    scan order, None when there is none; opinion: the third opinion on the first divergence
    (``reference_tf.finite_diff.third_opinion``), None when not asked for or nothing diverged.
    """

    model: str
    dtype: str
    seed: int
    data: str
    batch_shape: tuple
    layers: list[LayerDiff]
    first_divergence: Divergence | None
    first_propagated_failure: tuple | None
    inputs: DiffInputs = field(repr=False)
    data_unverified: bool = False    # MNIST used without checking its SHA-256 (--no-verify)
    opinion: object = None
    batch_statistics: bool = False   # the model normalizes with batch statistics (tolerances)
    kind: str = "layers"             # "function": a whole-model function, compared end to end
    # the rounding-decided kinks that explain every propagated failure (``reference_tf.kinks``)
    kinks: list = field(default_factory=list)

    @property
    def faults(self) -> list[Fault]:
        """Every fault of the code, in scan order (forward in network order, backward in
        reverse)."""
        return ([f for layer in self.layers for f in layer.faults if f.direction == "forward"]
                + [f for layer in reversed(self.layers) for f in layer.faults
                   if f.direction == "backward"])

    @property
    def passed(self) -> bool:
        """No quantity fails, isolated or propagated (or the propagated failures are all
        explained by rounding-decided kinks), and no code faulted."""
        return (self.first_divergence is None and not self.faults
                and (self.first_propagated_failure is None or bool(self.kinks)))

    @property
    def status(self) -> str:
        """"PASS", "KINK" (passed: differences decided by rounding at ties or zeros) or
        "FAIL"."""
        return "FAIL" if not self.passed else "KINK" if self.kinks else "PASS"

    def to_dict(self) -> dict:
        """The whole comparison as a JSON-ready dict (see ``to_dict``)."""
        return to_dict(self)

    def scan(self) -> list[tuple[LayerDiff, Quantity]]:
        """Every (layer, quantity) in scan order (``scan``)."""
        return scan(self.layers)

    def to_frame(self):
        """Every quantity of the forward and backward tables as a pandas DataFrame, one row each
        in scan order (``reference_tf.display.diff_frame``)."""
        from reference_tf.display import diff_frame

        return diff_frame(self)

    def plot(self):
        """The heat map of the per-layer errors (a matplotlib figure)."""
        from reference_tf.display import heatmap_figure

        return heatmap_figure(self)

    def __repr__(self) -> str:
        from reference_tf.display import diff_text

        return diff_text(self)

    def _repr_html_(self) -> str:
        from reference_tf.display import diff_html

        return diff_html(self)


def scan(layers: list[LayerDiff]) -> list[tuple[LayerDiff, Quantity]]:
    """Every quantity in scan order: forward in network order, then backward in reverse."""
    forward = [(layer, q) for layer in layers for q in layer.quantities
               if q.direction == "forward"]
    backward = [(layer, q) for layer in reversed(layers) for q in layer.quantities
                if q.direction == "backward"]
    return forward + backward


def comparison_dict(c: Comparison | None) -> dict | None:
    """A comparison as JSON-ready dict (non-finite numbers become None later)."""
    if c is None:
        return None
    out = c._asdict()
    out["shape"] = list(c.shape)
    out["worst_index"] = None if c.worst_index is None else list(c.worst_index)
    out["passes_error"] = c.smallest_passing_tolerance
    return out


def _quantity_dict(q: Quantity) -> dict:
    return {"key": q.key, "label": q.label, "pass": q.direction, "shape": list(q.shape),
            "tolerance": q.tolerance, "propagated": comparison_dict(q.propagated),
            "isolated": comparison_dict(q.isolated), "amplification": q.amplification,
            "propagated_fails": q.propagated_fails, "isolated_fails": q.isolated_fails,
            "cause": None if q.cause is None else q.cause.to_dict(),
            "causes_tried": q.causes_tried}


def _divergence_dict(f: Divergence | None) -> dict | None:
    if f is None:
        return None
    return {"layer": f.layer, "type": f.layer_type, "pass": f.direction, "key": f.key,
            "label": f.label,
            "param": f.key.split("/", 1)[1] if f.key.startswith(("grads/", "params/")) else None,
            "also_failing": f.also_failing,
            "isolated": None if f.quantity is None else comparison_dict(f.quantity.isolated),
            "fault": None if f.fault is None else f.fault.to_dict(),
            "cause": None if f.cause is None else f.cause.to_dict(),
            "causes_tried": f.causes_tried,
            "time_step": None if f.time is None else f.time.time_step,
            "gate": None if f.time is None else f.time.gate,
            "through_time": None if f.time is None else f.time.to_dict()}


def to_dict(result: ModelDiff) -> dict:
    """The whole comparison as a JSON-ready dict (see ``reports.files.records.to_json_safe``)."""
    propagated = result.first_propagated_failure
    return {
        "model": result.model, "kind": result.kind, "dtype": result.dtype, "seed": result.seed,
        "data": result.data, "data_unverified": result.data_unverified,
        "batch_shape": list(result.batch_shape),
        "passed": result.passed, "status": result.status,
        "kinks": [flip.to_dict() for flip in result.kinks],
        "first_divergence": _divergence_dict(result.first_divergence),
        "first_propagated_failure": (None if propagated is None else
                                     {"layer": propagated[0], "label": propagated[1]}),
        "layers": [{"name": layer.name, "type": layer.type,
                    "output_shape": list(layer.output_shape),
                    "quantities": [_quantity_dict(q) for q in layer.quantities],
                    "faults": [fault.to_dict() for fault in layer.faults]}
                   for layer in result.layers],
        "third_opinion": None if result.opinion is None else result.opinion.to_dict(),
    }
