"""Weight files: a model's parameters as ``.npz``, usable by both implementations.

The arrays are keyed like ``scratch`` params ("conv1/kernel", "logits/bias", ...), in Keras
layouts, so ``reference_tf.twin.copy_weights`` accepts the loaded dict as it is. One extra entry,
``__meta__``, holds JSON ``{"model": ..., "dtype": ..., "format": 1, ...}``; it is a plain string
array, so files load without pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reports.atomic import atomic_write

META_KEY = "__meta__"
FORMAT = 1


class WeightsFile(dict):
    """The parameter arrays of a weight file keyed like scratch params, with ``meta`` (a dict)."""

    def __init__(self, arrays: dict, meta: dict):
        super().__init__(arrays)
        self.meta = meta


def save_weights(path, params: dict, model: str, **extra) -> Path:
    """Write ``params`` ({key: array}) and metadata to ``path`` atomically (``reports.atomic``).

    Args:
        path: destination; ".npz" is appended if missing.
        params: the arrays, all of one float dtype, e.g. ``Sequential.params``.
        model: the model's name ("linear", "mlp1", "mlp2", "cnn").
        extra: more JSON-serialisable metadata (e.g. epochs, lr, implementation).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays = {key: np.asarray(value) for key, value in params.items()}
    if not arrays:
        raise ValueError("save_weights: expected at least one parameter, received none.")
    dtypes = sorted({a.dtype.name for a in arrays.values()})
    if len(dtypes) != 1 or dtypes[0] not in ("float32", "float64"):
        raise ValueError(f"save_weights: expected all parameters float32 or all float64, "
                         f"received dtypes {dtypes}.")
    if META_KEY in arrays:
        raise ValueError(f"save_weights: '{META_KEY}' is reserved for the metadata.")
    meta = {"format": FORMAT, "model": model, "dtype": dtypes[0], **extra}
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays, **{META_KEY: np.array(json.dumps(meta))})
    return path


def read_weights(path) -> WeightsFile:
    """The arrays and metadata of a weight file, unchecked against any model."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights: no such file {path}.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"weights: {path} is not a readable .npz file ({error}).") from None
    if META_KEY not in arrays:
        raise ValueError(f"weights: {path} has no '{META_KEY}' entry; it was not written by "
                         "tfparity (save_weights).")
    meta = json.loads(str(arrays.pop(META_KEY)))
    return WeightsFile(arrays, meta)


def load_weights(path, expected: dict, model: str | None = None, cast: bool = False) -> WeightsFile:
    """Read a weight file and check it against a model's parameters.

    Args:
        path: the ``.npz`` file.
        expected: {key: array} of the target model (e.g. ``Sequential.params``): keys, shapes and
            dtype to match.
        model: the expected model name; None skips the check.
        cast: convert the arrays to the target dtype instead of refusing a dtype mismatch.

    Returns:
        A ``WeightsFile`` with the arrays keyed and ordered like ``expected``.

    Raises:
        ValueError: naming the file and the offending key (missing, unexpected, shape, dtype) or
            the model names.
    """
    weights = read_weights(path)
    if model is not None and weights.meta.get("model") != model:
        raise ValueError(f"weights: {path} holds model {weights.meta.get('model')!r}, "
                         f"expected {model!r}.")
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"weights: {path}: keys differ from the model's; missing {missing}, "
                         f"unexpected {extra}.")
    arrays = {}
    for key, target in expected.items():
        value = weights[key]
        if value.shape != target.shape:
            raise ValueError(f"weights: {path}: '{key}' has shape {value.shape}, the model expects "
                             f"{target.shape}.")
        if value.dtype != target.dtype:
            if not cast:
                raise ValueError(f"weights: {path}: '{key}' is {value.dtype.name}, the model is "
                                 f"{target.dtype.name}; ask for dtype {value.dtype.name} or cast "
                                 "explicitly.")
            value = value.astype(target.dtype)
        arrays[key] = value
    return WeightsFile(arrays, weights.meta)
