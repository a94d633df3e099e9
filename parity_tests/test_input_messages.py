"""Bad input to the library is answered at the entry point, naming the argument or layer, what
was expected and what was received: empty batches, non-positive batch sizes, foreign byte
orders, a Keras layer where a scratch layer belongs, layers whose settings differ."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from reference_tf.testing import assert_layer_parity
from reports.analysis.fitting import divergence
from scratch.layers import Dense, MaxPool2D
from scratch.models import build
from scratch.train import fit


@pytest.fixture(scope="module")
def model():
    return build("linear", dtype="float64")


def _batch(n: int, dtype="float64"):
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28, 1)).astype(dtype), rng.integers(0, 10, n)


@pytest.mark.parametrize("call", [
    lambda m, x, y: m.evaluate(x, y), lambda m, x, y: m.predict(x), lambda m, x, y: m.trace(x, y),
    lambda m, x, y: m.loss_and_grads(x, y), lambda m, x, y: m.forward(x),
    lambda m, x, y: fit(m, x, y, epochs=1, lr=0.1),
], ids=["evaluate", "predict", "trace", "loss_and_grads", "forward", "fit"])
def test_empty_batch_rejected_at_the_entry_point(model, call):
    x, y = _batch(0)
    with pytest.raises(ValueError, match=re.escape(
            "Sequential input: expected at least one example (N >= 1), received x of shape "
            "(0, 28, 28, 1).")):
        call(model, x, y)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_non_positive_batch_size_rejected(model, method, batch_size):
    x, y = _batch(4)
    args = (x, y) if method == "evaluate" else (x,)
    with pytest.raises((ValueError, TypeError), match=re.escape(
            f"Sequential.{method}: expected batch_size to be a positive integer, received "
            f"batch_size={batch_size!r}.")):
        getattr(model, method)(*args, batch_size=batch_size)


def test_fit_batch_size_zero_names_it(model):
    x, y = _batch(4)
    with pytest.raises(ValueError, match="fit: expected batch_size to be a positive integer, "
                                         "received batch_size=0"):
        fit(model, x, y, epochs=1, lr=0.1, batch_size=0)


def test_big_endian_input_names_the_byte_order(model):
    x, y = _batch(2)
    with pytest.raises(TypeError, match=re.escape(
            "Sequential input: expected x in the machine's byte order, received dtype float64 in "
            "big-endian order ('>f8'); convert with x.astype('float64').")):
        model.trace(x.astype(">f8"), y)


def test_layer_parity_keras_layer_in_the_scratch_place():
    with pytest.raises(TypeError, match=re.escape(
            "assert_layer_parity: expected scratch_layer to be a scratch.layers.Layer, received "
            "Dense (a Keras layer: it goes second, as keras_layer).")):
        assert_layer_parity(keras.layers.Dense(3), None, input_shape=(2, 4))
    with pytest.raises(TypeError, match="expected keras_layer to be a keras.layers.Layer or None, "
                                        "received Dense"):
        assert_layer_parity(Dense(3), Dense(3), input_shape=(2, 4))


def test_layer_parity_different_pool_settings_named_before_any_gradient():
    with pytest.raises(AssertionError) as caught:
        assert_layer_parity(MaxPool2D(2, padding="same"),
                            keras.layers.MaxPooling2D(3, dtype="float64", name="pool"),
                            input_shape=(4, 7, 7, 2))
    message = str(caught.value)
    assert "gives output shape (4, 4, 4, 2), the Keras layer 'pool' (4, 2, 2, 2)" in message
    assert ("pool_size: scratch (2, 2), Keras (3, 3); strides: scratch (2, 2), Keras (3, 3); "
            "padding: scratch 'same', Keras 'valid'") in message
    assert "dy" not in message


def _history(*losses):
    """Records as ``tfparity train`` writes them: no train_eval set."""
    return [{"samples_seen": 100 * i, "train_loss": loss, "test_loss": 2.3}
            for i, loss in enumerate(losses)]


def test_divergence_rule_reads_train_style_histories():
    assert divergence(_history(float("nan"), 1.9, 0.7)) is None
    assert divergence(_history(float("nan"), 4.6e9)) == (
        "train_loss reached 4.6e+09 > 3 x the initial test loss 2.3")
