"""Weight files: a model's parameters as ``.npz``, usable by both implementations.

The arrays are keyed like ``scratch`` params ("conv1/kernel", "logits/bias", ...), in Keras
layouts, so ``reference_tf.twin.copy_weights`` accepts the loaded dict as it is. One extra entry,
``__meta__``, holds JSON ``{"model": ..., "dtype": ..., "format": 1, ...}``; it is a plain string
array, so files load without pickle.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from reports.files.atomic import atomic_write

META_KEY = "__meta__"
FORMAT = 1
FLOAT_DTYPES = ("float32", "float64")


class WeightsFile(dict):
    """The parameter arrays of a weight file keyed like scratch params, with ``meta`` (a dict)."""

    def __init__(self, arrays: dict, meta: dict):
        super().__init__(arrays)
        self.meta = meta


def save_weights(path, params: dict, model: str, **extra) -> Path:
    """Write ``params`` ({key: array}) and metadata to ``path`` atomically
    (``reports.files.atomic``).

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
    if len(dtypes) != 1 or dtypes[0] not in FLOAT_DTYPES:
        raise ValueError(f"save_weights: expected all parameters float32 or all float64, "
                         f"received dtypes {dtypes}.")
    if META_KEY in arrays:
        raise ValueError(f"save_weights: '{META_KEY}' is reserved for the metadata.")
    meta = {"format": FORMAT, "model": model, "dtype": dtypes[0], **extra}
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays, **{META_KEY: np.array(json.dumps(meta))})
    return path


def read_weights(path) -> WeightsFile:
    """The arrays and metadata of a weight file, unchecked against any model.

    Raises:
        ValueError: naming the file and what is wrong with it: not a zip archive, damaged, no
            or malformed ``__meta__``, arrays not of the recorded dtype or not finite.
    """
    path = Path(path)
    if not path.is_file():
        state = "is a directory" if path.is_dir() else "does not exist"
        raise ValueError(f"expected a .npz file written by save_weights, received {path}, "
                         f"which {state}.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(16)
        raise ValueError(f"{path}: expected a .npz archive (a zip file, as save_weights "
                         f"writes), received {path.stat().st_size} bytes that are not one "
                         f"(truncated, or another format; it starts {head!r}).")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as error:  # a damaged archive fails in the zip, npy-header or data reader
        raise ValueError(f"{path}: expected a readable .npz archive, received a damaged "
                         f"one ({type(error).__name__}: {error}).") from None
    if META_KEY not in arrays:
        raise ValueError(f"{path} has no '{META_KEY}' entry; it was not written by "
                         "tfparity (save_weights).")
    meta = _meta(path, arrays.pop(META_KEY))
    for key, value in arrays.items():
        arrays[key] = _checked_array(path, key, value, meta["dtype"])
    return WeightsFile(arrays, meta)


def _meta(path: Path, entry: np.ndarray) -> dict:
    """The ``__meta__`` entry as a dict of format FORMAT with a model name and a float dtype, or
    ValueError."""
    text = str(entry)
    try:
        meta = json.loads(text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected '{META_KEY}' to hold a JSON object, received "
                         f"{text[:80]!r}.")
    if meta.get("format") != FORMAT or isinstance(meta.get("format"), bool):
        raise ValueError(f"{path}: expected '{META_KEY}' format {FORMAT} (the one this tfparity "
                         f"reads), received format={meta.get('format')!r}; a file written by "
                         "another version of tfparity, or not by save_weights.")
    if not isinstance(meta.get("model"), str):
        raise ValueError(f"{path}: expected '{META_KEY}' to name the model, received "
                         f"model={meta.get('model')!r}.")
    if meta.get("dtype") not in FLOAT_DTYPES:
        raise ValueError(f"{path}: expected '{META_KEY}' dtype 'float32' or 'float64', "
                         f"received dtype={meta.get('dtype')!r}.")
    return meta


def _checked_array(path: Path, key: str, value: np.ndarray, dtype: str) -> np.ndarray:
    """``value`` in native byte order if it is finite and of ``dtype``, else ValueError."""
    if value.dtype.name != dtype:
        raise ValueError(f"{path}: expected '{key}' of dtype {dtype} (as '{META_KEY}' "
                         f"records), received dtype {value.dtype.name}.")
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    bad = ~np.isfinite(value)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{path}: expected finite values in '{key}', received "
                         f"{int(bad.sum())} NaN/inf value(s), the first at index {first}.")
    return value


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
        raise ValueError(f"{path} holds model {weights.meta.get('model')!r}, "
                         f"expected {model!r}.")
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: keys differ from the model's; missing {missing}, "
                         f"unexpected {extra}.")
    arrays = {}
    for key, target in expected.items():
        value = weights[key]
        if value.shape != target.shape:
            raise ValueError(f"{path}: '{key}' has shape {value.shape}, the model expects "
                             f"{target.shape}.")
        if value.dtype != target.dtype:
            if not cast:
                raise ValueError(f"{path}: '{key}' is {value.dtype.name}, the model is "
                                 f"{target.dtype.name}; ask for dtype {value.dtype.name} or cast "
                                 "explicitly.")
            value = value.astype(target.dtype)
        arrays[key] = value
    return WeightsFile(arrays, weights.meta)
