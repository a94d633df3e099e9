"""Keras's Glorot-uniform initializer, with its fan rules."""

from __future__ import annotations

import numpy as np


def glorot_uniform(shape: tuple, rng: np.random.Generator, dtype) -> np.ndarray:
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)).

    Fans as Keras computes them: a dense kernel (in, out) has fan_in = in, fan_out = out; a conv
    kernel (kh, kw, c_in, c_out) has fan_in = kh*kw*c_in, fan_out = kh*kw*c_out. Values are drawn in
    float64 and rounded once to ``dtype``, so float32 and float64 models of one seed agree.
    """
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(shape: tuple, rng: np.random.Generator, dtype) -> np.ndarray:
    """Keras's orthogonal initializer (gain 1) for a 2-D shape (rows, cols), the recurrent
    kernels' default: the Q of a QR decomposition of a standard normal (max, min) matrix, its
    columns' signs fixed by R's diagonal, transposed when rows < cols (orthonormal rows then)."""
    rows, cols = shape
    normal = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(normal)
    q *= np.sign(np.diag(r))
    return np.ascontiguousarray(q.T if rows < cols else q, dtype=dtype)
