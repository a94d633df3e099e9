"""The sequence example of docs/own-network.md runs as written, against the example's
rnn_layers functions as the user's ``rnn_layers.py``, and names a planted gate order."""

from __future__ import annotations

import sys

import pytest

from reference_tf.own.loading import load_model
from reports.cli import main

from helpers import doc_python_block
from own_network_helpers import diff_json
from own_sequence_helpers import RNN_LAYERS, lstm_in_order

SECTION = "## Sequence models"


def snippet() -> str:
    return doc_python_block(SECTION)


@pytest.fixture
def my_lstm(tmp_path):
    """The snippet as my_lstm.py (a new file per test: each is imported afresh)."""
    path = tmp_path / "my_lstm.py"
    path.write_text(snippet())
    return f"{path}:build"


def test_sequence_snippet_passes_check(my_lstm, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rnn_layers", RNN_LAYERS)
    assert main(["check", "--model", my_lstm]) == 0, capsys.readouterr().out


def test_sequence_snippet_names_a_planted_gate_order(my_lstm, monkeypatch, tmp_path):
    # the user's lstm_forward/backward keep their blocks as i, f, g, o (PyTorch's) under the
    # declared CS231n order i, f, o, g
    monkeypatch.setitem(sys.modules, "rnn_layers", lstm_in_order("ifgo"))
    code, result = diff_json(tmp_path, "--model", my_lstm, "--no-fd", "--batch-size", "4")
    first = result["first_divergence"]
    assert code == 1 and (first["layer"], first["key"]) == ("lstm", "output")
    assert first["cause"]["id"] == "gate_order"
    assert "as i, f, g, o where the declaration says i, f, o, g" in first["cause"]["detail"]


def test_sequence_snippet_model_is_the_examples(my_lstm, monkeypatch):
    monkeypatch.setitem(sys.modules, "rnn_layers", RNN_LAYERS)
    model = load_model(my_lstm)
    assert [layer.declaration.keras for layer in model.layers] == ["Embedding", "LSTM", "Dense"]
