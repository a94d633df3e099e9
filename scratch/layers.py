"""Layer classes: thin wrappers that hold parameters, the last cache and the gradients.

Each layer has ``forward(x) -> y``, ``backward(dy) -> dx``, ``params``/``grads`` dicts keyed
``"kernel"``/``"bias"`` (empty without parameters), ``compute_output_shape(input_shape)`` (shapes
without the batch axis) and ``build(input_shape, rng, dtype)``. Constructor arguments follow Keras.
``forward``/``backward`` validate their arguments and call the hooks a subclass implements
(``call``, ``call_backward``, ...; see ``Layer``); ``Sequential`` validates once at the model's
entry and calls the hooks directly.

Training and inference: ``call`` (and so ``forward``, ``Sequential.trace`` and
``Sequential.loss_and_grads``) is the training-mode pass, Keras's ``layer(x, training=True)``:
BatchNormalization normalizes with the batch's statistics and updates its moving statistics,
Dropout drops units. ``infer`` (``Sequential.forward``, ``evaluate``, ``predict``) is inference:
the moving statistics, no dropout. Moving statistics are ``state``, not ``params``: no gradient,
no optimizer step.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from scratch import ops
from scratch.checks import (
    check_bool,
    check_dtype_name,
    check_float_array,
    check_interval,
    check_padding,
    check_pair,
    check_positive_int,
)
from scratch.initializers import glorot_uniform
from scratch.regularizers import L2, check_regularizer


class Layer:
    """Base class. Subclasses set ``input_rank`` and implement the hooks."""

    input_rank: int | None = None  # rank without the batch axis; None = any rank >= 1
    # True if an example's output depends on the other examples of the batch (batch statistics):
    # finite differences then perturb one example at a time.
    mixes_examples: bool = False
    # True if the input is integer indices (Embedding), which have no gradient.
    takes_indices: bool = False
    # Whether a mask of padded time steps (Keras's masking) passes through the layer unchanged.
    supports_masking: bool = False

    def __init__(self, name: str | None = None):
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(
                f"{type(self).__name__}: expected name to be a non-empty string without '/', "
                f"received name={name!r}."
            )
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        # Non-trainable arrays the layer updates itself in training passes (in place), keyed like
        # Keras's variables: BatchNormalization's "moving_mean" and "moving_variance".
        self.state: dict[str, np.ndarray] = {}
        self.dtype: np.dtype | None = None
        self.input_shape: tuple | None = None
        self.cache = None
        # The mask (N, T) bool of the input's time steps (True = a real step), set by the model
        # before each pass from the previous layer's ``compute_mask``; None: no padding.
        self.input_mask: np.ndarray | None = None
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
        self.check_input_array(x)
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
    def check_input_array(self, x) -> None:
        """Raise unless x is an array this layer takes (default: finite floats of its dtype)."""
        check_float_array(self.owner, "input", x, self.dtype)

    def compute_mask(self, inputs: np.ndarray | None, mask: np.ndarray | None):
        """The mask (N, T) of the output's time steps, from the input's ``mask`` (Keras's
        ``compute_mask``); ``inputs`` is the model's input for its first layer (where masks
        start: ``Embedding(mask_zero=True)``), else None. Default: ``mask`` if the layer
        ``supports_masking``, else None."""
        return mask if self.supports_masking else None

    def check_input_channels(self, input_shape: tuple) -> None:
        """Raise if a built layer's parameters cannot take ``input_shape`` (rank already
        checked)."""

    def output_shape_for(self, input_shape: tuple) -> tuple:
        """Per-example output shape for a valid per-example ``input_shape`` (default: the same)."""
        return input_shape

    def init_params(self, input_shape: tuple, rng: np.random.Generator) -> dict:
        """The initial parameters for per-example ``input_shape``, in ``self.dtype`` (default
        none)."""
        return {}

    def call(self, x: np.ndarray) -> np.ndarray:
        """The output y (N, ...) of a valid batch x (N, *input_shape); ends with
        ``return self.save_for_backward(y, cache)``."""
        raise NotImplementedError(f"{self.owner}: a Layer subclass must implement call(x).")

    def call_backward(self, dy: np.ndarray) -> np.ndarray:
        """dL/dx (the input's shape) from dL/dy (the last output's shape) and ``self.cache``;
        sets ``self.grads[key]`` for every parameter."""
        raise NotImplementedError(f"{self.owner}: a Layer subclass must implement "
                                  "call_backward(dy).")

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


def _store_grads(layer: "Dense | Conv2D", dkernel: np.ndarray, dbias: np.ndarray) -> None:
    """Keep the kernel gradient and, if the layer has a bias, the bias gradient."""
    layer.grads["kernel"] = dkernel
    if layer.use_bias:
        layer.grads["bias"] = dbias


class Dense(Layer):
    """Fully connected layer. Input (N, in), output (N, units); kernel (in, units), bias (units,)
    unless ``use_bias=False`` (as before a BatchNormalization). On sequences (N, T, in) it maps
    every time step, as Keras does: output (N, T, units); a mask passes through.

    ``kernel_regularizer``: None or ``scratch.regularizers.L2``, whose penalty of the kernel the
    model adds to its loss (as Keras's ``kernel_regularizer``).
    """

    supports_masking = True

    def __init__(self, units: int, use_bias: bool = True, kernel_regularizer: L2 | None = None,
                 name: str | None = None):
        super().__init__(name)
        self.units = check_positive_int(self.owner, "units", units)
        self.use_bias = check_bool(self.owner, "use_bias", use_bias)
        self.kernel_regularizer = check_regularizer(self.owner, "kernel_regularizer",
                                                    kernel_regularizer)
        if kernel_regularizer is not None:
            self.regularizers["kernel"] = kernel_regularizer

    def check_input_channels(self, input_shape):
        if len(input_shape) not in (1, 2):
            raise ValueError(
                f"{self.owner}: expected an input of rank 2 (N, features) or 3 (N, steps, "
                f"features), received per-example shape {input_shape} "
                f"(rank {len(input_shape) + 1} with the batch axis).")
        kernel = self.params.get("kernel")
        if kernel is not None and input_shape[-1] != kernel.shape[0]:
            raise ValueError(f"{self.owner}: expected {kernel.shape[0]} features on the last "
                             f"axis, received per-example input shape {input_shape}.")

    def output_shape_for(self, input_shape):
        return (*input_shape[:-1], self.units)

    def init_params(self, input_shape, rng):
        params = {"kernel": glorot_uniform((input_shape[-1], self.units), rng, self.dtype)}
        if self.use_bias:
            params["bias"] = np.zeros(self.units, dtype=self.dtype)
        return params

    def call(self, x):
        return self.save_for_backward(*ops.dense_forward(x, self.params["kernel"],
                                                         self.params.get("bias")))

    def call_backward(self, dy):
        dx, dkernel, dbias = ops.dense_backward(dy, self.cache)
        _store_grads(self, dkernel, dbias)
        return dx

    def backward_params(self, dy):
        _store_grads(self, *ops.dense_backward(dy, self.cache, need_input_grad=False)[1:])


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

    kernel (kh, kw, c_in, filters), bias (filters,) unless ``use_bias=False`` (as before a
    BatchNormalization, whose mean subtraction cancels any bias). SAME padding is split as
    TensorFlow does it. ``kernel_regularizer`` as in ``Dense``.
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid",
                 use_bias: bool = True, kernel_regularizer: L2 | None = None,
                 name: str | None = None):
        super().__init__(name)
        self.filters = check_positive_int(self.owner, "filters", filters)
        self.kernel_size = check_pair(self.owner, "kernel_size", kernel_size)
        self.strides = check_pair(self.owner, "strides", strides)
        self.padding = check_padding(self.owner, padding)
        self.use_bias = check_bool(self.owner, "use_bias", use_bias)
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
        params = {"kernel": glorot_uniform(shape, rng, self.dtype)}
        if self.use_bias:
            params["bias"] = np.zeros(self.filters, dtype=self.dtype)
        return params

    def call(self, x):
        return self.save_for_backward(*ops.conv2d_forward(
            x, self.params["kernel"], self.params.get("bias"), self.strides, self.padding))

    def call_backward(self, dy):
        dx, dkernel, dbias = ops.conv2d_backward(dy, self.cache)
        _store_grads(self, dkernel, dbias)
        return dx

    def backward_params(self, dy):
        _store_grads(self, *ops.conv2d_backward(dy, self.cache, need_input_grad=False)[1:])


class _Pool2D(_Windowed):
    """Settings and output shape shared by the pooling layers."""

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", name: str | None = None):
        super().__init__(name)
        self.pool_size = check_pair(self.owner, "pool_size", pool_size)
        self.strides = self.pool_size if strides is None else check_pair(self.owner, "strides",
                                                                          strides)
        self.padding = check_padding(self.owner, padding)

    def output_shape_for(self, input_shape):
        return (*self._window_output(input_shape, self.pool_size, self.strides, self.padding),
                input_shape[2])


class MaxPool2D(_Pool2D):
    """2-D max pooling. Input (N, H, W, C), output (N, Ho, Wo, C).

    ``strides=None`` means ``strides=pool_size`` (Keras's default). On ties the whole gradient goes
    to the first maximal element of the window in row-major order, as in TensorFlow.
    """

    def call(self, x):
        return self.save_for_backward(*ops.max_pool2d_forward(x, self.pool_size, self.strides,
                                                              self.padding))

    def call_backward(self, dy):
        return ops.max_pool2d_backward(dy, self.cache)


class AveragePooling2D(_Pool2D):
    """2-D average pooling. Input (N, H, W, C), output (N, Ho, Wo, C).

    ``strides=None`` means ``strides=pool_size``. With SAME padding the padded cells count
    neither in the sum nor in the divisor (TensorFlow's AvgPool), so an edge window is the mean
    of the input cells it covers.
    """

    def call(self, x):
        return self.save_for_backward(*ops.avg_pool2d_forward(x, self.pool_size, self.strides,
                                                              self.padding))

    def call_backward(self, dy):
        return ops.avg_pool2d_backward(dy, self.cache)


class BatchNormalization(Layer):
    """Batch normalization over the last axis: channels of (N, H, W, C), features of (N, F).

    Training passes (``call``, ``forward``) normalize with the batch's mean and biased variance
    over every other axis and then update the moving statistics in place,
    ``moving = moving * momentum + batch * (1 - momentum)``; ``infer`` normalizes with the
    moving statistics. Keras's defaults: momentum 0.99, epsilon 1e-3 (added to the variance).

    params: gamma (C,) if ``scale``, beta (C,) if ``center``; state: moving_mean (C,) (starts at
    0) and moving_variance (C,) (starts at 1).
    """

    mixes_examples = True

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, name: str | None = None):
        super().__init__(name)
        self.momentum = check_interval(self.owner, "momentum", momentum, 0.0, 1.0)
        self.epsilon = check_interval(self.owner, "epsilon", epsilon, 0.0, np.inf,
                                      low_open=True, high_open=True)
        self.center = check_bool(self.owner, "center", center)
        self.scale = check_bool(self.owner, "scale", scale)

    def check_input_channels(self, input_shape):
        mean = self.state.get("moving_mean")
        if mean is not None and input_shape[-1] != mean.shape[0]:
            raise ValueError(
                f"{self.owner}: expected {mean.shape[0]} channel(s) on the last axis, received "
                f"per-example input shape {input_shape}."
            )

    def init_params(self, input_shape, rng):
        channels = input_shape[-1]
        params = {}
        if self.scale:
            params["gamma"] = np.ones(channels, dtype=self.dtype)
        if self.center:
            params["beta"] = np.zeros(channels, dtype=self.dtype)
        return params

    def build(self, input_shape, rng=None, dtype="float32"):
        """Create gamma/beta and the moving statistics for per-example ``input_shape``."""
        super().build(input_shape, rng, dtype)
        channels = self.input_shape[-1]
        self.state = {"moving_mean": np.zeros(channels, dtype=self.dtype),
                      "moving_variance": np.ones(channels, dtype=self.dtype)}
        return self

    def call(self, x):
        y, cache, mean, variance = ops.batch_norm_forward(
            x, self.params.get("gamma"), self.params.get("beta"), self.epsilon)
        for key, batch in (("moving_mean", mean), ("moving_variance", variance)):
            self.state[key][...] = ops.moving_average(self.state[key], batch, self.momentum)
        return self.save_for_backward(y, cache)

    def call_backward(self, dy):
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, self.cache)
        if self.scale:
            self.grads["gamma"] = dgamma
        if self.center:
            self.grads["beta"] = dbeta
        return dx

    def infer(self, x):
        return ops.batch_norm_inference_forward(
            x, self.params.get("gamma"), self.params.get("beta"), self.state["moving_mean"],
            self.state["moving_variance"], self.epsilon)[0]


class Dropout(Layer):
    """Inverted dropout; any input shape. ``rate`` is the probability of dropping a unit.

    A training pass (``call``, ``forward``) draws a keep mask from the layer's own
    ``numpy.random.Generator`` (``generator``: seeded by ``seed``, or spawned from the model's
    generator at build time, which leaves the weights' draws unchanged) and returns
    ``x / (1 - rate)`` at the kept units, 0 at the dropped ones; ``infer`` is the identity.

    Attributes:
        keep: bool array of the last training pass's input shape, True where a unit was kept;
            the Keras twin (``reference_tf.twin``) applies this very mask.
        replay: when True, training passes reuse ``keep`` instead of drawing a new mask (a second
            pass over the same batch, finite differences; see ``replaying_masks``).
    """

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None):
        super().__init__(name)
        # rate 1 would drop everything and scale by 1/0; TensorFlow's dropout refuses it too.
        self.rate = check_interval(self.owner, "rate", rate, 0.0, 1.0, high_open=True)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"{self.owner}: expected seed to be None or an int, "
                            f"received seed={seed!r}.")
        if seed is not None and seed < 0:
            raise ValueError(f"{self.owner}: expected seed >= 0, received seed={seed!r}.")
        self.seed = None if seed is None else int(seed)
        self.generator: np.random.Generator | None = None
        self.keep: np.ndarray | None = None
        self.replay = False

    def build(self, input_shape, rng=None, dtype="float32"):
        """Build for per-example ``input_shape``; the mask generator is seeded by ``seed`` or
        spawned from ``rng`` (which does not advance ``rng``)."""
        rng = rng or np.random.default_rng(0)
        super().build(input_shape, rng, dtype)
        self.generator = (rng.spawn(1)[0] if self.seed is None
                          else np.random.default_rng(self.seed))
        return self

    def call(self, x):
        if self.replay:
            if self.keep is None or self.keep.shape != x.shape:
                raise ValueError(
                    f"{self.owner}: replay needs the mask of an earlier training pass on a batch "
                    f"of shape {x.shape}, received "
                    f"{'none' if self.keep is None else f'a mask of shape {self.keep.shape}'}."
                )
        else:
            self.keep = ops.keep_mask(self.generator, x.shape, self.rate)
        return self.save_for_backward(*ops.dropout_forward(x, self.keep, self.rate))

    def call_backward(self, dy):
        return ops.dropout_backward(dy, self.cache)

    def infer(self, x):
        return x


@contextmanager
def replaying_masks(layers):
    """Within the block, every Dropout among ``layers`` reuses its last mask (``Dropout.replay``).

    E.g. a second training pass over the same batch that must drop the same units as the first:
    ``with replaying_masks(model.layers): model.trace(x, y)``.
    """
    dropouts = [layer for layer in layers if isinstance(layer, Dropout)]
    before = [layer.replay for layer in dropouts]
    for layer in dropouts:
        layer.replay = True
    try:
        yield
    finally:
        for layer, replay in zip(dropouts, before):
            layer.replay = replay


class Sigmoid(Layer):
    """1 / (1 + exp(-x)) elementwise; any input shape."""

    def call(self, x):
        return self.save_for_backward(*ops.sigmoid_forward(x))

    def call_backward(self, dy):
        return ops.sigmoid_backward(dy, self.cache)


class Tanh(Layer):
    """tanh elementwise; any input shape."""

    def call(self, x):
        return self.save_for_backward(*ops.tanh_forward(x))

    def call_backward(self, dy):
        return ops.tanh_backward(dy, self.cache)


class Softmax(Layer):
    """Softmax along ``axis`` of the batch (N, ...) (default -1, the last); any input shape.

    The batch axis itself (0, or -rank) is refused: it would mix the examples.
    """

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{self.owner}: expected axis to be an int, received axis={axis!r}.")
        self.axis = int(axis)

    def check_input_channels(self, input_shape):
        rank = len(input_shape) + 1
        if not -rank < self.axis < rank or self.axis % rank == 0:
            raise ValueError(
                f"{self.owner}: expected axis in [1, {rank - 1}] or [-{rank - 1}, -1] (not the "
                f"batch axis) for per-example input shape {input_shape}, received "
                f"axis={self.axis}."
            )

    def call(self, x):
        return self.save_for_backward(*ops.softmax_forward(x, self.axis))

    def call_backward(self, dy):
        return ops.softmax_backward(dy, self.cache)


class LeakyReLU(Layer):
    """x where x > 0, ``negative_slope * x`` elsewhere; any input shape. Keras's default slope
    is 0.3; the derivative at exactly 0 is the slope (as in TensorFlow).

    TensorFlow's LeakyRelu op holds its slope as a 32-bit float attribute, so Keras multiplies by
    ``float32(negative_slope)`` in float64 too (0.30000001192092896 for 0.3); ``slope`` is that
    value, the one applied.
    """

    def __init__(self, negative_slope: float = 0.3, name: str | None = None):
        super().__init__(name)
        self.negative_slope = check_interval(self.owner, "negative_slope", negative_slope,
                                             0.0, np.inf, high_open=True)
        self.slope = float(np.float32(self.negative_slope))

    def call(self, x):
        return self.save_for_backward(*ops.leaky_relu_forward(x, self.slope))

    def call_backward(self, dy):
        return ops.leaky_relu_backward(dy, self.cache)


LAYERS = {cls.__name__: cls for cls in (Dense, ReLU, Flatten, Conv2D, MaxPool2D,
                                        AveragePooling2D, BatchNormalization, Dropout, Sigmoid,
                                        Tanh, Softmax, LeakyReLU)}
