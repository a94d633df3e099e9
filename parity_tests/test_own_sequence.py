"""A user's sequence code declared with ``reference_tf.own``: the CS231n captioning example
passes ``check`` for both models in both dtypes, every planted sequence convention is named by
``diff``'s ``first_divergence.cause.id`` in both dtypes, bugs that are not conventions name
none, and the declarations' conventions convert both ways."""

from __future__ import annotations

import numpy as np
import pytest

from reference_tf import own
from reference_tf.batches import model_batch
from reference_tf.causes import cases as cases_module
from reference_tf.layerdiff import diff
from reference_tf.own.conventions import (
    RecurrentConventions,
    recurrent_params_from_user,
    recurrent_params_to_user,
)
from reference_tf.own.loading import load_model
from reference_tf.parity_check import check
from reports.cli import main

from helpers import DTYPES
from own_network_helpers import EXAMPLES, diff_json, example
from own_sequence_helpers import (
    CAPTIONS,
    CLEAN,
    PLANTS,
    RNN_LAYERS,
    caption_model,
    first_divergence,
    torch_recurrent,
)


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_caption_example_check_passes_both_dtypes(model, capsys):
    code = main(["check", "--model", f'{EXAMPLES / "cs231n_rnn.py"}:build(model="{model}")'])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("PASS") == 4, out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("plant", PLANTS)
def test_planted_sequence_convention_named_by_diff(plant, dtype):
    make, cause = PLANTS[plant]
    first = first_divergence(make(), dtype)
    assert first, f"{plant}: no divergence"
    assert (first["cause"] or {}).get("id") == cause, first["cause"]


def test_gate_order_says_which_permutation():
    first = first_divergence(PLANTS["lstm_ifog_declared_ifco"][0](), "float64")
    assert (first["layer"], first["pass"], first["key"]) == ("lstm", "forward", "output")
    assert first["cause"]["detail"] == ("the code takes its gate blocks as i, f, o, g where the "
                                        "declaration says i, f, g, o")
    assert first["cause"]["residual"] < 1e-12


def test_diff_json_names_the_loss_divisor(tmp_path, monkeypatch):
    # CS231n's temporal_softmax_loss (sum / N) declared as Keras's sample_weight mean (sum / NT);
    # the command line imports the very module patched here
    monkeypatch.setattr(CAPTIONS, "build", lambda model="rnn": caption_model(
        own.SimpleRNN(own.functions(RNN_LAYERS.rnn_forward, RNN_LAYERS.rnn_backward), 6),
        reduction="steps"))
    code, result = diff_json(tmp_path, "--model", f"{EXAMPLES / 'cs231n_rnn.py'}:build",
                             "--dtype", "float32", "--no-fd", "--batch-size", "4")
    first = result["first_divergence"]
    assert code == 1 and first["layer"] == "loss" and first["key"] == "output"
    assert first["cause"]["id"] == "sequence_loss_reduction"
    assert "N * T steps (Keras with sample_weight=mask), 20" in first["cause"]["detail"]


@pytest.mark.parametrize("file, arguments", CLEAN)
def test_clean_sequence_models_name_no_cause(file, arguments, monkeypatch):
    # A few seeds here, alternating the dtype; examples/measurements/cause_sweep.py runs 50
    # seeds of each in both dtypes (docs/causes.md).
    def never(case):
        raise AssertionError(f"matcher called on a clean model: {case.name} {case.key}")

    monkeypatch.setattr(cases_module, "find_cause", never)
    model = load_model(f"{EXAMPLES / file}:build({arguments})")
    for seed in range(4):
        seeded = model.rebuilt(seed=seed, dtype=DTYPES[seed % 2])
        x, y = model_batch(seeded, "strokes", 3, seed)
        assert diff(seeded, x, y).passed, (file, arguments, seed)


@pytest.mark.parametrize("cell, order, split", [("lstm", "ifog", False), ("lstm", "ifgo", False),
                                                ("gru", "rzn", True), ("gru", "rzn", False),
                                                ("simple_rnn", None, False)])
@pytest.mark.parametrize("biases, layout", [(1, "IO"), (2, "OI")])
def test_recurrent_params_convert_both_ways(cell, order, split, biases, layout):
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
    rng = np.random.default_rng(0)
    keras = {"kernel": rng.standard_normal((3, 2 * gates)),
             "recurrent_kernel": rng.standard_normal((2, 2 * gates)),
             "bias": rng.standard_normal((2, 2 * gates) if split else (2 * gates,))}
    conventions = RecurrentConventions(gate_order=order, biases=biases, weight_layout=layout)
    user = recurrent_params_to_user(cell, keras, conventions, split)
    back = recurrent_params_from_user(cell, user, conventions, split)
    assert set(user) == set(conventions.names.values())
    assert user["Wx"].shape == ((2 * gates, 3) if layout == "OI" else (3, 2 * gates))
    np.testing.assert_array_equal(back["kernel"], keras["kernel"])
    np.testing.assert_array_equal(back["recurrent_kernel"], keras["recurrent_kernel"])
    # two unsplit biases each hold the whole bias (their gradients), and add up in the twin
    expected = 2 * keras["bias"] if biases == 2 and not split else keras["bias"]
    np.testing.assert_array_equal(back["bias"], expected)


def test_lstm_gate_order_moves_cs231n_blocks():
    # Keras's blocks i, f, c, o as 1, 2, 3, 4: CS231n's i, f, o, g stores them as 1, 2, 4, 3
    keras = {"kernel": np.repeat([[1.0, 2.0, 3.0, 4.0]], 2, axis=0),
             "recurrent_kernel": np.array([[1.0, 2.0, 3.0, 4.0]]), "bias": np.arange(1.0, 5.0)}
    user = recurrent_params_to_user("lstm", keras, RecurrentConventions(gate_order="ifog"), False)
    np.testing.assert_array_equal(user["b"], [1.0, 2.0, 4.0, 3.0])


@pytest.mark.parametrize("order, message", [("ifgx", "gate_order"), ("ifo", "gate_order")])
def test_bad_gate_order_names_the_argument(order, message):
    with pytest.raises(ValueError, match=f"expected {message} to be an ordering of the letters "
                                         "I/F/C/O"):
        own.LSTM(None, 4, gate_order=order)


def test_sequence_loss_refuses_unknown_reduction():
    with pytest.raises(ValueError, match="expected reduction in .*received reduction='mean'"):
        own.SequenceLoss(lambda x, y, m: (0.0, x), reduction="mean")


def _last_step(forward, backward):
    """A CS231n recurrent pair that returns the last hidden state (N, H) only."""
    def last_forward(x, h0, Wx, Wh, b):
        h, cache = forward(x, h0, Wx, Wh, b)
        return h[:, -1], (cache, h.shape)

    def last_backward(dh, cache):
        inner, shape = cache
        full = np.zeros(shape, dtype=dh.dtype)
        full[:, -1] = dh
        return backward(full, inner)

    return own.functions(last_forward, last_backward)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float_sequence_classifier_passes_check(dtype):
    # per-example sequences (T, D) = (5, 4) of stroke rows -> the last state -> 10 scores
    layers = example("cs231n")
    rnn = own.SimpleRNN(_last_step(RNN_LAYERS.rnn_forward, RNN_LAYERS.rnn_backward), 6,
                        return_sequences=False)
    model = own.Model([rnn, own.Dense(own.functions(layers.affine_forward,
                                                     layers.affine_backward), 10)],
                      (5, 4), loss=own.Loss(layers.softmax_loss), dtype=dtype,
                      conventions=own.Conventions(names={"kernel": "w", "bias": "b"}))
    x, y = model_batch(model, "strokes", 4, seed=1)
    assert x.shape == (4, 5, 4) and x.std() > 0
    result = check(model, x, y)
    assert result.passed, result.to_dict()


def test_time_major_code_declared_time_major_passes():
    # PyTorch's batch_first=False: the code takes (T, N, D); declared so, it equals Keras's LSTM
    recurrent = torch_recurrent("lstm", obj_settings={"batch_first": False}, time_major=True)
    assert first_divergence(caption_model(recurrent), "float64") == {}


def test_backward_without_dh0_is_a_fault_naming_every_result():
    def rnn_backward_without_dh0(dh, cache):
        dx, _, dWx, dWh, db = RNN_LAYERS.rnn_backward(dh, cache)
        return dx, dWx, dWh, db

    recurrent = own.SimpleRNN(own.functions(RNN_LAYERS.rnn_forward, rnn_backward_without_dh0), 6,
                              name="rnn")
    first = first_divergence(caption_model(recurrent), "float64")
    assert (first["layer"], first["pass"]) == ("rnn", "backward")
    assert ("returned a tuple of 4, expected (dx, dh0, dWx, dWh, db)"
            in first["fault"]["sentence"]), first["fault"]
