"""Update rules as Keras 3 computes them: SGD (with momentum and Nesterov), RMSprop, Adam, AdamW.

Every optimizer takes Keras's argument names and defaults and repeats, operation for operation
and in the parameter's dtype, what ``keras.optimizers.<Name>.update_step`` does, so the two
trajectories differ by the rounding of the gradients alone (``docs/optimizers.md`` gives the
rules and the conventions of other libraries that differ). The learning rate may be changed
between steps (``optimizer.learning_rate = 0.01``), as in Keras. The state (momentum, velocity,
...) lives in ``optimizer.state[slot][key]``, keyed like the params, created as zeros by the
first ``step``.

    optimizer = Adam(learning_rate=1e-3)
    for x, y in batches:
        loss, grads = model.loss_and_grads(x, y)
        optimizer.step(model.params, grads)
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _check_real(owner: str, name: str, value, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number in the interval, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        inside = False
    else:
        inside = ((value > low if low_open else value >= low)
                  and (value < high if high_open else value <= high))
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{owner}: expected {name} to be a finite number in {interval}, "
                         f"received {name}={value!r}.")
    return float(value)


def keras_cast(value: float, dtype: np.dtype) -> np.floating:
    """A Python-float hyper-parameter as Keras's TensorFlow backend casts it to a variable's dtype
    (``ops.cast(momentum, variable.dtype)``, ``tf.cast(weight_decay, ...)``).

    TensorFlow makes a Python float a float32 tensor before the cast, so for float64 variables
    the value is rounded to float32 first (0.9 -> 0.8999999761581421); a no-op for float32.
    """
    return np.dtype(dtype).type(np.float32(value))


class Optimizer:
    """Base class: the learning rate, Keras's decoupled weight decay, the step count and the state.

    A subclass names its state arrays in ``slots`` (Keras's names for its optimizer variables)
    and implements ``update_step``; ``step`` applies the weight decay and then ``update_step``
    to every parameter, as Keras's ``apply`` does.

    Attributes:
        learning_rate: a positive float; may be set between steps.
        weight_decay: None, or the factor of Keras's decoupled decay: before the update,
            ``param -= param * weight_decay * learning_rate`` for every parameter.
        iterations: the number of steps taken (Keras's ``optimizer.iterations``).
        state: slot name -> {param key -> array of the param's shape and dtype}.
    """

    slots: tuple[str, ...] = ()

    def __init__(self, learning_rate: float, weight_decay: float | None = None):
        self.learning_rate = learning_rate
        self.weight_decay = (None if weight_decay is None else
                             _check_real(self.owner, "weight_decay", weight_decay, 0, math.inf,
                                         high_open=True))
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    @property
    def owner(self) -> str:
        return type(self).__name__

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                math.isfinite(value) and value > 0):
            raise ValueError(f"{self.owner}: expected a positive finite learning rate, received "
                             f"learning_rate={value!r}.")
        self._learning_rate = float(value)

    def get_config(self) -> dict:
        """The keyword arguments of the Keras optimizer of the same name and settings."""
        return {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay}

    def step(self, params: dict, grads: dict) -> None:
        """Update every array of ``params`` in place with the gradient of the same key.

        Args:
            params: key -> array, e.g. ``Sequential.params``; the same keys at every step.
            grads: key -> dL/d(param), the shapes of ``params``.
        """
        if params.keys() != grads.keys():
            raise ValueError(f"{self.owner}: params and grads must have the same keys, received "
                             f"{sorted(params)} and {sorted(grads)}.")
        if self.slots and not self.state:
            self.state = {slot: {key: np.zeros_like(value) for key, value in params.items()}
                          for slot in self.slots}
        if self.state and params.keys() != self.state[self.slots[0]].keys():
            raise ValueError(f"{self.owner}: the state was created for the params "
                             f"{sorted(self.state[self.slots[0]])}, received {sorted(params)}.")
        for key, param in params.items():
            learning_rate = param.dtype.type(self.learning_rate)
            if self.weight_decay is not None:
                param -= param * keras_cast(self.weight_decay, param.dtype) * learning_rate
            self.update_step(param, grads[key], learning_rate,
                             {slot: self.state[slot][key] for slot in self.slots})
        self.iterations += 1

    def update_step(self, param: np.ndarray, grad: np.ndarray, learning_rate: np.floating,
                    state: dict[str, np.ndarray]) -> None:
        """Update one parameter in place (Keras's ``update_step``).

        Args:
            param: the parameter, any shape; grad: its gradient, same shape.
            learning_rate: the learning rate in the parameter's dtype.
            state: slot name -> this parameter's state array (same shape), updated in place.
        """
        raise NotImplementedError


class SGD(Optimizer):
    """Gradient descent, with Keras's momentum (``velocity = momentum * velocity - lr * g``).

    momentum 0: ``param -= g * lr``. Otherwise ``velocity = velocity * momentum - g * lr``, then
    ``param += velocity``; with ``nesterov=True``, ``param += velocity * momentum - g * lr``.
    The velocity holds the learning rate of each past step, so a change of the learning rate
    acts on new gradients only (the form ``b = momentum * b + g; param -= lr * b`` scales the
    whole history by the new rate; both agree at a constant rate).
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float | None = None):
        super().__init__(learning_rate, weight_decay)
        self.momentum = _check_real(self.owner, "momentum", momentum, 0, 1)
        if not isinstance(nesterov, bool):
            raise ValueError(f"SGD: expected nesterov to be True or False, received "
                             f"nesterov={nesterov!r}.")
        self.nesterov = nesterov
        self.slots = ("momentum",) if self.momentum != 0 else ()

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def update_step(self, param, grad, learning_rate, state):
        if not self.slots:
            param -= learning_rate * grad
            return
        velocity, momentum = state["momentum"], keras_cast(self.momentum, param.dtype)
        velocity *= momentum
        velocity -= grad * learning_rate
        if self.nesterov:
            param += velocity * momentum - grad * learning_rate
        else:
            param += velocity


class RMSprop(Optimizer):
    """RMSprop as Keras 3 computes it: epsilon inside the square root.

    ``velocity = rho * velocity + (1 - rho) * g**2`` (from 0), ``increment = lr * g /
    sqrt(velocity + epsilon)``; centered: ``average = rho * average + (1 - rho) * g`` and the
    root of ``velocity - average**2 + epsilon``. With momentum > 0, ``buffer = momentum * buffer +
    increment`` and ``param -= buffer``; otherwise ``param -= increment``.
    """

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False,
                 weight_decay: float | None = None):
        super().__init__(learning_rate, weight_decay)
        self.rho = _check_real(self.owner, "rho", rho, 0, 1)
        self.momentum = _check_real(self.owner, "momentum", momentum, 0, 1)
        self.epsilon = _check_real(self.owner, "epsilon", epsilon, 0, math.inf, high_open=True)
        if not isinstance(centered, bool):
            raise ValueError(f"RMSprop: expected centered to be True or False, received "
                             f"centered={centered!r}.")
        self.centered = centered
        self.slots = (("velocity",) + (("momentum",) if self.momentum > 0 else ())
                      + (("average_gradient",) if centered else ()))

    def get_config(self) -> dict:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}

    def update_step(self, param, grad, learning_rate, state):
        real = param.dtype.type
        rho, keep = real(self.rho), real(1 - self.rho)
        velocity = state["velocity"]
        velocity[...] = rho * velocity + keep * np.square(grad)
        if self.centered:
            average = state["average_gradient"]
            average[...] = rho * average + keep * grad
            denominator = velocity - np.square(average) + real(self.epsilon)
        else:
            denominator = velocity + real(self.epsilon)
        increment = learning_rate * grad / np.sqrt(denominator)
        if self.momentum > 0:
            buffer = state["momentum"]
            buffer[...] = real(self.momentum) * buffer + increment
            param -= buffer
        else:
            param -= increment


class Adam(Optimizer):
    """Adam as Keras computes it: epsilon is the paper's "epsilon hat".

    At step t (1-based): ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``,
    ``m += (g - m) * (1 - beta_1)``, ``v += (g**2 - v) * (1 - beta_2)`` (both from 0), then
    ``param -= m * alpha / (sqrt(v) + epsilon)``. The bias corrections sit in ``alpha``, outside
    epsilon, not in ``m_hat / (sqrt(v_hat) + epsilon)`` (PyTorch, Algorithm 1 of the paper).
    ``amsgrad=True`` divides by the running maximum of v instead.
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False,
                 weight_decay: float | None = None):
        super().__init__(learning_rate, weight_decay)
        self.beta_1 = _check_real(self.owner, "beta_1", beta_1, 0, 1, high_open=True)
        self.beta_2 = _check_real(self.owner, "beta_2", beta_2, 0, 1, high_open=True)
        self.epsilon = _check_real(self.owner, "epsilon", epsilon, 0, math.inf, high_open=True)
        if not isinstance(amsgrad, bool):
            raise ValueError(f"{self.owner}: expected amsgrad to be True or False, received "
                             f"amsgrad={amsgrad!r}.")
        self.amsgrad = amsgrad
        self.slots = ("momentum", "velocity") + (("velocity_hat",) if amsgrad else ())

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}

    def update_step(self, param, grad, learning_rate, state):
        real = param.dtype.type
        step = real(self.iterations + 1)
        one = real(1)
        beta_1, beta_2 = keras_cast(self.beta_1, param.dtype), keras_cast(self.beta_2, param.dtype)
        alpha = learning_rate * np.sqrt(one - beta_2 ** step) / (one - beta_1 ** step)
        m, v = state["momentum"], state["velocity"]
        m += (grad - m) * real(1 - self.beta_1)
        v += (np.square(grad) - v) * real(1 - self.beta_2)
        if self.amsgrad:
            np.maximum(state["velocity_hat"], v, out=state["velocity_hat"])
            v = state["velocity_hat"]
        param -= m * alpha / (np.sqrt(v) + real(self.epsilon))


class AdamW(Adam):
    """Adam with Keras's decoupled weight decay (``weight_decay`` required, default 0.004): each
    step first does ``param -= param * weight_decay * lr``, then the Adam update."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False):
        if weight_decay is None:
            raise ValueError("AdamW: expected weight_decay to be a number, received "
                             "weight_decay=None (use Adam for no decay).")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)
