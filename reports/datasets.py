"""The three data sets of a report: training images, the train-evaluation subset and the test set.

``mnist`` is the real data (``scratch.data.load_mnist``); ``synthetic`` is a small offline
stand-in with MNIST's shapes (ten noisy class templates) for tests that must not need a network.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reports.experiments import Protocol

DATA_SOURCES = ("mnist", "synthetic")
SYNTHETIC_TRAIN, SYNTHETIC_TEST = 4000, 1000


class Splits(NamedTuple):
    """Each split is (images (N, 28, 28, 1) in [0, 1] of the protocol's dtype, labels (N,) int64)."""

    train: tuple[np.ndarray, np.ndarray]
    train_eval: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    source: str


def synthetic_mnist(n: int, seed: int, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 28, 28, 1) and labels (n,): a fixed random template per class plus noise."""
    templates = np.random.default_rng(12345).random((10, 28, 28, 1)) < 0.2
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = 0.7 * templates[labels] + 0.5 * rng.random((n, 28, 28, 1))
    return np.clip(images, 0.0, 1.0).astype(dtype), labels.astype(np.int64)


def _raw(protocol: Protocol):
    if protocol.data == "mnist":
        from scratch.data import load_mnist

        mnist = load_mnist(dtype=protocol.dtype)
        return mnist.train, mnist.test, mnist.source
    if protocol.data == "synthetic":
        return (synthetic_mnist(SYNTHETIC_TRAIN, 1, protocol.dtype),
                synthetic_mnist(SYNTHETIC_TEST, 2, protocol.dtype), "synthetic (reports.datasets)")
    raise ValueError(f"report: expected data in {DATA_SOURCES}, received data={protocol.data!r}.")


def load(protocol: Protocol) -> Splits:
    """The splits ``protocol`` asks for: the first ``train_size`` training images (all if None),
    their first ``train_eval_fraction`` as train-evaluation set, the first ``test_size`` test images."""
    (x_train, y_train), (x_test, y_test), source = _raw(protocol)
    x_train, y_train = x_train[:protocol.train_size], np.asarray(y_train[:protocol.train_size], np.int64)
    x_test, y_test = x_test[:protocol.test_size], np.asarray(y_test[:protocol.test_size], np.int64)
    n_eval = int(round(protocol.train_eval_fraction * len(x_train)))
    return Splits((x_train, y_train), (x_train[:n_eval], y_train[:n_eval]), (x_test, y_test), source)
