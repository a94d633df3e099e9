"""Models of user code: layers with their declarations, the user's loss, or one whole function.

``Model(layers, input_shape, loss=Loss(fn), conventions=Conventions(...))`` is a
``scratch.models.Sequential`` of user layers (and tfparity layers, if any): trace, train,
evaluate and predict all run the user's code, and ``reference_tf.layerdiff`` compares it layer by
layer. ``Function(fn, layers, input_shape, ...)`` wraps a user's ``loss, grads = fn(params, x,
y)`` whose architecture the (implementation-free) layers declare; it is checked end to end.
"""

from __future__ import annotations

import copy

import numpy as np

from reference_tf.loss import LOSS, Loss, loss_value
from reference_tf.own.conventions import (
    KERAS_ACTIVATIONS,
    Conventions,
    activation_to_user,
    shape_from_user,
)
from reference_tf.own.layers import OwnLayer
from reference_tf.user_code import Fault, UserCodeError, call_user, result_faults, writes
from scratch.checks import check_dtype_name
from scratch.models import NUM_CLASSES, Sequential


class Model(Sequential):
    """A network of user layers, built like ``scratch.models.Sequential``.

    Args:
        layers: ``reference_tf.own`` layers (tfparity's own ``scratch.layers`` may be mixed in
            where the layout is NHWC).
        input_shape: the per-example input shape in the declared layout, e.g. (1, 28, 28) for
            NCHW images.
        loss: a ``Loss``; default tfparity's mean softmax cross-entropy.
        conventions: the conventions of every layer that does not override them.
        seed, dtype, num_classes: as ``Sequential``.
    """

    def __init__(self, layers: list, input_shape: tuple, loss: Loss | None = None,
                 conventions: Conventions | None = None, seed: int = 0, dtype="float32",
                 num_classes: int = NUM_CLASSES):
        if conventions is not None and not isinstance(conventions, Conventions):
            raise TypeError(f"Model: expected conventions to be a Conventions, received "
                            f"{type(conventions).__name__}.")
        if loss is not None and not isinstance(loss, Loss):
            raise TypeError(f"Model: expected loss to be a Loss, received {type(loss).__name__}.")
        self.conventions = conventions or Conventions()
        self.loss = loss or Loss()
        for layer in layers if isinstance(layers, (list, tuple)) else ():
            if isinstance(layer, OwnLayer):
                layer.bind(self.conventions)
            layout = (layer.conventions.layout if isinstance(layer, OwnLayer)
                      else KERAS_ACTIVATIONS)
            if layout != self.conventions.layout:
                raise ValueError(f"Model: every layer takes the model's activation layout "
                                 f"{self.conventions.layout}; {layer!r} declares {layout}.")
        super().__init__(list(layers), input_shape, seed=seed, dtype=dtype,
                         num_classes=num_classes)

    def compute_loss(self, logits, labels):
        return self.loss.compute(logits, labels)

    def logits_shape(self) -> tuple:
        """(num_classes,), or (T, num_classes) per step for a per-step loss
        (``own.SequenceLoss``), T the input's first axis."""
        if self.loss.per_step:
            return (self.input_shape[0], self.num_classes)
        return super().logits_shape()

    def check_inputs(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """As ``Sequential.check_inputs``; a per-step loss takes labels (N, T)."""
        super().check_inputs(x, None if self.loss.per_step else y)
        if y is not None and self.loss.per_step:
            self.loss.check_labels(y, x.shape[0], self.input_shape[0], self.num_classes)

    def images(self, x: np.ndarray) -> np.ndarray:
        """NHWC images (N, H, W, C) as this model takes them (the declared layout)."""
        return activation_to_user(x, self.conventions.layout)

    @property
    def image_shape(self) -> tuple:
        """The per-example input shape in NHWC terms."""
        return shape_from_user(self.input_shape, self.conventions.layout)

    def rebuilt(self, *, seed: int | None = None, dtype=None,
                input_shape: tuple | None = None) -> "Model":
        """The same declarations built anew (own copies of every layer and user object) with
        another seed, dtype or per-example input shape."""
        layers = [fresh_copy(layer) for layer in self.layers]
        return Model(layers, self.input_shape if input_shape is None else input_shape,
                     loss=self.loss, conventions=self.conventions,
                     seed=self.seed if seed is None else seed,
                     dtype=self.dtype if dtype is None else dtype, num_classes=self.num_classes)


def fresh_copy(layer):
    """An unbuilt copy of a layer, with its own copy of any user object."""
    clone = copy.copy(layer)
    if isinstance(layer, OwnLayer) and layer.impl is not None:
        clone.impl = layer.impl.copy()
    clone.params, clone.grads, clone.cache = {}, {}, None
    clone.input_shape, clone.dtype = None, None
    return clone


class Function:
    """A whole model as one user function, ``loss, grads = fn(params, x, y)``.

    Args:
        fn: takes ``params`` (a dict of the user's names -> arrays in the user's layouts), a
            batch x in the declared layout and labels y (N,); returns the loss and a dict of
            gradients with the same keys and shapes as ``params``.
        layers: the architecture ``fn`` computes, declared as ``reference_tf.own`` layers
            without an implementation (``Conv2D(None, 8, 3, names={"kernel": "W1", "bias":
            "b1"})``); parameter names must be unique over the model.
        input_shape, loss, conventions, seed, dtype, num_classes: as ``Model`` (``loss`` only
            declares the reduction: ``Loss(reduction="sum")``).
    """

    def __init__(self, fn, layers: list, input_shape: tuple, loss: Loss | None = None,
                 conventions: Conventions | None = None, seed: int = 0, dtype="float32",
                 num_classes: int = NUM_CLASSES):
        if not callable(fn):
            raise TypeError(f"Function: expected fn(params, x, y) -> (loss, grads), received "
                            f"{type(fn).__name__}.")
        self.fn = fn
        self.loss = loss or Loss()
        self.dtype = check_dtype_name("Function", dtype)
        self.architecture = Model(layers, input_shape, loss=self.loss, conventions=conventions,
                                  seed=seed, dtype=self.dtype, num_classes=num_classes)
        self.layers = self.architecture.layers
        self.input_shape, self.seed = self.architecture.input_shape, seed
        self.num_classes, self.conventions = num_classes, self.architecture.conventions
        self.keys = {}  # the user's flat name -> the architecture's "<layer>/<name>"
        for key in self.architecture.params:
            name = key.split("/", 1)[1]
            if name in self.keys:
                raise ValueError(f"Function: parameter name '{name}' is used by layers "
                                 f"'{self.keys[name].split('/')[0]}' and '{key.split('/')[0]}'; "
                                 "give each layer its own names=.")
            self.keys[name] = key
        self.params = {name: self.architecture.params[key] for name, key in self.keys.items()}
        self.grads: dict = {}

    @property
    def function(self) -> str:
        return getattr(self.fn, "__name__", "model")

    def _fault(self, key, problem, fatal, frame=None) -> Fault:
        return Fault("model", self.function, "backward" if key.startswith("grads/") else "forward",
                     key, problem, fatal, frame)

    def images(self, x: np.ndarray) -> np.ndarray:
        return self.architecture.images(x)

    @property
    def image_shape(self) -> tuple:
        return self.architecture.image_shape

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        """The user's (loss, grads) of a batch x (N, *input_shape), y (N,), run on copies and
        checked: grads keyed like ``params``."""
        self.architecture.check_inputs(x, y)
        given = {name: value.copy() for name, value in self.params.items()}
        x_given, y_given = x.copy(), y.copy()
        result = call_user(self.fn, (given, x_given, y_given), {}, LOSS, self._fault)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            raise UserCodeError([self._fault(LOSS, f"returned {type(result).__name__}, expected "
                                                   "a pair (loss, grads dict)", True)])
        loss, faults = loss_value(result[0], self._fault)
        grads = result[1]
        missing = sorted(set(self.params) - set(grads))
        if missing:
            faults.append(self._fault(f"grads/{missing[0]}", f"returned no gradient for "
                                                            f"{missing}", True))
        for name in self.params:
            if name in grads:
                faults += result_faults(grads[name], f"grads/{name}", f"gradient d{name}",
                                        self.params[name].shape, self.dtype, "", self._fault)
        if any(f.fatal for f in faults):
            raise UserCodeError(faults)
        self.grads = {name: np.array(grads[name], dtype=self.dtype) for name in self.params}
        faults += writes({"input": x_given, **{f"params/{n}": v for n, v in given.items()}},
                         {"input": x, **{f"params/{n}": v for n, v in self.params.items()}},
                         {"input": "the input it received",
                          **{f"params/{n}": f"its parameter '{n}'" for n in given}}, self._fault)
        if faults:
            raise UserCodeError(faults, value=(loss, self.grads))
        return loss, self.grads

    def rebuilt(self, *, seed: int | None = None, dtype=None,
                input_shape: tuple | None = None) -> "Function":
        """The same declarations built anew with another seed, dtype or input shape."""
        return Function(self.fn, [fresh_copy(layer) for layer in self.layers],
                        self.input_shape if input_shape is None else input_shape,
                        loss=self.loss, conventions=self.conventions,
                        seed=self.seed if seed is None else seed,
                        dtype=self.dtype if dtype is None else dtype,
                        num_classes=self.num_classes)


def rebuild(model, *, seed: int | None = None, dtype=None, input_shape: tuple | None = None):
    """``model`` built anew with another seed, dtype or per-example input shape: a ``Model``'s or
    ``Function``'s ``rebuilt``, or a ``Sequential`` of fresh copies of its layers."""
    if isinstance(model, (Model, Function)):
        return model.rebuilt(seed=seed, dtype=dtype, input_shape=input_shape)
    return Sequential([fresh_copy(layer) for layer in model.layers],
                      model.input_shape if input_shape is None else input_shape,
                      seed=model.seed if seed is None else seed,
                      dtype=model.dtype if dtype is None else dtype, num_classes=model.num_classes)
