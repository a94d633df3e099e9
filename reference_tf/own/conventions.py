"""The conventions a user's layer declares, and the one place that converts to and from them.

tfparity's own engine and Keras use TensorFlow's layouts. Code written elsewhere often does not:
CS231n and PyTorch keep activations as NCHW and conv kernels as OIHW, PyTorch keeps dense
kernels as (out, in), some libraries give conv biases the shape (1, 1, 1, F) so they broadcast
over NHWC outputs, and everyone names parameters their own way. A ``Conventions`` value states
these facts as data; every conversion between a user's arrays and Keras's arrays goes through
the functions of this module.

Layout strings name the axes in memory order:

- activations (with the batch axis): ``"NHWC"`` (TensorFlow) or ``"NCHW"``; any permutation of
  those letters with N first. They apply to rank-4 arrays only: (N, features) has no layout.
- conv kernels: a permutation of ``"HWIO"`` (TensorFlow); ``"OIHW"`` is CS231n's and PyTorch's.
- dense kernels: ``"IO"`` (in, out), as TensorFlow and CS231n's ``affine_forward``, or ``"OI"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

KERAS_ACTIVATIONS = "NHWC"
KERAS_CONV_KERNEL = "HWIO"
KERAS_DENSE_KERNEL = "IO"
KERAS_NAMES = ("kernel", "bias")
# Normalization layers' names, Keras's -> the user's by default (CS231n's and PyTorch's names)
NORM_NAMES = {"gamma": "gamma", "beta": "beta", "moving_mean": "running_mean",
              "moving_variance": "running_var"}
KERAS_EPSILON = 1e-3  # BatchNormalization, LayerNormalization, GroupNormalization
DROPOUT_READINGS = ("rate", "keep")
MOMENTUM_READINGS = ("keras", "pytorch")


def _permutation(owner: str, name: str, value, letters: str) -> str:
    """``value`` upper-cased if it is a permutation of ``letters``, else ValueError."""
    text = value.upper() if isinstance(value, str) else None
    if text is None or sorted(text) != sorted(letters):
        raise ValueError(f"{owner}: expected {name} to be an ordering of the letters "
                         f"{'/'.join(letters)} (e.g. {letters!r}), received {name}={value!r}.")
    return text


@dataclass(frozen=True)
class Conventions:
    """How a user's layer stores its arrays.

    Attributes:
        layout: rank-4 activations, ``"NHWC"`` or ``"NCHW"`` (N first, any order of H, W, C).
        kernel_layout: conv kernels, an ordering of "HWIO", e.g. ``"OIHW"``.
        dense_layout: dense kernels, ``"IO"`` (in, out) or ``"OI"`` (out, in).
        bias_shape: None for biases of shape (F,); otherwise the user's shape with one -1 where
            F goes, e.g. ``(1, 1, 1, -1)``.
        flatten: the order in which a Dense flattens a rank-4 input (and a Flatten its input);
            None means ``layout``.
        names: the user's name of each Keras parameter, ``{"kernel": ..., "bias": ...}``;
            optionally also of "gamma", "beta", "moving_mean" and "moving_variance" (default
            gamma, beta, running_mean, running_var).
        epsilon: what a normalization adds to the variance; None: Keras's 1e-3.
        dropout: how a Dropout's declared probability reads: "rate" (Keras: the probability of
            dropping a unit) or "keep" (CS231n's ``p``: the probability of keeping it).
        bn_momentum: how a BatchNormalization's declared momentum reads: "keras" (the weight of
            the running average, as in CS231n's ``bn_param``) or "pytorch" (the batch's).
        scale_shape: None for gamma and beta of shape (C,); otherwise the user's shape with one
            -1 where C goes, e.g. ``(1, -1, 1, 1)`` (CS231n's spatial group norm).
    """

    layout: str = KERAS_ACTIVATIONS
    kernel_layout: str = KERAS_CONV_KERNEL
    dense_layout: str = KERAS_DENSE_KERNEL
    bias_shape: tuple | None = None
    flatten: str | None = None
    names: dict = field(default_factory=lambda: {name: name for name in KERAS_NAMES})
    epsilon: float | None = None
    dropout: str = "rate"
    bn_momentum: str = "keras"
    scale_shape: tuple | None = None

    def __post_init__(self):
        owner = "Conventions"
        set_ = object.__setattr__
        set_(self, "layout", _permutation(owner, "layout", self.layout, KERAS_ACTIVATIONS))
        if self.layout[0] != "N":
            raise ValueError(f"{owner}: expected layout to start with the batch axis N, "
                             f"received layout={self.layout!r}.")
        set_(self, "kernel_layout", _permutation(owner, "kernel_layout", self.kernel_layout,
                                                 KERAS_CONV_KERNEL))
        set_(self, "dense_layout", _permutation(owner, "dense_layout", self.dense_layout,
                                                KERAS_DENSE_KERNEL))
        if self.flatten is not None:
            set_(self, "flatten", _permutation(owner, "flatten", self.flatten, KERAS_ACTIVATIONS))
        for name in ("bias_shape", "scale_shape"):
            if getattr(self, name) is not None:
                set_(self, name, _unit_shape(owner, name, getattr(self, name)))
        names = dict(self.names) if isinstance(self.names, dict) else None
        if (names is None or not set(KERAS_NAMES) <= set(names) <= {*KERAS_NAMES, *NORM_NAMES}
                or not all(isinstance(v, str) and v and "/" not in v for v in names.values())
                or len(set(names.values())) != len(names)):
            raise ValueError(f"{owner}: expected names to map 'kernel' and 'bias' (and optionally "
                             f"{', '.join(NORM_NAMES)}) to distinct names without '/', e.g. "
                             f"{{'kernel': 'W', 'bias': 'b'}}, received names={self.names!r}.")
        set_(self, "names", names)
        epsilon = self.epsilon
        if epsilon is not None and (isinstance(epsilon, bool) or not isinstance(epsilon, float)
                                    or not 0 < epsilon < 1):
            raise ValueError(f"{owner}: expected epsilon to be None or a float in (0, 1), "
                             f"received epsilon={epsilon!r}.")
        for name, readings in (("dropout", DROPOUT_READINGS),
                               ("bn_momentum", MOMENTUM_READINGS)):
            if getattr(self, name) not in readings:
                raise ValueError(f"{owner}: expected {name} to be one of {readings}, received "
                                 f"{name}={getattr(self, name)!r}.")

    @property
    def norm_names(self) -> dict:
        """Keras name -> the user's name of a normalization layer's arrays."""
        return {key: self.names.get(key, user) for key, user in NORM_NAMES.items()}

    @property
    def keras_epsilon(self) -> float:
        """The epsilon of the Keras twin of a normalization layer."""
        return KERAS_EPSILON if self.epsilon is None else self.epsilon

    @property
    def flatten_order(self) -> str:
        """The order in which rank-4 inputs are flattened."""
        return self.flatten or self.layout

    def updated(self, **changes) -> "Conventions":
        """A copy with some fields changed (validated like a new value)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"Conventions: unknown convention(s) {unknown}; expected some of "
                            f"{[f.name for f in fields(self)]}.")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Every field, JSON-ready."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("bias_shape", "scale_shape"):
            out[name] = None if out[name] is None else list(out[name])
        out["names"] = dict(self.names)
        return out


CONVENTION_FIELDS = tuple(f.name for f in fields(Conventions))


def _unit_shape(owner: str, name: str, value) -> tuple:
    """``value`` as a tuple of 1s with one -1 (where the units go), else ValueError."""
    shape = tuple(value) if isinstance(value, (tuple, list)) else ()
    if (shape.count(-1) != 1
            or not all(isinstance(s, int) and (s == 1 or s == -1) for s in shape)):
        raise ValueError(f"{owner}: expected {name} to be a tuple of 1s with one -1 for the "
                         f"number of units, e.g. (1, 1, 1, -1), received {name}={value!r}.")
    return shape


def _order(source: str, target: str) -> tuple[int, ...]:
    """The axes permutation taking an array stored as ``source`` to ``target``."""
    return tuple(source.index(axis) for axis in target)


# Activations ---------------------------------------------------------------------------------

def activation_to_user(x: np.ndarray, layout: str) -> np.ndarray:
    """A Keras-layout (NHWC) batch in ``layout``; arrays not of rank 4 are returned as they are.

    The result is a new contiguous array unless nothing moves.
    """
    if x.ndim != 4 or layout == KERAS_ACTIVATIONS:
        return x
    return np.ascontiguousarray(x.transpose(_order(KERAS_ACTIVATIONS, layout)))


def activation_from_user(x: np.ndarray, layout: str) -> np.ndarray:
    """A rank-4 batch stored as ``layout`` in NHWC; other ranks unchanged."""
    if x.ndim != 4 or layout == KERAS_ACTIVATIONS:
        return x
    return np.ascontiguousarray(x.transpose(_order(layout, KERAS_ACTIVATIONS)))


def shape_to_user(shape: tuple, layout: str) -> tuple:
    """A per-example NHWC shape (H, W, C) in ``layout`` (rank-1 shapes unchanged)."""
    if len(shape) != 3:
        return tuple(shape)
    return tuple(shape[i - 1] for i in _order(KERAS_ACTIVATIONS, layout)[1:])


def shape_from_user(shape: tuple, layout: str) -> tuple:
    """A per-example shape stored as ``layout`` (without N) as (H, W, C)."""
    if len(shape) != 3:
        return tuple(shape)
    return tuple(shape[i - 1] for i in _order(layout, KERAS_ACTIVATIONS)[1:])


def keras_permute_dims(source: str, target: str) -> tuple[int, ...]:
    """``keras.layers.Permute`` dims taking activations stored as ``source`` to ``target``."""
    return _order(source, target)[1:]


# Parameters ----------------------------------------------------------------------------------

VECTORS = ("bias", "gamma", "beta")  # parameters of shape (units,) in Keras


def _bias_shape(units: int, conventions: Conventions, key: str = "bias") -> tuple:
    shape = conventions.bias_shape if key == "bias" else conventions.scale_shape
    if shape is None:
        return (units,)
    return tuple(units if s == -1 else 1 for s in shape)


def _kernel_layouts(kind: str, conventions: Conventions) -> tuple[str, str]:
    """(Keras layout, user layout) of a kernel of a "conv" or "dense" layer."""
    if kind == "conv":
        return KERAS_CONV_KERNEL, conventions.kernel_layout
    return KERAS_DENSE_KERNEL, conventions.dense_layout


def param_shape_to_user(kind: str, key: str, keras_shape: tuple, conventions: Conventions) -> tuple:
    """The user's shape of Keras parameter ``key`` ("kernel", "bias", "gamma", "beta") of a
    ``kind`` layer."""
    if key in VECTORS:
        return _bias_shape(keras_shape[0], conventions, key)
    keras_layout, user_layout = _kernel_layouts(kind, conventions)
    return tuple(keras_shape[i] for i in _order(keras_layout, user_layout))


def param_to_user(kind: str, key: str, value: np.ndarray, conventions: Conventions) -> np.ndarray:
    """Keras parameter ``key`` of a ``kind`` ("conv"/"dense") layer, as the user stores it (a new
    contiguous array)."""
    if key in VECTORS:
        return np.array(value.reshape(_bias_shape(value.shape[0], conventions, key)))
    keras_layout, user_layout = _kernel_layouts(kind, conventions)
    return np.ascontiguousarray(value.transpose(_order(keras_layout, user_layout)))


def param_from_user(kind: str, key: str, value: np.ndarray, conventions: Conventions) -> np.ndarray:
    """A user array of Keras parameter ``key`` (or its gradient) in Keras's layout; the caller
    has checked its shape against ``param_shape_to_user``."""
    if key in VECTORS:
        return np.ascontiguousarray(value).reshape(-1)
    keras_layout, user_layout = _kernel_layouts(kind, conventions)
    return np.ascontiguousarray(value.transpose(_order(user_layout, keras_layout)))


# Recurrent layers ----------------------------------------------------------------------------

KERAS_GATES = {"simple_rnn": "h", "lstm": "ifco", "gru": "zrh"}
# Other libraries' letters for the same gates: CS231n's and PyTorch's g is Keras's c (the LSTM
# candidate), PyTorch's n is Keras's h (the GRU candidate).
GATE_SYNONYMS = {"lstm": {"g": "c"}, "gru": {"n": "h"}, "simple_rnn": {}}
RECURRENT_NAMES = ("kernel", "recurrent_kernel", "bias", "recurrent_bias")


@dataclass(frozen=True)
class RecurrentConventions:
    """How a user's recurrent layer (SimpleRNN, LSTM, GRU) stores its arrays.

    Attributes:
        gate_order: the gate blocks of the weights' columns in memory order, any ordering of the
            cell's letters: LSTM i, f, c (or g), o (Keras "ifco", CS231n "ifog", PyTorch "ifgo");
            GRU z, r, h (or n) (Keras "zrh", PyTorch "rzn"). None: Keras's order.
        biases: 1 (Keras's single bias) or 2 (PyTorch's b_ih and b_hh, added; a GRU with
            ``reset_after`` keeps them apart as Keras's (2, 3U) bias rows do).
        weight_layout: "IO" (in, out) for W (D, G*U) and U (U, G*U), or "OI" (PyTorch's (4H, D)).
        time_major: True if the code takes sequences as (T, N, D) and returns (T, N, U).
        names: the user's name of each Keras parameter: "kernel" (Wx), "recurrent_kernel" (Wh),
            "bias", and with ``biases=2`` "recurrent_bias".
    """

    gate_order: str | None = None
    biases: int = 1
    weight_layout: str = KERAS_DENSE_KERNEL
    time_major: bool = False
    names: dict | None = None

    def __post_init__(self):
        owner = "RecurrentConventions"
        if self.biases not in (1, 2):
            raise ValueError(f"{owner}: expected biases 1 or 2, received biases={self.biases!r}.")
        object.__setattr__(self, "weight_layout", _permutation(
            owner, "weight_layout", self.weight_layout, KERAS_DENSE_KERNEL))
        if not isinstance(self.time_major, bool):
            raise ValueError(f"{owner}: expected time_major True or False, received "
                             f"time_major={self.time_major!r}.")
        if self.gate_order is not None and not isinstance(self.gate_order, str):
            raise ValueError(f"{owner}: expected gate_order to be a string of gate letters, "
                             f"received gate_order={self.gate_order!r}.")
        keys = RECURRENT_NAMES[:2 + self.biases]
        names = dict(zip(keys, ("Wx", "Wh", "b", "b_hh"))) if self.names is None else self.names
        if (not isinstance(names, dict) or set(names) != set(keys)
                or not all(isinstance(v, str) and v and "/" not in v for v in names.values())
                or len(set(names.values())) != len(names)):
            raise ValueError(f"{owner}: expected names to map {list(keys)} to distinct names "
                             f"without '/', received names={self.names!r}.")
        object.__setattr__(self, "names", {key: names[key] for key in keys})

    def gates(self, cell: str) -> str:
        """The declared gate order in Keras's letters for ``cell`` ("lstm", "gru", "simple_rnn")."""
        if self.gate_order is None:
            return KERAS_GATES[cell]
        text = "".join(GATE_SYNONYMS[cell].get(g, g) for g in self.gate_order.lower())
        return _permutation(f"RecurrentConventions ({cell})", "gate_order", text,
                            KERAS_GATES[cell].upper()).lower()

    def to_dict(self) -> dict:
        """Every field, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def gate_blocks(value: np.ndarray, source: str, target: str) -> np.ndarray:
    """The last axis of ``value`` (G blocks of U columns in the gate order ``source``) in the
    gate order ``target`` (a new contiguous array)."""
    units = value.shape[-1] // len(source)
    blocks = np.split(value, len(source), axis=-1) if units else [value]
    return np.ascontiguousarray(np.concatenate([blocks[source.index(g)] for g in target],
                                               axis=-1))


def recurrent_params_to_user(cell: str, arrays: dict, conventions: RecurrentConventions,
                             split_bias: bool) -> dict:
    """Keras's recurrent arrays ("kernel", "recurrent_kernel", "bias"; values or gradients)
    keyed by the user's names in the user's layouts. ``split_bias``: the Keras bias has an input
    row and a recurrent row (GRU with ``reset_after``). Without it, two user biases each get
    the whole Keras bias: their sum is the twin's bias for values, and each one's gradient is
    the Keras bias's gradient."""
    order, names, out = conventions.gates(cell), conventions.names, {}
    for key in ("kernel", "recurrent_kernel"):
        value = gate_blocks(np.asarray(arrays[key]), KERAS_GATES[cell], order)
        out[names[key]] = np.ascontiguousarray(value.T) if conventions.weight_layout == "OI" \
            else value
    if "bias" in arrays:
        bias = gate_blocks(np.asarray(arrays["bias"]), KERAS_GATES[cell], order)
        if conventions.biases == 1:
            out[names["bias"]] = bias
        else:
            parts = (bias[0], bias[1]) if split_bias else (bias, bias)
            out[names["bias"]], out[names["recurrent_bias"]] = (np.array(p) for p in parts)
    return out


def recurrent_params_from_user(cell: str, params: dict, conventions: RecurrentConventions,
                               split_bias: bool) -> dict:
    """The user's recurrent parameters as the Keras twin's variables (two unsplit biases add)."""
    order, names, out = conventions.gates(cell), conventions.names, {}
    for key in ("kernel", "recurrent_kernel"):
        value = np.asarray(params[names[key]])
        value = value.T if conventions.weight_layout == "OI" else value
        out[key] = gate_blocks(value, order, KERAS_GATES[cell])
    if names["bias"] in params:
        bias = np.asarray(params[names["bias"]])
        if conventions.biases == 2:
            recurrent = np.asarray(params[names["recurrent_bias"]])
            bias = np.stack([bias, recurrent]) if split_bias else bias + recurrent
        out["bias"] = gate_blocks(bias, order, KERAS_GATES[cell])
    return out


def sequence_to_user(x, time_major: bool):
    """A batch-major sequence (N, T, ...) as time-major (T, N, ...) when declared; other ranks
    and non-arrays unchanged."""
    if not time_major or not isinstance(x, np.ndarray) or x.ndim != 3:
        return x
    return np.ascontiguousarray(x.transpose(1, 0, 2))


sequence_from_user = sequence_to_user  # the transpose is its own inverse
