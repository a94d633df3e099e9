"""Bugs planted in the sequence layers' backward passes (``planted_sequence``) are caught by
``tfparity check`` and located by ``tfparity diff`` (layer and pass), and an Embedding whose
gradient counts a repeated index once fails the check of a token model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference_tf.parity_check import check
from reports.cli import main
from scratch.layers import Dense
from scratch.models import Sequential
from scratch.sequence_layers import LSTM, Embedding

from planted_sequence import (
    plant_embedding_repeated_index_counted_once,
    plant_gru_reset_gate_no_sigmoid_derivative,
    plant_lstm_forget_gate_no_sigmoid_derivative,
    plant_recurrent_kernel_grad_forgets_a_step,
)

# planter -> (model, the layer diff names)
CASES = {
    "lstm_forget_gate": (plant_lstm_forget_gate_no_sigmoid_derivative, "lstm"),
    "gru_reset_gate": (plant_gru_reset_gate_no_sigmoid_derivative, "gru"),
    "recurrent_kernel_one_step": (plant_recurrent_kernel_grad_forgets_a_step, "lstm"),
}


@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_sequence_bug_check_fails(bug, monkeypatch, capsys):
    plant, model = CASES[bug]
    plant(monkeypatch)
    code = main(["check", "--models", model, "--dtype", "float64", "--batch-size", "4"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and [line.split()[:4] for line in lines[:2]] == [
        ["FAIL", model, "float64", "trace"], ["FAIL", model, "float64", "training"]], lines


@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_sequence_bug_diff_names_layer_and_backward_pass(bug, monkeypatch, tmp_path):
    plant, model = CASES[bug]
    plant(monkeypatch)
    path = tmp_path / "diff.json"
    assert main(["diff", model, "--batch-size", "4", "--json", str(path)]) == 1
    first = json.loads(path.read_text())["first_divergence"]
    assert (first["layer"], first["pass"]) == (model, "backward"), first


def token_model() -> Sequential:
    return Sequential([Embedding(5, 3, mask_zero=True, name="embedding"), LSTM(4, name="lstm"),
                       Dense(2, name="logits")], (6,), dtype="float64", num_classes=2)


def test_embedding_repeated_index_counted_once_fails_check(monkeypatch):
    # every sequence repeats token 1; token 0 pads the second one
    x, y = np.array([[1, 1, 2, 3, 1, 4], [1, 2, 1, 0, 0, 0]]), np.array([0, 1])
    assert check(token_model(), x, y).passed
    plant_embedding_repeated_index_counted_once(monkeypatch)
    result = check(token_model(), x, y)
    assert not result.passed
    assert result.first_divergence.key == "grads/embedding/embeddings", result.first_divergence
