"""The fused Conv2D -> ReLU -> MaxPool2D op of the training path against the three layers' own ops
(themselves checked against finite differences and TensorFlow): the output and the gradients up
to BLAS's summation order, ties included; the fusion rules and the retained memory the
training path relies on (the models' training path is in ``test_scratch_models.py``)."""

from __future__ import annotations

import resource

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratch import ops
from scratch.fusion import ConvChain, fuse
from scratch.gradcheck import assert_gradients_match, compare, numerical_grad
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.memory import retain_freed_memory
from scratch.models import Sequential, build
from scratch.ops.conv_pool import _block_kernel, _fold_block_kernel, _summed_products
from scratch.ops.phase_split import (
    add_block_windows,
    block_windows,
    merge_planes,
    split_geometry,
    split_planes,
)

from helpers import TRAINING_PATH_RTOL, assert_close

# Max abs error over the larger magnitude: the fused op sums the same products as the layers in
# another order (BLAS's blocking of its own products).

# (N, H, W, C, filters, kernel, padding, pool): the cnn's two blocks, then odd shapes.
GEOMETRIES = [
    (3, 28, 28, 1, 8, (3, 3), "same", (2, 2)),
    (3, 14, 14, 8, 8, (3, 3), "same", (2, 2)),
    (2, 9, 11, 3, 4, (2, 4), "valid", (2, 3)),
    (2, 7, 8, 2, 3, (3, 2), "same", (3, 2)),
    (2, 10, 10, 2, 5, (1, 1), "valid", (2, 2)),
    (1, 5, 6, 1, 2, (4, 4), "same", (1, 1)),
]


def channels_first(a):
    """NHWC <-> the fused op's (C, H, W, N): the batch and channel axes swapped, both ways."""
    return np.ascontiguousarray(a.transpose(3, 1, 2, 0))


channels_last = channels_first


def three_layers(x, kernel, bias, padding, pool, dy):
    """Output and (dx, dkernel, dbias) of conv -> relu -> pool, layer by layer (NHWC)."""
    z, conv_cache = ops.conv2d_forward(x, kernel, bias, (1, 1), padding)
    r, relu_cache = ops.relu_forward(z)
    y, pool_cache = ops.max_pool2d_forward(r, pool, pool, "valid")
    d = ops.relu_backward(ops.max_pool2d_backward(dy, pool_cache), relu_cache)
    return y, ops.conv2d_backward(d, conv_cache)


def check_against_layers(x, kernel, bias, padding, pool, dy):
    y, cache = ops.conv_relu_pool_forward(channels_first(x), kernel, bias, padding, pool)
    expected_y, (dx, dkernel, dbias) = three_layers(x, kernel, bias, padding, pool, dy)
    np.testing.assert_array_equal(
        ops.conv_relu_pool_infer(channels_first(x), kernel, bias, padding, pool), y)
    got = ops.conv_relu_pool_backward(channels_first(dy), cache)
    assert_close({"y": channels_last(y), "dx": channels_last(got[0]), "dkernel": got[1],
                  "dbias": got[2]},
                 {"y": expected_y, "dx": dx, "dkernel": dkernel, "dbias": dbias},
                 TRAINING_PATH_RTOL[x.dtype.name])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("geometry", GEOMETRIES,
                         ids=lambda g: f"{g[1]}x{g[2]}x{g[3]}-k{g[5]}-{g[6]}-p{g[7]}")
def test_conv_relu_pool_matches_layers(geometry, dtype):
    n, h, w, c, filters, kernel_hw, padding, pool = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    x[:, : h // 3] = 0  # a band of exact zeros: ties at the bias in every window over it
    kernel = rng.standard_normal((*kernel_hw, c, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    out_h, out_w = ops.conv_relu_pool_forward(channels_first(x), kernel, bias, padding,
                                              pool)[0].shape[1:3]
    dy = rng.standard_normal((n, out_h, out_w, filters)).astype(dtype)
    check_against_layers(x, kernel, bias, padding, pool, dy)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv_relu_pool_positive_ties_go_to_first_maximum(dtype):
    # A 1x1 identity convolution passes x through, so the pool windows hold exactly equal
    # positive maxima at chosen places: the whole gradient must go to the first in row-major order.
    x = np.zeros((1, 4, 4, 1), dtype)
    x[0, 0:2, 0:2, 0] = [[0.5, 0.7], [0.7, 0.7]]   # tie between (0,1), (1,0), (1,1)
    x[0, 0:2, 2:4, 0] = [[0.2, 0.1], [0.9, 0.9]]   # tie in the second row
    x[0, 2:4, 0:2, 0] = 0.3                        # all four equal
    x[0, 2:4, 2:4, 0] = [[0.1, 0.2], [0.3, 0.4]]   # no tie
    kernel, bias = np.ones((1, 1, 1, 1), dtype), np.zeros(1, dtype)
    y, cache = ops.conv_relu_pool_forward(channels_first(x), kernel, bias, "valid", (2, 2))
    dx = channels_last(ops.conv_relu_pool_backward(np.ones_like(y), cache)[0])[0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 2] = expected[2, 0] = expected[3, 3] = 1
    np.testing.assert_array_equal(dx, expected)
    check_against_layers(x, kernel, bias, "valid", (2, 2), np.ones((1, 2, 2, 1), dtype))


@settings(max_examples=40)
@given(data=st.data())
def test_conv_relu_pool_matches_layers_on_drawn_shapes(data):
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    ph, pw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    padding = data.draw(st.sampled_from(["valid", "same"]))
    extra = (kh - 1, kw - 1) if padding == "valid" else (0, 0)
    h = data.draw(st.integers(ph, 3 * ph + 2)) + extra[0]
    w = data.draw(st.integers(pw, 3 * pw + 2)) + extra[1]
    n, c, filters = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)),
                     data.draw(st.integers(1, 3)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, h, w, c))
    kernel, bias = rng.standard_normal((kh, kw, c, filters)), rng.standard_normal(filters)
    out_h, out_w = ops.conv_relu_pool_forward(channels_first(x), kernel, bias, padding,
                                              (ph, pw))[0].shape[1:3]
    dy = rng.standard_normal((n, out_h, out_w, filters))
    check_against_layers(x, kernel, bias, padding, (ph, pw), dy)


@pytest.mark.parametrize("geometry", GEOMETRIES[1:5], ids=str)
def test_conv_relu_pool_gradients_match_finite_differences(geometry):
    # Central differences of L = sum(y * dy), float64, without the three layers' help. Inputs are
    # drawn so that no pool window holds a near-tie or a value near ReLU's kink within eps.
    n, h, w, c, filters, kernel_hw, padding, pool = geometry
    rng = np.random.default_rng(7)
    x = rng.standard_normal((c, h, w, n))
    kernel = rng.standard_normal((*kernel_hw, c, filters))
    bias = rng.standard_normal(filters)
    y, cache = ops.conv_relu_pool_forward(x, kernel, bias, padding, pool)
    dy = rng.standard_normal(y.shape)
    dx, dkernel, dbias = ops.conv_relu_pool_backward(dy, cache)

    def loss(_):
        return float(np.sum(ops.conv_relu_pool_forward(x, kernel, bias, padding, pool)[0] * dy))

    results = {name: compare(name, analytic, numerical_grad(loss, array))
               for name, analytic, array in (("x", dx, x), ("kernel", dkernel, kernel),
                                             ("bias", dbias, bias))}
    assert_gradients_match(results, rtol=1e-7)


@pytest.mark.parametrize("geometry", GEOMETRIES[:4], ids=str)
def test_split_planes_merge_round_trip(geometry):
    n, h, w, c, _, kernel_hw, padding, pool = geometry
    x = np.random.default_rng(1).standard_normal((c, h, w, n))
    g = split_geometry(x.shape, kernel_hw, padding, pool)
    np.testing.assert_array_equal(merge_planes(split_planes(x, g), g), x)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_conv_relu_pool_routes_match_the_pool_layer(geometry):
    # The element each positive window's gradient reaches, against max_pool2d_backward on the
    # layers' ReLU output; the band of zeros makes windows of ties at the bias.
    n, h, w, c, filters, kernel_hw, padding, pool = geometry
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, h, w, c))
    x[:, : h // 3] = 0
    kernel, bias = rng.standard_normal((*kernel_hw, c,
                                        filters)), np.abs(rng.standard_normal(filters))
    relu_out = ops.relu_forward(ops.conv2d_forward(x, kernel, bias, (1, 1), padding)[0])[0]
    y_pool, pool_cache = ops.max_pool2d_forward(relu_out, pool, pool, "valid")
    expected = ops.max_pool2d_backward((y_pool > 0).astype(x.dtype), pool_cache) != 0
    _, cache = ops.conv_relu_pool_forward(channels_first(x), kernel, bias, padding, pool)
    np.testing.assert_array_equal(channels_last(ops.conv_relu_pool_routes(cache)), expected)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_block_windows_adjoint_is_add_block_windows(geometry):
    # <B(flat), R> == <flat, B^T(R)> for any flat planes and any R: the backward pass's strided
    # adds are exactly the transpose of the forward pass's strided copy.
    n, h, w, c, _, kernel_hw, padding, pool = geometry
    rng = np.random.default_rng(2)
    g = split_geometry((c, h, w, n), kernel_hw, padding, pool)
    flat = rng.standard_normal(c * g.phases * g.plane + g.tail)
    windows = block_windows(flat, g).reshape(-1, g.outputs)
    r = rng.standard_normal(windows.shape)
    np.testing.assert_allclose(np.sum(windows * r), np.sum(flat * add_block_windows(r, g)),
                               rtol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_block_kernel_adjoint_is_fold_block_kernel(geometry):
    n, h, w, c, filters, kernel_hw, padding, pool = geometry
    rng = np.random.default_rng(3)
    g = split_geometry((c, h, w, n), kernel_hw, padding, pool)
    kernel = rng.standard_normal((*kernel_hw, c, filters))
    weights = _block_kernel(kernel, g).reshape(g.phases * filters, -1)
    r = rng.standard_normal(weights.shape)
    np.testing.assert_allclose(np.sum(weights * r),
                               np.sum(kernel * _fold_block_kernel(r, kernel.shape, g)),
                               rtol=1e-12)


@pytest.mark.parametrize("rows", [(8, 4), (32, 16), (32, 128)])
@pytest.mark.parametrize("positions", [100, 2047, 4099, 22500])
def test_summed_products_equal_one_product(rows, positions):
    # Chunked or not, any number of positions (4099 is prime): the sum of chunk products is a @ b.T.
    rng = np.random.default_rng(positions)
    a, b = rng.standard_normal((rows[0], positions)), rng.standard_normal((rows[1], positions))
    np.testing.assert_allclose(_summed_products(a, b), a @ b.T, rtol=1e-10, atol=1e-10)


def test_fuse_chains_conv_blocks_of_the_cnn():
    model = build("cnn", dtype="float64")
    units = fuse(model.layers, model.output_shapes)
    assert isinstance(units[0], ConvChain)
    assert [conv.name for conv, _ in units[0].blocks] == ["conv1", "conv2"]
    assert [u.name for u in units[1:]] == ["flatten", "hidden1", "hidden1_relu", "logits"]


@pytest.mark.parametrize("layers", [
    # strided conv
    [Conv2D(2, 3, strides=2), ReLU(), MaxPool2D(2), Flatten(), Dense(10)],
    # overlapping pool
    [Conv2D(2, 3, padding="same"), ReLU(), MaxPool2D(3, strides=2), Flatten(), Dense(10)],
    # pool before ReLU
    [Conv2D(2, 3, padding="same"), MaxPool2D(2), ReLU(), Flatten(), Dense(10)],
    # 256 phases: more than the fused op's uint8 bookkeeping holds
    [Conv2D(1, 1), ReLU(), MaxPool2D(16), Flatten(), Dense(10)],
], ids=["strided-conv", "overlapping-pool", "pool-then-relu", "256-phases"])
def test_fuse_keeps_layers_it_cannot_fuse(layers):
    model = Sequential(layers, (16, 16, 1), dtype="float64")
    assert fuse(model.layers, model.output_shapes) == model.layers


def test_retain_freed_memory_reuses_blocks_without_page_faults():
    # 40 MiB is above the largest mmap threshold glibc adapts to on its own (32 MiB): by default
    # every such array is mapped afresh and faults in every page (10,640 faults here for 20 of
    # them, one per 2 MiB even with transparent huge pages); retained, the block is reused.
    assert retain_freed_memory()
    size = 40 * 2**20 // 4
    np.ones(size, np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        np.ones(size, np.float32)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 20, f"{faults} page faults for 20 fresh 40 MiB arrays"
