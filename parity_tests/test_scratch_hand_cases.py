"""Hand-worked cases: every expected number is derived in the comments, not taken from the code."""

from __future__ import annotations

import numpy as np
import pytest

from scratch.layers import Conv2D, Flatten, MaxPool2D, ReLU
from scratch.ops import window_padding


def _nhwc(rows) -> np.ndarray:
    """A single-image, single-channel (1, H, W, 1) float64 array from nested rows."""
    return np.array(rows, dtype=np.float64)[None, :, :, None]


def _hw(a: np.ndarray) -> np.ndarray:
    """The (H, W) plane of a (1, H, W, 1) array."""
    return a[0, :, :, 0]


# Max pool 2x2 on [[1, 3], [3, 2]]: the maximum 3 appears at (0, 1) and (1, 0). The first in
# row-major order is (0, 1), which receives the whole upstream gradient 5; (1, 0) gets 0.
# On [[4, 4], [4, 4]] every element ties and (0, 0) takes it all.
@pytest.mark.parametrize("window, expected_dx", [
    ([[1, 3], [3, 2]], [[0, 5], [0, 0]]),
    ([[4, 4], [4, 4]], [[5, 0], [0, 0]]),
])
def test_max_pool2d_tie_whole_gradient_to_first_maximum(window, expected_dx):
    layer = MaxPool2D(2, name="pool").build((2, 2, 1), None, "float64")
    y = layer.forward(_nhwc(window))
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == np.max(window)
    dx = layer.backward(np.full((1, 1, 1, 1), 5.0))
    np.testing.assert_array_equal(_hw(dx), expected_dx)


# ReLU of [-1, 0, 2] is [0, 0, 2]; its derivative is [0, 0, 1] (0 at exactly 0, as in TF), so an
# upstream gradient [7, 7, 7] comes back as [0, 0, 7].
def test_relu_at_zero_has_zero_derivative():
    layer = ReLU(name="relu").build((3,), None, "float64")
    np.testing.assert_array_equal(layer.forward(np.array([[-1.0, 0.0, 2.0]])), [[0, 0, 2]])
    np.testing.assert_array_equal(layer.backward(np.full((1, 3), 7.0)), [[0, 0, 7]])


# A 3x3 SAME convolution (stride 1) of the 4x4 input x[r, c] = 4r + c + 1:
#      1  2  3  4
#      5  6  7  8
#      9 10 11 12
#     13 14 15 16
# SAME pads 1 on every side (total (4-1)*1 + 3 - 4 = 2, split 1/1). The kernel has three
# non-zero taps, K[0,0] = 1, K[1,1] = 2, K[2,1] = -1, and the bias is 1, so (TF correlates, no
# flip) y[p, q] = x[p-1, q-1] + 2 x[p, q] - x[p+1, q] + 1 with x = 0 outside the image:
#   p=0: 2x[0,q] - x[1,q] + 1           -> 2-5+1, 4-6+1, 6-7+1, 8-8+1         = -2, -1,  0,  1
#   p=1: x[0,q-1] + 2x[1,q] - x[2,q] + 1 -> 0+10-9+1, 1+12-10+1, 2+14-11+1, 3+16-12+1 = 2, 4, 6, 8
#   p=2: x[1,q-1] + 2x[2,q] - x[3,q] + 1 -> 0+18-13+1, 5+20-14+1, 6+22-15+1, 7+24-16+1 = 6, 12, 14,
#   16
#   p=3: x[2,q-1] + 2x[3,q] + 1          -> 0+26+1, 9+28+1, 10+30+1, 11+32+1  = 27, 38, 41, 44
CONV_X = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]
CONV_K = [[1, 0, 0], [0, 2, 0], [0, -1, 0]]
CONV_Y = [[-2, -1, 0, 1], [2, 4, 6, 8], [6, 12, 14, 16], [27, 38, 41, 44]]


def _hand_conv():
    layer = Conv2D(1, 3, padding="same", name="conv").build((4, 4, 1), None, "float64")
    layer.params["kernel"][...] = np.array(CONV_K, dtype=np.float64)[:, :, None, None]
    layer.params["bias"][...] = 1.0
    return layer


def test_conv2d_same_3x3_on_4x4_forward():
    np.testing.assert_array_equal(_hw(_hand_conv().forward(_nhwc(CONV_X))), CONV_Y)


# Upstream gradient all ones. dbias = 16 (one per output). dK[i, j] = sum_{p,q} x[p+i-1, q+j-1]
# = the sum of x over rows R_i and columns C_j, where offset -1 drops the last row/column,
# 0 keeps all, +1 drops the first: R_0 = {0,1,2}, R_1 = {0..3}, R_2 = {1,2,3} (same for C).
# sum_{r in R, c in C} (4r + c + 1) = |C| * sum_R 4r + |R| * sum_C (c + 1):
#   sum_R 4r: R_0 -> 12, R_1 -> 24, R_2 -> 24;  sum_C (c+1): C_0 -> 6, C_1 -> 10, C_2 -> 9.
#   dK[0] = 3*12+3*6 = 54, 4*12+3*10 = 78, 3*12+3*9 = 63
#   dK[1] = 3*24+4*6 = 96, 4*24+4*10 = 136, 3*24+4*9 = 108
#   dK[2] = 3*24+3*6 = 90, 4*24+3*10 = 126, 3*24+3*9 = 99
# dx[r, c] = sum of taps K[i, j] whose output position (r-i+1, c-j+1) is inside the 4x4 output:
# K[0,0] = 1 reaches (r+1, c+1): r <= 2 and c <= 2; K[1,1] = 2 always; K[2,1] = -1 reaches
# (r-1, c): r >= 1. Row 0: 1+2 = 3 (c <= 2), 2 (c = 3); rows 1, 2: 1+2-1 = 2, then 2-1 = 1;
# row 3: 2-1 = 1 everywhere.
#
# Upstream gradient one-hot at output (1, 2): dK[i, j] = xpad[1+i, 2+j] = x[i, j+1], the 3x3
# block of x at rows 0..2, columns 1..3; dx[r, c] = K[r-1+1, c-2+1] = K[r, c-1]: dx[0,1] = 1,
# dx[1,2] = 2, dx[2,2] = -1, zero elsewhere; dbias = 1.
ONE_HOT_DY = np.zeros((4, 4))
ONE_HOT_DY[1, 2] = 1.0


@pytest.mark.parametrize("dy, dkernel, dbias, dx", [
    (np.ones((4, 4)),
     [[54, 78, 63], [96, 136, 108], [90, 126, 99]], 16,
     [[3, 3, 3, 2], [2, 2, 2, 1], [2, 2, 2, 1], [1, 1, 1, 1]]),
    (ONE_HOT_DY,
     [[2, 3, 4], [6, 7, 8], [10, 11, 12]], 1,
     [[0, 1, 0, 0], [0, 0, 2, 0], [0, 0, -1, 0], [0, 0, 0, 0]]),
], ids=["ones", "one_hot"])
def test_conv2d_same_3x3_on_4x4_gradients(dy, dkernel, dbias, dx):
    layer = _hand_conv()
    layer.forward(_nhwc(CONV_X))
    np.testing.assert_array_equal(_hw(layer.backward(_nhwc(dy))), dx)
    np.testing.assert_array_equal(layer.grads["kernel"][:, :, 0, 0], dkernel)
    np.testing.assert_array_equal(layer.grads["bias"], [dbias])


# TF's SAME: out = ceil(n / s), total = max((out - 1) * s + k - n, 0), before = total // 2, the
# odd extra after (bottom/right). VALID: out = floor((n - k) / s) + 1, no padding.
@pytest.mark.parametrize("size, window, stride, padding, expected", [
    (4, 3, 1, "same", (4, 1, 1)),   # total 3 + 3 - 4 = 2 -> 1 / 1
    (5, 4, 1, "same", (5, 1, 2)),   # total 4 + 4 - 5 = 3 -> 1 / 2: extra at the end
    (3, 2, 1, "same", (3, 0, 1)),   # total 2 + 2 - 3 = 1 -> 0 / 1
    (6, 3, 2, "same", (3, 0, 1)),   # out 3, total 4 + 3 - 6 = 1 -> 0 / 1
    (7, 4, 2, "same", (4, 1, 2)),   # out 4, total 6 + 4 - 7 = 3 -> 1 / 2
    (7, 1, 3, "same", (3, 0, 0)),   # out 3, 6 + 1 - 7 = 0
    (6, 1, 4, "same", (2, 0, 0)),   # out 2, 4 + 1 - 6 = -1 -> clamped to 0
    (5, 3, 1, "valid", (3, 0, 0)),  # (5 - 3) // 1 + 1
    (6, 3, 2, "valid", (2, 0, 0)),  # (6 - 3) // 2 + 1
    (2, 3, 1, "valid", (0, 0, 0)),  # the window does not fit
])
def test_window_padding_tf_split(size, window, stride, padding, expected):
    assert tuple(window_padding(size, window, stride, padding)) == expected


# An even 2x2 SAME kernel of ones on the 3x3 input 1..9 pads one row/column at the bottom/right
# only (total 1 -> 0 / 1), so y[p, q] = x[p, q] + x[p, q+1] + x[p+1, q] + x[p+1, q+1]:
#   1 2 3      1+2+4+5 = 12, 2+3+5+6 = 16, 3+6 = 9
#   4 5 6  ->  4+5+7+8 = 24, 5+6+8+9 = 28, 6+9 = 15
#   7 8 9      7+8 = 15,     8+9 = 17,     9
# (padding at the top/left instead would give y[0, 0] = 1.)
def test_conv2d_even_kernel_same_pads_bottom_right():
    layer = Conv2D(1, 2, padding="same", name="conv").build((3, 3, 1), None, "float64")
    layer.params["kernel"][...] = 1.0
    y = layer.forward(_nhwc([[1, 2, 3], [4, 5, 6], [7, 8, 9]]))
    np.testing.assert_array_equal(_hw(y), [[12, 16, 9], [24, 28, 15], [15, 17, 9]])


# A 2x2 stride-2 SAME max pool of 3x3 -> 2x2 pads one row/column at the bottom/right (total
# 2 + 2 - 3 = 1 -> 0 / 1): windows {0,1}x{0,1}, {0,1}x{2}, {2}x{0,1}, {2}x{2} give
# max(1,2,4,5) = 5, max(3,6) = 6, max(7,8) = 8, 9. Negative inputs show the pad is -inf, not 0.
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_max_pool2d_same_pads_bottom_right_with_minus_inf(sign):
    layer = MaxPool2D(2, padding="same", name="pool").build((3, 3, 1), None, "float64")
    x = sign * _nhwc([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    expected = [[5, 6], [8, 9]] if sign > 0 else [[-1, -3], [-7, -9]]
    np.testing.assert_array_equal(_hw(layer.forward(x)), expected)


# Flatten of x[0, h, w, c] = 100h + 10w + c with H = W = 2, C = 3 in channels-last order
# (c fastest, then w, then h): 0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112.
def test_flatten_nhwc_order_and_inverse():
    h, w, c = np.meshgrid(np.arange(2), np.arange(2), np.arange(3), indexing="ij")
    x = (100.0 * h + 10.0 * w + c)[None]
    layer = Flatten(name="flatten").build((2, 2, 3), None, "float64")
    y = layer.forward(x)
    np.testing.assert_array_equal(y, [[0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112]])
    np.testing.assert_array_equal(layer.backward(y), x)
