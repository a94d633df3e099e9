"""Real bugs planted in the scratch engine (``parity_tests/planted.py``): ``tfparity diff`` must
name the layer, pass and parameter, ``tfparity check`` must fail; without a bug both are clean.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference_tf.finite_diff import judge
from reports.cli import main

from planted import (
    plant_conv_no_flip,
    plant_dense_bias_wrong_axis,
    plant_flatten_nchw,
    plant_loss_missing_mean,
    plant_pool_split_ties,
    plant_relu_passes_at_zero,
)


def diff_json(tmp_path, *args) -> tuple[int, dict]:
    path = tmp_path / "diff.json"
    code = main(["diff", *args, "--json", str(path)])
    return code, json.loads(path.read_text())


# (planter, model, expected (layer, pass, quantity key), expected finite-difference verdict)
CASES = {
    "conv_no_flip": (plant_conv_no_flip, "cnn", ("conv2", "backward", "input_grad"), "scratch"),
    "pool_split_ties": (plant_pool_split_ties, "cnn", ("pool2", "backward", "input_grad"), "kink"),
    "dense_bias_wrong_axis": (plant_dense_bias_wrong_axis, "mlp1",
                              ("logits", "backward", "grads/bias"), "scratch"),
    "loss_missing_mean": (plant_loss_missing_mean, "mlp1", ("loss", "backward", "input_grad"),
                          "scratch"),
    "relu_passes_at_zero": (plant_relu_passes_at_zero, "cnn",
                            ("conv2_relu", "backward", "input_grad"), "kink"),
    "flatten_nchw": (plant_flatten_nchw, "cnn", ("flatten", "forward", "output"), "forward"),
}


@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_bug_diff_names_layer_pass_and_side(bug, monkeypatch, tmp_path):
    plant, model, (layer, direction, key), verdict = CASES[bug]
    plant(monkeypatch)
    code, result = diff_json(tmp_path, model)
    first = result["first_divergence"]
    assert code == 1 and not result["passed"]
    assert (first["layer"], first["pass"], first["key"]) == (layer, direction, key), first
    assert first["param"] == (key.split("/")[1] if key.startswith("grads/") else None)
    assert result["third_opinion"]["verdict"] == verdict, result["third_opinion"]


@pytest.mark.parametrize("bug", sorted(CASES))
def test_planted_bug_check_fails(bug, monkeypatch, capsys):
    plant, model, _, _ = CASES[bug]
    plant(monkeypatch)
    code = main(["check", "--models", model, "--dtype", "both"])
    lines = capsys.readouterr().out.splitlines()
    # The bugs are planted in the layers' ops, which the layer-by-layer trace path runs.
    trace = [line.split()[:4] for line in lines if line.split()[3:4] == ["trace"]]
    assert code == 1 and trace == [["FAIL", model, "float32", "trace"],
                                   ["FAIL", model, "float64", "trace"]], lines


@pytest.mark.parametrize("reference_factor, verdict", [(3.0, "tensorflow"), (2.0, "agree")])
def test_fd_judge_blames_the_side_that_misses_the_derivative(reference_factor, verdict):
    # f(x) = sum(x**2) per row: the derivative is 2x; "mine" is right, the reference is not
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4) + 0.05
    mine = 2 * x
    opinion = judge(x, lambda: (x ** 2).sum(axis=1), lambda: (x ** 2).sum(axis=1), mine,
                    reference_factor * x + (reference_factor == 2.0) * 1e-5 * x, "input gradient")
    assert opinion.verdict == verdict, opinion.sentence


def test_fd_judge_inconclusive_at_a_relu_kink():
    # f(x) = sum(relu(x)) per row at x = 0 (left derivative 0, right derivative 1)
    x = np.array([[0.0, 1.0], [0.0, -1.0]])
    opinion = judge(x, lambda: np.maximum(x, 0).sum(axis=1), lambda: np.maximum(x, 0).sum(axis=1),
                    np.array([[1.0, 1.0], [0.5, 0.0]]), np.array([[0.0, 1.0], [0.0, 0.0]]),
                    "input gradient")
    assert opinion.verdict == "kink"
    assert (opinion.details["tensorflow_one_sided"] == 2
            and opinion.details["scratch_one_sided"] == 1)
