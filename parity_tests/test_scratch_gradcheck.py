"""The finite-difference checker itself: right on known functions, and able to fail."""

from __future__ import annotations

import numpy as np
import pytest

from scratch.gradcheck import (
    assert_gradients_match,
    check_layer_gradients,
    compare,
    numerical_batch_grad,
    numerical_grad,
)
from scratch.layers import Dense, ReLU

RTOL = 1e-7


def test_numerical_grad_of_sin_sum_is_cos():
    x = np.random.default_rng(0).standard_normal((3, 4))
    before = x.copy()
    grad = numerical_grad(lambda v: float(np.sin(v).sum()), x)
    # Central difference error: eps^2 / 6 * |sin'''| <= 1.7e-13, plus rounding ~1e-10.
    np.testing.assert_allclose(grad, np.cos(x), atol=1e-9)
    assert x.tobytes() == before.tobytes()  # restored bit for bit


def test_numerical_batch_grad_matches_elementwise():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 2, 3)), rng.standard_normal((2, 3))
    per_example = lambda v: np.sum(np.sin(v) * w, axis=(1, 2))  # noqa: E731
    batched = numerical_batch_grad(per_example, x)
    np.testing.assert_allclose(batched, np.cos(x) * w, atol=1e-9)
    np.testing.assert_allclose(batched, numerical_grad(lambda v: float(per_example(v).sum()), x),
                               atol=1e-9)


def test_numerical_grad_max_elements_leaves_nan():
    x = np.arange(10.0)
    grad = numerical_grad(lambda v: float(np.sum(v ** 2)), x, max_elements=4, seed=3)
    checked = ~np.isnan(grad)
    assert checked.sum() == 4
    np.testing.assert_allclose(grad[checked], 2 * x[checked], atol=1e-8)


def test_numerical_grad_rejects_float32():
    with pytest.raises(TypeError, match=r"numerical_grad: expected x to be a float64 .* float32"):
        numerical_grad(lambda v: 0.0, np.zeros(3, dtype=np.float32))


# analytic (1, 2, -4), numerical (1, 2.5, -4): max |a - n| = 0.5 at index 1, scale
# max(|a|max, |n|max) = 4, so rel error = 0.5 / 4 = 0.125. A NaN numerical entry is skipped.
def test_compare_relative_error_definition():
    result = compare("w", np.array([1.0, 2.0, -4.0, 9.0]), np.array([1.0, 2.5, -4.0, np.nan]))
    assert (result.max_abs_error, result.rel_error, result.worst_index) == (0.5, 0.125, (1,))
    assert (result.analytic_at_worst, result.numerical_at_worst, result.checked) == (2.0, 2.5, 3)
    assert str(result).startswith("w: max abs error 5.000e-01, rel error 1.250e-01 at index (1,)")


def test_compare_non_finite_analytic_fails():
    result = compare("w", np.array([1.0, np.nan]), np.array([1.0, 1.0]))
    assert result.max_abs_error == np.inf and not result.passed(RTOL)
    assert result.worst_index == (1,)


def test_gradcheck_detects_a_wrong_gradient():
    """A Dense whose backward halves the bias gradient must fail on the bias only."""

    class BrokenDense(Dense):
        def call_backward(self, dy):
            dx = super().call_backward(dy)
            self.grads["bias"] = self.grads["bias"] * 0.5
            return dx

    rng = np.random.default_rng(8)
    layer = BrokenDense(3, name="broken").build((4,), rng, "float64")
    results = check_layer_gradients(layer, rng.standard_normal((2, 4)))
    assert results["kernel"].passed(RTOL) and results["input"].passed(RTOL)
    assert not results["bias"].passed(RTOL)
    with pytest.raises(AssertionError, match=r"bias: max abs error .* at index \(\d+,\)"):
        assert_gradients_match(results, RTOL)


def test_gradcheck_sees_the_relu_kink():
    """Across ReLU's kink the central difference is 1/2 while the analytic derivative is 0."""
    layer = ReLU(name="relu").build((3,), None, "float64")
    results = check_layer_gradients(layer, np.array([[0.0, 1.0, -1.0]]), upstream=np.ones((1, 3)))
    np.testing.assert_array_equal(results["input"].analytic, [[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(results["input"].numerical, [[0.5, 1.0, 0.0]], atol=1e-9)
    assert results["input"].worst_index == (0, 0)
