"""The sequence layers without TensorFlow: hand-worked cases, float64 finite differences over
shapes, settings and masks drawn by Hypothesis (T = 1, N = 1, fully padded sequences, repeated
embedding indices), the masked loss, and the sequential-MNIST models' gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratch import ops
from scratch.gradcheck import assert_gradients_match, check_layer_gradients, check_model_gradients
from scratch.layers import Dense
from scratch.models import Sequential, build
from scratch.sequence_layers import GRU, LSTM, Embedding, LayerNormalization, SimpleRNN

from helpers import RECURRENT_CELLS, recurrent_cases

EXAMPLES = 10


def one_unit(layer, dtype="float64", steps=2):
    """``layer`` built for (steps, 1) with every weight 0."""
    layer.build((steps, 1), None, dtype)
    for value in layer.params.values():
        value[...] = 0
    return layer


def test_simple_rnn_hand_case():
    layer = one_unit(SimpleRNN(1, return_sequences=True))
    layer.params["kernel"][...] = 0.5
    layer.params["recurrent_kernel"][...] = 1.0
    # h1 = tanh(0.5 * 1) = 0.46211715726; h2 = tanh(0.5 * 2 + h1) = tanh(1.46211715726)
    y = layer.forward(np.array([[[1.0], [2.0]]]))
    np.testing.assert_allclose(y[0, :, 0], [0.46211715726000974, 0.8980630114608957], rtol=1e-15)


def test_lstm_hand_case():
    layer = one_unit(LSTM(1))
    layer.params["bias"][...] = [0, 0, 1, 0]  # i, f, c, o
    # step 1: i = f = o = sigmoid(0) = 0.5, c~ = tanh(1): c1 = 0.5 tanh(1) = 0.38079707798,
    # h1 = 0.5 tanh(c1); with x = 0 and U = 0, step 2 repeats it on c1:
    # c2 = 0.5 c1 + 0.5 tanh(1) = 1.5 c1, h2 = 0.5 tanh(1.5 c1)
    y = layer.forward(np.zeros((1, 2, 1)))
    c1 = 0.5 * math.tanh(1)
    assert y[0, 0] == pytest.approx(0.5 * math.tanh(1.5 * c1), rel=1e-15)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_hand_case(reset_after):
    layer = one_unit(GRU(1, reset_after=reset_after), steps=1)
    bias = layer.params["bias"]
    (bias[0] if reset_after else bias)[2] = 1.0  # the candidate's input bias
    # z = r = sigmoid(0) = 0.5, h~ = tanh(1); h = z * 0 + (1 - z) h~ = 0.5 tanh(1)
    assert layer.forward(np.zeros((1, 1, 1)))[0, 0] == pytest.approx(0.5 * math.tanh(1),
                                                                     rel=1e-15)


def test_masked_step_keeps_state_and_repeats_output():
    layer = one_unit(SimpleRNN(1, return_sequences=True), steps=3)
    layer.params["kernel"][...] = 1.0
    layer.input_mask = np.array([[True, False, True]])
    # step 2 is masked: its output repeats h1 = tanh(1); step 3 starts from h1 (U = 0 here)
    y = layer.forward(np.array([[[1.0], [5.0], [2.0]]]))
    np.testing.assert_allclose(y[0, :, 0], [math.tanh(1), math.tanh(1), math.tanh(2)],
                               rtol=1e-15)


def test_go_backwards_reads_last_step_first_and_returns_reversed():
    layer = one_unit(SimpleRNN(1, return_sequences=True, go_backwards=True))
    layer.params["kernel"][...] = 1.0
    layer.params["recurrent_kernel"][...] = 1.0
    # reads x2 = 2 first: h1 = tanh(2); then x1 = 1: h2 = tanh(1 + tanh(2)); in that order
    y = layer.forward(np.array([[[1.0], [2.0]]]))
    np.testing.assert_allclose(y[0, :, 0], [math.tanh(2), math.tanh(1 + math.tanh(2))],
                               rtol=1e-15)


def test_embedding_gradient_sums_repeated_indices_hand_case():
    layer = Embedding(4, 2).build((3,), None, "float64")
    layer.forward(np.array([[1, 1, 2]]))
    layer.backward(np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]))
    # row 1 appears twice: [1, 2] + [3, 4]; row 2 once; rows 0 and 3 never
    assert layer.grads["embeddings"].tolist() == [[0, 0], [4, 6], [5, 6], [0, 0]]


def test_layer_normalization_hand_case():
    layer = LayerNormalization().build((2,), None, "float64")
    # mean 2, biased variance 1, epsilon 1e-3: y = (x - 2) / sqrt(1.001)
    y = layer.forward(np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(y, [[-0.9995003746877732, 0.9995003746877732]], rtol=1e-15)


def test_sequence_loss_masked_divides_by_unmasked_count_hand_case():
    logits = np.array([[[1.0, 0.0], [0.0, 0.0]], [[7.0, 0.0], [3.0, 1.0]]])
    labels = np.array([[1, 0], [0, 1]])
    mask = np.array([[True, False], [False, False]])
    # one unmasked step of 4: loss = -log softmax([1, 0])[1] = log(1 + e) = 1.31326168752,
    # the divisor 1 (not 4); masked steps get no gradient
    loss, dlogits = ops.sequence_softmax_cross_entropy(logits, labels, mask)
    assert loss == pytest.approx(1.3132616875182228, rel=1e-15)
    assert np.count_nonzero(dlogits[~mask]) == 0
    all_padded = ops.sequence_softmax_cross_entropy(logits, labels, np.zeros((2, 2), bool))
    assert all_padded[0] == 0.0 and not all_padded[1].any()


@pytest.mark.parametrize("cell", sorted(RECURRENT_CELLS))
@settings(max_examples=EXAMPLES)
@given(case=recurrent_cases(4, 3), seed=st.integers(0, 2**32 - 1))
def test_recurrent_layer_gradients_match_finite_differences(cell, case, seed):
    shape, units, settings_, mask = case
    rng = np.random.default_rng(seed)
    layer = RECURRENT_CELLS[cell](units, **settings_).build(shape[1:], rng, "float64")
    for value in layer.params.values():
        value[...] = rng.uniform(-1, 1, value.shape)
    layer.input_mask = mask
    assert_gradients_match(check_layer_gradients(layer, rng.standard_normal(shape), seed=seed))


@settings(max_examples=EXAMPLES)
@given(n=st.integers(1, 3), steps=st.integers(1, 5), input_dim=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_embedding_gradient_matches_finite_differences(n, steps, input_dim, seed):
    rng = np.random.default_rng(seed)
    layer = Embedding(input_dim, 2).build((steps,), rng, "float64")
    x = rng.integers(0, input_dim, size=(n, steps))
    assert_gradients_match(check_layer_gradients(layer, x, seed=seed))


@settings(max_examples=EXAMPLES)
@given(shape=st.sampled_from([(1, 3), (2, 4), (3, 2, 4), (1, 1, 5)]),
       seed=st.integers(0, 2**32 - 1))
def test_layer_normalization_gradients_match_finite_differences(shape, seed):
    # at least 3 features: with C = 1 (y = beta exactly) or C = 2 the input gradient cancels
    # to 0 or nearly, and the difference quotient is rounding (Keras parity covers them)
    rng = np.random.default_rng(seed)
    layer = LayerNormalization().build(shape[1:], rng, "float64")
    for value in layer.params.values():
        value[...] = rng.uniform(-2, 2, value.shape)
    assert_gradients_match(check_layer_gradients(layer, rng.standard_normal(shape), seed=seed))


def test_dense_per_time_step_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    layer = Dense(3).build((4, 2), rng, "float64")
    assert_gradients_match(check_layer_gradients(layer, rng.standard_normal((2, 4, 2))))


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_sequential_mnist_model_gradients_match_finite_differences(name):
    model = build(name, seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, (2, 28, 28, 1)), np.array([3, 7])
    assert_gradients_match(check_model_gradients(model, x, y, max_elements=20))


def test_token_model_gradients_with_padding_match_finite_differences():
    model = Sequential([Embedding(6, 3, mask_zero=True), LSTM(4, return_sequences=True),
                        GRU(3), LayerNormalization(), Dense(2)], (5,), dtype="float64",
                       num_classes=2)
    x = np.array([[1, 2, 2, 0, 0], [0, 0, 0, 0, 0], [5, 4, 3, 2, 1]])
    assert_gradients_match(check_model_gradients(model, x, np.array([0, 1, 1])))


def test_report_trains_sequence_models_only_when_named():
    from reports.cli import build_parser
    from reports.experiment.protocol import QUICK, SEQUENCE_SETTINGS, SETTINGS, plan

    assert build_parser().parse_args(["report"]).models == list(SETTINGS)
    assert not set(SEQUENCE_SETTINGS) & set(SETTINGS)
    specs = plan(build_parser().parse_args(["report", "--models", "lstm"]).models, 1, QUICK)
    assert [(s.model, s.lr, s.implementation) for s in specs] == [
        ("lstm", lr, impl) for _, lr in SEQUENCE_SETTINGS["lstm"]
        for impl in ("numpy", "tensorflow")]


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_recurrent_cache_exposes_steps_gates_and_gradients_through_time(cell):
    # What a per-step diagnosis reads: hidden states, each gate's pre-activations, dL/dh_t.
    rng = np.random.default_rng(0)
    gates = len(ops.GATES[cell])
    x, units = rng.standard_normal((2, 3, 2)), 4
    kernel = rng.standard_normal((2, gates * units))
    recurrent_kernel = rng.standard_normal((units, gates * units))
    y, cache = ops.recurrent_forward(cell, x, kernel, recurrent_kernel, None,
                                     return_sequences=True)
    np.testing.assert_array_equal(ops.hidden_states(cache), y)
    pre = ops.gate_pre_activations(cache)
    assert list(pre) == list(ops.GATES[cell]) and all(p.shape == (2, 3, 4) for p in pre.values())
    # the first step's pre-activations from x alone (h_0 = 0), gate by gate
    first = x[:, 0] @ kernel
    for index, name in enumerate(ops.GATES[cell]):
        np.testing.assert_allclose(pre[name][:, 0], first[:, index * units:(index + 1) * units],
                                   rtol=1e-14)
    dy = rng.standard_normal(y.shape)
    dstates = ops.recurrent_backward_through_time(dy, cache)[4]
    # the last step's state gets only its output's gradient; earlier ones add the steps after
    np.testing.assert_array_equal(dstates[-1], dy[:, -1])
    assert not np.allclose(dstates[0], dy[:, 0])
