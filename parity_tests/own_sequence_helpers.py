"""Shared helpers of the ``test_own_sequence*`` tests: the captioning network of
``examples/own_network`` assembled around a chosen recurrent declaration, and the conventions
and bugs planted into the examples' recurrent code."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from reference_tf import own
from reference_tf.batches import model_batch
from reference_tf.layerdiff import diff
from reference_tf.own.conventions import gate_blocks
from reference_tf.own.loading import import_target

from own_network_helpers import EXAMPLES

RNN_LAYERS = import_target(str(EXAMPLES / "cs231n_rnn_layers.py"))
TORCH = import_target(str(EXAMPLES / "torch_style_rnn.py"))
CAPTIONS = import_target(str(EXAMPLES / "cs231n_rnn.py"))


def caption_model(recurrent, reduction: str = "batch", lib=RNN_LAYERS):
    """Words (N, 5) -> CS231n's word embedding -> ``recurrent`` (6 units) -> temporal affine ->
    ``lib``'s temporal softmax loss, declared with ``reduction``."""
    layers = [own.Embedding(own.functions(lib.word_embedding_forward,
                                          lib.word_embedding_backward),
                            CAPTIONS.VOCABULARY, CAPTIONS.WORDS, name="embed"),
              recurrent,
              own.Dense(own.functions(lib.temporal_affine_forward, lib.temporal_affine_backward),
                        CAPTIONS.VOCABULARY, name="scores")]
    return own.Model(layers, (CAPTIONS.STEPS,), num_classes=CAPTIONS.VOCABULARY,
                     loss=own.SequenceLoss(lib.temporal_softmax_loss, reduction=reduction),
                     conventions=own.Conventions(names={"kernel": "w", "bias": "b"}))


def cs231n_lstm(lib=RNN_LAYERS, **conventions):
    """CS231n's lstm_forward/backward from ``lib`` as an own.LSTM of 6 units."""
    return own.LSTM(own.functions(lib.lstm_forward, lib.lstm_backward), CAPTIONS.HIDDEN,
                    name="lstm", **conventions)


def torch_recurrent(cell: str, *, obj_settings: dict | None = None, **declared):
    """The PyTorch-style LSTM or GRU object, declared in PyTorch's layout (``declared``
    overrides a setting)."""
    cls, order = {"lstm": (TORCH.LSTM, "ifgo"), "gru": (TORCH.GRU, "rzn")}[cell]
    obj = cls(CAPTIONS.WORDS, CAPTIONS.HIDDEN, **(obj_settings or {}))
    settings = {**TORCH.TORCH, "gate_order": order, **declared}
    return getattr(own, cell.upper())(obj, CAPTIONS.HIDDEN, name=cell, **settings)


def lstm_in_order(order: str, lib=RNN_LAYERS):
    """``lib`` with an lstm_forward/backward whose gate blocks are ``order`` (CS231n letters
    i, f, o, g) instead of CS231n's i, f, o, g."""
    def forward(x, h0, Wx, Wh, b):
        return lib.lstm_forward(x, h0, *(gate_blocks(a, order, "ifog") for a in (Wx, Wh, b)))

    def backward(dh, cache):
        dx, dh0, *grads = lib.lstm_backward(dh, cache)
        return (dx, dh0, *(gate_blocks(g, "ifog", order) for g in grads))

    return SimpleNamespace(**{**vars(lib), "lstm_forward": forward, "lstm_backward": backward})


def patched(lib=RNN_LAYERS, **functions):
    """``lib`` with some functions replaced."""
    return SimpleNamespace(**{**vars(lib), **functions})


def gate_gradient_scaled(lib=RNN_LAYERS):
    """A non-convention bug: the forget gate's block of every parameter gradient times 1.01."""
    def backward(dh, cache):
        dx, dh0, dWx, dWh, db = lib.lstm_backward(dh, cache)
        hidden = dWh.shape[0]
        for grad in (dWx, dWh, db):
            grad[..., hidden:2 * hidden] *= 1.01
        return dx, dh0, dWx, dWh, db

    return patched(lib, lstm_backward=backward)


def hidden_unit_flipped(lib=RNN_LAYERS):
    """A non-convention bug: hidden unit 0 of every step returned with its sign flipped."""
    def forward(x, h0, Wx, Wh, b):
        h, cache = lib.lstm_forward(x, h0, Wx, Wh, b)
        h = h.copy()
        h[:, :, 0] *= -1
        return h, cache

    return patched(lib, lstm_forward=forward)


def first_divergence(model, dtype: str, seed: int = 0, batch_size: int = 6) -> dict:
    """``diff``'s JSON first divergence (``--json``'s ``first_divergence``) of ``model`` in
    ``dtype`` on its seeded caption batch, with random biases (Keras starts most at 0, where a
    missing bias is invisible); {} when there is none."""
    model = model.rebuilt(dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for key, value in model.params.items():
        if value.ndim <= 2 and key.split("/")[1].startswith(("b", "bias")):
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    x, y = model_batch(model, "strokes", batch_size, seed)
    return diff(model, x, y).to_dict()["first_divergence"] or {}


def _cs231n_lstm_model(**settings):
    return caption_model(cs231n_lstm(gate_order="ifog"), **settings)


# name: (the model planted with it, the cause diff must name; None: a bug, no convention)
PLANTS = {
    "lstm_ifog_declared_ifco": (lambda: caption_model(cs231n_lstm(gate_order="ifco")),
                                "gate_order"),
    "lstm_ifgo_declared_ifog": (lambda: caption_model(torch_recurrent("lstm", gate_order="ifog")),
                                "gate_order"),
    "gru_rzn_declared_zrh": (lambda: caption_model(torch_recurrent("gru", gate_order="zrn")),
                             "gate_order"),
    "gru_reset_after_declared_before": (
        lambda: caption_model(torch_recurrent("gru", reset_after=False)), "reset_after"),
    "lstm_recurrent_bias_missing": (
        lambda: caption_model(torch_recurrent("lstm", obj_settings={"recurrent_bias": False})),
        "recurrent_bias_missing"),
    "lstm_time_major_declared_batch_major": (
        lambda: caption_model(torch_recurrent("lstm", obj_settings={"batch_first": False})),
        "time_major"),
    "cs231n_loss_declared_keras_mean_over_steps": (
        lambda: _cs231n_lstm_model(reduction="steps"), "sequence_loss_reduction"),
    "cs231n_loss_declared_keras_mean_over_valid_steps": (
        lambda: _cs231n_lstm_model(reduction="valid_steps"), "sequence_loss_reduction"),
    "lstm_gate_gradient_times_1.01": (
        lambda: caption_model(cs231n_lstm(gate_gradient_scaled(), gate_order="ifog")), None),
    "lstm_hidden_unit_sign_flipped": (
        lambda: caption_model(cs231n_lstm(hidden_unit_flipped(), gate_order="ifog")), None),
}
SEQUENCE_CAUSES = {cause for _, cause in PLANTS.values() if cause}
# The clean sequence models of the examples: (file, factory arguments).
CLEAN = [("cs231n_rnn.py", 'model="rnn"'), ("cs231n_rnn.py", 'model="lstm"'),
         ("torch_style_rnn.py", 'model="lstm"'), ("torch_style_rnn.py", 'model="gru"')]
