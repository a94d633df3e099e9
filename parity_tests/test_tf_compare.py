"""The comparison engine on hand-worked cases: errors, worst index, NaN/inf, zeros, messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference_tf.compare import (
    FLOAT32_FORWARD_TOL,
    FLOAT64_GRADIENT_TOL,
    assert_all_close,
    compare,
    compare_arrays,
    kind,
    tolerance_for,
)


def test_compare_arrays_hand_worked_errors():
    # a - b = [0, 0, 0.5]: max abs 0.5, max rel 0.5/3, rel L2 0.5/sqrt(1+4+9),
    # scaled max abs 0.5/3, cosine (1+4+10.5)/(sqrt(1+4+12.25)*sqrt(14)).
    c = compare_arrays(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0]), "x")
    assert c.max_abs == 0.5
    assert c.max_rel == pytest.approx(0.5 / 3)
    assert c.rel_l2 == pytest.approx(0.5 / math.sqrt(14))
    assert c.scaled_max_abs == pytest.approx(0.5 / 3)
    assert c.cosine == pytest.approx(15.5 / (math.sqrt(17.25) * math.sqrt(14)))
    assert (c.worst_index, c.worst_actual, c.worst_expected) == ((2,), 3.5, 3.0)
    assert c.smallest_passing_tolerance == pytest.approx(0.5 / 3)


def test_compare_arrays_smallest_passing_tolerance_is_tight():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((4, 5))
    c = compare_arrays(b + 1e-3 * rng.standard_normal((4, 5)), b)
    assert c.passes(c.smallest_passing_tolerance)
    assert not c.passes(c.smallest_passing_tolerance * (1 - 1e-9))


def test_compare_arrays_worst_index_is_multidimensional():
    b = np.zeros((2, 3, 4))
    a = b.copy()
    a[1, 2, 3] = -7.0
    c = compare_arrays(a, b)
    assert (c.worst_index, c.worst_actual, c.worst_expected) == ((1, 2, 3), -7.0, 0.0)
    assert c.rel_l2 == math.inf and c.cosine == 0.0 and not c.passes(1e6)


def test_compare_arrays_both_zero_is_exact():
    c = compare_arrays(np.zeros(5), np.zeros(5))
    assert (c.max_abs, c.max_rel, c.rel_l2, c.scaled_max_abs, c.cosine) == (0, 0, 0, 0, 1)
    assert c.passes(0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_compare_arrays_counts_nonfinite_without_crashing(bad):
    a = np.array([1.0, bad, 3.0])
    c = compare_arrays(a, np.array([1.0, 2.0, 3.0]), "z")
    assert (c.nan_actual, c.inf_actual) == ((1, 0) if np.isnan(bad) else (0, 1))
    assert not c.nonfinite_match and not c.passes(math.inf)
    assert "NaN" in c.format() and "different places" in c.format()


def test_compare_arrays_matching_nonfinite_compares_the_rest():
    a = np.array([np.nan, np.inf, 1.0 + 1e-14])
    c = compare_arrays(a, np.array([np.nan, np.inf, 1.0]))
    assert c.nonfinite_match and c.nan_expected == 1 and c.inf_expected == 1
    assert c.max_abs == pytest.approx(1e-14, rel=0.1) and c.passes(1e-12)


def test_compare_arrays_scalars_and_empty():
    assert compare_arrays(2.0, 2.0).worst_index == ()
    c = compare_arrays(np.zeros((0, 3)), np.zeros((0, 3)))
    assert c.worst_index is None and c.passes(0.0)


def test_compare_arrays_shape_mismatch_names_the_key():
    with pytest.raises(ValueError, match=r"'grads/k'.*\(3,\).*\(2,\)"):
        compare_arrays(np.zeros(2), np.zeros(3), "grads/k")


def test_compare_key_mismatch_names_the_keys():
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \['c'\]"):
        compare({"a": 1.0, "c": 2.0}, {"a": 1.0, "b": 2.0})


def test_kind_and_tolerances_by_quantity():
    assert [kind(k) for k in ("logits", "loss", "outputs/conv1", "output")] == ["forward"] * 4
    assert [kind(k) for k in ("output_grads/conv1", "grads/conv1/kernel",
                              "input_grad")] == ["gradient"] * 3
    assert tolerance_for("outputs/x", "float32") == FLOAT32_FORWARD_TOL
    assert tolerance_for("grads/x/bias", np.float64) == FLOAT64_GRADIENT_TOL


def test_assert_all_close_message_has_quantity_errors_index_and_values():
    expected = {"outputs/pool1": np.array([[1.0, 2.0], [3.0, 4.0]]), "loss": 1.0}
    actual = {"outputs/pool1": np.array([[1.0, 2.0], [3.0, 4.5]]), "loss": 1.0}
    with pytest.raises(AssertionError) as info:
        assert_all_close(actual, expected, "float64", context="case")
    message = str(info.value)
    assert "1 of 2 quantities" in message and "outputs/pool1 (2, 2)" in message
    assert "rel L2" in message and "max abs 5.000e-01" in message
    assert "index (1, 1): actual 4.5, expected 4.0" in message


def test_assert_all_close_shape_mismatch_is_an_assertion():
    with pytest.raises(AssertionError, match="grads/bias"):
        assert_all_close({"grads/bias": np.zeros(4)}, {"grads/bias": np.zeros(3)}, "float32")
