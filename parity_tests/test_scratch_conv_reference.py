"""The fast convolution (``scratch.ops.conv``: window matrices, strided views, grid cropping)
pinned to the plain loop version (``scratch.ops.conv_reference``) over shapes, strides and
paddings drawn by Hypothesis, and the loop version itself against finite differences."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratch import ops
from scratch.gradcheck import assert_gradients_match, compare, numerical_grad
from scratch.ops.conv_reference import conv2d_backward_loops, conv2d_forward_loops

# float64: the two versions sum the same products in another order (BLAS's blocking).
RTOL = 1e-12


@st.composite
def convolutions(draw):
    """(x, kernel, bias, dy, strides, padding) of a convolution whose window fits the input."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 9))
    n, c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, h, w, c_in))
    kernel = rng.standard_normal((kh, kw, c_in, c_out))
    bias = rng.standard_normal(c_out)
    y = conv2d_forward_loops(x, kernel, bias, strides, padding)
    return x, kernel, bias, rng.standard_normal(y.shape), strides, padding


@settings(max_examples=60)
@given(convolutions())
def test_conv2d_fast_op_matches_loops(case):
    x, kernel, bias, dy, strides, padding = case
    y, cache = ops.conv2d_forward(x, kernel, bias, strides, padding)
    dx, dkernel, dbias = ops.conv2d_backward(dy, cache)
    want_dx, want_dkernel, want_dbias = conv2d_backward_loops(dy, x, kernel, strides, padding)
    assert_gradients_match({
        "y": compare("y", y, conv2d_forward_loops(x, kernel, bias, strides, padding)),
        "dx": compare("dx", dx, want_dx), "dkernel": compare("dkernel", dkernel, want_dkernel),
        "dbias": compare("dbias", dbias, want_dbias)}, RTOL)


@settings(max_examples=10)
@given(convolutions())
def test_conv2d_loops_match_finite_differences(case):
    x, kernel, bias, dy, strides, padding = case

    def loss(x_, kernel_, bias_):
        return float((conv2d_forward_loops(x_, kernel_, bias_, strides, padding) * dy).sum())

    dx, dkernel, dbias = conv2d_backward_loops(dy, x, kernel, strides, padding)
    assert_gradients_match({
        "dx": compare("dx", dx, numerical_grad(lambda v: loss(v, kernel, bias), x.copy())),
        "dkernel": compare("dkernel", dkernel,
                           numerical_grad(lambda v: loss(x, v, bias), kernel.copy())),
        "dbias": compare("dbias", dbias, numerical_grad(lambda v: loss(x, kernel, v),
                                                        bias.copy()))}, 1e-7)
