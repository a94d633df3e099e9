"""Central-difference gradient checks in float64: a third opinion that needs no framework.

``check_layer_gradients`` checks one layer's input and parameter gradients through the scalar
``sum(forward(x) * upstream)``; ``check_model_gradients`` checks every parameter gradient of a
model's mean softmax cross-entropy. Both compute in float64 on a copy, so the argument (its
parameters, gradients and cache) is never modified, and a float32 layer can be checked too.
A layer's input gradient perturbs one position of every example at once (``numerical_batch_grad``),
except for layers whose outputs mix the examples (``Layer.mixes_examples``: batch normalization),
where every element is perturbed on its own. The passes are training-mode passes, as the
analytic gradients are: batch statistics, and each Dropout's mask drawn once and then replayed.

The error measure of one quantity (``GradCheckResult.rel_error``) is

    max|analytic - numerical| / max(max|analytic|, max|numerical|, tiny)

over the checked elements: one number per tensor, scale-free, and not blown up by individual
entries near zero (an elementwise ratio would be). For piecewise-linear layers the central
difference is exact up to rounding, so away from kinks (ReLU at 0, max-pool ties) float64 gives
about 1e-10; across a kink it can be wrong by O(1), which is why inputs need a margin from kinks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np

from scratch import ops
from scratch.layers import Dropout, Layer, replaying_masks
from scratch.models import Sequential

DEFAULT_EPS = 1e-6
DEFAULT_RTOL = 1e-7
_TINY = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class GradCheckResult:
    """Analytic against numerical gradient of one quantity (e.g. "input", "conv1/kernel").

    analytic, numerical: arrays of the quantity's shape; ``numerical`` is NaN where it was not
    evaluated (see ``max_elements``), and those elements are left out of every error.
    """

    name: str
    analytic: np.ndarray
    numerical: np.ndarray
    max_abs_error: float
    rel_error: float
    worst_index: tuple
    analytic_at_worst: float
    numerical_at_worst: float
    checked: int  # number of elements compared

    def passed(self, rtol: float = DEFAULT_RTOL) -> bool:
        return self.rel_error < rtol

    def __str__(self) -> str:
        return (f"{self.name}: max abs error {self.max_abs_error:.3e}, rel error "
                f"{self.rel_error:.3e} at index {self.worst_index}: analytic "
                f"{self.analytic_at_worst!r}, numerical {self.numerical_at_worst!r} "
                f"({self.checked} of {self.analytic.size} elements checked)")


def compare(name: str, analytic: np.ndarray, numerical: np.ndarray) -> GradCheckResult:
    """Errors of ``analytic`` against ``numerical`` (same shape) over the non-NaN numerical
    entries."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numerical = np.asarray(numerical, dtype=np.float64)
    if analytic.shape != numerical.shape:
        raise ValueError(f"compare '{name}': analytic shape {analytic.shape} differs from "
                         f"numerical shape {numerical.shape}.")
    mask = ~np.isnan(numerical)
    if not mask.any():
        raise ValueError(f"compare '{name}': no numerical gradient entries to compare.")
    # A NaN/inf analytic gradient must fail, so map it to an infinite error, never to NaN.
    diff = np.where(mask, np.abs(analytic - np.where(mask, numerical, 0.0)), 0.0)
    diff = np.where(mask & ~np.isfinite(diff), np.inf, diff)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    max_abs = float(diff[worst])
    scale = max(float(np.abs(analytic[mask]).max()), float(np.abs(numerical[mask]).max()), _TINY)
    rel = max_abs / scale if np.isfinite(scale) else np.inf
    return GradCheckResult(
        name=name, analytic=analytic, numerical=numerical, max_abs_error=max_abs,
        rel_error=float(rel), worst_index=tuple(int(i) for i in worst),
        analytic_at_worst=float(analytic[worst]), numerical_at_worst=float(numerical[worst]),
        checked=int(mask.sum()),
    )


def _chosen_elements(size: int, max_elements: int | None, rng: np.random.Generator) -> np.ndarray:
    """Flat indices to perturb: all of them, or ``max_elements`` drawn without replacement."""
    if max_elements is None or max_elements >= size:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_elements, replace=False))


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = DEFAULT_EPS,
                   max_elements: int | None = None, seed: int = 0) -> np.ndarray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for each element i.

    Args:
        f: scalar function of ``x``; it is called with ``x`` itself, perturbed in place one
            element at a time (so ``x`` may be an array that ``f`` reads through a closure).
        x: float64 array of any shape, writable; restored bit for bit afterwards.
        eps: the step.
        max_elements: check only this many elements, drawn with ``seed``; None checks all.

    Returns:
        float64 array of x's shape; NaN at elements that were not evaluated.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError("numerical_grad: expected x to be a float64 numpy array, received "
                        f"{getattr(x, 'dtype', type(x).__name__)}; float32 steps are too coarse.")
    grad = np.full(x.shape, np.nan)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat_x, x):
        raise ValueError("numerical_grad: x must be contiguous (it is perturbed in place).")
    for i in _chosen_elements(x.size, max_elements, np.random.default_rng(seed)):
        original = flat_x[i]
        flat_x[i] = original + eps
        f_plus = f(x)
        flat_x[i] = original - eps
        f_minus = f(x)
        flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def numerical_batch_grad(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                         eps: float = DEFAULT_EPS, max_elements: int | None = None,
                         seed: int = 0) -> np.ndarray:
    """``numerical_grad`` of ``sum(f(x))`` when example n's value depends on ``x[n]`` only.

    Element j of every example is perturbed at once, so a batch of N costs as much as one
    example. That holds for every layer whose ``mixes_examples`` is False (not for batch
    normalization in training mode).

    Args:
        f: per-example values (N,) of a batch ``x``; called with ``x`` perturbed in place.
        x: float64 array (N, ...), writable; restored bit for bit afterwards.
        eps: the step.
        max_elements: check only this many per-example positions, drawn with ``seed``.

    Returns:
        float64 array of x's shape; NaN at positions that were not evaluated.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64 or x.ndim < 1:
        raise TypeError("numerical_batch_grad: expected x to be a float64 numpy array (N, ...), "
                        f"received {getattr(x, 'dtype', type(x).__name__)}.")
    n = x.shape[0]
    grad = np.full(x.shape, np.nan)
    rows, flat_grad = x.reshape(n, -1), grad.reshape(n, -1)
    if not np.shares_memory(rows, x):
        raise ValueError("numerical_batch_grad: x must be contiguous (it is perturbed in place).")
    for j in _chosen_elements(rows.shape[1], max_elements, np.random.default_rng(seed)):
        original = rows[:, j].copy()
        rows[:, j] = original + eps
        f_plus = np.asarray(f(x))
        rows[:, j] = original - eps
        f_minus = np.asarray(f(x))
        rows[:, j] = original
        flat_grad[:, j] = (f_plus - f_minus) / (2 * eps)
    return grad


def float64_copy(layer: Layer) -> Layer:
    """A float64 copy of a built layer with its own parameter, gradient and state arrays (and,
    for a Dropout, its own copy of the mask generator and the last mask)."""
    if not layer.built:
        raise ValueError(f"{layer.owner}: build the layer before checking its gradients.")
    clone = copy.copy(layer)
    clone.dtype = np.dtype(np.float64)
    clone.params = {key: value.astype(np.float64) for key, value in layer.params.items()}
    clone.grads = {key: np.zeros_like(value) for key, value in clone.params.items()}
    clone.state = {key: value.astype(np.float64) for key, value in layer.state.items()}
    if isinstance(layer, Dropout):
        clone.generator = copy.deepcopy(layer.generator)
    return clone


def check_layer_gradients(layer: Layer, x: np.ndarray, upstream: np.ndarray | None = None,
                          eps: float = DEFAULT_EPS, max_elements: int | None = None,
                          seed: int = 0) -> dict[str, GradCheckResult]:
    """Check dL/dx and dL/d(param) of one layer for ``L = sum(forward(x) * upstream)``.

    The first forward pass is a training pass (a Dropout copy draws its mask there, from a copy
    of the layer's generator) and every perturbed pass repeats it with the same mask.

    Args:
        layer: a built layer of any float dtype; checked on a float64 copy.
        x: input batch (N, *layer.input_shape), cast to float64 (integer indices of an
            Embedding stay as they are, and only its parameters are checked).
        upstream: dL/dy of the output's shape; None draws standard normals with ``seed``.
        eps, max_elements, seed: see ``numerical_grad`` (applied per quantity).

    Returns:
        {"input": ..., "kernel": ..., "bias": ...} (parameter keys as in ``layer.params``).
    """
    clone = float64_copy(layer)
    indices = clone.takes_indices  # integer inputs (Embedding): parameters only
    x = np.array(x, dtype=None if indices else np.float64)  # a private copy: perturbed in place
    y = clone.forward(x)
    if upstream is None:
        upstream = np.random.default_rng(seed).standard_normal(y.shape)
    upstream = np.asarray(upstream, dtype=np.float64)
    input_grad = clone.backward(upstream)
    analytic = {} if indices else {"input": input_grad}
    analytic.update({key: value.copy() for key, value in clone.grads.items()})

    def per_example(_: np.ndarray) -> np.ndarray:
        return np.sum((clone.forward(x) * upstream).reshape(len(x), -1), axis=1)

    def objective(_: np.ndarray) -> float:
        return float(np.sum(per_example(x)))

    with replaying_masks([clone]):
        numerical = {} if indices else {
            "input": numerical_grad(objective, x, eps, max_elements, seed)
            if clone.mixes_examples else
            numerical_batch_grad(per_example, x, eps, max_elements, seed)}
        numerical.update({key: numerical_grad(objective, value, eps, max_elements, seed)
                          for key, value in clone.params.items()})
    return {name: compare(name, analytic[name], numerical[name]) for name in analytic}


def float64_model_copy(model: Sequential) -> Sequential:
    """A float64 copy of a model whose layers own new parameter arrays."""
    clone = copy.copy(model)
    clone.dtype = np.dtype(np.float64)
    clone.layers = [float64_copy(layer) for layer in model.layers]
    clone.params = {f"{layer.name}/{key}": value
                    for layer in clone.layers for key, value in layer.params.items()}
    clone.state = {f"{layer.name}/{key}": value
                   for layer in clone.layers for key, value in layer.state.items()}
    return clone


def check_model_gradients(model: Sequential, x: np.ndarray, y: np.ndarray,
                          eps: float = DEFAULT_EPS, max_elements: int | None = None,
                          seed: int = 0) -> dict[str, GradCheckResult]:
    """Check every parameter gradient of the model's loss on (x, y): the mean softmax
    cross-entropy plus the weight penalties (``Sequential.regularization_loss``).

    The loss is that of a training step (``loss_and_grads``): its forward pass through the
    model's units, batch statistics included, each Dropout's mask drawn once and replayed.

    Args:
        model: any float dtype; checked on a float64 copy.
        x: inputs (N, *model.input_shape), cast to float64 unless integer indices (an
            Embedding first); y: integer labels (N,). Masks as in ``loss_and_grads``.
        eps, max_elements, seed: see ``numerical_grad`` (applied per parameter).

    Returns:
        {param key: result}, keys as in ``model.params`` (e.g. "conv1/kernel").
    """
    clone = float64_model_copy(model)
    x = np.asarray(x, dtype=None if clone.layers[0].takes_indices else np.float64)
    analytic = {key: value.copy() for key, value in clone.loss_and_grads(x, y)[1].items()}

    def loss(_: np.ndarray) -> float:
        h = x
        for unit in clone.units:
            h = unit.call(h)
        return ops.softmax_cross_entropy(h, y)[0] + clone.regularization_loss()

    with replaying_masks(clone.layers):
        return {key: compare(key, analytic[key],
                             numerical_grad(loss, clone.params[key], eps, max_elements, seed))
                for key in analytic}


def assert_gradients_match(results: dict[str, GradCheckResult], rtol: float = DEFAULT_RTOL) -> None:
    """Raise AssertionError listing every quantity whose relative error is not below ``rtol``."""
    failures = [str(result) for result in results.values() if not result.passed(rtol)]
    if failures:
        raise AssertionError(f"gradient check failed (rtol {rtol:g}):\n" + "\n".join(failures))
