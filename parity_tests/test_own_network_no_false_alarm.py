"""No false alarm: the clean example libraries pass ``check`` over 20 seeds (weights and batch),
in both dtypes, on stroke images and on MNIST training images (batches of 8: every stroke image
has its exact zeros and tied windows, and 20 seeds see 160 MNIST images)."""

from __future__ import annotations

import numpy as np
import pytest

from reference_tf.batches import model_batch
from reference_tf.parity_check import check
from reference_tf.twin import twin
from scratch.data import load_mnist

from own_network_helpers import DTYPES, STYLES, example

SEEDS = range(20)
BATCH = 8


@pytest.fixture(scope="module")
def mnist_train():
    """dtype -> MNIST training (images, labels), loaded once."""
    return {dtype: load_mnist(dtype).train for dtype in DTYPES}


def _mnist_batch(model, train, seed: int):
    """``model_batch(model, "mnist", ...)``'s draw, from images loaded once."""
    images, labels = train
    index = np.sort(np.random.default_rng(seed).choice(len(images), size=BATCH, replace=False))
    return model.images(np.ascontiguousarray(images[index])), labels[index].astype(np.int64)


@pytest.mark.parametrize("data", ["strokes", "mnist"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("style", STYLES)
def test_clean_example_passes_check_over_20_seeds(style, dtype, data, mnist_train):
    declared = example(style).build()
    keras_model, failures = None, []
    for seed in SEEDS:
        model = declared.rebuilt(seed=seed, dtype=dtype)
        x, y = (model_batch(model, data, BATCH, seed) if data == "strokes"
                else _mnist_batch(model, mnist_train[dtype], seed))
        keras_model = keras_model or twin(model)  # one twin, the seed's weights copied in
        result = check(model, x, y, keras_model=keras_model)
        if not result.passed:
            failures.append((seed, result.first_divergence))
    assert not failures, failures


def test_mnist_draw_is_the_command_lines(mnist_train):
    model = example("cs231n").build().rebuilt(seed=3, dtype="float32")
    x, y = model_batch(model, "mnist", BATCH, 3)
    x_here, y_here = _mnist_batch(model, mnist_train["float32"], 3)
    np.testing.assert_array_equal(x, x_here)
    np.testing.assert_array_equal(y, y_here)
