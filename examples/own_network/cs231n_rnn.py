"""CS231n assignment 3's captioning network on ``rnn_layers.py`` functions, declared for
tfparity: words (N, T) -> word embedding -> vanilla RNN or LSTM from h0 -> temporal affine ->
temporal softmax loss with the padding masked.

The reference functions are ``cs231n_rnn_layers.py`` beside this file; a student checks their
own module with the same declarations, ``build("lstm", lib=rnn_layers)``, or from the command
line ``tfparity check --model examples/own_network/cs231n_rnn.py:build(model="lstm")``.
The initial state h0 is zeros (CS231n computes it from image features; the features' affine
layer is ``own.Dense``'s business). The loss is the course's: summed over the steps and
divided by N.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cs231n_rnn_layers  # noqa: E402  (beside this file)

VOCABULARY, WORDS, HIDDEN, STEPS = 12, 8, 6, 5


def build(model: str = "rnn", lib=None):
    """The captioning network of ``lib``'s rnn_layers functions (default: this example's)."""
    from reference_tf import own

    lib = lib or cs231n_rnn_layers
    cells = {"rnn": (own.SimpleRNN, lib.rnn_forward, lib.rnn_backward, "ifco"),
             "lstm": (own.LSTM, lib.lstm_forward, lib.lstm_backward, "ifog")}
    if model not in cells:
        raise ValueError(f"build: expected model 'rnn' or 'lstm', received {model!r}.")
    cell, forward, backward, gates = cells[model]
    recurrent = cell(own.functions(forward, backward), HIDDEN, name=model,
                     **({"gate_order": gates} if model == "lstm" else {}))
    embed = own.functions(lib.word_embedding_forward, lib.word_embedding_backward)
    affine = own.functions(lib.temporal_affine_forward, lib.temporal_affine_backward)
    layers = [own.Embedding(embed, VOCABULARY, WORDS, name="embed"), recurrent,
              own.Dense(affine, VOCABULARY, name="scores")]
    return own.Model(layers, (STEPS,), loss=own.SequenceLoss(lib.temporal_softmax_loss),
                     conventions=own.Conventions(names={"kernel": "w", "bias": "b"}),
                     num_classes=VOCABULARY)
