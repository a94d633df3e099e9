"""A third opinion on the first divergence: float64 finite differences say which side is wrong.

For a backward divergence of layer L (or of the loss), both analytic gradients are recomputed in
float64 from the isolated inputs (TensorFlow's input x and upstream gradient dy, cast up): the
scratch layer's and the Keras layer's (same weights). At the elements where they differ most,
the derivative of ``sum(L(x) * dy)`` is measured by one-sided differences, of the scratch
forward pass and of the Keras forward pass separately:

    right = (f(v + eps) - f(v)) / eps,   left = (f(v) - f(v - eps)) / eps.

Where right and left agree the function is smooth there and their mean is the derivative: the
side that does not match it is wrong. Where they differ the element sits on a kink (ReLU at
exactly 0, tied maxima in a pooling window); the derivative does not exist there, finite
differences cannot referee, and the opinion says so, reporting which side picked a one-sided
derivative. A forward divergence is a different function, not a wrong derivative: finite
differences only tell whether the scratch layer's backward pass is consistent with its own
forward pass (``scratch.gradcheck.check_layer_gradients``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf

from reference_tf.adapter import float64_layer, from_keras, keras_weights, loss_of, to_keras
from reference_tf.diff_result import LOSS, ModelDiff
from reference_tf.gradients import layer_pass, loss_function, model_trace
from reference_tf.guarding import unguarded
from reference_tf.own.model import Function
from reference_tf.twin import copy_weights, keras_layer, twin
from reference_tf.user_code import Fault, UserCodeError, last_frame
from scratch.gradcheck import check_layer_gradients
from scratch.layers import replaying_masks

EPS = 1e-6
PROBES = 12          # positions (per example) or elements probed
BUDGET = 3.0         # seconds the differences of one side may take: slow code (naive loops)
                     # gets fewer probes, and the opinion says how many
DISPUTED = 1e-6      # the sides differ at an element by more than this times the gradient scale
AGREES = 1e-5        # a value matches a finite difference within this times the scale; right
                     # and left differences further apart than this mark a kink (within eps)


@dataclass
class Opinion:
    """The finite-difference verdict: "scratch", "tensorflow", "both" (wrong), "kink"
    (inconclusive), "agree" (no float64 disagreement), "forward" (not a derivative question)."""

    verdict: str
    sentence: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "sentence": self.sentence, "details": self.details}


def one_sided(f: Callable[[], np.ndarray], rows: np.ndarray, columns, eps: float = EPS):
    """Right and left differences of f (values (R,)) in the columns of ``rows`` (R, M).

    ``rows`` is a float64 view that f reads; column j of every row is perturbed at once (each
    row only affects its own value) and restored bit for bit. Returns (right, left), each
    (R, len(columns)).
    """
    base = np.asarray(f(), dtype=np.float64)
    right = np.empty((rows.shape[0], len(columns)))
    left = np.empty_like(right)
    for k, j in enumerate(columns):
        original = rows[:, j].copy()
        rows[:, j] = original + eps
        plus = np.asarray(f(), dtype=np.float64)
        rows[:, j] = original - eps
        minus = np.asarray(f(), dtype=np.float64)
        rows[:, j] = original
        right[:, k], left[:, k] = (plus - base) / eps, (base - minus) / eps
    return right, left


def affordable(f: Callable[[], np.ndarray], wanted: int, per_probe: int = 2) -> tuple[int, float]:
    """(how many of ``wanted`` probes of ``per_probe`` calls of f fit the time budget ``BUDGET``,
    at least 1; the seconds one call took), from one timed call of f."""
    start = time.perf_counter()
    f()
    elapsed = time.perf_counter() - start
    return max(1, min(wanted, int(BUDGET / (per_probe * max(elapsed, 1e-9))))), elapsed


def _sampled(opinion: "Opinion", probed: int, disputed: int, seconds: float) -> "Opinion":
    """The opinion, saying that slow code got only ``probed`` of the ``disputed`` positions."""
    opinion.details.update(positions_probed=probed, positions_disputed=disputed)
    if probed < min(disputed, PROBES):
        opinion.sentence += (f" (Slow code, {seconds:.2g} s per forward pass: {probed} of the "
                             f"{min(disputed, PROBES)} most disputed positions probed, to answer "
                             "in seconds.)")
    return opinion


def _count(n: int) -> str:
    return f"{n} element" + ("" if n == 1 else "s")


def _scale(*arrays: np.ndarray) -> float:
    return max(*(float(np.abs(a).max(initial=0.0)) for a in arrays), np.finfo(float).tiny)


def _shape_opinion(rows, f_scratch, mine, reference, what) -> Opinion:
    """The scratch gradient has the wrong shape: check TensorFlow's at its largest elements."""
    ref = reference.reshape(rows.shape[0], -1)
    columns = np.argsort(-np.abs(ref).max(axis=0), kind="stable")[:PROBES]
    right, left = one_sided(f_scratch, rows, columns)
    error = float(np.abs(ref[:, columns] - (right + left) / 2).max()) / _scale(ref)
    agree = error <= AGREES
    ending = ", so the scratch implementation is wrong." if agree else "."
    return Opinion("scratch" if agree else "both",
                   f"the scratch {what} has shape {mine.shape}, not {reference.shape}, so it "
                   f"cannot be this gradient; finite differences "
                   f"{'agree' if agree else 'disagree'} with TensorFlow (relative error "
                   f"{error:.1e}){ending}",
                   {"scratch_shape": list(mine.shape), "expected_shape": list(reference.shape),
                    "tensorflow_error": error})


VERDICTS = {  # (scratch matches, TensorFlow matches) -> verdict, what differences agree with, so
    (False, True): ("scratch", "TensorFlow", "the scratch implementation is wrong"),
    (True, False): ("tensorflow", "the scratch layer", "TensorFlow's gradient is the wrong one"),
    (False, False): ("both", "neither side", "neither gradient is right"),
    (True, True): ("agree", "both sides", "both are right within the resolution of finite "
                                          "differences"),
}


def _smooth_opinion(own, ref, central, smooth, scale, what, details) -> Opinion:
    """At smooth disputed elements the central difference is the derivative: who matches it?"""
    mine_error = float(np.abs(own - central)[smooth].max()) / scale
    ref_error = float(np.abs(ref - central)[smooth].max()) / scale
    details.update(smooth_elements=int(smooth.sum()), scratch_error=mine_error,
                   tensorflow_error=ref_error)
    verdict, agreeing, conclusion = VERDICTS[mine_error <= AGREES, ref_error <= AGREES]
    return Opinion(verdict,
                   f"finite differences in float64 agree with {agreeing} (relative error "
                   f"{ref_error:.1e} for TensorFlow, {mine_error:.1e} for scratch, at the "
                   f"{_count(int(smooth.sum()))} of the {what} where the two sides differ most), "
                   f"so {conclusion}.", details)


def _kink_opinion(own, ref, right, left, disputed, scale, what, details) -> Opinion:
    """Every disputed element is a kink: report who took a one-sided derivative."""
    def one_sided_match(value):
        return (np.abs(value - right) <= AGREES * scale) | (np.abs(value - left) <= AGREES * scale)

    r, k = np.unravel_index(int(np.argmax(np.where(disputed, np.abs(own - ref), -1))), own.shape)
    count = int(disputed.sum())
    example = {name: float(a[r, k]) + 0.0  # + 0.0 turns -0.0 into 0.0
               for name, a in (("left", left), ("right", right), ("scratch", own),
                               ("tensorflow", ref))}
    details.update(kink_elements=count, example=example,
                   scratch_one_sided=int(one_sided_match(own)[disputed].sum()),
                   tensorflow_one_sided=int(one_sided_match(ref)[disputed].sum()))
    return Opinion(
        "kink",
        f"inconclusive: all {_count(count)} of the {what} probed where the two sides differ sit "
        f"on a kink (e.g. one-sided derivatives {example['left']:.4g} from the left and "
        f"{example['right']:.4g} from the right; scratch {example['scratch']:.4g}, TensorFlow "
        f"{example['tensorflow']:.4g}), where the derivative does not exist and finite "
        f"differences cannot referee. TensorFlow's value is a one-sided derivative at "
        f"{details['tensorflow_one_sided']} of them, the scratch value at "
        f"{details['scratch_one_sided']}; TensorFlow's convention is the reference, so the "
        "scratch layer breaks parity here.", details)


def judge(rows: np.ndarray, f_scratch, f_tf, mine: np.ndarray, reference: np.ndarray,
           what: str) -> Opinion:
    """Both analytic gradients against finite differences of f_scratch and f_tf.

    rows: (R, M), the float64 view both functions read (R = N for an input gradient, 1 for a
    parameter or the loss); mine, reference: the analytic gradients of the target's shape.
    """
    if mine.shape != reference.shape:
        return _shape_opinion(rows, f_scratch, mine, reference, what)
    own, ref = mine.reshape(rows.shape[0], -1), reference.reshape(rows.shape[0], -1)
    diff = np.abs(own - ref)
    scale = _scale(own, ref)
    score = diff.max(axis=0)
    columns = [int(j) for j in np.argsort(-score, kind="stable")[:PROBES]
               if score[j] > DISPUTED * scale]
    if not columns:
        return Opinion("agree", f"in float64 the two sides' {what} agree (max difference "
                                f"{float(diff.max()) / scale:.1e} of the scale): the divergence is "
                                "rounding of the lower precision, not a wrong formula.",
                       {"max_difference": float(diff.max()) / scale})
    disputed_count = len(columns)
    probes, seconds = affordable(f_scratch, len(columns))
    columns = columns[:probes]
    right, left = one_sided(f_scratch, rows, columns)
    right_tf, left_tf = one_sided(f_tf, rows, columns)
    own, ref = own[:, columns], ref[:, columns]
    disputed = diff[:, columns] > DISPUTED * scale
    central = (right + left) / 2
    details = {"probed_elements": int(disputed.sum()), "scale": scale,
               "fd_scratch_vs_tensorflow_forward":
                   float(np.abs((right_tf + left_tf) / 2 - central).max()) / scale}
    smooth = disputed & ~(np.abs(right - left) > AGREES * scale)
    opinion = (_smooth_opinion(own, ref, central, smooth, scale, what, details) if smooth.any()
               else _kink_opinion(own, ref, right, left, disputed, scale, what, details))
    return _sampled(opinion, len(columns), disputed_count, seconds)


def _loss_opinion(model, logits: np.ndarray, labels: np.ndarray) -> Opinion:
    loss = loss_of(model)
    keras_loss = loss.keras("float64")
    logits64 = np.array(logits, dtype=np.float64)
    mine = loss.compute(logits64, labels)[1]

    def reference_loss(logits_t):
        return keras_loss(tf.convert_to_tensor(labels), logits_t)

    logits_t = tf.constant(logits64)
    with tf.GradientTape() as tape:
        tape.watch(logits_t)
        value = reference_loss(logits_t)
    reference = tape.gradient(value, logits_t).numpy()
    rows = logits64.reshape(1, -1)
    return judge(rows, lambda: np.array([loss.compute(logits64, labels)[0]]),
                 lambda: np.array([float(reference_loss(tf.constant(logits64)))]),
                 mine, reference, "loss gradient dL/dlogits")


def _layer_opinion(layer, x: np.ndarray, dy: np.ndarray, key: str,
                   twins: dict | None = None) -> Opinion:
    """Training-mode passes of both sides, as in the diff: a Dropout replays the mask of the
    diff's pass (its twin shares it); a sequence layer gets its time-step mask on both sides;
    integer inputs (an Embedding's indices) stay integers; batch statistics mix the examples,
    so a batch-normalized input is probed as one row."""
    clone = float64_layer(layer)
    x64 = x if x.dtype.kind in "iu" else np.array(x, dtype=np.float64)
    up = np.array(dy, dtype=np.float64)
    mask = getattr(clone, "input_mask", None)
    call_mask = {} if mask is None else {"mask": tf.constant(mask)}
    with replaying_masks([clone]):
        clone.forward(x64)
        mine = {"input_grad": clone.backward(up),
                **{f"grads/{k}": v for k, v in clone.grads.items()}}
        twin = keras_layer(clone, "float64", twins, share_masks=True)
        twin.build((None, *layer.input_shape))
        variables = {v.name: v for v in twin.trainable_weights}
        copy_weights(to_keras(clone, clone.params), variables)
        reference = layer_pass(twin, x64, up, mask=mask)
        reference = {"input_grad": reference.input_grad,
                     **{f"grads/{k}": v for k, v in from_keras(clone, reference.grads).items()}}
        param = key.split("/", 1)[1] if key.startswith("grads/") else None
        per_example = param is None and not layer.mixes_examples
        target = x64 if param is None else clone.params[param]
        rows = target.reshape(len(x64) if per_example else 1, -1)

        def values(y: np.ndarray) -> np.ndarray:
            sums = (y * up).reshape(len(x64), -1).sum(axis=1)
            return sums if per_example else np.array([sums.sum()])

        def f_tf() -> np.ndarray:
            if param is not None:
                for name, value in to_keras(clone, clone.params).items():
                    variables[name].assign(value)
            return values(twin(tf.constant(x64), training=True, **call_mask).numpy())

        what = "input gradient" if param is None else f"gradient of '{param}'"
        return judge(rows, lambda: values(clone.forward(x64)), f_tf, np.asarray(mine[key]),
                     reference[key], what)


def _forward_opinion(layer, x: np.ndarray, dy: np.ndarray, examples: int = 4) -> Opinion:
    # Batch statistics depend on the whole batch: checked on all of it.
    n = len(x) if layer.mixes_examples else examples
    clone = float64_layer(layer)
    x64 = np.array(x[:n], dtype=np.float64)
    elements, _ = affordable(lambda: clone.forward(x64), 64, per_probe=2 * (1 + len(clone.params)))
    results = check_layer_gradients(clone, x64, dy[:n], max_elements=elements)
    worst = max(results.values(), key=lambda r: r.rel_error)
    consistent = worst.rel_error < AGREES
    sentence = ("finite differences judge derivatives, not values, so they cannot referee a "
                "forward divergence; ")
    if consistent:
        sentence += (f"they do show the scratch layer's backward pass is consistent with its own "
                     f"forward pass (worst relative error {worst.rel_error:.1e}, '{worst.name}'), "
                     "so the scratch forward pass computes a different function than TensorFlow's "
                     "(a convention such as a layout), not a wrong derivative.")
    else:
        sentence += (f"the scratch layer's backward pass does not match its own forward pass "
                     f"either ('{worst.name}': relative error {worst.rel_error:.1e}).")
    return Opinion("forward", sentence, {"self_consistent": consistent,
                                         "worst_quantity": worst.name,
                                         "worst_rel_error": worst.rel_error,
                                         "elements_probed": elements})


def _fault_opinion(fault: Fault) -> Opinion:
    """No numbers to referee: what the fault means."""
    if fault.fatal:
        sentence = (f"not a question of numbers: the code failed there, so nothing after it was "
                    f"computed in the {fault.direction} pass of the model's own run; everything "
                    "before it is compared above.")
    elif fault.problem.startswith("modified"):
        sentence = ("not a question of numbers: the layer got a copy, so the values above are "
                    "unaffected, but in your own code the write changes an array its caller "
                    "still holds (another layer's output or gradient, or a parameter).")
    else:
        sentence = ("not a question of numbers: the result was cast to the model's dtype to go "
                    "on, so the values above show what the layer computes.")
    return Opinion("fault", sentence, {"fault": fault.to_dict()})


def _function_opinion(model: Function, x: np.ndarray, y: np.ndarray, key: str) -> Opinion:
    """Finite differences of the user's loss and of the Keras twin's, in float64, on the
    parameter of a diverging gradient."""
    clone = model.rebuilt(dtype="float64")
    for name, value in model.params.items():
        clone.params[name][...] = value
    architecture, x64 = clone.architecture, np.array(x, dtype=np.float64)
    name = key.split("/", 1)[1]
    layer = next(layer for layer in clone.layers if name in layer.params)
    keras_model = twin(architecture)
    reference = model_trace(architecture, x64, y, keras_model=keras_model)
    loss_fn = loss_function(architecture)

    def f_tf() -> np.ndarray:
        copy_weights(keras_weights(architecture), keras_model)
        return np.array([float(loss_fn(keras_model(tf.constant(x64)), y))])

    return judge(clone.params[name].reshape(1, -1),
                 lambda: np.array([clone.loss_and_grads(x64, y)[0]]), f_tf,
                 clone.loss_and_grads(x64, y)[1][name], reference.grads[f"{layer.name}/{name}"],
                 f"gradient of '{name}'")


def third_opinion(result: ModelDiff) -> Opinion | None:
    """The finite-difference opinion on ``result.first_divergence`` (None when nothing
    diverged); the caller keeps it as ``result.opinion``."""
    first = result.first_divergence
    if first is None:
        return None
    inputs = result.inputs
    model = inputs.model
    if first.fault is not None:
        return _fault_opinion(first.fault)
    if isinstance(model, Function):
        return (_function_opinion(model, inputs.x, inputs.labels, first.key)
                if first.direction == "backward" else
                Opinion("forward", "finite differences judge derivatives, not values; the "
                                   "loss value itself differs."))
    if first.layer == LOSS:
        logits, _ = inputs.layers[LOSS]
        return (_loss_opinion(model, logits, inputs.labels) if first.direction == "backward"
                else Opinion("forward", "finite differences judge derivatives, not values; "
                                        "the loss value itself differs."))
    x, dy = inputs.layers[first.layer]
    layer = next(layer for layer in model.layers if layer.name == first.layer)
    try:
        if first.key.startswith("state/"):
            return Opinion("forward", "finite differences judge derivatives, not values; "
                                      "a moving statistic follows an update rule (Keras: "
                                      "moving * momentum + batch * (1 - momentum), with "
                                      "the biased batch variance), and that rule differs "
                                      "here.")
        if first.direction == "forward":
            return _forward_opinion(layer, x, dy)
        return _layer_opinion(layer, x, dy, first.key, inputs.twins)
    except UserCodeError as error:
        return Opinion("fault", f"no opinion: in float64 {error.faults[0].sentence}.",
                       {"fault": error.faults[0].to_dict()})
    except Exception as error:  # a layer that does not guard itself (reference_tf.guarding)
        if not unguarded(layer):
            raise
        return Opinion("fault", f"no opinion: in float64 layer '{layer.name}' raised "
                                f"{type(error).__name__}: {error} (at {last_frame(error)}).", {})
