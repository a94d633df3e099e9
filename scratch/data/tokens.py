"""Synthetic token sequences with padding, the data of the ``tokens`` model (no download).

Each sequence has a random length in [1, STEPS] of tokens in [1, VOCABULARY), then padding
with token 0 up to STEPS (``Embedding(mask_zero=True)`` masks it). Its label is the class of
its last real token, ``last % NUM_CLASSES``: a recurrent layer that skips the padding (the
mask) ends right after that token, one that reads the padding has to carry it through.
A pure function of (n, seed).
"""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 10
STEPS = 20
VOCABULARY = 50


def token_sequences(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` padded sequences: tokens (n, STEPS) int64 (0 = padding, at the end) and labels
    (n,) int64 in [0, NUM_CLASSES)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCABULARY, size=(n, STEPS))
    lengths = rng.integers(1, STEPS + 1, size=n)
    last = tokens[np.arange(n), lengths - 1]
    tokens[np.arange(STEPS) >= lengths[:, None]] = 0
    return tokens, last % NUM_CLASSES
