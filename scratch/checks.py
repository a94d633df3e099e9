"""Argument and array validation shared by layers, losses and models.

Every message names who complains (``owner``), what was expected and what was received.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def check_dtype_name(owner: str, dtype) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise TypeError."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: expected dtype 'float32' or 'float64', received "
                        f"dtype={dtype!r}.")
    return resolved


def check_positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: expected {name} to be a positive integer, received "
                        f"{name}={value!r}.")
    if value < 1:
        raise ValueError(f"{owner}: expected {name} to be a positive integer, received "
                         f"{name}={value!r}.")
    return int(value)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_pair(owner: str, name: str, value) -> tuple[int, int]:
    """Accept an int or a pair of ints, as Keras does for kernel_size/strides/pool_size."""
    if _is_int(value):
        pair = (value, value)
    else:
        pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(_is_int(v) for v in pair):
        raise TypeError(
            f"{owner}: expected {name} to be an int or a pair of ints, received {name}={value!r}."
        )
    if min(pair) < 1:
        raise ValueError(f"{owner}: expected {name} to be positive, received {name}={value!r}.")
    return int(pair[0]), int(pair[1])


def check_padding(owner: str, padding) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{owner}: expected padding='valid' or 'same', received "
                         f"padding={padding!r}.")
    return padding.lower()


def check_interval(owner: str, name: str, value, low: float, high: float, *,
                   high_open: bool = False, low_open: bool = False) -> float:
    """Accept a real number in [low, high] (open at an end where asked), e.g. a rate or momentum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: expected {name} to be a number, received {name}={value!r}.")
    value = float(value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above or value != value:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{owner}: expected {name} in {interval}, received {name}={value!r}.")
    return value


def check_bool(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: expected {name} to be True or False, received {name}={value!r}.")
    return value


def check_float_array(owner: str, name: str, x, dtype: np.dtype | None = None) -> np.ndarray:
    """Check that ``x`` is a float32/float64 ndarray (of ``dtype`` if given) with finite values."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{owner}: expected {name} to be a numpy array, received "
                        f"{type(x).__name__}.")
    if x.dtype.name not in FLOAT_DTYPES:
        raise TypeError(
            f"{owner}: expected {name} of dtype float32 or float64, received dtype {x.dtype.name}"
            " (convert with x.astype('float32'))."
        )
    if not x.dtype.isnative:
        raise TypeError(
            f"{owner}: expected {name} in the machine's byte order, received dtype "
            f"{x.dtype.name} in {'big' if x.dtype.byteorder == '>' else 'little'}-endian order "
            f"({x.dtype.str!r}); convert with x.astype('{x.dtype.name}')."
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{owner}: expected {name} of dtype {np.dtype(dtype).name} (the layer's dtype), "
            f"received dtype {x.dtype.name}; nothing is cast silently."
        )
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"{owner}: expected finite values in {name}, received {int((~np.isfinite(x)).sum())} "
            f"NaN/inf value(s), the first at index {tuple(int(i) for i in bad)} = {x[tuple(bad)]}."
        )
    return x


def check_shape(owner: str, name: str, shape, expected: tuple, expected_text: str) -> None:
    """Check ``shape`` against ``expected`` where ``None`` entries match any size."""
    shape = tuple(shape)
    if len(shape) != len(expected) or any(e is not None and s != e
                                          for s, e in zip(shape, expected)):
        raise ValueError(f"{owner}: expected {name} of shape {expected_text}, received shape "
                         f"{shape}.")


def check_labels(owner: str, labels, n: int, num_classes: int) -> np.ndarray:
    """Check integer class labels of shape (n,) with values in [0, num_classes)."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{owner}: expected labels as a numpy array, received "
                        f"{type(labels).__name__}.")
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"{owner}: expected integer labels (class indices), received dtype {labels.dtype.name}."
        )
    if labels.shape != (n,):
        raise ValueError(f"{owner}: expected labels of shape ({n},), received shape "
                         f"{labels.shape}.")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(
            f"{owner}: expected labels in [0, {num_classes}), received a label {int(bad)}."
        )
    return labels
