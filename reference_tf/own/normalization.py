"""User normalization and dropout layers, declared as the Keras layer they must equal.

CS231n's assignment-2 functions, or objects in PyTorch's style:

- ``BatchNormalization(impl, momentum)``: ``batchnorm_forward(x, gamma, beta, bn_param)`` on
  features (N, D), ``spatial_batchnorm_forward`` on images (N, C, H, W) or any declared layout;
  training-mode statistics, and the running averages compared with Keras's moving ones;
- ``LayerNormalization(impl)``: ``layernorm_forward(x, gamma, beta, ln_param)`` on (N, D);
- ``GroupNormalization(impl, groups)``: ``spatial_groupnorm_forward(x, gamma, beta, G,
  gn_param)`` on images, as Keras's ``GroupNormalization`` (contiguous groups of channels);
- ``Dropout(impl, rate)``: ``dropout_forward(x, dropout_param)``; the Keras twin applies the
  very mask the user's code drew.

Conventions (``reference_tf.own.Conventions``): ``epsilon`` (None: Keras's 1e-3; CS231n's code
adds 1e-5), ``bn_momentum`` ("keras": the declared momentum weighs the running average, as
CS231n's ``bn_param``; "pytorch": it weighs the batch), ``dropout`` ("rate": the declared
probability drops a unit, as Keras; "keep": it keeps one, as CS231n's ``p``), ``scale_shape``
(gamma and beta of shape (1, C, 1, 1), as CS231n's spatial group norm), and ``names`` for gamma,
beta and the running averages (default ``running_mean``, ``running_var``).

The running averages go in and out of the user's code through its parameter dict
(``bn_param["running_mean"]``, a fresh copy on every call with ``"mode"`` set to "train", or
"test" for evaluation) or, for an object, through its mapping ``state``.
"""

from __future__ import annotations

import numpy as np

from reference_tf.own.layers import Functions, OwnLayer
from reference_tf.user_code import UserCodeError, result_faults
from scratch.checks import check_interval, check_positive_int

STATE = ("moving_mean", "moving_variance")


def _mode_impl(layer: OwnLayer, mode: str, state: dict | None = None):
    """The layer's implementation for one call: a ``Functions`` pair gets a fresh copy of its
    parameter dict with ``mode`` (and the running averages ``state``, keyed by the user's
    names); an object gets ``state`` in its mapping. Returns (impl, where the code left the
    running averages: the dict or the object's mapping)."""
    impl = layer.impl
    if isinstance(impl, Functions):
        if impl.param_dict() is None:  # a dropout without dropout_param (BN has one: __init__)
            return impl, None
        impl = impl.with_param({"mode": mode, **(state or {})})
        return impl, impl.param_dict()
    if state is None:
        return impl, None
    mapping = impl.state_mapping(layer.owner)
    mapping.update(state)
    return impl, mapping


def _run(layer: OwnLayer, x: np.ndarray, mode: str, state: dict | None, after) -> np.ndarray:
    """``OwnLayer.call`` with the implementation of ``_mode_impl``; ``after(y, stored)`` runs
    on the output (also after a fault that is not fatal) and returns more faults."""
    original = layer.impl
    layer.impl, stored = _mode_impl(layer, mode, state)
    try:
        y, faults = OwnLayer.call(layer, x), []
    except UserCodeError as error:
        if error.fatal:
            raise
        y, faults = error.value, list(error.faults)
    finally:
        layer.impl = original
    faults += after(y, stored)
    if faults:
        raise UserCodeError(faults, value=None if any(f.fatal for f in faults) else y)
    return y


class _Normalization(OwnLayer):
    """gamma and beta (C,) over the channel axis, the declared epsilon."""

    kind = "norm"
    ranks = (2, 4)  # the input ranks (with the batch axis) a declaration takes

    @property
    def param_names(self) -> dict[str, str]:
        names = self.conventions.norm_names
        return {"gamma": names["gamma"], "beta": names["beta"]}

    @property
    def epsilon(self) -> float:
        return self.conventions.keras_epsilon

    def channels(self, input_shape: tuple) -> int:
        """The channels (images) or features (N, D) of a per-example input shape."""
        if len(input_shape) + 1 not in self.ranks:
            ranks = " or ".join(str(r) for r in self.ranks)
            raise ValueError(f"{self.owner}: expected an input of rank {ranks}, received "
                             f"per-example shape {tuple(input_shape)}.")
        return self.image_shape(input_shape)[2] if len(input_shape) == 3 else input_shape[0]

    def keras_axis(self) -> int:
        """The channel axis of the user's layout, as the Keras layer's ``axis``."""
        return self.conventions.layout.index("C") if len(self.input_shape) == 3 else -1

    def check_input_channels(self, input_shape):
        channels = self.channels(input_shape)
        gamma = self.params.get(self.param_names["gamma"])
        if gamma is not None and gamma.size != channels:
            raise ValueError(f"{self.owner}: expected {gamma.size} channel(s), received "
                             f"per-example input shape {input_shape}.")

    def keras_init(self, input_shape, rng):
        channels = self.channels(input_shape)
        return {"gamma": np.ones(channels, dtype=self.dtype),
                "beta": np.zeros(channels, dtype=self.dtype)}

    def twin_stack(self):
        return [(self.keras_class, {**self.config(), "axis": self.keras_axis()})]


class BatchNormalization(_Normalization):
    """A user batch norm declared as ``keras.layers.BatchNormalization(momentum=momentum,
    epsilon=<conventions.epsilon>)`` in training mode, over the channel axis of the declared
    layout (features of (N, D)). ``momentum`` reads as the ``bn_momentum`` convention says.
    Parameters: gamma, beta; state: the running mean and variance (Keras's moving_mean and
    moving_variance, starting at 0 and 1)."""

    keras_class = "BatchNormalization"
    mixes_examples = True

    def __init__(self, impl, momentum: float = 0.99, name: str | None = None, **conventions):
        super().__init__(impl, name, **conventions)
        self.momentum = check_interval(self.owner, "momentum", momentum, 0.0, 1.0)
        if isinstance(self.impl, Functions) and self.impl.param_dict() is None:
            raise ValueError(f"{self.owner}: expected a parameter dict among the arguments after "
                             "gamma and beta (CS231n's bn_param) to hand the running averages "
                             f"to, received arguments {self.impl.args} and keywords "
                             f"{sorted(self.impl.kwargs)}.")

    def config(self):
        momentum = self.momentum if self.conventions.bn_momentum == "keras" else 1 - self.momentum
        return {"momentum": momentum, "epsilon": self.epsilon}

    def build(self, input_shape, rng=None, dtype="float32"):
        if self.impl is not None and not isinstance(self.impl, Functions):
            self.impl.state_mapping(self.owner)
        super().build(input_shape, rng, dtype)
        channels = self.channels(self.input_shape)
        self.state = {"moving_mean": np.zeros(channels, dtype=self.dtype),
                      "moving_variance": np.ones(channels, dtype=self.dtype)}
        return self

    def float64_copy(self):
        clone = super().float64_copy()
        clone.state = {key: value.astype(np.float64) for key, value in self.state.items()}
        return clone

    def _pass(self, x, mode: str):
        names = self.conventions.norm_names
        given = {names[key]: self.state[key].copy() for key in STATE}
        return _run(self, x, mode, given, self._read_state)

    def _read_state(self, y, stored) -> list:
        """Copy the running averages the user's code left in ``stored`` into ``state``."""
        names, faults = self.conventions.norm_names, []
        fault = self.fault_maker("forward")
        for key in STATE:
            value = stored.get(names[key]) if stored is not None else None
            found = result_faults(value, f"state/{key}", f"running average '{names[key]}'",
                                  self.state[key].shape, self.dtype, "", fault)
            faults += found
            if not any(f.fatal for f in found):
                self.state[key][...] = value
        return faults

    def call(self, x):
        return self._pass(x, "train")

    def infer(self, x):
        return self._pass(x, "test")


class LayerNormalization(_Normalization):
    """A user layer norm of (N, D) declared as ``keras.layers.LayerNormalization(axis=-1,
    epsilon=<conventions.epsilon>)``. Parameters: gamma, beta."""

    keras_class = "LayerNormalization"
    ranks = (2,)

    def config(self):
        return {"epsilon": self.epsilon}


class GroupNormalization(_Normalization):
    """A user group norm of images declared as ``keras.layers.GroupNormalization(groups,
    epsilon=<conventions.epsilon>)`` over the channel axis of the declared layout: channel c
    is in group c // (C / groups). Parameters: gamma, beta."""

    keras_class = "GroupNormalization"
    ranks = (4,)

    def __init__(self, impl, groups: int, name: str | None = None, **conventions):
        super().__init__(impl, name, **conventions)
        self.groups = check_positive_int(self.owner, "groups", groups)

    def check_input_channels(self, input_shape):
        super().check_input_channels(input_shape)
        channels = self.channels(input_shape)
        if channels % self.groups:
            raise ValueError(f"{self.owner}: expected a number of channels divisible by "
                             f"groups={self.groups}, received {channels}.")

    def config(self):
        return {"groups": self.groups, "epsilon": self.epsilon}


class Dropout(OwnLayer):
    """A user dropout declared as ``keras.layers.Dropout(rate)`` in training mode (inverted:
    kept units scaled by 1 / (1 - rate)); ``rate`` reads as the ``dropout`` convention says
    (``dropout="keep"``: CS231n's ``p``). The Keras twin applies the mask the user's code drew:
    the units whose output is not 0, and where the input is 0, the units the user's backward
    pass lets a gradient through. Give the code a seed (CS231n's ``dropout_param["seed"]``):
    the isolated comparisons and finite differences run it again and need the same mask."""

    keras_class = "Dropout"

    def __init__(self, impl, rate: float, name: str | None = None, **conventions):
        super().__init__(impl, name, **conventions)
        self.probability = check_interval(self.owner, "rate", rate, 0.0, 1.0, low_open=True,
                                          high_open=True)
        self.keep: np.ndarray | None = None

    @property
    def rate(self) -> float:
        """Keras's rate: the probability of dropping a unit."""
        return self.probability if self.conventions.dropout == "rate" else 1 - self.probability

    def config(self):
        return {"rate": self.rate}

    def _mask(self, x: np.ndarray, y) -> list:
        """Set ``keep`` from the user's output y, and from its backward pass on a ones
        upstream gradient where x is 0 (the output is 0 there, kept or not)."""
        self.keep = np.asarray(y) != 0
        unknown = x == 0
        if unknown.any():
            try:
                dx, _ = self.impl.run_backward(np.ones_like(y), self.cache[0], [],
                                               self.fault_maker("backward"))
                self.keep |= unknown & (np.asarray(dx) != 0)
            except UserCodeError:
                pass  # the backward pass itself reports its faults
        return []

    def call(self, x):
        return _run(self, x, "train", None, lambda y, _: self._mask(x, y))

    def infer(self, x):
        return _run(self, x, "test", None, lambda y, _: [])

    def keras_layer(self, dtype: str):
        """``reference_tf.twin.SharedMaskDropout`` reading this layer's ``keep``."""
        from reference_tf.twin import SharedMaskDropout

        return SharedMaskDropout(self, name=self.name, dtype=dtype)


DECLARED = {cls.__name__: cls for cls in (BatchNormalization, LayerNormalization,
                                          GroupNormalization, Dropout)}
