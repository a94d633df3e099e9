"""How far apart two runs' weights are during training, from a fixed random projection of all
their parameters that every run records at each evaluation.

The projection ``P`` maps the D parameters of a model to ``PROJECTION_DIM`` = K numbers:
``P w = sum over tensors t of G_t @ w_t.ravel()``, with ``G_t`` a (K, size of t) matrix of
independent N(0, 1/K) entries (Gaussian directions divided by sqrt(K)), so that
E ||P v||^2 = ||v||^2 for any vector v (Johnson-Lindenstrauss: relative distances are kept to a
few percent at K = 256). ``G_t`` is drawn from a seed that depends only on the model's name, the
tensor's key and its shape, never on the run's seed: both implementations and every seed of a
model project with the same ``P``, so the distance between any two of its runs at the same
evaluation is ``||P w_a - P w_b|| / ||P w_b||``. Computed in float64 with a fixed summation order
(no BLAS), so identical weights give exactly identical projections.
"""

from __future__ import annotations

import hashlib

import numpy as np

from reports.experiments import PROJECTION_DIM


def projection_seed(model: str, key: str, shape: tuple) -> int:
    """The seed of the projection block of parameter ``key`` (of ``shape``) of ``model``."""
    text = f"{model}|{key}|{tuple(int(n) for n in shape)}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


class WeightProjection:
    """``P``: a model's parameters (dict key -> array) -> (PROJECTION_DIM,) float64.

    Args:
        model: the model's name (e.g. "cnn"), part of every block's seed.
        shapes: parameter key -> shape, keyed like ``scratch.models.Sequential.params``.
        dim: K, the number of projected coordinates.
    """

    def __init__(self, model: str, shapes: dict[str, tuple], dim: int = PROJECTION_DIM):
        self.dim = dim
        self.blocks = {
            key: np.random.default_rng(projection_seed(model, key, shape)).standard_normal(
                (dim, int(np.prod(shape)))) / np.sqrt(dim)
            for key, shape in sorted(shapes.items())}

    def __call__(self, params: dict) -> np.ndarray:
        """``P w`` (K,) float64 of ``params`` (same keys and sizes as the shapes given)."""
        if set(params) != set(self.blocks):
            raise ValueError(f"WeightProjection: expected parameters {sorted(self.blocks)}, "
                             f"received {sorted(params)}.")
        total = np.zeros(self.dim)
        for key, block in self.blocks.items():
            # einsum without optimize runs NumPy's own loop: the same order on every call.
            total += np.einsum("kn,n->k", block, np.asarray(params[key], np.float64).ravel())
        return total


def relative_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a - b|| / ||b||`` row by row of two (E, K) arrays of projections -> (E,); NaN where a
    row of either holds a missing (NaN) value."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(all="ignore"):
        return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
