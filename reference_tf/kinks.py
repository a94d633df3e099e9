"""Rounding-decided kinks: ties and zeros that rounding decided differently on the two sides.

A ReLU branches on the sign of its input, a max-pool on which element of a window is largest.
When the two sides' inputs differ by rounding alone (float32 sums in another order) and the
input sits at the kink (a pre-activation of +1.7e-9 in TensorFlow and -2e-10 in NumPy, or two
window elements equal up to rounding), the branches differ: the ReLU passes the gradient on one
side only, or the max-pool routes a window's gradient to another element. Both sides are right:
the forward values agree within rounding, and the gradients differ by the whole upstream
gradient at that position, which no tolerance can absorb.

``replay`` finds these *flips* and proves them harmless: it runs the model's own code again,
giving each ReLU and max-pool TensorFlow's input at the flipped positions only (so the code takes
TensorFlow's branch there), and returns that trace. If it matches TensorFlow within the dtype's
tolerance, the difference was decided by rounding alone; a real bug (ReLU'(0) = 1, gradient to
every tied maximum) still shows at every other tie and zero, so it still fails.

A flip is a position where the branch differs and both inputs agree within the forward
tolerance times the largest input of the layer (``rounding_bound``). NumPy only: the trace of
TensorFlow is given.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import NamedTuple

import numpy as np

from reference_tf.causes import layer_kind, numeric
from reference_tf.compare import safe_compare, tolerance_for, tolerances
from reference_tf.guarding import instance_patch
from reference_tf.user_code import UserCodeError
from scratch.layers import replaying_masks
from scratch.models import Sequential, Trace

KINK_KINDS = ("relu", "pool")
NHWC = "NHWC"


class Flip(NamedTuple):
    """One branch that rounding decided differently.

    layer: the layer's name; kind: "relu" (the input on the other side of 0) or "pool" (another
    element of a window is the first maximum); position: index into the layer's input (with the
    batch axis, in the layer's layout) of TensorFlow's branch: the ReLU's element, the window's
    maximum in TensorFlow; other: for a pool, the element the model's own input makes the first
    maximum (None for a ReLU); mine, reference: the model's and TensorFlow's input at position
    (and at other, for a pool); dtype: the model's.
    """

    layer: str
    kind: str
    position: tuple
    other: tuple | None
    mine: tuple
    reference: tuple
    dtype: str

    @property
    def sentence(self) -> str:
        """What was decided differently, with both values."""
        if self.kind == "relu":
            return (f"layer '{self.layer}': ReLU input x{self.position} is "
                    f"{self.reference[0]:.2g} in TensorFlow and {self.mine[0]:.2g} in yours "
                    f"({self.dtype}): the sign at 0 was decided by rounding")
        return (f"layer '{self.layer}': max-pool tie decided by rounding ({self.dtype}): "
                f"TensorFlow's maximum x{self.position} = {self.reference[0]:.9g} (yours "
                f"{self.mine[0]:.9g}), yours x{self.other} = {self.mine[1]:.9g} (TensorFlow's "
                f"{self.reference[1]:.9g})")

    def to_dict(self) -> dict:
        return {**self._asdict(), "position": list(self.position),
                "other": None if self.other is None else list(self.other),
                "mine": list(self.mine), "reference": list(self.reference),
                "sentence": self.sentence}


def rounding_bound(x_reference: np.ndarray, tolerance: float) -> float:
    """How far two inputs of a layer may differ by rounding: the forward tolerance times the
    largest |input| (the scaled max error of ``reference_tf.compare``)."""
    return tolerance * float(np.max(np.abs(x_reference), initial=0.0))


def relu_flips(x_mine: np.ndarray, x_reference: np.ndarray, bound: float) -> np.ndarray:
    """Where the two inputs (any shape) lie on different sides of 0 (x > 0 or not) and within
    ``bound`` of each other: a boolean mask of their shape."""
    return (((x_mine > 0) != (x_reference > 0))
            & (np.abs(x_mine.astype(np.float64) - x_reference) <= bound))


def _windows(x: np.ndarray, window: tuple, strides: tuple, pads: tuple,
             pad_value: float) -> np.ndarray:
    """Every pooling window of x (N, H, W, C) padded as the layer pads: (N, Ho, Wo, C, kh*kw),
    the offsets in row-major order (float64)."""
    views = np.lib.stride_tricks.sliding_window_view(numeric.pad(x, pads, pad_value), window,
                                                     axis=(1, 2))
    views = views[:, ::strides[0], ::strides[1]]
    return views.reshape(*views.shape[:4], -1)


class PoolFlip(NamedTuple):
    """A flipped window: its rows and columns in x (clipped to x), TensorFlow's first maximum
    and the model's, each an index (n, h, w, c) into x (N, H, W, C)."""

    rows: slice
    cols: slice
    reference: tuple
    mine: tuple


def pool_flips(x_mine: np.ndarray, x_reference: np.ndarray, window: tuple, strides: tuple,
               padding, bound: float) -> list[PoolFlip]:
    """Windows whose first maximum (row-major, TensorFlow's rule) is another element on the two
    sides while the two candidates are equal within ``bound`` on both sides.

    x_mine, x_reference: (N, H, W, C); padding: "same", "valid" or ((top, bottom), (left,
    right)) zeros. Returns the flipped windows in row-major order (not those where a padded
    element is one of the two: a padded value is exact on both sides).
    """
    _, pads = numeric.geometry(x_reference.shape[1:3], window, strides, padding)
    pad_value = -np.inf if isinstance(padding, str) else 0.0
    mine = _windows(x_mine, window, strides, pads, pad_value)
    ref = _windows(x_reference, window, strides, pads, pad_value)
    first_mine, first_ref = mine.argmax(axis=-1)[..., None], ref.argmax(axis=-1)[..., None]

    def gap(values, first, other):
        return (np.take_along_axis(values, first, -1) - np.take_along_axis(values, other, -1))[
            ..., 0]

    flipped = ((first_mine[..., 0] != first_ref[..., 0])
               & (gap(mine, first_mine, first_ref) <= bound)
               & (gap(ref, first_ref, first_mine) <= bound))
    top, _, left, _ = pads
    height, width = x_reference.shape[1:3]
    found = []
    for n, i, j, c in zip(*np.nonzero(flipped)):
        row0, col0 = i * strides[0] - top, j * strides[1] - left

        def at(first, n=n, i=i, j=j, c=c, row0=row0, col0=col0):
            row, col = divmod(int(first[n, i, j, c, 0]), window[1])
            return (int(n), int(row0 + row), int(col0 + col), int(c))

        theirs, ours = at(first_ref), at(first_mine)
        if all(0 <= p[1] < height and 0 <= p[2] < width for p in (theirs, ours)):
            found.append(PoolFlip(slice(max(row0, 0), min(row0 + window[0], height)),
                                  slice(max(col0, 0), min(col0 + window[1], width)),
                                  theirs, ours))
    return found


def _to_layout(index: tuple, layout: str) -> tuple:
    """An NHWC index as the index of the same element in ``layout``."""
    return tuple(int(index[NHWC.index(axis)]) for axis in layout)


def _layout(layer, x: np.ndarray) -> str:
    conventions = getattr(layer, "conventions", None)
    return conventions.layout if x.ndim == 4 and conventions is not None else NHWC


def layer_flips(layer, x_mine: np.ndarray, x_reference: np.ndarray,
                tolerance: float) -> tuple[np.ndarray, list[Flip]]:
    """The flips of one ReLU or max-pool layer, given both sides' inputs in the layer's layout.

    Returns:
        (mask of x's shape: the elements to take from TensorFlow's input so that the layer
        takes TensorFlow's branch (a flipped ReLU element; every element of a flipped window),
        the flips). Other layers have none.
    """
    kind, settings = layer_kind(layer)
    mask = np.zeros(np.shape(x_mine), dtype=bool)
    if kind not in KINK_KINDS or np.shape(x_mine) != np.shape(x_reference):
        return mask, []
    bound = rounding_bound(x_reference, tolerance)
    dtype = np.dtype(layer.dtype).name
    if kind == "relu":
        mask = relu_flips(x_mine, x_reference, bound)
        flips = [Flip(layer.name, kind, tuple(int(i) for i in index), None,
                      (float(x_mine[index]),), (float(x_reference[index]),), dtype)
                 for index in zip(*np.nonzero(mask))]
        return mask, flips
    layout = _layout(layer, x_mine)
    if len(layout) != 4:
        return mask, []
    order = [layout.index(axis) for axis in NHWC]
    mine, ref = np.transpose(x_mine, order), np.transpose(x_reference, order)
    flips: list[Flip] = []
    window, strides = settings["window"], settings["strides"]
    nhwc_mask = np.zeros(mine.shape, dtype=bool)
    for flip in pool_flips(mine, ref, window, strides, settings["padding"], bound):
        theirs, ours = flip.reference, flip.mine
        nhwc_mask[theirs[0], flip.rows, flip.cols, theirs[3]] = True
        flips.append(Flip(layer.name, kind, _to_layout(theirs, layout), _to_layout(ours, layout),
                          (float(mine[theirs]), float(mine[ours])),
                          (float(ref[theirs]), float(ref[ours])), dtype))
    return np.transpose(nhwc_mask, np.argsort(order)), flips


def replay(model: Sequential, x: np.ndarray, y: np.ndarray, reference: Trace,
           batch_statistics: bool = False, state: dict | None = None
           ) -> tuple[Trace | None, list[Flip]]:
    """The model's own trace again, each ReLU and max-pool given TensorFlow's input at its
    flipped positions (so it takes TensorFlow's branch there), from ``state`` and with the
    Dropout masks of the pass just run; the model's state is put back afterwards.

    Args:
        model: the model the ``reference`` trace (TensorFlow's, on the same weights) belongs to.
        x, y: the batch (N, *input_shape), (N,).
        batch_statistics: the model normalizes with batch statistics (tolerances).
        state: the state before the step the reference took (moving statistics keyed like
            ``model.state``); default the model's current state.

    Returns:
        (the replayed trace, the flips in network order); (None, flips) when there is nothing
        to replay (no flip) or the model's code faulted.
    """
    tolerance = tolerances(model.dtype, batch_statistics).forward
    flips: list[Flip] = []
    state_now = {key: np.array(value) for key, value in model.state.items()}
    if state is not None:
        model.set_state(state)

    def taking_reference_branches(layer, x_reference):
        original = layer.call

        def call(h):
            mask, found = layer_flips(layer, h, x_reference, tolerance)
            flips.extend(found)
            return original(np.where(mask, x_reference, h).astype(h.dtype, copy=False))
        return call

    with ExitStack() as patches:
        previous = x
        for layer in model.layers:
            if layer_kind(layer)[0] in KINK_KINDS:
                patches.enter_context(instance_patch(
                    layer, "call", taking_reference_branches(layer, previous)))
            previous = reference.outputs[layer.name]
        try:
            with replaying_masks(model.layers):
                trace = model.trace(x, y)
        except UserCodeError:
            trace = None
        finally:
            model.set_state(state_now)
    return (trace if flips else None), flips


def agrees(replayed: dict, reference: dict, dtype, batch_statistics: bool = False) -> bool:
    """Every quantity of ``reference`` (named arrays, as ``gradients.trace_arrays`` gives them)
    matched by ``replayed`` within its tolerance (``compare.tolerance_for``)."""
    return all(replayed.get(key) is not None and safe_compare(replayed[key], value, key).passes(
        tolerance_for(key, dtype, batch_statistics)) for key, value in reference.items())
