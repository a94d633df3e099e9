"""Conventions of recurrent layers (gate order, reset mode, recurrent bias, time-major data) and
of the masked sequence loss (its divisor).

A user's recurrent layer is stated in Keras's layouts (``reference_tf.own`` undoes its declared
conventions), so a convention here is a departure from what the layer declares: e.g. code that
reads its gate blocks as i, f, g, o under a declared i, f, o, g. The recurrent forward pass is
recomputed in plain float64 NumPy (``hidden_states``), from a zero state as Keras starts.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from reference_tf.causes.registry import Case, Variant, convention
from reference_tf.own.conventions import KERAS_GATES, gate_blocks

RECURRENT = ("simple_rnn", "lstm", "gru")
SHOWN = {"c": "g"}  # the LSTM candidate is shown as CS231n's and PyTorch's g


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def hidden_states(cell: str, x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray,
                  bias, reset_after: bool = True) -> np.ndarray:
    """Keras's SimpleRNN, LSTM or GRU (gate orders ifco, zrh) over x (N, T, D) from a zero
    state, float64: every step's hidden state (N, T, U). ``bias`` (G*U,), or (2, G*U) for a GRU
    with ``reset_after`` (input row, recurrent row)."""
    x, kernel, recurrent = (np.asarray(a, np.float64) for a in (x, kernel, recurrent))
    bias = np.asarray(bias, np.float64)
    n, steps, _ = x.shape
    units = recurrent.shape[0]
    h, c, out = np.zeros((n, units)), np.zeros((n, units)), np.zeros((n, steps, units))
    b_in, b_rec = (bias[0], bias[1]) if bias.ndim == 2 else (bias, 0.0)
    for t in range(steps):
        a = x[:, t] @ kernel + b_in
        if cell == "simple_rnn":
            h = np.tanh(a + h @ recurrent)
        elif cell == "lstm":
            i, f, g, o = np.split(a + h @ recurrent, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            (xz, xr, xh), rec = np.split(a, 3, axis=1), recurrent
            inner = h @ rec[:, :2 * units] + (b_rec[:2 * units] if bias.ndim == 2 else 0.0)
            z, r = _sigmoid(xz + inner[:, :units]), _sigmoid(xr + inner[:, units:])
            if reset_after:
                hh = h @ rec[:, 2 * units:] + (b_rec[2 * units:] if bias.ndim == 2 else 0.0)
                candidate = np.tanh(xh + r * hh)
            else:
                candidate = np.tanh(xh + (r * h) @ rec[:, 2 * units:])
            h = z * h + (1 - z) * candidate
        out[:, t] = h
    return out


def _output(case: Case, x=None, **changes) -> np.ndarray:
    """The layer's output recomputed on ``x`` (default TensorFlow's input) with some Keras
    parameters replaced, shaped as the layer returns it."""
    layer, params = case.layer, {**case.params, **changes}
    states = hidden_states(layer.cell, case.x if x is None else x, params["kernel"],
                           params["recurrent_kernel"], params.get("bias", 0.0),
                           getattr(layer, "reset_after", True))
    return states if layer.return_sequences else states[:, -1]


def _shown(order: str) -> str:
    return ", ".join(SHOWN.get(g, g) for g in order)


@convention("gate_order", kinds=("lstm", "gru"), keys=("output",),
            variant="the code reads its gate blocks in another order than the declared one "
                    "(e.g. CS231n's i, f, o, g or PyTorch's i, f, g, o against Keras's i, f, c, "
                    "o; PyTorch's GRU r, z, n against Keras's z, r, h)",
            detection="the output recomputed with the gate blocks of the kernels and the bias "
                      "read in each other order")
def gate_order(case: Case):
    cell = case.layer.cell
    keras, declared = KERAS_GATES[cell], case.layer.recurrent.gates(cell)
    for used in permutations(declared):
        used = "".join(used)
        if used == declared:
            continue
        # the user's block j, declared as gate declared[j], is used as gate used[j]
        read = "".join(declared[used.index(g)] for g in keras)
        moved = {k: gate_blocks(np.asarray(case.params[k]), keras, read)
                 for k in ("kernel", "recurrent_kernel", "bias") if k in case.params}
        yield Variant(f"the code takes its gate blocks as {_shown(used)} where the declaration "
                      f"says {_shown(declared)}", _output(case, **moved))


@convention("reset_after", kinds=("gru",), keys=("output",),
            variant="a GRU that applies the reset gate before the recurrent product "
                    "(reset_after=False) where the declaration says after (True), or the other "
                    "way round",
            detection="the output recomputed in the other reset mode, the biases added or kept "
                      "apart")
def reset_after(case: Case):
    layer, bias = case.layer, np.asarray(case.params.get("bias", 0.0))
    layer_mode = layer.reset_after
    if layer_mode:
        options = [("the input and recurrent biases added", bias[0] + bias[1]),
                   ("the input bias only", bias[0])] if bias.ndim == 2 else [("", bias)]
    else:
        parts = layer.keras_bias_parts(layer.params)
        options = [("the biases as the input and recurrent rows", np.stack(parts))]
    for how, used in options:
        layer.reset_after = not layer_mode
        try:
            expected = _output(case, bias=used)
        finally:
            layer.reset_after = layer_mode
        yield Variant(f"the GRU applies its reset gate {'before' if layer_mode else 'after'} "
                      f"the recurrent product (reset_after={not layer_mode}, {how}) where the "
                      f"declaration says reset_after={layer_mode}", expected)


@convention("recurrent_bias_missing", kinds=RECURRENT, keys=("output",),
            variant="the recurrent bias (PyTorch's b_hh, Keras's GRU bias row 1) left out",
            detection="the output recomputed without the declared recurrent bias")
def recurrent_bias_missing(case: Case):
    layer, bias = case.layer, np.asarray(case.params.get("bias", 0.0))
    if bias.ndim == 2:
        yield Variant("the code leaves out the recurrent bias (row 1 of the (2, 3U) bias)",
                      _output(case, bias=np.stack([bias[0], np.zeros_like(bias[1])])))
    elif layer.recurrent.biases == 2:
        name = layer.recurrent.names["recurrent_bias"]
        yield Variant(f"the code leaves out its recurrent bias '{name}'",
                      _output(case, bias=layer.keras_bias_parts(layer.params)[0]))


@convention("time_major", kinds=RECURRENT, keys=("output",),
            variant="sequences read as time-major (T, N, D) where the declaration says "
                    "batch-major (N, T, D), or the other way round",
            detection="the output recomputed on the input with its first two axes swapped, "
                      "and swapped back")
def time_major(case: Case):
    if not case.layer.return_sequences or np.ndim(case.x) != 3:
        return
    declared = case.layer.recurrent.time_major
    swapped = _output(case, x=np.swapaxes(case.x, 0, 1))
    yield Variant(f"the code takes its sequences as {'batch' if declared else 'time'}-major "
                  f"where the declaration says {'time' if declared else 'batch'}-major "
                  f"(time_major={declared})", np.swapaxes(swapped, 0, 1))


DIVISORS = {"batch": "the N sequences (CS231n's temporal_softmax_loss)",
            "steps": "the N * T steps (Keras with sample_weight=mask)",
            "valid_steps": "the unmasked steps (Keras with a propagated mask)"}


@convention("sequence_loss_reduction", kinds=("sequence_loss",), keys=("output", "input_grad"),
            variant="the masked sequence loss divided by another count than the declared one: "
                    "N (CS231n), N * T (Keras's sample_weight=mask) or the unmasked steps "
                    "(Keras's propagated mask): off by exactly T or by the valid fraction",
            detection="TensorFlow's value times the declared divisor over each other one")
def sequence_loss_reduction(case: Case):
    n, steps = np.shape(case.labels)
    declared = case.settings["reduction"]
    valid = max(int(np.sum(case.labels != case.settings["pad"])), 1)
    count = {"batch": n, "steps": n * steps, "valid_steps": valid}
    reference = np.asarray(case.reference, np.float64)
    what = "loss" if case.key == "output" else "loss gradient dL/dlogits"
    for other, divisor in count.items():
        if other != declared:
            yield Variant(f"the {what} is divided by {DIVISORS[other]}, {divisor}, instead of "
                          f"{DIVISORS[declared]}, {count[declared]}",
                          reference * count[declared] / divisor)
