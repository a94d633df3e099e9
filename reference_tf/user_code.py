"""Calling code tfparity did not write: private copies in, every result checked on the way out.

A user's layer gets copies of the arrays it is handed (its input, its upstream gradient, its
parameters), so nothing it does can change tfparity's arrays; afterwards tfparity compares each
copy with the original and names the layer that wrote into one. An exception inside user code,
a result of the wrong type or shape, and a result of another dtype than the model's are faults
too. Each is a ``Fault``; a call raises ``UserCodeError`` with all the faults it found.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from reference_tf.user_exits import guard, what_happened


@dataclass(frozen=True)
class Fault:
    """One thing a user's layer (or loss) did wrong in one call.

    Attributes:
        layer: the layer's name ("loss" for the loss).
        function: the user's function or method, e.g. "relu_backward" or "MaxPool.backward".
        direction: "forward" or "backward".
        key: the quantity concerned, as the diagnosis names quantities: "output", "input_grad",
            "grads/<param>", "loss", or what was handed in: "input", "output_grad" (the upstream
            gradient), "params/<param>".
        problem: what happened, completing "layer 'relu1' (relu_backward) ...".
        fatal: True when the pass cannot go on (an exception, a missing or misshapen result).
        frame: for an exception, where it was raised: "file:line in function: source line".
    """

    layer: str
    function: str
    direction: str
    key: str
    problem: str
    fatal: bool
    frame: str | None = None

    @property
    def sentence(self) -> str:
        where = f" (at {self.frame})" if self.frame else ""
        return f"layer '{self.layer}' ({self.function}) {self.problem}{where}"

    def to_dict(self) -> dict:
        return {"layer": self.layer, "function": self.function, "pass": self.direction,
                "key": self.key, "problem": self.problem, "fatal": self.fatal,
                "frame": self.frame, "sentence": self.sentence}


class UserCodeError(Exception):
    """User code misbehaved. ``faults`` lists what happened (the first is the message);
    ``value`` is the result to go on with when no fault is fatal (e.g. the output cast to the
    model's dtype), else None."""

    def __init__(self, faults: list[Fault], value=None):
        super().__init__("; ".join(f.sentence for f in faults))
        self.faults = list(faults)
        self.value = value

    @property
    def fatal(self) -> bool:
        return any(f.fatal for f in self.faults)


def guarded(faults: list, fn: Callable, *args) -> tuple:
    """(fn(*args), False); on a ``UserCodeError``, its faults appended to ``faults`` and (the
    value to go on with, whether a fault is fatal)."""
    try:
        return fn(*args), False
    except UserCodeError as error:
        faults.extend(error.faults)
        return error.value, error.fatal


def last_frame(error: BaseException) -> str:
    """Where ``error`` was raised: "file:line in function: source line" of the last frame, and the
    deepest frame outside installed packages (NumPy) when the last one is inside them."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown location"

    def text(frame) -> str:
        source = f": {frame.line.strip()}" if frame.line else ""
        return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}{source}"

    last = frames[-1]
    outside = [f for f in frames if "site-packages" not in Path(f.filename).parts
               and "numpy" not in Path(f.filename).parts]
    if outside and outside[-1] is not last:
        return f"{text(last)}, called from {text(outside[-1])}"
    return text(last)


def call_user(fn: Callable, args: tuple, kwargs: dict, key: str, fault: Callable[..., Fault]):
    """``fn(*args, **kwargs)``; an exception or an exit (``reference_tf.user_exits``) becomes a
    fatal ``UserCodeError`` about ``key`` (the result that never came, e.g. "output").

    ``fault(key, problem, fatal, frame)`` makes the ``Fault`` (it knows the layer and pass).
    """
    try:
        with guard():  # sys.exit, os._exit, a KeyboardInterrupt of its own: a UserExit
            return fn(*args, **kwargs)
    except Exception as error:  # anything user code raises is reported, never propagated raw
        raise UserCodeError([fault(key, what_happened(error), True, last_frame(error))]) from error


def writes(given: dict[str, np.ndarray], originals: dict[str, np.ndarray], what: dict[str, str],
           fault: Callable[..., Fault]) -> list[Fault]:
    """A non-fatal fault for every copy in ``given`` that no longer equals its original.

    ``what[key]`` says what the array was, e.g. "the upstream gradient it received".
    """
    return [fault(key, f"modified {what[key]}", False)
            for key, copy in given.items()
            if not np.array_equal(copy, originals[key], equal_nan=True)]


def result_faults(value, key: str, label: str, shape: tuple, dtype: np.dtype, layout: str,
                  fault: Callable[..., Fault]) -> list[Fault]:
    """Faults of one array returned by user code: not an array or the wrong shape (fatal), the
    wrong dtype (not fatal: the caller goes on with a cast).

    label names the result ("output y", "input gradient dx"), ``layout`` says how its shape is
    read (e.g. "NCHW"; "" for none).
    """
    layout = f" ({layout})" if layout else ""
    if not isinstance(value, np.ndarray):
        return [fault(key, f"returned {label} as {type(value).__name__}, expected a numpy array "
                           f"of shape {shape}{layout}", True)]
    if value.shape != shape:
        same = (f" (the same {value.size} values in another shape; tfparity does not reshape "
                "them)" if value.size == int(np.prod(shape)) else "")
        return [fault(key, f"returned {label} of shape {value.shape}, expected {shape}{layout}"
                           f"{same}", True)]
    if value.dtype != dtype:
        return [fault(key, f"returned {label} of dtype {value.dtype.name} from a "
                           f"{dtype.name} model", False)]
    return []
