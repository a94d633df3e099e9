"""Bugs planted in the sequence layers' backward passes (``planted_sequence``) are caught by
``tfparity check`` and located by ``tfparity diff`` (layer, pass, time step and gate), and an
Embedding whose gradient counts a repeated index once fails the check of a token model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference_tf.batches import model_batch
from reference_tf.parity_check import check
from reports.cli import main
from scratch.layers import Dense
from scratch.models import Sequential, build
from scratch.sequence_layers import LSTM, Embedding

from helpers import DTYPES
from planted_sequence import (
    FORGOTTEN_STEP,
    plant_embedding_repeated_index_counted_once,
    plant_gru_reset_gate_no_sigmoid_derivative,
    plant_lstm_forget_gate_no_sigmoid_derivative,
    plant_recurrent_kernel_grad_forgets_a_step,
)

# planter -> (model, the layer diff names, the time step and gate it names). The models read
# 28 steps without a mask and return the last state: a bug in every step's gate gradient parts
# first at the last step, 27.
CASES = {
    "lstm_forget_gate": (plant_lstm_forget_gate_no_sigmoid_derivative, "lstm", 27, "f"),
    "gru_reset_gate": (plant_gru_reset_gate_no_sigmoid_derivative, "gru", 27, "r"),
    "recurrent_kernel_one_step": (plant_recurrent_kernel_grad_forgets_a_step, "lstm",
                                  FORGOTTEN_STEP, None),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_sequence_bug_check_fails(bug, dtype, monkeypatch, capsys):
    plant, model, _, _ = CASES[bug]
    plant(monkeypatch)
    code = main(["check", "--models", model, "--dtype", dtype, "--batch-size", "4"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and [line.split()[:4] for line in lines[:2]] == [
        ["FAIL", model, dtype, "trace"], ["FAIL", model, dtype, "training"]], lines


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_sequence_bug_diff_names_layer_pass_and_time_step(bug, dtype, monkeypatch,
                                                                  tmp_path, capsys):
    plant, model, step, gate = CASES[bug]
    plant(monkeypatch)
    path = tmp_path / "diff.json"
    assert main(["diff", model, "--batch-size", "4", "--dtype", dtype, "--json", str(path),
                 "--no-fd"]) == 1
    first = json.loads(path.read_text())["first_divergence"]
    assert (first["layer"], first["pass"], first["time_step"], first["gate"]) == (
        model, "backward", step, gate), first["through_time"]
    text = capsys.readouterr().out
    assert "backward pass, " in text and f", from time step {step}" in text
    assert f"Through time (layer '{model}', 28 steps" in text


@pytest.mark.parametrize("dtype", DTYPES)
def test_planted_embedding_bug_diff_names_a_repeated_index_step(dtype, monkeypatch, tmp_path):
    plant_embedding_repeated_index_counted_once(monkeypatch)
    path = tmp_path / "diff.json"
    assert main(["diff", "tokens", "--batch-size", "4", "--dtype", dtype, "--json", str(path),
                 "--no-fd"]) == 1
    first = json.loads(path.read_text())["first_divergence"]
    assert (first["layer"], first["pass"], first["key"]) == (
        "embedding", "backward", "grads/embeddings"), first
    x, _ = model_batch(build("tokens", seed=0, dtype=dtype), "strokes", 4, 0, True)
    counts = np.bincount(x.ravel())
    # the step named holds an index that the batch looks up more than once
    assert first["time_step"] is not None and (counts[x[:, first["time_step"]]] > 1).any(), first


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
