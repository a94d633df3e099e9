"""Embedding lookup: ``y[n, t] = embeddings[x[n, t]]``; its gradient sums repeated indices."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class EmbeddingCache(NamedTuple):
    indices: np.ndarray  # (N, T) integer
    input_dim: int       # rows of the table


def embedding_forward(indices: np.ndarray, embeddings: np.ndarray):
    """Rows of the table at integer ``indices``.

    Args:
        indices: integers (N, T) in [0, input_dim).
        embeddings: the table (input_dim, output_dim).

    Returns:
        (y, cache) with y (N, T, output_dim).
    """
    return embeddings[indices], EmbeddingCache(indices, embeddings.shape[0])


def embedding_backward(dy: np.ndarray, cache: EmbeddingCache) -> np.ndarray:
    """dL/d(embeddings) (input_dim, output_dim) from dy (N, T, output_dim): row k sums dy over
    every position whose index is k (TensorFlow's IndexedSlices made dense add them up too);
    rows never looked up get 0. The integer input has no gradient."""
    dtable = np.zeros((cache.input_dim, dy.shape[-1]), dtype=dy.dtype)
    np.add.at(dtable, cache.indices.ravel(), dy.reshape(-1, dy.shape[-1]))
    return dtable
