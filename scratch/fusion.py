"""The layers of a model as the training path runs them: single layers, and fused conv blocks.

Training steps and evaluation need no per-layer outputs, so a Conv2D (stride 1) -> ReLU ->
MaxPool2D whose pool tiles the convolution's output runs as one op (``scratch.ops.conv_pool``),
with the same numbers as the three layers up to BLAS summation order. ``Sequential.trace`` keeps
running layer by layer, since it reports every layer's output and gradient.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from scratch import ops
from scratch.layers import Conv2D, Layer, MaxPool2D, ReLU

# Evaluation runs the blocks on this many images at a time, so that their window matrices stay in
# the CPU's caches (the per-image numbers do not depend on it).
EVAL_CHUNK = 128


class Unit(Protocol):
    """What the training path runs: a ``scratch.layers.Layer`` or a fused ``ConvChain``.

    ``params`` (keyed "<layer>/<key>" for a chain, "<key>" for a layer); ``call(x)`` the output,
    keeping what the backward pass needs; ``call_backward(dy)`` dL/dx, filling the layers'
    ``grads``; ``backward_params(dy)`` the parameter gradients only; ``infer(x)`` the output
    without a cache.
    """

    params: dict

    def call(self, x: np.ndarray) -> np.ndarray: ...
    def call_backward(self, dy: np.ndarray) -> np.ndarray: ...
    def backward_params(self, dy: np.ndarray) -> None: ...
    def infer(self, x: np.ndarray) -> np.ndarray: ...


class ConvChain:
    """Consecutive Conv2D -> ReLU -> MaxPool2D blocks, each as one op, with the ``Unit``
    protocol the training path runs.

    Inputs and outputs are NHWC; between the blocks activations stay (C, H, W, N), the ops'
    layout (NHWC with the batch and channel axes swapped). Gradients land in each Conv2D's
    ``grads``.
    """

    def __init__(self, blocks: list[tuple[Conv2D, MaxPool2D]]):
        self.blocks = blocks
        self.params = {f"{conv.name}/{k}": v for conv, _ in blocks for k, v in conv.params.items()}
        self._caches: list = []

    @staticmethod
    def _args(conv: Conv2D, pool: MaxPool2D) -> tuple:
        return conv.params["kernel"], conv.params["bias"], conv.padding, pool.pool_size

    def call(self, x: np.ndarray) -> np.ndarray:
        # A view: the first block's split copies from it once, where a contiguous copy would
        # cost a pass more.
        h = x.transpose(3, 1, 2, 0)
        self._caches = []
        for conv, pool in self.blocks:
            h, cache = ops.conv_relu_pool_forward(h, *self._args(conv, pool))
            self._caches.append(cache)
        return np.ascontiguousarray(h.transpose(3, 1, 2, 0))

    def call_backward(self, dy: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        d = np.ascontiguousarray(dy.transpose(3, 1, 2, 0))
        for index in range(len(self.blocks) - 1, -1, -1):
            conv, _ = self.blocks[index]
            d, conv.grads["kernel"], conv.grads["bias"] = ops.conv_relu_pool_backward(
                d, self._caches[index], need_input_grad or index > 0)
        return None if d is None else np.ascontiguousarray(d.transpose(3, 1, 2, 0))

    def backward_params(self, dy: np.ndarray) -> None:
        self.call_backward(dy, need_input_grad=False)

    def pool_routes(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Where a training step on x (N, H, W, C) sends each pool's gradient: pool name -> NHWC
        bool mask over the pool's input, True at the element that receives a positive window's
        gradient (``ops.conv_relu_pool_routes``)."""
        h, routes = np.ascontiguousarray(x.transpose(3, 1, 2, 0)), {}
        for conv, pool in self.blocks:
            h, cache = ops.conv_relu_pool_forward(h, *self._args(conv, pool))
            routes[pool.name] = ops.conv_relu_pool_routes(cache).transpose(3, 1, 2, 0)
        return routes

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.infer_chunk(x[s:s + EVAL_CHUNK])
                               for s in range(0, len(x), EVAL_CHUNK)])

    def infer_chunk(self, x: np.ndarray) -> np.ndarray:
        """``infer`` of one chunk x (n, H, W, C) in one go (``infer`` runs ``EVAL_CHUNK`` images at
        a time)."""
        h = x.transpose(3, 1, 2, 0)  # a view, as in ``call``
        for conv, pool in self.blocks:
            h = ops.conv_relu_pool_infer(h, *self._args(conv, pool))
        return h.transpose(3, 1, 2, 0)


def _fusable(layers: list[Layer], output_shapes: dict) -> bool:
    conv, relu, pool = (layers + [None, None, None])[:3]
    # Exact classes only: a subclass (a user's layer) always runs its own code.
    return (type(conv) is Conv2D and type(relu) is ReLU and type(pool) is MaxPool2D
            and conv.strides == (1, 1) and conv.use_bias
            and ops.pool_tiles_conv_output(output_shapes[conv.name][:2], pool.pool_size,
                                           pool.strides, pool.padding))


def fuse(layers: list[Layer], output_shapes: dict) -> list[Unit]:
    """The units the training path runs: each run of fusable Conv2D -> ReLU -> MaxPool2D blocks
    as one ``ConvChain``, every other layer as itself. ``output_shapes`` maps layer names to
    per-example output shapes."""
    units, index = [], 0
    while index < len(layers):
        blocks = []
        while _fusable(layers[index:index + 3], output_shapes):
            blocks.append((layers[index], layers[index + 2]))
            index += 3
        if blocks:
            units.append(ConvChain(blocks))
        else:
            units.append(layers[index])
            index += 1
    return units


def backward(units: list[Unit], dy: np.ndarray, *, input_grad: bool = True,
             each: Callable[[Unit, np.ndarray], None] | None = None) -> np.ndarray | None:
    """Backpropagate dL/d(output) ``dy`` through ``units`` (layers or fused units), last first.

    Every unit fills its parameters' gradients. With ``input_grad=False`` the pass stops at the
    first unit with parameters, which computes its parameter gradients only (dL/dx of a first
    convolution would be a whole extra correlation), and None is returned; otherwise dL/dx of
    the first unit. ``each(unit, dy)`` is called with every unit's upstream gradient before its
    backward pass.
    """
    first = 0 if input_grad else next((i for i, unit in enumerate(units) if unit.params), 0)
    for index in range(len(units) - 1, first - 1, -1):
        unit = units[index]
        if each is not None:
            each(unit, dy)
        if index == first and not input_grad:
            unit.backward_params(dy)
            return None
        dy = unit.call_backward(dy)
    return dy
