"""Layer classes: thin wrappers that hold parameters, the last cache and the gradients.

Each layer has ``forward(x) -> y``, ``backward(dy) -> dx``, ``params``/``grads`` dicts keyed
``"kernel"``/``"bias"`` (empty without parameters), ``compute_output_shape(input_shape)`` (shapes
without the batch axis) and ``build(input_shape, rng, dtype)``. Constructor arguments follow Keras.
``forward``/``backward`` validate their arguments and call the hooks a subclass implements
(``call``, ``call_backward``, ...; see ``Layer``); ``Sequential`` validates once at the model's
entry and calls the hooks directly.
"""

from __future__ import annotations

import numpy as np

from scratch import ops
from scratch._checks import (
    check_dtype_name,
    check_float_array,
    check_padding,
    check_pair,
    check_positive_int,
)
from scratch.initializers import glorot_uniform
from scratch.regularizers import L2, check_regularizer


class Layer:
    """Base class. Subclasses set ``input_rank`` and implement the hooks."""

    input_rank: int | None = None  # rank without the batch axis; None = any rank >= 1

    def __init__(self, name: str | None = None):
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(
                f"{type(self).__name__}: expected name to be a non-empty string without '/', "
                f"received name={name!r}."
            )
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.dtype: np.dtype | None = None
        self.input_shape: tuple | None = None
        self.cache = None
        # Param key -> weight penalty (``kernel_regularizer``); the model adds them to the loss.
        self.regularizers: dict[str, L2] = {}

    @property
    def owner(self) -> str:
        return f"Layer '{self.name}' ({type(self).__name__})" if self.name else type(self).__name__

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def _check_input_shape(self, input_shape: tuple) -> tuple:
        input_shape = tuple(int(s) for s in input_shape)
        if self.input_rank is not None and len(input_shape) != self.input_rank:
            layout = {1: "(N, features)", 3: "(N, H, W, C)"}[self.input_rank]
            raise ValueError(
                f"{self.owner}: expected an input of rank {self.input_rank + 1} {layout}, "
                f"received per-example shape {input_shape} "
                f"(rank {len(input_shape) + 1} with the batch axis)."
            )
        self.check_input_channels(input_shape)
        if self.input_shape is not None and input_shape != self.input_shape:
            raise ValueError(
                f"{self.owner}: was built for per-example input shape {self.input_shape}, "
                f"received {input_shape}."
            )
        return input_shape

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Output shape (without the batch axis) for an input of ``input_shape``."""
        return self.output_shape_for(self._check_input_shape(input_shape))

    def build(self, input_shape: tuple, rng: np.random.Generator | None = None,
              dtype="float32") -> "Layer":
        """Create the parameters for per-example ``input_shape``; returns self."""
        self.dtype = check_dtype_name(self.owner, dtype)
        input_shape = self._check_input_shape(input_shape)
        self.output_shape_for(input_shape)
        self.params = self.init_params(input_shape, rng or np.random.default_rng(0))
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.input_shape = input_shape
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Validated forward pass; the layer must be built. x: (N, *input_shape)."""
        if not self.built:
            raise ValueError(f"{self.owner}: call build(input_shape, dtype=...) before forward().")
        check_float_array(self.owner, "input", x, self.dtype)
        if x.ndim < 2:
            raise ValueError(
                f"{self.owner}: expected a batch (N, ...) of rank >= 2, received shape {x.shape}."
            )
        self._check_input_shape(x.shape[1:])
        return self.call(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dL/dx from dL/dy (the shape of the last output); fills ``grads``."""
        if self.cache is None:
            raise ValueError(f"{self.owner}: call forward() before backward().")
        check_float_array(self.owner, "upstream gradient dy", dy, self.dtype)
        expected = self._last_output_shape
        if dy.shape != expected:
            raise ValueError(
                f"{self.owner}: expected upstream gradient of shape {expected} (the last output), "
                f"received shape {dy.shape}."
            )
        return self.call_backward(dy)

    # Hooks: what a subclass implements ----------------------------------------------------
    def check_input_channels(self, input_shape: tuple) -> None:
        """Raise if a built layer's parameters cannot take ``input_shape`` (rank already checked)."""

    def output_shape_for(self, input_shape: tuple) -> tuple:
        """Per-example output shape for a valid per-example ``input_shape`` (default: the same)."""
        return input_shape

    def init_params(self, input_shape: tuple, rng: np.random.Generator) -> dict:
        """The initial parameters for per-example ``input_shape``, in ``self.dtype`` (default none)."""
        return {}

    def call(self, x: np.ndarray) -> np.ndarray:
        """The output y (N, ...) of a valid batch x (N, *input_shape); ends with
        ``return self.save_for_backward(y, cache)``."""
        raise NotImplementedError(f"{self.owner}: a Layer subclass must implement call(x).")

    def call_backward(self, dy: np.ndarray) -> np.ndarray:
        """dL/dx (the input's shape) from dL/dy (the last output's shape) and ``self.cache``;
        sets ``self.grads[key]`` for every parameter."""
        raise NotImplementedError(f"{self.owner}: a Layer subclass must implement call_backward(dy).")

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The output for evaluation, where nobody needs the cache (default: ``call``)."""
        return self.call(x)

    def backward_params(self, dy: np.ndarray) -> None:
        """Fill ``grads`` only, for a model's first layer whose dL/dx nobody needs (default:
        ``call_backward``)."""
        self.call_backward(dy)

    def save_for_backward(self, y: np.ndarray, cache) -> np.ndarray:
        """Keep ``cache`` for ``call_backward`` (as ``self.cache``) and return the output y."""
        self.cache = cache
        self._last_output_shape = y.shape
        return y

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Dense(Layer):
    """Fully connected layer. Input (N, in), output (N, units); kernel (in, units), bias (units,).

    ``kernel_regularizer``: None or ``scratch.regularizers.L2``, whose penalty of the kernel the
    model adds to its loss (as Keras's ``kernel_regularizer``).
    """

    input_rank = 1

    def __init__(self, units: int, kernel_regularizer: L2 | None = None,
                 name: str | None = None):
        super().__init__(name)
        self.units = check_positive_int(self.owner, "units", units)
        self.kernel_regularizer = check_regularizer(self.owner, "kernel_regularizer",
                                                    kernel_regularizer)
        if kernel_regularizer is not None:
            self.regularizers["kernel"] = kernel_regularizer

    def output_shape_for(self, input_shape):
        return (self.units,)

    def init_params(self, input_shape, rng):
        return {
            "kernel": glorot_uniform((input_shape[0], self.units), rng, self.dtype),
            "bias": np.zeros(self.units, dtype=self.dtype),
        }

    def call(self, x):
        return self.save_for_backward(*ops.dense_forward(x, self.params["kernel"], self.params["bias"]))

    def call_backward(self, dy):
        dx, self.grads["kernel"], self.grads["bias"] = ops.dense_backward(dy, self.cache)
        return dx

    def backward_params(self, dy):
        _, self.grads["kernel"], self.grads["bias"] = ops.dense_backward(
            dy, self.cache, need_input_grad=False)


class ReLU(Layer):
    """max(x, 0) elementwise; any input shape. The derivative at exactly 0 is 0 (as in TF)."""

    def call(self, x):
        return self.save_for_backward(*ops.relu_forward(x))

    def call_backward(self, dy):
        return ops.relu_backward(dy, self.cache)


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C) in channels-last order, as Keras flattens."""

    def output_shape_for(self, input_shape):
        return (int(np.prod(input_shape)),)

    def call(self, x):
        return self.save_for_backward(*ops.flatten_forward(x))

    def call_backward(self, dy):
        return ops.flatten_backward(dy, self.cache)


class _Windowed(Layer):
    """Shared checks of layers that slide a window over (H, W)."""

    input_rank = 3

    def _window_output(self, input_shape, window, strides, padding):
        h, w, _ = input_shape
        (ho, wo), _ = ops.padding.window_geometry(h, w, window, strides, padding)
        if ho < 1 or wo < 1:
            raise ValueError(
                f"{self.owner}: window {window} does not fit an input of {h}x{w} with "
                f"padding='valid'; received per-example input shape {input_shape}."
            )
        return ho, wo


class Conv2D(_Windowed):
    """2-D convolution. Input (N, H, W, c_in), output (N, Ho, Wo, filters).

    kernel (kh, kw, c_in, filters), bias (filters,). SAME padding is split as TensorFlow does it.
    ``kernel_regularizer`` as in ``Dense``.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid",
                 kernel_regularizer: L2 | None = None, name: str | None = None):
        super().__init__(name)
        self.filters = check_positive_int(self.owner, "filters", filters)
        self.kernel_size = check_pair(self.owner, "kernel_size", kernel_size)
        self.strides = check_pair(self.owner, "strides", strides)
        self.padding = check_padding(self.owner, padding)
        self.kernel_regularizer = check_regularizer(self.owner, "kernel_regularizer",
                                                    kernel_regularizer)
        if kernel_regularizer is not None:
            self.regularizers["kernel"] = kernel_regularizer

    def check_input_channels(self, input_shape):
        kernel = self.params.get("kernel")
        if kernel is not None and input_shape[2] != kernel.shape[2]:
            raise ValueError(
                f"{self.owner}: expected {kernel.shape[2]} input channel(s), received "
                f"per-example input shape {input_shape} with {input_shape[2]} channel(s)."
            )

    def output_shape_for(self, input_shape):
        return (*self._window_output(input_shape, self.kernel_size, self.strides, self.padding),
                self.filters)

    def init_params(self, input_shape, rng):
        shape = (*self.kernel_size, input_shape[2], self.filters)
        return {
            "kernel": glorot_uniform(shape, rng, self.dtype),
            "bias": np.zeros(self.filters, dtype=self.dtype),
        }

    def call(self, x):
        return self.save_for_backward(*ops.conv2d_forward(
            x, self.params["kernel"], self.params["bias"], self.strides, self.padding))

    def call_backward(self, dy):
        dx, self.grads["kernel"], self.grads["bias"] = ops.conv2d_backward(dy, self.cache)
        return dx

    def backward_params(self, dy):
        _, self.grads["kernel"], self.grads["bias"] = ops.conv2d_backward(
            dy, self.cache, need_input_grad=False)


class MaxPool2D(_Windowed):
    """2-D max pooling. Input (N, H, W, C), output (N, Ho, Wo, C).

    ``strides=None`` means ``strides=pool_size`` (Keras's default). On ties the whole gradient goes
    to the first maximal element of the window in row-major order, as in TensorFlow.
    """

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", name: str | None = None):
        super().__init__(name)
        self.pool_size = check_pair(self.owner, "pool_size", pool_size)
        self.strides = self.pool_size if strides is None else check_pair(self.owner, "strides", strides)
        self.padding = check_padding(self.owner, padding)

    def output_shape_for(self, input_shape):
        return (*self._window_output(input_shape, self.pool_size, self.strides, self.padding),
                input_shape[2])

    def call(self, x):
        return self.save_for_backward(*ops.max_pool2d_forward(x, self.pool_size, self.strides, self.padding))

    def call_backward(self, dy):
        return ops.max_pool2d_backward(dy, self.cache)


LAYERS = {cls.__name__: cls for cls in (Dense, ReLU, Flatten, Conv2D, MaxPool2D)}
