"""The three data sets of a report: training images, the train-evaluation subset and the test set.

``mnist`` is the real data (``scratch.data.load_mnist``); ``templates`` is a small offline
stand-in with MNIST's shapes (``scratch.data.synthetic.templates``: ten noisy class templates) for
runs that must not need a network.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reports.experiments import DATA_SOURCES, Protocol
from scratch.data.synthetic import templates

TEMPLATES_TRAIN, TEMPLATES_TEST = 4000, 1000


class Splits(NamedTuple):
    """Each split is (images (N, 28, 28, 1) in [0, 1] of the protocol's dtype, labels (N,) int64)."""

    train: tuple[np.ndarray, np.ndarray]
    train_eval: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    source: str


def _raw(protocol: Protocol, verify: bool):
    if protocol.data == "mnist":
        from scratch.data import load_mnist

        mnist = load_mnist(dtype=protocol.dtype, verify=verify)
        return mnist.train, mnist.test, mnist.source
    if protocol.data == "templates":
        return (templates(TEMPLATES_TRAIN, 1, protocol.dtype),
                templates(TEMPLATES_TEST, 2, protocol.dtype), "templates (scratch.data.synthetic)")
    raise ValueError(f"report: expected data in {DATA_SOURCES}, received data={protocol.data!r}.")


def load(protocol: Protocol, verify: bool = True) -> Splits:
    """The splits ``protocol`` asks for: the first ``train_size`` training images (all if None),
    their first ``train_eval_fraction`` as train-evaluation set, the first ``test_size`` test
    images. ``verify``: check MNIST's SHA-256 (``scratch.data.load_mnist``); the source says if
    not."""
    (x_train, y_train), (x_test, y_test), source = _raw(protocol, verify)
    x_train, y_train = x_train[:protocol.train_size], np.asarray(y_train[:protocol.train_size], np.int64)
    x_test, y_test = x_test[:protocol.test_size], np.asarray(y_test[:protocol.test_size], np.int64)
    n_eval = int(round(protocol.train_eval_fraction * len(x_train)))
    return Splits((x_train, y_train), (x_train[:n_eval], y_train[:n_eval]), (x_test, y_test), source)
