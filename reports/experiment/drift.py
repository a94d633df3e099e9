"""How far apart two runs' weights are during training, from a fixed random projection of all
their parameters that every run records at each evaluation.

The projection ``P`` maps the D parameters of a model to ``PROJECTION_DIM`` = K numbers with a
sparse Johnson-Lindenstrauss embedding: each parameter is added, times a random sign divided by
sqrt(h), to h = ``PROJECTION_HITS`` randomly drawn of the K coordinates (a repeated
CountSketch). Then E ||P v||^2 = ||v||^2 for any vector v, so ``||P w_a - P w_b|| / ||P w_b||``
estimates the relative distance of two runs' weights (to a few percent at K = 256 for weights
spread over many parameters), at a cost of h * D additions per evaluation and 2 * h * D numbers
of memory; a dense Gaussian P would cost 256 * D of each (55 MB for mlp2). The coordinates and
signs of a tensor are drawn from a seed that depends only on the model's name, the tensor's key
and its shape, never on the run's seed: both implementations and every seed of a model project
with the same ``P``. Computed in float64 with ``np.bincount`` (a fixed summation order, no
BLAS), so identical weights give exactly identical projections.
"""

from __future__ import annotations

import hashlib

import numpy as np

from reports.experiment.protocol import PROJECTION_DIM, PROJECTION_HITS


def projection_seed(model: str, key: str, shape: tuple) -> int:
    """The seed of the projection block of parameter ``key`` (of ``shape``) of ``model``."""
    text = f"{model}|{key}|{tuple(int(n) for n in shape)}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


class WeightProjection:
    """``P``: a model's parameters (dict key -> array) -> (PROJECTION_DIM,) float64.

    Args:
        model: the model's name (e.g. "cnn"), part of every tensor's seed.
        shapes: parameter key -> shape, keyed like ``scratch.models.Sequential.params``.
        dim: K, the number of projected coordinates.
    """

    def __init__(self, model: str, shapes: dict[str, tuple], dim: int = PROJECTION_DIM):
        self.dim = dim
        self.buckets, self.signs = {}, {}
        for key, shape in sorted(shapes.items()):
            rng = np.random.default_rng(projection_seed(model, key, shape))
            size = int(np.prod(shape))
            self.buckets[key] = rng.integers(0, dim, (PROJECTION_HITS, size)).ravel()
            signs = rng.integers(0, 2, (PROJECTION_HITS, size)) * 2.0 - 1.0
            self.signs[key] = signs / np.sqrt(PROJECTION_HITS)

    def __call__(self, params: dict) -> np.ndarray:
        """``P w`` (K,) float64 of ``params`` (same keys and sizes as the shapes given)."""
        if set(params) != set(self.buckets):
            raise ValueError(f"WeightProjection: expected parameters {sorted(self.buckets)}, "
                             f"received {sorted(params)}.")
        total = np.zeros(self.dim)
        for key, buckets in self.buckets.items():
            values = self.signs[key] * np.asarray(params[key], np.float64).ravel()
            total += np.bincount(buckets, weights=values.ravel(), minlength=self.dim)
        return total


def relative_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a - b|| / ||b||`` row by row of two (E, K) arrays of projections -> (E,); NaN where a
    row of either holds a missing (NaN) value."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(all="ignore"):
        return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
