"""The layers of a model as the training path runs them: single layers, and fused conv blocks.

Training steps and evaluation need no per-layer outputs, so a Conv2D (stride 1) -> ReLU ->
MaxPool2D whose pool tiles the convolution's output runs as one op (``scratch.ops.conv_pool``),
with the same numbers as the three layers up to BLAS summation order. ``Sequential.trace`` keeps
running layer by layer, since it reports every layer's output and gradient.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Protocol

import numpy as np

from scratch import helper, ops, threads
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
    ``grads``. Unless ``TFPARITY_STEP_HELPER`` is off, a training batch runs as two halves
    (``helper.halves``), the second one in the helper process while the step phase has it
    (``scratch.helper``): the same numbers either way.
    """

    def __init__(self, blocks: list[tuple[Conv2D, MaxPool2D]]):
        self.blocks = blocks
        self.params = {f"{conv.name}/{k}": v for conv, _ in blocks for k, v in conv.params.items()}
        self._caches: list = []
        self._pass: tuple = ()

    @staticmethod
    def _args(conv: Conv2D, pool: MaxPool2D) -> helper.Block:
        return helper.Block(conv.params["kernel"], conv.params["bias"], conv.padding,
                            pool.pool_size)

    def call(self, x: np.ndarray) -> np.ndarray:
        blocks = [self._args(conv, pool) for conv, pool in self.blocks]
        parts = _parts(len(x))
        remote = _helper() if len(parts) == 2 else None
        forwarded = None  # (helper, number of its forward command) while it runs a half
        outputs, self._caches = [], []
        with _stopping_on_interrupt(remote):
            if remote is not None:
                number = _guarded(remote.submit_forward, blocks, x[parts[1]],
                                  threads.policy().current())
                forwarded = None if number is None else (remote, number)
            for index, part in enumerate(parts):
                y = _guarded(forwarded[0].forward_result) if index and forwarded else None
                if y is None:
                    forwarded = forwarded if not index else None
                    y, caches = helper.chain_forward(blocks, x[part])
                else:
                    caches = None  # kept by the helper
                outputs.append(y)
                self._caches.append(caches)
        self._pass = (x, blocks, parts, forwarded)
        out = np.empty((len(x), *outputs[0].shape[1:3], outputs[0].shape[0]), outputs[0].dtype)
        for part, y in zip(parts, outputs):
            out[part] = y.transpose(3, 1, 2, 0)
        return out

    def call_backward(self, dy: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        x, blocks, parts, forwarded = self._pass
        remote = forwarded[0] if forwarded else None
        with _stopping_on_interrupt(remote):
            if remote is not None:
                grad_shapes = [a.shape for block in blocks for a in (block.kernel, block.bias)]
                dx_shape = (x.shape[3], x.shape[1], x.shape[2], len(x[parts[1]])) \
                    if need_input_grad else None
                if _guarded(remote.submit_backward, forwarded[1], dy[parts[1]], dx_shape,
                            grad_shapes, threads.policy().current()) is None:
                    remote = None
            results = [self._half_backward(index, part, x, blocks, dy, remote, need_input_grad)
                       for index, part in enumerate(parts)]
        for index, (conv, _) in enumerate(self.blocks):
            kernels, biases = zip(*(grads[index] for _, grads in results))
            conv.grads["kernel"] = sum(kernels[1:], kernels[0])
            conv.grads["bias"] = sum(biases[1:], biases[0])
        if not need_input_grad:
            return None
        dx = np.empty(x.shape, dy.dtype)
        for part, (d, _) in zip(parts, results):
            dx[part] = d.transpose(3, 1, 2, 0)
        return dx

    def _half_backward(self, index: int, part: slice, x: np.ndarray, blocks: list,
                       dy: np.ndarray, remote, need_input_grad: bool) -> tuple:
        """``helper.chain_backward``'s result for one half: from the helper if it ran the half
        and still answers, else computed here."""
        result = _guarded(remote.backward_result) if index and remote is not None else None
        if result is not None:
            return result
        if self._caches[index] is None:
            # The helper failed: this half again, here, with the same numbers.
            self._caches[index] = helper.chain_forward(blocks, x[part])[1]
        return helper.chain_backward(dy[part], self._caches[index], need_input_grad)

    def backward_params(self, dy: np.ndarray) -> None:
        self.call_backward(dy, need_input_grad=False)

    def pool_routes(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Where a training step on x (N, H, W, C) sends each pool's gradient: pool name -> NHWC
        bool mask over the pool's input, True at the element that receives a positive window's
        gradient (``ops.conv_relu_pool_routes``), from the halves as ``call`` runs them."""
        blocks = [self._args(conv, pool) for conv, pool in self.blocks]
        routes = {pool.name: [] for _, pool in self.blocks}
        for part in _parts(len(x)):
            for (_, pool), cache in zip(self.blocks, helper.chain_forward(blocks, x[part])[1]):
                routes[pool.name].append(ops.conv_relu_pool_routes(cache).transpose(3, 1, 2, 0))
        return {name: np.concatenate(parts) for name, parts in routes.items()}

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


def _parts(n: int) -> list[slice]:
    """How a batch of n images runs: in halves unless the helper's rule is off (then whole, as
    one process computes it best). The rule, not the machine's load, decides, so that a run's
    numbers do not depend on the load."""
    return [slice(0, n)] if threads.policy().helper_rule == "off" else helper.halves(n)


def _helper() -> helper.StepHelper | None:
    """The helper process, if the step phase has it and it has started."""
    return helper.ready_helper() if threads.step_helper() else None


def _guarded(call, *args):
    """``call(*args)``, or None if the helper failed: it is then retired for this process, and
    the caller computes the half itself."""
    try:
        return call(*args)
    except helper.HelperFault as error:
        helper.retire(str(error))
        return None


@contextmanager
def _stopping_on_interrupt(remote):
    """Stop the helper if anything, Ctrl-C included, interrupts a pass it takes part in: its
    replies would be out of step with the next pass (a new helper starts then)."""
    try:
        yield
    except BaseException:
        if remote is not None:
            helper.retire(None)
        raise


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
