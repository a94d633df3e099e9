"""``tfparity check`` and ``tfparity diff`` without planted bugs, and the diff's attributions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import DTYPES

from reports.cli import main
from scratch.models import MODELS, build
from scratch.ops import conv as conv_ops



def test_check_all_models_both_dtypes_pass(capsys):
    code = main(["check"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0, "\n".join(lines)
    assert sorted(line.split()[1:4] for line in lines[:-1]) == sorted(
        [m, d, path] for m in MODELS for d in DTYPES for path in ("trace", "training"))
    assert all(line.startswith("PASS") for line in lines[:-1])
    assert lines[-1].startswith(f"all {len(MODELS) * len(DTYPES) * 2} checks passed")


def test_check_fails_on_the_training_path_alone(monkeypatch, capsys):
    # A bug only in the fused block that training steps run: the trace path stays clean.
    from scratch import ops

    real = ops.conv_relu_pool_backward
    monkeypatch.setattr(ops, "conv_relu_pool_backward",
                        lambda *a, **k: tuple(2 * g if g is not None else g for g in real(*a, **k)))
    assert main(["check", "--models", "cnn", "--dtype", "float64"]) == 1
    lines = capsys.readouterr().out.splitlines()
    verdicts = {line.split()[3]: line.split()[0] for line in lines if line.split()[1:2] == ["cnn"]}
    assert verdicts == {"trace": "PASS", "training": "FAIL"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_diff_clean_model_has_no_divergence(model, dtype, tmp_path):
    path = tmp_path / "diff.json"
    code = main(["diff", model, "--dtype", dtype, "--json", str(path)])
    result = json.loads(path.read_text())
    failing = [(layer["name"], q["label"]) for layer in result["layers"]
               for q in layer["quantities"] if q["propagated_fails"] or q["isolated_fails"]]
    assert code == 0 and result["passed"] and not failing, failing
    assert result["first_divergence"] is None and result["third_opinion"] is None
    names = [layer.name for layer in build(model).layers] + ["loss"]
    assert [layer["name"] for layer in result["layers"]] == names


def test_diff_json_to_stdout_and_plot(tmp_path, capsys):
    plot = tmp_path / "heat.png"
    code = main(["diff", "linear", "--json", "-", "--plot", str(plot)])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["model"] == "linear" and result["batch_shape"] == [16, 28, 28, 1]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logits = next(layer for layer in result["layers"] if layer["name"] == "logits")
    assert [q["label"] for q in logits["quantities"]] == ["y", "dL/dy", "dL/dkernel", "dL/dbias",
                                                           "dL/dx"]


def test_diff_isolated_separates_own_error_from_inherited(monkeypatch, tmp_path):
    real = conv_ops.conv2d_input_grad
    monkeypatch.setattr(conv_ops, "conv2d_input_grad", lambda *a, **k: 2 * real(*a, **k))
    path = tmp_path / "diff.json"
    assert main(["diff", "cnn", "--no-fd", "--json", str(path)]) == 1
    result = json.loads(path.read_text())
    quantities = {(layer["name"], q["label"]): q for layer in result["layers"]
                  for q in layer["quantities"]}
    own = quantities["conv2", "dL/dx"]
    assert own["isolated_fails"] and own["isolated"]["rel_l2"] == pytest.approx(1.0)
    for inherited in [("pool1", "dL/dx"), ("conv1_relu", "dL/dy"), ("conv1", "dL/dkernel")]:
        q = quantities[inherited]
        assert q["propagated_fails"] and not q["isolated_fails"], inherited
    for untouched in [("conv2", "dL/dkernel"), ("conv2", "y"), ("logits", "dL/dx")]:
        assert not quantities[untouched]["propagated_fails"], untouched
    assert result["first_divergence"]["layer"] == "conv2"
    assert result["third_opinion"] is None


def test_diff_amplification_is_the_ratio_of_propagated_errors(tmp_path):
    path = tmp_path / "diff.json"
    main(["diff", "mlp2", "--dtype", "float32", "--json", str(path)])
    layers = json.loads(path.read_text())["layers"]
    ys = [next(q for q in layer["quantities"] if q["pass"] == "forward") for layer in layers]
    assert ys[0]["amplification"] is None  # the input is exact on both sides
    for previous, current in zip(ys, ys[1:]):
        num, den = current["propagated"]["rel_l2"], previous["propagated"]["rel_l2"]
        assert current["amplification"] == (None if den == 0 else pytest.approx(num / den))
    assert any(y["amplification"] for y in ys)


def test_diff_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["diff", "cnn", "--batch-size", "0"]) == 2
    assert "argument --batch-size" in capsys.readouterr().err
    assert main(["diff", "cnn", "--weights", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_check_fails_on_a_scaled_kernel_gradient(monkeypatch, capsys):
    from scratch import ops

    real = ops.conv2d_backward

    def backward(dy, cache, *args, **kwargs):
        dx, dkernel, dbias = real(dy, cache, *args, **kwargs)
        return dx, dkernel * np.float32(1.001).astype(dkernel.dtype), dbias

    monkeypatch.setattr(ops, "conv2d_backward", backward)
    assert main(["check", "--models", "cnn", "linear", "--dtype", "float32"]) == 1
    lines = capsys.readouterr().out.splitlines()  # in model order, whatever the order asked
    assert all(line.startswith("PASS  linear") for line in lines[0:2])
    # The layer-by-layer trace runs conv2d_backward; the training path runs the fused blocks.
    assert lines[2].startswith("FAIL  cnn") and " trace " in lines[2] and "kernel" in lines[2]
    assert lines[3].startswith("PASS  cnn") and " training " in lines[3]
