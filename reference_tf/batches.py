"""The seeded batches that ``check`` and ``diff`` compare on (NumPy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np

from scratch.data.synthetic import strokes

DATA_SOURCES = ("strokes", "mnist")


def load_batch(data: str, batch_size: int, seed: int, dtype: str,
               verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch: images (N, 28, 28, 1) of ``dtype`` and labels (N,) int64.

    "strokes": digit-like images on exact zeros with uniform random labels
    (``scratch.data.synthetic.strokes``); their zero regions give max-pool ties and exact-zero
    pre-activations, where conventions differ. "mnist": ``batch_size`` training images drawn
    with ``seed`` (``verify``: check the files' SHA-256, see ``scratch.data.load_mnist``).
    """
    if batch_size < 1:
        raise ValueError(f"batch: expected batch_size >= 1, received {batch_size}.")
    if data == "strokes":
        return strokes(batch_size, seed, dtype)
    if data == "mnist":
        from scratch.data import load_mnist

        x, y = load_mnist(dtype=dtype, verify=verify).train
        index = np.sort(np.random.default_rng(seed).choice(len(x), size=batch_size, replace=False))
        return np.ascontiguousarray(x[index]), np.asarray(y[index], dtype=np.int64)
    raise ValueError(f"batch: expected data in {DATA_SOURCES}, received {data!r}.")
