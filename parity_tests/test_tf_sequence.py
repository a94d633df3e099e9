"""The sequence layers against Keras 3: SimpleRNN, LSTM, GRU (both reset modes), Embedding,
LayerNormalization, Dense per time step and the masked sequence loss, in both dtypes, over
shapes, settings and masks drawn by Hypothesis (T = 1 and N = 1 included, fully padded
sequences, repeated embedding indices); a Keras model built independently and imported by
``from_keras`` in one pass and over 40 training steps of SGD, Adam and RMSprop.

Tolerances: ``reference_tf.compare`` (float64 1e-12, float32 1e-5 forward / 1e-4 gradients; the
recurrent chains are at most 5 steps long here, see FLOAT64_RECURRENT_NOTE there), and the
training trajectories 1e-9 (TRAJECTORY_TOL below).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_tf.compare import compare
from reference_tf.from_keras import from_keras
from reference_tf.testing import assert_layer_parity, assert_model_parity
from reference_tf.training import KerasTrainer
from reference_tf.twin import keras_params
from scratch import optim
from scratch.layers import Dense
from scratch.ops import sequence_softmax_cross_entropy
from scratch.sequence_layers import Embedding, LayerNormalization
from scratch.train import ScratchTrainer, batch_schedule

from helpers import DTYPES, RECURRENT_CELLS, recurrent_cases, sequence_mask

EXAMPLES = 8
seeds = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("cell", sorted(RECURRENT_CELLS))
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(case=recurrent_cases(5, 4), seed=seeds)
def test_recurrent_layer_matches_keras(cell, dtype, case, seed):
    shape, units, settings_, mask = case
    layer = RECURRENT_CELLS[cell](units, **settings_)
    layer.build(shape[1:], np.random.default_rng(seed), dtype)
    # weights of order 1, not the small initial ones: every gate works in its nonlinear range
    for value in layer.params.values():
        value[...] = np.random.default_rng(seed + 1).uniform(-1, 1, value.shape)
    layer.input_mask = mask
    assert_layer_parity(layer, None, shape, dtype, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(n=st.integers(1, 3), steps=st.integers(1, 6), input_dim=st.integers(1, 4),
       output_dim=st.integers(1, 3), seed=seeds)
def test_embedding_sums_repeated_indices_like_keras(dtype, n, steps, input_dim, output_dim,
                                                    seed):
    # input_dim <= 4 with up to 18 positions: most draws repeat indices
    x = np.random.default_rng(seed).integers(0, input_dim, size=(n, steps))
    assert_layer_parity(Embedding(input_dim, output_dim), None, (n, steps), dtype, x=x,
                        seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=st.sampled_from([(1, 1), (2, 3), (3, 2, 4), (1, 1, 5), (2, 4, 1)]),
       center=st.booleans(), scale=st.booleans(), epsilon=st.sampled_from([1e-3, 1e-5, 0.5]),
       seed=seeds)
def test_layer_normalization_matches_keras(dtype, shape, center, scale, epsilon, seed):
    layer = LayerNormalization(epsilon=epsilon, center=center, scale=scale)
    layer.build(shape[1:], None, dtype)
    for value in layer.params.values():
        value[...] = np.random.default_rng(seed).uniform(-2, 2, value.shape)
    assert_layer_parity(layer, None, shape, dtype, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(n=st.integers(1, 3), steps=st.integers(1, 4), features=st.integers(1, 4),
       units=st.integers(1, 4), seed=seeds)
def test_dense_per_time_step_matches_keras(dtype, n, steps, features, units, seed):
    assert_layer_parity(Dense(units), None, (n, steps, features), dtype, seed=seed)


def keras_sequence_loss(logits: np.ndarray, labels: np.ndarray, mask):
    """Keras's loss of logits (N, T, V) carrying ``mask`` as Keras layers attach it, and its
    gradient."""
    variable = tf.Variable(logits)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                         dtype=logits.dtype.name)
    with tf.GradientTape() as tape:
        scores = tf.identity(variable)
        if mask is not None:
            scores._keras_mask = tf.constant(mask)
        loss = loss_fn(tf.constant(labels), scores)
    return float(loss.numpy()), tape.gradient(loss, variable).numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(n=st.integers(1, 3), steps=st.integers(1, 4), classes=st.integers(2, 5),
       masked=st.booleans(), padded_row=st.booleans(), data=st.data(), seed=seeds)
def test_sequence_loss_divides_by_unmasked_steps_like_keras(dtype, n, steps, classes, masked,
                                                            padded_row, data, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, steps, classes)).astype(dtype)
    labels = rng.integers(0, classes, size=(n, steps))
    mask = None
    if masked:
        bits = data.draw(st.lists(st.booleans(), min_size=n * steps, max_size=n * steps))
        mask = sequence_mask(bits, n, steps, padded_row)
    loss, dlogits = sequence_softmax_cross_entropy(logits, labels, mask)
    keras_loss, keras_dlogits = keras_sequence_loss(logits, labels, mask)
    tol = {"float32": 1e-6, "float64": 1e-14}[dtype]
    assert abs(loss - keras_loss) <= tol * max(1.0, abs(keras_loss))
    np.testing.assert_allclose(dlogits, keras_dlogits, rtol=0, atol=tol)


# A Keras model written as its users write it, not by tfparity's twin: integer tokens (0 =
# padding) -> Embedding(mask_zero) -> LSTM(return_sequences) -> GRU(return_sequences) ->
# SimpleRNN -> LayerNormalization -> Dense, or the same from float sequences through Input.
VOCABULARY, STEPS, FEATURES, CLASSES = 7, 5, 3, 4


def keras_sequence_model(embedding: bool, dtype: str) -> keras.Sequential:
    keras.utils.set_random_seed(0)
    head = ([keras.Input((STEPS,), dtype="int32"),
             keras.layers.Embedding(VOCABULARY, FEATURES, mask_zero=True, dtype=dtype)]
            if embedding else [keras.Input((STEPS, FEATURES), dtype=dtype)])
    return keras.Sequential(head + [
        keras.layers.LSTM(6, return_sequences=True, dtype=dtype),
        keras.layers.GRU(5, return_sequences=True, dtype=dtype),
        keras.layers.SimpleRNN(4, dtype=dtype),
        keras.layers.LayerNormalization(dtype=dtype),
        keras.layers.Dense(CLASSES, dtype=dtype),
    ])


def sequence_batch(embedding: bool, n: int, dtype: str, seed: int = 0):
    """(x, y): tokens (n, STEPS) with trailing padding (one sequence all padding) or float
    sequences (n, STEPS, FEATURES), and labels (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    if not embedding:
        return rng.standard_normal((n, STEPS, FEATURES)).astype(dtype), y
    tokens = rng.integers(1, VOCABULARY, size=(n, STEPS)).astype("int32")
    lengths = rng.integers(0, STEPS + 1, n)
    lengths[0] = 0
    tokens[np.arange(STEPS) >= lengths[:, None]] = 0
    return tokens, y


@pytest.mark.parametrize("embedding", [True, False], ids=["embedding", "input"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_from_keras_sequence_model_matches_keras(embedding, dtype):
    keras_model = keras_sequence_model(embedding, dtype)
    model = from_keras(keras_model)
    assert [type(layer).__name__ for layer in model.layers][-5:] == [
        "LSTM", "GRU", "SimpleRNN", "LayerNormalization", "Dense"]
    x, y = sequence_batch(embedding, 6, dtype)
    assert_model_parity(model, x, y, keras_model)


TRAJECTORY_STEPS, BATCH = 40, 8
# 40 float64 steps: a pass differs from Keras's by ~1e-15 relative; the steps carry and add it
# (see FLOAT64_TRAJECTORY_TOL in reference_tf/compare.py), well inside 1e-9.
TRAJECTORY_TOL = 1e-9
TRAJECTORY_OPTIMIZERS = {"sgd": lambda: optim.SGD(0.1), "adam": lambda: optim.Adam(0.01),
                         "rmsprop": lambda: optim.RMSprop(0.005)}


# Adam and RMSprop train the float-input model only: Keras's TensorFlow backend squares an
# Embedding's sparse gradient (tf.IndexedSlices) per occurrence before summing repeated rows
# (keras.ops.square is sparse-aware), so their second moments of a row looked up twice in a
# batch are g1^2 + g2^2, not (g1 + g2)^2 (docs/derivations.md, "Embedding"). SGD sees the sum.
@pytest.mark.parametrize("name, embedding", [("sgd", True), ("sgd", False), ("adam", False),
                                             ("rmsprop", False)])
def test_from_keras_sequence_model_trains_step_for_step_like_keras(name, embedding):
    keras_model = keras_sequence_model(embedding, "float64")
    model = from_keras(keras_model)
    optimizer = TRAJECTORY_OPTIMIZERS[name]()
    scratch_side, keras_side = ScratchTrainer(model, optimizer), KerasTrainer(keras_model,
                                                                              optimizer)
    x, y = sequence_batch(embedding, 32, "float64", seed=1)
    params = keras_params(keras_model)
    worst = 0.0
    for batch in batch_schedule(len(x), BATCH, TRAJECTORY_STEPS * BATCH // len(x), seed=0):
        xb, yb = x[batch.indices], y[batch.indices]
        mine = {"loss": scratch_side.train_step(xb, yb), **model.params}
        theirs = {"loss": keras_side.train_step(xb, yb),
                  **{key: value.numpy() for key, value in params.items()}}
        for comparison in compare(mine, theirs).values():
            assert comparison.passes(TRAJECTORY_TOL), (batch.step, comparison.format(
                TRAJECTORY_TOL))
            worst = max(worst, comparison.smallest_passing_tolerance)
    assert batch.step == TRAJECTORY_STEPS


@pytest.mark.parametrize("layer, message", [
    (keras.layers.LSTM(3, dropout=0.2, name="l"), r"layer 'l' \(LSTM\): dropout=0\.2 is not "
                                                  r"supported; expected 0\."),
    (keras.layers.GRU(3, activation="relu", name="g"), r"layer 'g' \(GRU\): activation='relu'"),
    (keras.layers.SimpleRNN(3, return_state=True, name="s"), r"layer 's' \(SimpleRNN\): "
                                                             r"return_state=True"),
    (keras.layers.LayerNormalization(rms_scaling=True, name="n"), r"layer 'n' "
                                                                  r"\(LayerNormalization\): "
                                                                  r"rms_scaling=True"),
])
def test_from_keras_refuses_sequence_settings_it_cannot_compute(layer, message):
    keras_model = keras.Sequential([keras.Input((STEPS, FEATURES)), layer])
    with pytest.raises(ValueError, match=message):
        from_keras(keras_model)
