"""Fused softmax cross-entropy: closed-form values at extreme logits and the gradient identity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratch.losses import softmax_cross_entropy


# Row 0, logits (1e4, -1e4, 0), label 0: shifted by the max 1e4 -> (0, -2e4, -1e4); the sum of
# exps is 1 + e^-20000 + e^-10000, exactly 1.0 in float64, so nll = log 1 - 0 = 0 and softmax is
# exactly (1, 0, 0) = onehot: gradient 0.
# Row 1, same logits, label 1: nll = log 1 - (-2e4) = 2e4; gradient (1, -1, 0).
# Mean over N = 2: loss 1e4; dlogits = ((0, 0, 0), (1, -1, 0)) / 2. In float32 these numbers
# are exact too (1e4 and 2e4 are representable).
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_cross_entropy_logits_1e4_exact(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]], dtype=dtype)
    loss, dlogits = softmax_cross_entropy(logits, np.array([0, 1]))
    assert loss == 1e4
    assert dlogits.dtype == dtype
    np.testing.assert_array_equal(dlogits, [[0, 0, 0], [0.5, -0.5, 0]])


# Equal logits c (any magnitude): softmax is uniform 1/K, so nll = log K for every label and
# dlogits = (1/K - onehot) / N. With K = 10 and N = 1: log 10, gradient 0.1 except -0.9.
@pytest.mark.parametrize("value", [-1e4, 0.0, 1e4])
def test_softmax_cross_entropy_equal_logits_give_log_k(value):
    loss, dlogits = softmax_cross_entropy(np.full((1, 10), value), np.array([4]))
    assert loss == pytest.approx(np.log(10.0), rel=1e-15)
    expected = np.full((1, 10), 0.1)
    expected[0, 4] = -0.9
    np.testing.assert_allclose(dlogits, expected, rtol=1e-14)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(2, 10), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot_over_n(n, k, seed, scale):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, k))
    labels = rng.integers(0, k, n)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    # Independent formulas: softmax without the max shift (|logits| <~ 200 cannot overflow) and
    # the loss as the mean of -log softmax at the label.
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(k)[labels]
    np.testing.assert_allclose(dlogits, (softmax - onehot) / n, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)
    expected_loss = -np.mean(np.log(softmax[np.arange(n), labels]))
    assert loss == pytest.approx(expected_loss, rel=1e-12, abs=1e-12)
