"""The three data sets of a report: training images, the train-evaluation subset and the test set.

``mnist`` is the real data (``scratch.data.load_mnist``); ``templates`` is a small offline
stand-in with MNIST's shapes (``scratch.data.synthetic.templates``: ten noisy class templates) for
runs that must not need a network.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reports.experiment.protocol import DATA_SOURCES, TEMPLATES_SIZES, Protocol
from scratch.data.synthetic import templates


class Splits(NamedTuple):
    """Each split is (images (N, 28, 28, 1) in [0, 1] of the protocol's dtype, labels (N,)
    int64)."""

    train: tuple[np.ndarray, np.ndarray]
    train_eval: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    source: str


def source_data(data: str, dtype: str, verify: bool = True, templates_sizes: tuple[int, int] =
                TEMPLATES_SIZES["report"]):
    """(training set, test set, source) of ``data`` ("mnist" or "templates"), each set (images
    (N, 28, 28, 1) of ``dtype``, labels (N,)): all of MNIST (``verify``: check its SHA-256), or
    ``templates_sizes`` (training, test) images of the templates, drawn from seeds 1 and 2."""
    if data == "mnist":
        from scratch.data import load_mnist

        mnist = load_mnist(dtype=dtype, verify=verify)
        return mnist.train, mnist.test, mnist.source
    if data == "templates":
        n_train, n_test = templates_sizes
        return (templates(n_train, 1, dtype), templates(n_test, 2, dtype),
                "templates (scratch.data.synthetic)")
    raise ValueError(f"report: expected data in {DATA_SOURCES}, received data={data!r}.")


def load(protocol: Protocol, verify: bool = True) -> Splits:
    """The splits ``protocol`` asks for: the first ``train_size`` training images (all if None),
    their first ``train_eval_fraction`` as train-evaluation set, the first ``test_size`` test
    images. ``verify``: check MNIST's SHA-256 (``scratch.data.load_mnist``); the source says if
    not."""
    (x_train, y_train), (x_test, y_test), source = source_data(protocol.data, protocol.dtype,
                                                               verify)
    x_train, y_train = x_train[:protocol.train_size], np.asarray(y_train[:protocol.train_size],
                                                                 np.int64)
    x_test, y_test = x_test[:protocol.test_size], np.asarray(y_test[:protocol.test_size], np.int64)
    n_eval = int(round(protocol.train_eval_fraction * len(x_train)))
    return Splits((x_train, y_train), (x_train[:n_eval], y_train[:n_eval]), (x_test, y_test),
                  source)
