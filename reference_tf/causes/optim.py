"""Conventions of an optimizer step: where a hand-written update rule departs from Keras's.

One step of an optimizer is a quantity like a layer's output: the parameter after the step
(key "update", kind "optimizer"), from the same weights, gradient and optimizer state on both
sides. For every parameter whose value after the step differs from Keras's by more than the
trajectory tolerance, ``explain_update`` recomputes Keras's step in float64 under each
convention of the catalog (Adam's epsilon, RMSprop's epsilon, the momentum form, the L2
factor) and names the one that reproduces the user's step, with the residual; when none does,
or the parameters disagree on it, nothing (never a guess).

    from reference_tf.causes.optim import explain_update, update_clause
    cause = explain_update(optimizer, before, grads, keras_state, update, keras_update,
                           step=101, previous_learning_rate=0.01)
    print(update_clause(cause))   # "it matches TensorFlow to 3e-16 when the momentum is ..."

Keras's rules are written out here again, plainly and in float64 (``docs/optimizers.md`` lists
them), independently of ``scratch.optim``, which may be the code under test. Keras's
TensorFlow backend casts SGD's momentum, Adam's beta_1 and beta_2 (in their powers), the weight
decay and L2's factor to the variable's dtype through a float32 tensor, so those enter rounded
to float32; rho, epsilon and 1 - beta enter as given.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference_tf.causes.cases import cause_clause
from reference_tf.causes.registry import (
    CONVENTIONS,
    Case,
    Cause,
    Variant,
    convention,
    error,
    find_cause,
)
from reference_tf.compare import tolerances

KIND, KEY = "optimizer", "update"
# Keras 3's defaults of the settings each rule reads (``keras.optimizers.<name>``).
DEFAULTS = {
    "SGD": {"momentum": 0.0, "nesterov": False},
    "RMSprop": {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
    "Adam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
    "AdamW": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False,
              "weight_decay": 0.004},
}


def via_float32(value: float) -> float:
    """A Python float as Keras's TensorFlow backend casts it to a variable's dtype: through a
    float32 tensor."""
    return float(np.float32(value))


def optimizer_settings(optimizer) -> dict:
    """{"name": "SGD" | "RMSprop" | "Adam" | "AdamW", "learning_rate", "weight_decay", and the
    rule's settings with Keras's names}, from a dict of those or an object with ``get_config()``
    (a ``scratch.optim`` optimizer; its class name is the rule's). Missing settings take Keras's
    defaults."""
    if isinstance(optimizer, dict):
        given = dict(optimizer)
    elif callable(getattr(optimizer, "get_config", None)):
        given = {"name": type(optimizer).__name__, **optimizer.get_config()}
    else:
        raise TypeError(f"explain_update: expected optimizer to be a dict of settings or an "
                        f"optimizer with get_config(), received {type(optimizer).__name__}.")
    name = given.get("name")
    if name not in DEFAULTS:
        raise ValueError(f"explain_update: expected the optimizer's name to be one of "
                         f"{sorted(DEFAULTS)}, received {name!r} (pass a dict with 'name').")
    if "learning_rate" not in given:
        raise ValueError(f"explain_update: the settings of {name} have no learning_rate.")
    return {"weight_decay": None, **DEFAULTS[name], **given}


def slots_of(settings: dict) -> tuple[str, ...]:
    """The Keras state slots the rule reads (``optimizer.state``'s keys)."""
    name = settings["name"]
    if name == "SGD":
        return ("momentum",) if settings["momentum"] != 0 else ()
    if name == "RMSprop":
        return (("velocity",) + (("momentum",) if settings["momentum"] > 0 else ())
                + (("average_gradient",) if settings["centered"] else ()))
    return ("momentum", "velocity") + (("velocity_hat",) if settings["amsgrad"] else ())


class Step(NamedTuple):
    """One parameter's step, in float64: settings (``optimizer_settings``), w the parameter
    before the step, g the gradient of the loss without weight penalties (w's shape), state:
    slot -> Keras's state before the step (w's shape), t the step (1-based), the learning rate
    of this step and of the one before, and l2 the factor of the parameter's L2 penalty (None
    without one)."""

    settings: dict
    w: np.ndarray
    g: np.ndarray
    state: dict
    t: int
    learning_rate: float
    previous_learning_rate: float
    l2: float | None


def _sgd(s: Step, g: np.ndarray, momentum_form: str) -> np.ndarray:
    lr, mu = s.learning_rate, via_float32(s.settings["momentum"])
    if mu == 0:
        return -lr * g
    velocity = s.state["momentum"]
    if momentum_form == "keras":  # v = mu * v - lr * g, each step at its own rate
        velocity = mu * velocity - lr * g
        return mu * velocity - lr * g if s.settings["nesterov"] else velocity
    # PyTorch's buffer b = mu * b + g, stepped by the current rate. Keras's velocity is -lr * b
    # while the rate is constant, so the buffer before the step is -velocity / previous rate.
    buffer = mu * (-velocity / s.previous_learning_rate) + g
    return -lr * (g + mu * buffer) if s.settings["nesterov"] else -lr * buffer


def _rmsprop(s: Step, g: np.ndarray, epsilon_place: str) -> np.ndarray:
    rho, eps, settings = s.settings["rho"], s.settings["epsilon"], s.settings
    variance = rho * s.state["velocity"] + (1 - rho) * g * g
    if settings["centered"]:
        average = rho * s.state["average_gradient"] + (1 - rho) * g
        variance = variance - average * average
    if epsilon_place == "inside":
        root = np.sqrt(variance + eps)
    else:
        root = np.sqrt(np.maximum(variance, 0.0)) + eps
    increment = s.learning_rate * g / root
    if settings["momentum"] > 0:
        increment = settings["momentum"] * s.state["momentum"] + increment
    return -increment


def _adam(s: Step, g: np.ndarray, epsilon_place: str) -> np.ndarray:
    beta_1, beta_2, eps = s.settings["beta_1"], s.settings["beta_2"], s.settings["epsilon"]
    m = s.state["momentum"] + (g - s.state["momentum"]) * (1 - beta_1)
    v = s.state["velocity"] + (g * g - s.state["velocity"]) * (1 - beta_2)
    if s.settings["amsgrad"]:
        v = np.maximum(s.state["velocity_hat"], v)
    if epsilon_place == "hat":  # Keras: the bias corrections in the rate, epsilon on sqrt(v)
        b1, b2 = via_float32(beta_1), via_float32(beta_2)
        alpha = s.learning_rate * np.sqrt(1 - b2 ** s.t) / (1 - b1 ** s.t)
        return -m * alpha / (np.sqrt(v) + eps)
    b1, b2 = (beta_1, beta_2) if epsilon_place == "corrected" else (via_float32(beta_1),
                                                                     via_float32(beta_2))
    m_hat, v_hat = m / (1 - b1 ** s.t), v / (1 - b2 ** s.t)
    return -s.learning_rate * m_hat / (np.sqrt(v_hat) + eps)


def after(s: Step, *, l2_factor: float = 2.0, momentum_form: str = "keras",
          rmsprop_epsilon: str = "inside", adam_epsilon: str = "hat") -> np.ndarray:
    """The parameter after the step (w's shape, float64) as Keras computes it, or under the
    variant the keywords name: ``l2_factor`` 1.0 (the penalty's gradient l2 * w, with l2 as
    given), ``momentum_form`` "buffer" (PyTorch's), ``rmsprop_epsilon`` "outside" the root,
    ``adam_epsilon`` "corrected" (PyTorch's m_hat / (sqrt(v_hat) + eps)) or "corrected32" (the
    same with float32 betas)."""
    g = s.g
    if s.l2 is not None:
        l2 = via_float32(s.l2) if l2_factor == 2.0 else s.l2
        g = g + l2_factor * l2 * s.w
    decay = s.settings["weight_decay"]
    w = s.w if decay is None else s.w - s.w * via_float32(decay) * s.learning_rate
    name = s.settings["name"]
    if name == "SGD":
        return w + _sgd(s, g, momentum_form)
    if name == "RMSprop":
        return w + _rmsprop(s, g, rmsprop_epsilon)
    return w + _adam(s, g, adam_epsilon)


def _step(case: Case) -> Step:
    return case.settings["step"]


@convention("adam_epsilon", kinds=(KIND,), keys=(KEY,),
            variant="Adam's epsilon added to the bias-corrected root, `lr * m_hat / "
                    "(sqrt(v_hat) + eps)` (PyTorch, the paper's Algorithm 1), instead of Keras's "
                    "epsilon hat, `lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + "
                    "eps)`",
            detection="the parameter after the step recomputed with that placement from Keras's "
                      "moments before the step (betas as given, or rounded to float32)")
def adam_epsilon(case: Case):
    s = _step(case)
    if s.settings["name"] not in ("Adam", "AdamW"):
        return
    for place, betas in (("corrected", "as given"), ("corrected32", "rounded to float32")):
        yield Variant(f"Adam's epsilon {s.settings['epsilon']:g} is added to the bias-corrected "
                      f"root, lr * m_hat / (sqrt(v_hat) + eps) (PyTorch; betas {betas}), instead "
                      f"of Keras's epsilon hat, lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / "
                      f"(sqrt(v) + eps)", after(s, adam_epsilon=place))


@convention("rmsprop_epsilon", kinds=(KIND,), keys=(KEY,),
            variant="RMSprop's epsilon outside the square root, `g / (sqrt(s) + eps)` "
                    "(PyTorch, Keras 2), instead of Keras 3's `g / sqrt(s + eps)`",
            detection="the parameter after the step recomputed with epsilon outside the root "
                      "from Keras's velocity before the step")
def rmsprop_epsilon(case: Case):
    s = _step(case)
    if s.settings["name"] == "RMSprop":
        yield Variant(f"RMSprop's epsilon {s.settings['epsilon']:g} is added outside the square "
                      f"root, g / (sqrt(s) + eps) (PyTorch, Keras 2), instead of Keras 3's "
                      f"g / sqrt(s + eps)", after(s, rmsprop_epsilon="outside"))


@convention("momentum_form", kinds=(KIND,), keys=(KEY,),
            variant="SGD momentum as PyTorch's buffer, `b = mu * b + g; w -= lr * b` "
                    "(Nesterov: `w -= lr * (g + mu * b)`), instead of Keras's velocity `v = mu * "
                    "v - lr * g; w += v`: equal at a constant rate, they part at the first step "
                    "after the rate changes",
            detection="the parameter after the step recomputed with the buffer `-v / "
                      "previous_rate` taken from Keras's velocity before the step")
def momentum_form(case: Case):
    s = _step(case)
    if s.settings["name"] == "SGD" and s.settings["momentum"] != 0:
        yield Variant(f"the momentum is PyTorch's buffer b = mu * b + g with w -= lr * b, so the "
                      f"change of the learning rate from {s.previous_learning_rate:g} to "
                      f"{s.learning_rate:g} rescales every past step (Keras's velocity v = mu * v "
                      f"- lr * g keeps each step at its own rate)",
                      after(s, momentum_form="buffer"))


@convention("l2_factor", kinds=(KIND,), keys=(KEY,),
            variant="the L2 penalty's gradient `l2 * w` (the textbook penalty `l2 / 2 * "
                    "sum(w**2)`) instead of Keras's `2 * l2 * w` for `L2(l2)` (the penalty `l2 * "
                    "sum(w**2)`)",
            detection="the parameter after the step recomputed by Keras's rule from the gradient "
                      "with `l2 * w` in place of `2 * l2 * w`")
def l2_factor(case: Case):
    s = _step(case)
    if s.l2:
        yield Variant(f"the L2 penalty's gradient is l2 * w (the textbook penalty l2 / 2 * "
                      f"sum(w**2)) instead of Keras's 2 * l2 * w for L2({s.l2:g})",
                      after(s, l2_factor=1.0))


def update_conventions() -> list[str]:
    """The ids of the catalog's optimizer conventions, in registry order."""
    return [c.id for c in CONVENTIONS.values() if KIND in c.kinds]


def _arrays(name: str, values: dict, keys) -> dict:
    if not isinstance(values, dict) or values.keys() != keys:
        got = sorted(values) if isinstance(values, dict) else type(values).__name__
        raise ValueError(f"explain_update: expected {name} keyed like before {sorted(keys)}, "
                         f"received {got}.")
    return {key: np.asarray(value, np.float64) for key, value in values.items()}


def _slots(settings: dict, state: dict, key: str, w: np.ndarray, step: int) -> dict:
    """Keras's optimizer slots of parameter ``key`` before the step, float64 (zeros at step 1
    where the state has none)."""
    slots = {}
    for slot in slots_of(settings):
        if key in state.get(slot, {}):
            slots[slot] = np.asarray(state[slot][key], np.float64)
        elif step == 1:
            slots[slot] = np.zeros_like(w)
        else:
            raise ValueError(f"explain_update: {settings['name']} at step {step} needs "
                             f"Keras's state '{slot}' of '{key}', received slots "
                             f"{sorted(state)}.")
    return slots


def explain_update(optimizer, before: dict, grads: dict, state: dict | None, update: dict,
                   keras_update: dict, *, step: int, learning_rate: float | None = None,
                   previous_learning_rate: float | None = None, penalties: dict | None = None,
                   tolerance: float | None = None) -> Cause | None:
    """The convention that turns Keras's step into the user's, or None.

    Every parameter whose value after the user's step (``before + update``) differs from Keras's
    (``before + keras_update``) by more than the tolerance is a case; each is tried against
    every optimizer convention of the catalog (``find_cause``). A cause is named only when every
    such parameter is explained by the same convention; its residual is the largest of theirs.

    Args:
        optimizer: the optimizer's settings: a ``scratch.optim`` optimizer (its class name and
            ``get_config()``) or a dict {"name": "SGD" | "RMSprop" | "Adam" | "AdamW",
            "learning_rate": ..., and Keras's names of the rest}.
        before: key -> the parameter before the step (any shape); Keras's, where they differ.
        grads: key -> the gradient of the loss without the weight penalties at ``before``, as
            Keras computes it (before's shapes).
        state: slot ("momentum", "velocity", ...) -> key -> Keras's optimizer state before the
            step (before's shapes); None or missing slots at step 1 (zeros).
        update: key -> the user's step, parameter after minus parameter before.
        keras_update: key -> Keras's step from the same weights, gradient and state.
        step: the step's number, 1-based (Keras's ``iterations + 1``).
        learning_rate: the rate of this step (default: the settings' learning_rate).
        previous_learning_rate: the rate of the steps before (default: this step's).
        penalties: key -> the factor l2 of the parameter's ``L2`` penalty (none by default).
        tolerance: relative L2 and scaled max abs bound (default: the dtype's trajectory one).

    Returns:
        Cause(id, detail, residual), or None when no parameter fails or no convention explains
        all that do.

    Raises:
        ValueError: mismatched keys, missing state, or Keras's step recomputed from the inputs
            does not give ``keras_update`` (the state or gradients are not Keras's).
    """
    settings = optimizer_settings(optimizer)
    keys = before.keys()
    dtype = np.result_type(*before.values())
    w_all, g_all = _arrays("before", before, keys), _arrays("grads", grads, keys)
    mine_all, keras_all = _arrays("update", update, keys), _arrays("keras_update", keras_update,
                                                                   keys)
    state = state or {}
    tol = tolerances(dtype).trajectory if tolerance is None else tolerance
    rate = float(settings["learning_rate"] if learning_rate is None else learning_rate)
    previous = rate if previous_learning_rate is None else float(previous_learning_rate)
    causes = {}
    for key in keys:
        w = w_all[key]
        mine, reference = w + mine_all[key], w + keras_all[key]
        if error(mine, reference) <= tol:
            continue
        s = Step(settings, w, g_all[key], _slots(settings, state, key, w, step), step, rate,
                 previous, (penalties or {}).get(key))
        keras_error = error(after(s), reference)
        if keras_error > tol:
            raise ValueError(f"explain_update: Keras's step of '{key}' recomputed from before, "
                             f"grads and state differs from keras_update by {keras_error:.1e} "
                             f"(tolerance {tol:.0e}): grads must be Keras's gradient without "
                             f"penalties and state Keras's before step {step}.")
        case = Case(KIND, KEY, "step", mine, reference, w, s.g, np.dtype(dtype), tol,
                    settings={"step": s}, name=key)
        causes[key] = find_cause(case)
    found = list(causes.values())
    if not found or any(c is None for c in found) or len({c.id for c in found}) > 1:
        return None
    worst = max(found, key=lambda c: c.residual)
    if len(keys) == 1:
        return worst
    which = (f"all {len(keys)} parameters" if len(found) == len(keys) else
             f"{len(found)} of {len(keys)} parameters: {', '.join(causes)}")
    return worst._replace(detail=f"{worst.detail} ({which})")


def update_clause(cause: Cause | None) -> str:
    """"it matches TensorFlow to 3e-16 when ... (cause: <id>)", or "no known convention
    explains it (tried: ...)"."""
    return cause_clause(cause, update_conventions())
