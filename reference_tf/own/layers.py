"""User layers: code someone else wrote, declared as the Keras layer it must equal.

Each class pairs a user's implementation with a Keras layer and the conventions it is written
in, e.g. ``Conv2D(conv, 8, 3, padding=1)``: "``conv`` computes Keras's ``Conv2D(8, 3)`` with
one zero on every side". An implementation is either

- ``functions(forward, backward, *args, **kwargs)``: a CS231n-style pair,
  ``out, cache = forward(x, *params, *args, **kwargs)`` and ``backward(dout, cache)`` returning
  ``dx`` (no parameters) or ``(dx, *dparams)``, parameters in the order kernel, bias; or
- an object with ``forward(x) -> y`` and ``backward(dy) -> dx`` keeping its parameters and their
  gradients in mappings ``params`` and ``grads`` (``methods(obj, ...)`` renames any of them).

The layers are ``scratch.layers.Layer`` subclasses, so ``scratch.models.Sequential`` (and
``reference_tf.own.Model``) runs them like its own, in the user's layouts: shapes, arrays and
parameters are the user's. tfparity's ``Layer`` interface is only the frame: every output and
gradient comes from the user's code, called by ``reference_tf.user_code`` on private copies and
checked on the way out.

Keyword arguments named like ``Conventions`` fields override the model's conventions for one
layer, e.g. ``Conv2D(conv, 8, 3, bias_shape=(1, 1, 1, -1))``.
"""

from __future__ import annotations

import copy
from typing import Callable, NamedTuple

import numpy as np

from reference_tf.own.conventions import (
    CONVENTION_FIELDS,
    KERAS_ACTIVATIONS,
    KERAS_NAMES,
    Conventions,
    keras_permute_dims,
    param_from_user,
    param_to_user,
    shape_from_user,
    shape_to_user,
)
from reference_tf.user_code import Fault, UserCodeError, call_user, result_faults, writes
from scratch.checks import check_pair, check_positive_int
from scratch.initializers import glorot_uniform
from scratch.layers import Layer
from scratch.ops.padding import window_padding

# Implementations ----------------------------------------------------------------------------

def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


class Functions:
    """A CS231n-style function pair; see the module docstring. ``args``/``kwargs`` are passed
    to every forward call after the parameters, e.g. ``conv_param={"stride": 1, "pad": 1}``."""

    def __init__(self, forward: Callable, backward: Callable, *args, **kwargs):
        for role, fn in (("forward", forward), ("backward", backward)):
            if not callable(fn):
                raise TypeError(f"functions: expected {role} to be a function, received "
                                f"{type(fn).__name__}.")
        self.forward, self.backward, self.args, self.kwargs = forward, backward, args, kwargs

    def function(self, direction: str) -> str:
        return _name(self.forward if direction == "forward" else self.backward)

    def check_params(self, names: list[str], owner: str) -> None:
        """Nothing to check: parameters are passed as arguments."""

    def run_forward(self, x, params: dict, fault, extra: tuple = ()) -> tuple:
        result = call_user(self.forward, (x, *extra, *params.values(), *self.args), self.kwargs,
                           "output", fault)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise UserCodeError([fault("output", f"returned {_describe(result)}, expected a pair "
                                                 "(out, cache)", True)])
        return result

    def run_backward(self, dy, cache, names: list[str], fault, extra: tuple = (),
                     input_grad: bool = True) -> tuple:
        """(dx, dparams) from ``backward``'s ``(dx, *dextra, *dparams)``; dx is None for a layer
        without an input gradient (integer indices), the gradients of ``extra`` (the leading
        inputs after x, e.g. h0) are checked for their number only."""
        result = call_user(self.backward, (dy, cache), {}, "input_grad", fault)
        expected = ["dx"] * input_grad + [f"d{n}" for n in (*extra, *names)]
        if len(expected) == 1 and isinstance(result, np.ndarray):
            result = (result,)
        if isinstance(result, tuple) and len(result) == len(expected):
            return (result[0] if input_grad else None), list(result[len(result) - len(names):])
        text = ", ".join(expected)
        raise UserCodeError([fault("input_grad", f"returned {_describe(result)}, expected "
                                                 f"{text if len(expected) == 1 else f'({text})'}",
                                   True)])

    def copy(self) -> "Functions":
        return self  # stateless: the cache travels through the calls

    def param_dict(self) -> dict | None:
        """The dict among the arguments after the parameters (CS231n's ``bn_param``,
        ``dropout_param``), if there is one."""
        return next((a for a in (*self.args, *self.kwargs.values()) if isinstance(a, dict)), None)

    def with_param(self, values: dict) -> "Functions":
        """A copy whose dict argument (``param_dict``) is a new dict: the original updated with
        ``values`` (the caller reads what the user's code stored in it from ``param_dict``)."""
        old = self.param_dict()
        fresh = {**old, **values}
        args = tuple(fresh if a is old else a for a in self.args)
        kwargs = {k: fresh if v is old else v for k, v in self.kwargs.items()}
        return Functions(self.forward, self.backward, *args, **kwargs)


GRAD_ATTRIBUTES = ("d{}", "grad_{}", "{}_grad", "d_{}", "grad{}")  # where gradients are found


class Methods:
    """An object with forward/backward methods whose parameters and gradients live in mappings
    (``params``/``grads``, or other names) or in attributes of their own.

    ``methods(obj, forward="fprop", backward="bprop", params="parameters", grads="gradients")``
    renames the methods or the mappings; ``params={"W": "weight", "b": "bias"}`` (the user's
    parameter name -> the attribute holding it) and ``grads={"W": "grad_weight", ...}`` declare
    attributes. Without a declaration and without a ``params`` mapping, attributes named like
    the parameters are used, with the gradients in ``dW``, ``grad_W``, ``W_grad``, ``d_W`` or
    ``gradW`` (the first that exists after the backward pass).
    """

    def __init__(self, obj, forward: str = "forward", backward: str = "backward",
                 params: str | dict = "params", grads: str | dict = "grads",
                 state: str = "state"):
        for role, attribute in (("forward", forward), ("backward", backward)):
            if not callable(getattr(obj, attribute, None)):
                raise TypeError(f"methods: expected {type(obj).__name__} to have a method "
                                f"{attribute}() (the {role} pass), it has none.")
        for role, value in (("params", params), ("grads", grads)):
            if not (isinstance(value, str) or (isinstance(value, dict) and all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()))):
                raise TypeError(f"methods: expected {role} to be the name of a mapping or a dict "
                                f"parameter name -> attribute name, received {value!r}.")
        self.obj, self.names = obj, {"forward": forward, "backward": backward,
                                     "params": params, "grads": grads, "state": state}

    def function(self, direction: str) -> str:
        return f"{type(self.obj).__name__}.{self.names[direction]}"

    def _owner(self, attribute: str) -> str:
        return f"{type(self.obj).__name__}.{attribute}"

    def _param_attributes(self, names: list[str]) -> dict | None:
        """Parameter name -> attribute, or None when the parameters live in a mapping."""
        declared = self.names["params"]
        if isinstance(declared, dict):
            return declared
        if hasattr(getattr(self.obj, declared, None), "__setitem__"):
            return None
        if declared == "params" and names and all(
                isinstance(getattr(self.obj, n, None), np.ndarray) for n in names):
            return {n: n for n in names}
        return None

    def check_params(self, names: list[str], owner: str) -> None:
        """The parameters must be reachable: in a mapping tfparity can assign into, or in
        attributes (declared, or named like the parameters)."""
        if not names:
            return
        attributes = self._param_attributes(names)
        if attributes is not None:
            missing = [n for n in names if n not in attributes
                       or not hasattr(self.obj, attributes[n])]
            if missing:
                raise ValueError(
                    f"{owner}: expected {type(self.obj).__name__} to have an attribute for each "
                    f"parameter {names}, found none for {missing} (declare them with "
                    f"own.methods(obj, params={{'{missing[0]}': 'attribute', ...}})).")
            return
        declared = self.names["params"]
        mapping = getattr(self.obj, declared, None)
        if not hasattr(mapping, "__setitem__"):
            found = [a for a, v in getattr(self.obj, "__dict__", {}).items()
                     if isinstance(v, np.ndarray)]
            raise ValueError(
                f"{owner}: expected {self._owner(declared)} to be a mapping holding {names}, "
                f"received {type(mapping).__name__}; parameters kept as attributes are "
                f"declared with own.methods(obj, params={{'{names[0]}': 'attribute', ...}}, "
                f"grads={{'{names[0]}': 'attribute', ...}}) (array attributes: {found}).")

    def run_forward(self, x, params: dict, fault, extra: tuple = ()) -> tuple:
        attributes = self._param_attributes(list(params)) if params else {}
        if attributes is None:
            mapping = getattr(self.obj, self.names["params"])
            for name, value in params.items():
                mapping[name] = value
        else:
            for name, value in params.items():
                setattr(self.obj, attributes[name], value)
        return call_user(getattr(self.obj, self.names["forward"]), (x,), {}, "output", fault), None

    def _gradient_places(self, name: str) -> list[str]:
        """The attributes where the gradient of parameter ``name`` may be (none: a mapping)."""
        declared = self.names["grads"]
        if isinstance(declared, dict):
            return [declared[name]] if name in declared else []
        if hasattr(getattr(self.obj, declared, None), "__getitem__"):
            return []
        return [pattern.format(name) for pattern in GRAD_ATTRIBUTES]

    def _gradients(self, names: list[str], fault) -> list:
        """The gradients the backward pass left, in ``names`` order; a fatal fault if missing."""
        declared = self.names["grads"]
        mapping = getattr(self.obj, declared, None) if isinstance(declared, str) else None
        found, missing = [], []
        for name in names:
            places = self._gradient_places(name)
            if not places:
                value = (mapping[name] if hasattr(mapping, "__getitem__") and name in mapping
                         else None)
            else:
                value = next((getattr(self.obj, a) for a in places if hasattr(self.obj, a)),
                             None)
            found.append(value)
            if value is None:
                missing.append(name)
        if missing:
            places = self._gradient_places(missing[0])
            where = (", ".join(self._owner(a) for a in places) if places
                     else self._owner(declared) if isinstance(declared, str) else "its attributes")
            hint = ("" if isinstance(declared, dict) or not places else
                    " (attributes are declared with own.methods(obj, grads="
                    f"{{'{missing[0]}': 'attribute', ...}}))")
            raise UserCodeError([fault(f"grads/{missing[0]}", f"left no gradient {missing} in "
                                                              f"{where}{hint}", True)])
        return found

    def run_backward(self, dy, cache, names: list[str], fault, extra: tuple = (),
                     input_grad: bool = True) -> tuple:
        dx = call_user(getattr(self.obj, self.names["backward"]), (dy,), {}, "input_grad", fault)
        return dx, self._gradients(names, fault) if names else []

    def state_mapping(self, owner: str):
        """The object's mapping of running statistics (BatchNormalization's), ValueError if it
        has none."""
        mapping = getattr(self.obj, self.names["state"], None)
        if not hasattr(mapping, "__setitem__"):
            raise ValueError(f"{owner}: expected {type(self.obj).__name__}.{self.names['state']} "
                             f"to be a mapping of its running statistics, received "
                             f"{type(mapping).__name__}.")
        return mapping

    def copy(self) -> "Methods":
        clone = copy.copy(self)
        clone.obj = copy.deepcopy(self.obj)
        return clone


def _describe(value) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return f"{type(value).__name__}"


def implementation(impl, owner: str):
    """``impl`` as ``Functions`` or ``Methods`` (an object with forward/backward); None for a
    declaration without code (``reference_tf.own.Function`` describes its architecture so)."""
    if impl is None or isinstance(impl, (Functions, Methods)):
        return impl
    if callable(getattr(impl, "forward", None)) and callable(getattr(impl, "backward", None)):
        return Methods(impl)
    raise TypeError(f"{owner}: expected the implementation to be functions(forward, backward, "
                    f"...) or an object with forward(x) and backward(dy) methods, received "
                    f"{type(impl).__name__}.")


# Declared padding ---------------------------------------------------------------------------

def check_window_padding(owner: str, padding):
    """"same"/"valid", or explicit zero padding as ((top, bottom), (left, right)) from an int
    (every side), a pair (rows, columns) or the nested pair itself."""
    if isinstance(padding, str) and padding.lower() in ("same", "valid"):
        return padding.lower()

    def side(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if side(padding):
        return ((padding, padding), (padding, padding))
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(side(p) for p in padding):
            return ((padding[0], padding[0]), (padding[1], padding[1]))
        if all(isinstance(p, (tuple, list)) and len(p) == 2 and all(side(v) for v in p)
               for p in padding):
            return (tuple(padding[0]), tuple(padding[1]))
    raise ValueError(f"{owner}: expected padding 'same', 'valid', an int, (rows, columns) or "
                     f"((top, bottom), (left, right)) of non-negative ints, received "
                     f"padding={padding!r}.")


def window_output(owner: str, hw: tuple, window: tuple, strides: tuple, padding) -> tuple:
    """(Ho, Wo) of a window sliding over (H, W) with declared padding; ValueError if none fits."""
    out = []
    for axis in range(2):
        if isinstance(padding, str):
            out.append(window_padding(hw[axis], window[axis], strides[axis], padding).out)
        else:
            size = hw[axis] + sum(padding[axis])
            out.append((size - window[axis]) // strides[axis] + 1 if size >= window[axis] else 0)
    if min(out) < 1:
        raise ValueError(f"{owner}: window {window} with padding {padding!r} does not fit an "
                         f"input of {hw[0]}x{hw[1]}.")
    return tuple(out)


# The layers ---------------------------------------------------------------------------------

class Declaration(NamedTuple):
    """What a user layer must equal: a Keras layer class name, its settings, and the user's
    conventions. ``config`` holds Keras constructor arguments, except that explicit padding is
    ((top, bottom), (left, right)) zeros (Keras gets ZeroPadding2D and padding="valid")."""

    keras: str
    config: dict
    conventions: Conventions

    def to_dict(self) -> dict:
        return {"keras": self.keras, "config": dict(self.config),
                "conventions": self.conventions.to_dict()}


class OwnLayer(Layer):
    """Base of the user layers: runs the implementation safely, in the declared conventions.

    ``params`` and ``grads`` are keyed by the user's names and hold the user's layouts. Faults of
    the user's code raise ``UserCodeError`` after the layer has kept its cache and gradients, so
    a caller that tolerates a fault that is not fatal (``value``) can go on.
    """

    keras_class = ""
    kind: str | None = None  # "conv" or "dense": which kernel layout the parameters follow
    extra_inputs: tuple = ()  # names of the arguments a function pair takes after x (h0)
    input_grad = True  # False: the input is integer indices, backward returns no dx

    def __init__(self, impl, name: str | None = None, **conventions):
        super().__init__(name)
        unknown = sorted(set(conventions) - set(CONVENTION_FIELDS))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {unknown}; "
                            f"conventions are {list(CONVENTION_FIELDS)}.")
        self.impl = implementation(impl, type(self).__name__)
        self.overrides = dict(conventions)
        self.conventions = Conventions().updated(**conventions)

    # Declaration -----------------------------------------------------------------------------
    def bind(self, defaults: Conventions) -> None:
        """Take the model's conventions, with this layer's own overrides on top."""
        self.conventions = defaults.updated(**self.overrides)

    def config(self) -> dict:
        """The declared Keras settings."""
        return {}

    @property
    def declaration(self) -> Declaration:
        return Declaration(self.keras_class, self.config(), self.conventions)

    @property
    def function(self) -> str:
        """The user's forward function or method, for tables: "conv_forward_naive"."""
        return "declared only" if self.impl is None else self.impl.function("forward")

    @property
    def label(self) -> str:
        """The type column of ``tfparity diff``: the Keras class and the user's function."""
        return f"{self.keras_class} ({self.function})"

    @property
    def param_names(self) -> dict[str, str]:
        """Keras parameter name -> the user's name, for the layers that have parameters."""
        if not self.kind:
            return {}
        return {key: self.conventions.names[key] for key in KERAS_NAMES}

    def twin_stack(self) -> list[tuple[str, dict]]:
        """The Keras layers computing exactly what was declared, in the user's layouts, in
        order: (``keras.layers`` class name, settings) pairs."""
        raise TypeError(f"{self.owner}: no Keras twin for {type(self).__name__}.")

    def keras_layer(self, dtype: str):
        """The Keras twin: one layer or a small stack built from ``twin_stack``
        (``reference_tf.own.twins``)."""
        from reference_tf.own.twins import keras_layer

        return keras_layer(self, dtype)

    def params_to_keras(self, params: dict) -> dict:
        """Arrays keyed by the user's names, in the user's layouts -> keyed and laid out like
        the Keras layer's variables ("kernel", "bias")."""
        return {key: param_from_user(self.kind, key, params[user], self.conventions)
                for key, user in self.param_names.items()}

    def params_from_keras(self, arrays: dict) -> dict:
        """The inverse of ``params_to_keras`` (for Keras gradients, too)."""
        return {user: param_to_user(self.kind, key, np.asarray(arrays[key]), self.conventions)
                for key, user in self.param_names.items()}

    def float64_copy(self) -> "OwnLayer":
        """A float64 copy with its own parameters, gradients and implementation state."""
        clone = copy.copy(self)
        clone.impl = None if self.impl is None else self.impl.copy()
        clone.dtype = np.dtype(np.float64)
        clone.params = {k: v.astype(np.float64) for k, v in self.params.items()}
        clone.grads = {k: np.zeros_like(v) for k, v in clone.params.items()}
        clone.cache = None
        return clone

    # Shapes ----------------------------------------------------------------------------------
    def image_shape(self, input_shape: tuple) -> tuple:
        """Per-example (H, W, C) of a rank-3 per-example input in the declared layout."""
        if len(input_shape) != 3:
            layout = ", ".join(self.conventions.layout)
            raise ValueError(f"{self.owner}: expected an input of rank 4 ({layout}), "
                             f"received per-example shape {tuple(input_shape)} "
                             f"(rank {len(input_shape) + 1} with the batch axis).")
        return shape_from_user(input_shape, self.conventions.layout)

    def layout_of(self, shape: tuple) -> str:
        """How a batch shape (N, ...) reads: the layout for rank 4, nothing otherwise."""
        return self.conventions.layout if len(shape) == 4 else ""

    def init_params(self, input_shape, rng):
        if self.impl is not None:
            self.impl.check_params(list(self.param_names.values()), self.owner)
        keras = self.keras_init(input_shape, rng)
        return self.params_from_keras(keras) if keras else {}

    def keras_init(self, input_shape: tuple, rng) -> dict:
        """Initial parameters as Keras lays them out (Glorot-uniform kernels, zero biases)."""
        return {}

    # Passes ----------------------------------------------------------------------------------
    def extra_values(self, x: np.ndarray) -> tuple:
        """The values of ``extra_inputs`` for a batch x (zeros for an initial state)."""
        return ()

    def to_user(self, x):
        """An activation (or its gradient) from the model's layout into the user code's."""
        return x

    def from_user(self, y):
        """The inverse of ``to_user`` for what the user code returns (as given if not an
        array)."""
        return y

    def fault_maker(self, direction: str):
        """``make(key, problem, fatal, frame=None) -> Fault`` of this layer's code in one pass
        ("forward" or "backward")."""

        def make(key, problem, fatal, frame=None):
            return Fault(self.name or type(self).__name__, self.impl.function(direction),
                         direction, key, problem, fatal, frame)
        return make

    def _require_impl(self) -> None:
        if self.impl is None:
            raise ValueError(f"{self.owner}: declared without an implementation; it describes "
                             "an architecture only.")

    def call(self, x):
        self._require_impl()
        fault = self.fault_maker("forward")
        x_given = x.copy()
        given = {name: value.copy() for name, value in self.params.items()}
        y, cache = self.impl.run_forward(self.to_user(x_given), given, fault,
                                         self.extra_values(x))
        y = self.from_user(y)
        expected = (x.shape[0], *self.output_shape_for(x.shape[1:]))
        faults = result_faults(y, "output", "output y", expected, self.dtype,
                               self.layout_of(expected), fault)
        if any(f.fatal for f in faults):
            raise UserCodeError(faults)
        y = y.astype(self.dtype, copy=False)
        self.save_for_backward(y, (cache, x, x_given, given))
        faults += writes({"input": x_given, **{f"params/{n}": v for n, v in given.items()}},
                         {"input": x, **{f"params/{n}": v for n, v in self.params.items()}},
                         {"input": "the input it received",
                          **{f"params/{n}": f"its parameter '{n}'" for n in given}}, fault)
        if faults:
            raise UserCodeError(faults, value=y)
        return y

    def call_backward(self, dy):
        self._require_impl()
        fault = self.fault_maker("backward")
        cache, x, x_given, given = self.cache
        dy_given = dy.copy()
        dx, dparams = self.impl.run_backward(self.to_user(dy_given), cache, list(given), fault,
                                             self.extra_inputs, self.input_grad)
        dx = self.from_user(dx)
        faults = [] if not self.input_grad else result_faults(
            dx, "input_grad", "input gradient dx", x.shape, self.dtype, self.layout_of(x.shape),
            fault)
        for name, grad in zip(given, dparams):
            faults += result_faults(grad, f"grads/{name}", f"gradient d{name}",
                                    self.params[name].shape, self.dtype, "", fault)
        if any(f.fatal for f in faults):
            raise UserCodeError(faults)
        self.grads = {name: np.array(grad, dtype=self.dtype) for name, grad in zip(given, dparams)}
        dx = dx.astype(self.dtype, copy=False) if self.input_grad else None
        faults += writes({"output_grad": dy_given, "input": x_given,
                          **{f"params/{n}": v for n, v in given.items()}},
                         {"output_grad": dy, "input": x,
                          **{f"params/{n}": v for n, v in self.params.items()}},
                         {"output_grad": "the upstream gradient it received",
                          "input": "the input it received in the forward pass",
                          **{f"params/{n}": f"its parameter '{n}'" for n in given}}, fault)
        if faults:
            raise UserCodeError(faults, value=dx)
        return dx

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({self.function}, {settings}, name={self.name!r})"


def _permute(source: str, target: str) -> list[tuple[str, dict]]:
    """The Keras ``Permute`` from the activation layout ``source`` to ``target``, if any."""
    return [] if source == target else [("Permute", {"dims": keras_permute_dims(source, target)})]


def _flatten_stack(conventions: Conventions) -> list[tuple[str, dict]]:
    return _permute(conventions.layout, conventions.flatten_order) + [("Flatten", {})]


class _Windowed(OwnLayer):
    """Shared shape logic of Conv2D and MaxPool2D."""

    def window(self) -> tuple:
        raise NotImplementedError

    def output_channels(self, channels: int) -> int:
        return channels

    def check_input_channels(self, input_shape):
        self.image_shape(input_shape)

    def output_shape_for(self, input_shape):
        h, w, c = self.image_shape(input_shape)
        ho, wo = window_output(self.owner, (h, w), self.window(), self.strides, self.padding)
        return shape_to_user((ho, wo, self.output_channels(c)), self.conventions.layout)

    def twin_stack(self):
        """Permuted to NHWC and back around the Keras layer; explicit padding becomes
        ``ZeroPadding2D`` followed by ``padding="valid"``."""
        settings, stack = self.config(), []
        if not isinstance(self.padding, str):
            stack.append(("ZeroPadding2D", {"padding": self.padding}))
            settings["padding"] = "valid"
        layout = self.conventions.layout
        return (_permute(layout, KERAS_ACTIVATIONS) + stack + [(self.keras_class, settings)]
                + _permute(KERAS_ACTIVATIONS, layout))


class Conv2D(_Windowed):
    """A user convolution declared as ``keras.layers.Conv2D(filters, kernel_size, strides,
    padding)``; ``padding`` may also be explicit zeros (an int, (rows, columns) or ((top,
    bottom), (left, right))). Parameters: kernel, bias."""

    keras_class = "Conv2D"
    kind = "conv"

    def __init__(self, impl, filters: int, kernel_size, strides=1, padding="valid",
                 name: str | None = None, **conventions):
        super().__init__(impl, name, **conventions)
        self.filters = check_positive_int(self.owner, "filters", filters)
        self.kernel_size = check_pair(self.owner, "kernel_size", kernel_size)
        self.strides = check_pair(self.owner, "strides", strides)
        self.padding = check_window_padding(self.owner, padding)

    def config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding}

    def window(self):
        return self.kernel_size

    def output_channels(self, channels):
        return self.filters

    def check_input_channels(self, input_shape):
        channels = self.image_shape(input_shape)[2]
        kernel = self.params.get(self.param_names["kernel"])
        if kernel is not None:
            expected = kernel.shape[self.conventions.kernel_layout.index("I")]
            if channels != expected:
                raise ValueError(f"{self.owner}: expected {expected} input channel(s), received "
                                 f"per-example input shape {input_shape} with {channels}.")

    def keras_init(self, input_shape, rng):
        shape = (*self.kernel_size, self.image_shape(input_shape)[2], self.filters)
        return {"kernel": glorot_uniform(shape, rng, self.dtype),
                "bias": np.zeros(self.filters, dtype=self.dtype)}


class MaxPool2D(_Windowed):
    """A user max pooling declared as ``keras.layers.MaxPooling2D(pool_size, strides,
    padding)``. Explicit padding means zeros (as ``np.pad`` adds them); Keras's "same" pads
    with -inf in effect."""

    keras_class = "MaxPooling2D"

    def __init__(self, impl, pool_size=2, strides=None, padding="valid",
                 name: str | None = None, **conventions):
        super().__init__(impl, name, **conventions)
        self.pool_size = check_pair(self.owner, "pool_size", pool_size)
        self.strides = (self.pool_size if strides is None
                        else check_pair(self.owner, "strides", strides))
        self.padding = check_window_padding(self.owner, padding)

    def config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}

    def window(self):
        return self.pool_size


class Dense(OwnLayer):
    """A user affine layer declared as ``keras.layers.Dense(units)``. On an image input (rank 4)
    it flattens first, in the declared ``flatten`` order, as CS231n's ``affine_forward`` does;
    on a sequence (N, T, D) it applies to every step (CS231n's ``temporal_affine_forward``).
    Parameters: kernel, bias."""

    keras_class = "Dense"
    kind = "dense"

    def __init__(self, impl, units: int, name: str | None = None, **conventions):
        super().__init__(impl, name, **conventions)
        self.units = check_positive_int(self.owner, "units", units)

    def config(self):
        return {"units": self.units}

    def features(self, input_shape) -> int:
        """Input features: all of a rank-2 or image input's, one step's of a sequence (N, T, D)
        (Keras applies a Dense to every step, as CS231n's ``temporal_affine_forward``)."""
        if len(input_shape) == 2:
            return int(input_shape[1])
        if len(input_shape) == 3:
            self.image_shape(input_shape)
        elif len(input_shape) != 1:
            raise ValueError(f"{self.owner}: expected an input of rank 2 (N, features), 3 "
                             f"(N, T, features) or 4 (images), received per-example shape "
                             f"{tuple(input_shape)}.")
        return int(np.prod(input_shape))

    def check_input_channels(self, input_shape):
        features = self.features(input_shape)
        kernel = self.params.get(self.param_names["kernel"])
        if kernel is not None:
            expected = kernel.shape[self.conventions.dense_layout.index("I")]
            if features != expected:
                raise ValueError(f"{self.owner}: expected {expected} input features, received "
                                 f"per-example input shape {input_shape} ({features}).")

    def output_shape_for(self, input_shape):
        return (input_shape[0], self.units) if len(input_shape) == 2 else (self.units,)

    def twin_stack(self):
        """On images, the images permuted to the declared flatten order and flattened first."""
        images = _flatten_stack(self.conventions) if len(self.input_shape) == 3 else []
        return images + [("Dense", {"units": self.units})]

    def keras_init(self, input_shape, rng):
        return {"kernel": glorot_uniform((self.features(input_shape), self.units), rng,
                                         self.dtype),
                "bias": np.zeros(self.units, dtype=self.dtype)}


class ReLU(OwnLayer):
    """A user ReLU declared as ``keras.layers.ReLU()`` (derivative 0 at exactly 0)."""

    keras_class = "ReLU"

    def twin_stack(self):
        return [("ReLU", {})]


class Flatten(OwnLayer):
    """A user flatten declared as ``keras.layers.Flatten()`` of images stored in the declared
    layout, flattened in the declared ``flatten`` order."""

    keras_class = "Flatten"

    def check_input_channels(self, input_shape):
        self.image_shape(input_shape)

    def output_shape_for(self, input_shape):
        return (int(np.prod(input_shape)),)

    def twin_stack(self):
        """An NCHW flatten is ``Permute`` then ``Flatten``."""
        return _flatten_stack(self.conventions)


DECLARED = {cls.__name__: cls for cls in (Conv2D, Dense, MaxPool2D, ReLU, Flatten)}


def functions(forward: Callable, backward: Callable, *args, **kwargs) -> Functions:
    """A CS231n-style implementation: ``out, cache = forward(x, *params, *args, **kwargs)``,
    ``backward(dout, cache) -> dx`` or ``(dx, *dparams)``."""
    return Functions(forward, backward, *args, **kwargs)


def methods(obj, forward: str = "forward", backward: str = "backward",
            params: str | dict = "params", grads: str | dict = "grads",
            state: str = "state") -> Methods:
    """An object implementation whose methods or mappings have other names, or whose parameters
    and gradients are attributes: ``params={"W": "weight"}``, ``grads={"W": "grad_weight"}``
    (the user's parameter name -> attribute); ``state``: the mapping of a batch norm's running
    averages."""
    return Methods(obj, forward, backward, params, grads, state)


