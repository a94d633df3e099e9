"""Diagnosis through time (``reference_tf.through_time``): TensorFlow's per-step values are the
Keras layer's, a clean scratch layer agrees with them at every step, and planted bugs are named
with their time step and gate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from reference_tf import through_time
from reference_tf.compare import tolerances
from reference_tf.gradients import layer_pass
from reference_tf.through_time import embedding_finding, keras_steps, recurrent_finding
from reference_tf.twin import copy_weights, keras_layer
from scratch.sequence_layers import Embedding

from helpers import DTYPES, RECURRENT_CELLS, assert_close, recurrent_cases
from planted_sequence import (
    FORGOTTEN_STEP,
    plant_embedding_repeated_index_counted_once,
    plant_gru_reset_gate_no_sigmoid_derivative,
    plant_lstm_forget_gate_no_sigmoid_derivative,
    plant_lstm_output_gate_tanh,
    plant_recurrent_kernel_grad_forgets_a_step,
)

CLOSE = {"float32": 1e-4, "float64": 1e-12}


def recurrent_layer(cell, dtype, shape, units, mask=None, seed=0, **settings):
    """A built recurrent layer with a nonzero bias, its input x (N, T, D) and an upstream
    gradient of its output's shape."""
    rng = np.random.default_rng(seed)
    layer = RECURRENT_CELLS[cell](units, **settings).build(shape[1:], rng, dtype)
    layer.params["bias"][...] = rng.uniform(-0.5, 0.5, layer.params["bias"].shape)
    layer.input_mask = mask
    x = rng.standard_normal(shape).astype(dtype)
    out = (shape[0], shape[1], units) if layer.return_sequences else (shape[0], units)
    return layer, x, rng.standard_normal(out).astype(dtype)


def keras_pass(layer, x, dy):
    """The Keras twin's pass of ``layer`` (same weights and mask)."""
    twin = keras_layer(layer, layer.dtype.name)
    twin.build((None, *x.shape[1:]))
    copy_weights(layer.params, {v.name: v for v in twin.trainable_weights})
    return layer_pass(twin, x, dy, mask=layer.input_mask)


def finding_of(layer, x, dy, direction, key="output"):
    """``recurrent_finding`` on the layer's own isolated values against the Keras layer's."""
    reference = keras_pass(layer, x, dy)
    y = layer.forward(x)
    dx = layer.backward(dy)
    arrays = {"output": (y, reference.output), "input_grad": (dx, reference.input_grad),
              **{f"grads/{k}": (layer.grads[k], reference.grads[k]) for k in layer.params}}
    tol = tolerances(layer.dtype.name)
    tolerance = tol.forward if direction == "forward" else tol.gradient
    return recurrent_finding(layer, x, dy, direction, key, arrays, tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", sorted(RECURRENT_CELLS))
@settings(max_examples=5, deadline=None)
@given(case=recurrent_cases(max_steps=5))
def test_keras_steps_match_the_keras_layer(cell, dtype, case):
    shape, units, options, mask = case
    layer, x, dy = recurrent_layer(cell, dtype, shape, units, mask, **options)
    reference = keras_pass(layer, x, dy)
    steps, y = keras_steps(layer, x, dy)
    dx = np.swapaxes(steps.dx[::-1] if layer.go_backwards else steps.dx, 0, 1)
    sums = {f"grads/{k}": term.sum(axis=0) for k, term in steps.terms.items()}
    assert_close({"y": y, "dx": dx, **sums},
                 {"y": reference.output, "dx": reference.input_grad,
                  **{f"grads/{k}": v for k, v in reference.grads.items()}}, CLOSE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", sorted(RECURRENT_CELLS))
@settings(max_examples=3, deadline=None)
@given(case=recurrent_cases(max_steps=5))
def test_through_time_clean_layer_names_no_step(cell, dtype, case):
    shape, units, options, mask = case
    layer, x, dy = recurrent_layer(cell, dtype, shape, units, mask, **options)
    for direction in ("forward", "backward"):
        finding = finding_of(layer, x, dy, direction)
        assert finding.time_step is None and "every step" in finding.sentence, finding.sentence


# planter -> (cell, the gate named); each bug is in every step's gate gradient, so the gradient
# parts first at the last processed step: input step T - 1, or 0 with go_backwards.
GATE_BUGS = {
    "lstm_forget": (plant_lstm_forget_gate_no_sigmoid_derivative, "lstm", "f"),
    "gru_reset": (plant_gru_reset_gate_no_sigmoid_derivative, "gru", "r"),
    "gru_reset_before": (plant_gru_reset_gate_no_sigmoid_derivative, "gru_reset_before", "r"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("bug", sorted(GATE_BUGS))
def test_through_time_gate_bug_named_with_last_step_and_gate(bug, go_backwards, dtype,
                                                            monkeypatch):
    plant, cell, gate_name = GATE_BUGS[bug]
    steps = 5
    layer, x, dy = recurrent_layer(cell, dtype, (3, steps, 2), 4, go_backwards=go_backwards)
    plant(monkeypatch)
    finding = finding_of(layer, x, dy, "backward", "grads/recurrent_kernel")
    assert (finding.time_step, finding.quantity, finding.gate) == (
        0 if go_backwards else steps - 1, "dL/d(pre-activation)", gate_name), finding.sentence
    assert finding.processing_step == steps - 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm"])  # their backward steps never read h
def test_through_time_recurrent_kernel_step_bug_named_with_its_step(cell, go_backwards, dtype,
                                                                   monkeypatch):
    steps = FORGOTTEN_STEP + 3
    layer, x, dy = recurrent_layer(cell, dtype, (3, steps, 2), 4, go_backwards=go_backwards)
    plant_recurrent_kernel_grad_forgets_a_step(monkeypatch)
    finding = finding_of(layer, x, dy, "backward", "grads/recurrent_kernel")
    expected = steps - 1 - FORGOTTEN_STEP if go_backwards else FORGOTTEN_STEP
    assert (finding.time_step, finding.processing_step, finding.gate) == (
        expected, FORGOTTEN_STEP, None), finding.sentence
    assert "missing from the sum" in finding.sentence


@pytest.mark.parametrize("dtype", DTYPES)
def test_through_time_forward_gate_bug_named_at_first_step(dtype, monkeypatch):
    # the output gate's activation is wrong from the first step on; its pre-activation is not
    layer, x, dy = recurrent_layer("lstm", dtype, (2, 4, 3), 3, return_sequences=True)
    plant_lstm_output_gate_tanh(monkeypatch)
    finding = finding_of(layer, x, dy, "forward")
    assert (finding.time_step, finding.quantity, finding.gate) == (0, "activation", "o"), \
        finding.sentence


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("probe_rows", [1, through_time.PROBE_ROWS])  # 1: one example a group
def test_through_time_masked_lstm_gate_bug_named_at_last_unmasked_step(probe_rows, dtype,
                                                                       monkeypatch):
    # the last two steps are padding everywhere: the gradient enters the gates at step 3
    mask = np.ones((3, 6), dtype=bool)
    mask[:, 4:] = False
    layer, x, dy = recurrent_layer("lstm", dtype, (3, 6, 2), 4, mask)
    monkeypatch.setattr(through_time, "PROBE_ROWS", probe_rows)
    plant_lstm_forget_gate_no_sigmoid_derivative(monkeypatch)
    finding = finding_of(layer, x, dy, "backward", "grads/kernel")
    assert (finding.time_step, finding.gate) == (3, "f"), finding.sentence


def test_scratch_steps_probed_in_groups_match_one_probe(monkeypatch):
    mask = np.ones((3, 4), dtype=bool)
    mask[1, 2:] = False
    layer, x, dy = recurrent_layer("gru", "float64", (3, 4, 2), 3, mask, go_backwards=True)
    whole = through_time.scratch_steps(layer, x, dy)
    monkeypatch.setattr(through_time, "PROBE_ROWS", 1)
    grouped = through_time.scratch_steps(layer, x, dy)
    assert_close({"dh": grouped.dstates, **grouped.dpre}, {"dh": whole.dstates, **whole.dpre},
                 1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_through_time_embedding_repeated_index_named_at_its_step(dtype, monkeypatch):
    # token 1 is looked up twice, both at step 2; every other token once
    x = np.array([[5, 6, 1, 7, 8], [9, 3, 1, 2, 4]])
    layer = Embedding(10, 4, name="embedding").build((5,), np.random.default_rng(0), dtype)
    dy = np.random.default_rng(1).standard_normal((2, 5, 4)).astype(dtype)
    reference = keras_pass(layer, x, dy).grads["embeddings"]
    plant_embedding_repeated_index_counted_once(monkeypatch)
    layer.forward(x)
    layer.backward(dy)
    finding = embedding_finding(layer, x, dy, layer.grads["embeddings"], reference,
                                tolerances(dtype).gradient)
    assert finding.time_step == 2 and "row 1 " in finding.sentence, finding.sentence


def test_through_time_lstm_finding_is_json_ready(monkeypatch):
    layer, x, dy = recurrent_layer("lstm", "float64", (2, 3, 2), 2)
    plant_lstm_forget_gate_no_sigmoid_derivative(monkeypatch)
    found = finding_of(layer, x, dy, "backward", "grads/kernel").to_dict()
    assert (found["time_step"], found["gate"], found["steps"]) == (2, "f", 3)
    assert len(found["profile"]["dL/d(pre-activation) f"]) == 3
