"""Sequence layers: Embedding, SimpleRNN, LSTM, GRU, LayerNormalization and Reshape.

Thin classes over ``scratch.ops`` (``recurrent``, ``embedding``, ``layernorm``), with Keras 3's
argument names, defaults, initializers and variable names; ``SEQUENCE_LAYERS`` lists them
(``scratch.layers.LAYERS`` the others).
Sequences are (N, T, features).

Masks (Keras's masking of padded steps): ``Embedding(mask_zero=True)`` marks the steps whose
index is not 0; the model hands the mask on (``Layer.compute_mask``, ``Layer.input_mask``):
a recurrent layer skips the masked steps (an example keeps its state there) and passes the
mask on only with ``return_sequences``; LayerNormalization and Dense pass it through. A layer
used alone takes a mask through ``layer.input_mask = mask`` before ``forward``.
"""

from __future__ import annotations

import numbers

import numpy as np

from scratch import ops
from scratch.checks import check_bool, check_interval, check_positive_int
from scratch.initializers import glorot_uniform, orthogonal
from scratch.layers import Layer
from scratch.ops.flatten import FlattenCache
from scratch.ops.recurrent import gate

# Keras's Embedding initializer: uniform in [-0.05, 0.05].
EMBEDDING_INIT_LIMIT = 0.05


def check_indices(owner: str, indices, input_dim: int | None = None) -> np.ndarray:
    """Check a batch of integer indices (N, T), each in [0, input_dim) when given."""
    if not isinstance(indices, np.ndarray):
        raise TypeError(f"{owner}: expected the input to be a numpy array of integer indices, "
                        f"received {type(indices).__name__}.")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{owner}: expected integer indices (N, T), received dtype "
                        f"{indices.dtype.name} (convert with x.astype('int64')).")
    if input_dim is not None and indices.size and (indices.min() < 0
                                                  or indices.max() >= input_dim):
        bad = indices[(indices < 0) | (indices >= input_dim)][0]
        raise ValueError(f"{owner}: expected indices in [0, {input_dim}) (input_dim), "
                         f"received an index {int(bad)}.")
    return indices


def check_mask(owner: str, mask, shape: tuple) -> None:
    """Check a time-step mask: bool of ``shape`` (N, T)."""
    if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.shape != shape:
        received = (f"{mask.dtype.name} {mask.shape}" if isinstance(mask, np.ndarray)
                    else type(mask).__name__)
        raise ValueError(f"{owner}: expected input_mask to be a bool array of shape {shape} "
                         f"(N, T), received {received}.")


class Embedding(Layer):
    """Lookup table. Input integer indices (N, T), output (N, T, output_dim); embeddings
    (input_dim, output_dim), Keras's initial values uniform in [-0.05, 0.05].

    The gradient of a row sums over every position that looked it up. ``mask_zero=True``:
    index 0 is padding; the output's mask (N, T) is True where the index is not 0.
    """

    input_rank = 1
    takes_indices = True

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False,
                 name: str | None = None):
        super().__init__(name)
        self.input_dim = check_positive_int(self.owner, "input_dim", input_dim)
        self.output_dim = check_positive_int(self.owner, "output_dim", output_dim)
        self.mask_zero = check_bool(self.owner, "mask_zero", mask_zero)
        self.supports_masking = mask_zero

    def check_input_array(self, x):
        check_indices(self.owner, x, self.input_dim)

    def output_shape_for(self, input_shape):
        return (*input_shape, self.output_dim)

    def init_params(self, input_shape, rng):
        shape = (self.input_dim, self.output_dim)
        return {"embeddings": rng.uniform(-EMBEDDING_INIT_LIMIT, EMBEDDING_INIT_LIMIT,
                                          size=shape).astype(self.dtype)}

    def compute_mask(self, inputs, mask):
        if not self.mask_zero or inputs is None:
            return None
        return inputs != 0

    def call(self, x):
        return self.save_for_backward(*ops.embedding_forward(x, self.params["embeddings"]))

    def call_backward(self, dy):
        """Fills the embeddings' gradient; returns None (integer inputs have no gradient)."""
        self.grads["embeddings"] = ops.embedding_backward(dy, self.cache)
        return None


class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: settings, shapes, parameters, masks and the passes.

    Input (N, T, D); output (N, T, units) with ``return_sequences``, else (N, units). params:
    kernel (D, G*units) Glorot-uniform, recurrent_kernel (units, G*units) orthogonal, bias
    (G*units,) zeros unless ``use_bias=False``; G the cell's gates (``scratch.ops.GATES``).
    """

    input_rank = 2
    supports_masking = True
    cell = ""  # a key of scratch.ops.GATES
    reset_after = True  # GRU's setting; the other cells ignore it

    def __init__(self, units: int, return_sequences: bool = False, go_backwards: bool = False,
                 use_bias: bool = True, name: str | None = None):
        super().__init__(name)
        self.units = check_positive_int(self.owner, "units", units)
        self.return_sequences = check_bool(self.owner, "return_sequences", return_sequences)
        self.go_backwards = check_bool(self.owner, "go_backwards", go_backwards)
        self.use_bias = check_bool(self.owner, "use_bias", use_bias)

    @property
    def gates(self) -> int:
        return len(ops.GATES[self.cell])

    def check_input_channels(self, input_shape):
        kernel = self.params.get("kernel")
        if kernel is not None and input_shape[1] != kernel.shape[0]:
            raise ValueError(f"{self.owner}: expected {kernel.shape[0]} features per step, "
                             f"received per-example input shape {input_shape}.")

    def output_shape_for(self, input_shape):
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    def init_bias(self) -> np.ndarray:
        return np.zeros(self.bias_shape(), dtype=self.dtype)

    def init_params(self, input_shape, rng):
        width = self.gates * self.units
        params = {"kernel": glorot_uniform((input_shape[1], width), rng, self.dtype),
                  "recurrent_kernel": orthogonal((self.units, width), rng, self.dtype)}
        if self.use_bias:
            params["bias"] = self.init_bias()
        return params

    def compute_mask(self, inputs, mask):
        # Keras hands the input's mask on unchanged, also with go_backwards (whose outputs are in
        # reversed order).
        return mask if self.return_sequences else None

    def _forward(self, x, keep_steps: bool = True):
        if self.input_mask is not None:
            check_mask(self.owner, self.input_mask, x.shape[:2])
        return ops.recurrent_forward(
            self.cell, x, self.params["kernel"], self.params["recurrent_kernel"],
            self.params.get("bias"), self.input_mask, go_backwards=self.go_backwards,
            return_sequences=self.return_sequences, reset_after=self.reset_after,
            keep_steps=keep_steps)

    def call(self, x):
        return self.save_for_backward(*self._forward(x))

    def infer(self, x):
        return self._forward(x, keep_steps=False)[0]

    def _store(self, dkernel, drecurrent, dbias):
        self.grads["kernel"], self.grads["recurrent_kernel"] = dkernel, drecurrent
        if self.use_bias:
            self.grads["bias"] = dbias

    def call_backward(self, dy):
        dx, *grads = ops.recurrent_backward(dy, self.cache)
        self._store(*grads)
        return dx

    def backward_params(self, dy):
        self._store(*ops.recurrent_backward(dy, self.cache, need_input_grad=False)[1:])


class SimpleRNN(_Recurrent):
    """Keras's SimpleRNN: h_t = tanh(x_t kernel + bias + h_{t-1} recurrent_kernel), h_0 = 0."""

    cell = "simple_rnn"


class LSTM(_Recurrent):
    """Keras's LSTM, gates i, f, c, o (sigmoid, sigmoid, tanh, sigmoid); c_t = f c_{t-1} +
    i c~, h_t = o tanh(c_t). ``unit_forget_bias=True`` (Keras's default) starts the forget
    gate's bias block at 1."""

    cell = "lstm"

    def __init__(self, units: int, return_sequences: bool = False, go_backwards: bool = False,
                 use_bias: bool = True, unit_forget_bias: bool = True, name: str | None = None):
        super().__init__(units, return_sequences, go_backwards, use_bias, name)
        self.unit_forget_bias = check_bool(self.owner, "unit_forget_bias", unit_forget_bias)

    def init_bias(self):
        bias = super().init_bias()
        if self.unit_forget_bias:
            gate(bias, "lstm", "f")[...] = 1
        return bias


class GRU(_Recurrent):
    """Keras 3's GRU, gates z, r, h; h_t = z h_{t-1} + (1 - z) h~. ``reset_after=True`` (the
    default) applies the reset gate after the recurrent product and has a bias (2, 3*units):
    row 0 for the input, row 1 for the recurrent product; ``reset_after=False`` applies it to
    h_{t-1} first and has a bias (3*units,)."""

    cell = "gru"

    def __init__(self, units: int, return_sequences: bool = False, go_backwards: bool = False,
                 use_bias: bool = True, reset_after: bool = True, name: str | None = None):
        super().__init__(units, return_sequences, go_backwards, use_bias, name)
        self.reset_after = check_bool(self.owner, "reset_after", reset_after)

    def bias_shape(self):
        width = self.gates * self.units
        return (2, width) if self.reset_after else (width,)


class LayerNormalization(Layer):
    """Normalization of every position over its last axis (features), as Keras 3's
    ``LayerNormalization(axis=-1)``: mean and biased variance, epsilon 1e-3 (Keras's default)
    added to the variance, then gamma (C,) if ``scale`` and beta (C,) if ``center``. A mask
    passes through."""

    supports_masking = True

    def __init__(self, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 name: str | None = None):
        super().__init__(name)
        self.epsilon = check_interval(self.owner, "epsilon", epsilon, 0.0, np.inf,
                                      low_open=True, high_open=True)
        self.center = check_bool(self.owner, "center", center)
        self.scale = check_bool(self.owner, "scale", scale)

    def check_input_channels(self, input_shape):
        gamma = self.params.get("gamma", self.params.get("beta"))
        if gamma is not None and input_shape[-1] != gamma.shape[0]:
            raise ValueError(f"{self.owner}: expected {gamma.shape[0]} features on the last "
                             f"axis, received per-example input shape {input_shape}.")

    def init_params(self, input_shape, rng):
        params = {}
        if self.scale:
            params["gamma"] = np.ones(input_shape[-1], dtype=self.dtype)
        if self.center:
            params["beta"] = np.zeros(input_shape[-1], dtype=self.dtype)
        return params

    def call(self, x):
        return self.save_for_backward(*ops.layer_norm_forward(
            x, self.params.get("gamma"), self.params.get("beta"), self.epsilon))

    def call_backward(self, dy):
        dx, dgamma, dbeta = ops.layer_norm_backward(dy, self.cache)
        if self.scale:
            self.grads["gamma"] = dgamma
        if self.center:
            self.grads["beta"] = dbeta
        return dx


class Reshape(Layer):
    """(N, *input_shape) -> (N, *target_shape) in C order, as Keras's Reshape, e.g. MNIST's
    (28, 28, 1) images as sequences of 28 steps of 28 pixels (28, 28)."""

    def __init__(self, target_shape, name: str | None = None):
        super().__init__(name)
        shape = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else ()
        if not shape or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                and s > 0 for s in shape):
            raise ValueError(f"{self.owner}: expected target_shape to be a tuple of positive "
                             f"integers, received target_shape={target_shape!r}.")
        self.target_shape = tuple(int(s) for s in shape)

    def output_shape_for(self, input_shape):
        if int(np.prod(input_shape)) != int(np.prod(self.target_shape)):
            raise ValueError(f"{self.owner}: cannot reshape per-example input shape {input_shape} "
                             f"({int(np.prod(input_shape))} values) to {self.target_shape}.")
        return self.target_shape

    def call(self, x):
        return self.save_for_backward(x.reshape(len(x), *self.target_shape),
                                      FlattenCache(x.shape))

    def call_backward(self, dy):
        return ops.flatten_backward(dy, self.cache)


SEQUENCE_LAYERS = (Embedding, SimpleRNN, LSTM, GRU, LayerNormalization, Reshape)
