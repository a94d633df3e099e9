"""The finite-difference third opinion (``reference_tf.finite_diff``) on sequence layers: every
recurrent parameter (a GRU's (2, 3U) bias included), an LSTM behind a masking Embedding, and an
Embedding's gradient with integer inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from reference_tf.finite_diff import third_opinion
from reference_tf.layerdiff import diff
from scratch.layers import Dense
from scratch.models import Sequential
from scratch.sequence_layers import GRU, LSTM, Embedding

from planted_sequence import (
    plant_embedding_repeated_index_counted_once,
    plant_gru_reset_gate_no_sigmoid_derivative,
    plant_lstm_forget_gate_no_sigmoid_derivative,
)

# every sequence repeats token 1; token 0 pads the second and third
TOKENS = np.array([[1, 1, 2, 3, 1, 4], [1, 2, 1, 0, 0, 0], [4, 3, 0, 0, 0, 0]])
LABELS = np.array([0, 1, 1])


def token_model() -> Sequential:
    return Sequential([Embedding(5, 6, mask_zero=True, name="embedding"), LSTM(4, name="lstm"),
                       Dense(2, name="logits")], (6,), dtype="float64", num_classes=2)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("param", ["kernel", "recurrent_kernel", "bias"])
def test_third_opinion_gru_parameter_blames_scratch(param, reset_after, monkeypatch):
    model = Sequential([GRU(3, reset_after=reset_after, name="gru"), Dense(2, name="logits")],
                       (5, 2), dtype="float64", num_classes=2)
    x = np.random.default_rng(0).standard_normal((3, 5, 2))
    plant_gru_reset_gate_no_sigmoid_derivative(monkeypatch)
    result = diff(model, x, np.array([0, 1, 1]))
    assert (result.first_divergence.layer, result.first_divergence.direction) == (
        "gru", "backward")
    result.first_divergence = dataclasses.replace(result.first_divergence, key=f"grads/{param}")
    opinion = third_opinion(result)
    assert opinion.verdict == "scratch", opinion.sentence


def test_third_opinion_masked_lstm_blames_scratch(monkeypatch):
    plant_lstm_forget_gate_no_sigmoid_derivative(monkeypatch)
    result = diff(token_model(), TOKENS, LABELS)
    assert (result.first_divergence.layer, result.first_divergence.direction) == (
        "lstm", "backward")
    opinion = third_opinion(result)
    assert opinion.verdict == "scratch", opinion.sentence


def test_third_opinion_embedding_with_integer_inputs_blames_scratch(monkeypatch):
    plant_embedding_repeated_index_counted_once(monkeypatch)
    result = diff(token_model(), TOKENS, LABELS)
    assert result.first_divergence.key == "grads/embeddings", result.first_divergence
    opinion = third_opinion(result)
    assert opinion.verdict == "scratch", opinion.sentence
