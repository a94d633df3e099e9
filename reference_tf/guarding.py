"""Layers that do not guard themselves: an exception inside them becomes a fault, not a crash.

``reference_tf.own`` layers run the user's code on copies and report every problem as a
``Fault``. A user's subclass of a tfparity layer, or any other layer class of the user's
(``reference_tf.adapter``), runs unguarded: an exception in it (or in the tfparity code it
calls inconsistently, e.g. a ``call`` overridden without ``backward_params``) would escape from
``check`` or ``diff`` as an internal error. ``guarding(layers)`` wraps their passes for the
duration of a comparison so that an exception becomes a fatal fault of that layer and pass, with
the frame where it was raised; tfparity's own layer classes are left alone (an exception there is
tfparity's bug). NumPy only.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

from reference_tf.own.layers import OwnLayer
from reference_tf.user_code import Fault, UserCodeError, last_frame
from scratch.layers import LAYERS
from scratch.sequence_layers import SEQUENCE_LAYERS

OWN_CLASSES = frozenset((*LAYERS.values(), *SEQUENCE_LAYERS))  # tfparity's own layer classes

METHODS = {"call": ("forward", "output"), "call_backward": ("backward", "input_grad"),
           "backward_params": ("backward", "grads"), "infer": ("forward", "output")}
UNSET = object()


@contextmanager
def instance_patch(obj, name: str, value):
    """``obj.name = value`` on the instance while the block runs; afterwards the instance holds
    what it held before (an earlier patch included, or nothing)."""
    before = obj.__dict__.get(name, UNSET)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if before is UNSET:
            del obj.__dict__[name]
        else:
            obj.__dict__[name] = before


def unguarded(layer) -> bool:
    """A layer whose class is neither tfparity's own nor a ``reference_tf.own`` layer."""
    return not isinstance(layer, OwnLayer) and type(layer) not in OWN_CLASSES


def _guarded(layer, method: str):
    original = getattr(layer, method)
    direction, key = METHODS[method]

    def run(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except UserCodeError:
            raise
        except Exception as error:  # the layer's code (or tfparity's, called inconsistently)
            problem = f"raised {type(error).__name__}: {error}"
            raise UserCodeError([Fault(layer.name, f"{type(layer).__name__}.{method}", direction,
                                       key, problem, True, last_frame(error))]) from error
    return run


@contextmanager
def guarding(layers):
    """Within the block, an exception in a pass of an ``unguarded`` layer raises a fatal
    ``UserCodeError`` naming the layer, its method and where the exception was raised."""
    with ExitStack() as stack:
        for layer in layers:
            if unguarded(layer):
                for method in METHODS:
                    if callable(getattr(layer, method, None)):
                        stack.enter_context(instance_patch(layer, method,
                                                           _guarded(layer, method)))
        yield
