"""Offline stand-ins for MNIST with its shapes, one vocabulary for every command.

- ``strokes``: digit-like images (a few thick strokes on a background of exact zeros) with
  uniform random labels. The large constant regions put exact ties in max-pool windows and
  pre-activations exactly at the bias, where implementations disagree on conventions: the
  default batch of ``tfparity check`` and ``diff``.
- ``templates``: a fixed random template per class plus noise; learnable, so training on it
  shows a falling loss: the offline data of ``tfparity train`` and ``report``.

Both return (images (n, 28, 28, 1) in [0, 1] of ``dtype``, labels (n,) int64), a pure function of
(n, seed, dtype).
"""

from __future__ import annotations

import numpy as np

from scratch.checks import check_dtype_name
from scratch.data.mnist import IMAGE_SHAPE, NUM_CLASSES

SIZE = IMAGE_SHAPE[0]


def strokes(n: int, seed: int = 0, dtype="float64", size: int = SIZE
            ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` digit-like images (n, size, size, 1): 2-4 strokes with values in (0, 1], about 80%
    exact zeros."""
    dtype = check_dtype_name("strokes", dtype)
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.zeros((n, size, size), dtype=np.float64)
    for image in images:
        for _ in range(rng.integers(2, 5)):  # strokes: segments between random points
            (r0, c0), (r1, c1) = rng.uniform(0.2 * size, 0.8 * size, size=(2, 2))
            t = np.clip(((rows - r0) * (r1 - r0) + (cols - c0) * (c1 - c0))
                        / max((r1 - r0) ** 2 + (c1 - c0) ** 2, 1e-9), 0, 1)
            distance = np.hypot(rows - r0 - t * (r1 - r0), cols - c0 - t * (c1 - c0))
            ink = np.clip(1.6 - distance, 0, 1) * rng.uniform(0.6, 1.0)
            np.maximum(image, ink, out=image)
    labels = np.random.default_rng(seed).integers(0, NUM_CLASSES, n)
    return images[..., None].astype(dtype), labels.astype(np.int64)


def templates(n: int, seed: int = 0, dtype="float32") -> tuple[np.ndarray, np.ndarray]:
    """``n`` images: one fixed random template per class (20% of pixels on) plus uniform noise."""
    dtype = check_dtype_name("templates", dtype)
    patterns = np.random.default_rng(12345).random((NUM_CLASSES, SIZE, SIZE, 1)) < 0.2
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    images = 0.7 * patterns[labels] + 0.5 * rng.random((n, SIZE, SIZE, 1))
    return np.clip(images, 0.0, 1.0).astype(dtype), labels.astype(np.int64)


SYNTHETIC = {"strokes": strokes, "templates": templates}
