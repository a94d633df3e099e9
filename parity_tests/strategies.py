"""Hypothesis strategies and input arrays several test files share: batch sizes, image sizes,
channel counts, seeds, windowed-layer settings, inputs with exact ties, inputs away from the
kinks."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

batches = st.integers(1, 8)
sizes = st.integers(1, 15)
channels = st.integers(1, 5)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def windowed(draw):
    """(input_shape, window, strides, padding) with the window fitting when padding is VALID."""
    h, w = draw(sizes), draw(sizes)
    padding = draw(st.sampled_from(["valid", "same"]))
    limit_h, limit_w = (4, 4) if padding == "same" else (min(4, h), min(4, w))
    square = draw(st.booleans())
    kh = draw(st.integers(1, min(limit_h, limit_w) if square else limit_h))
    window = (kh, kh) if square else (kh, draw(st.integers(1, limit_w)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return (draw(batches), h, w, draw(channels)), window, strides, padding


def sample_input(shape, seed, integers: bool, dtype) -> np.ndarray:
    """Standard normal, or integers in [-2, 2] (exact ties and exact zeros)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape) if integers else rng.standard_normal(shape)
    return x.astype(dtype)


def away_from_zero(shape, rng, margin=0.1) -> np.ndarray:
    """Normal values with |v| >= margin (shifted away from 0, keeping the sign)."""
    x = rng.standard_normal(shape)
    return x + np.copysign(margin, x)
