"""``tfparity check/diff --model``: the options of the built-in models, and bad input exits 2 with
a message naming what is wrong."""

from __future__ import annotations

import json

import pytest

from reports.cli import main

from own_network_helpers import EXAMPLES, diff_json, plant, spec


@pytest.mark.parametrize("target, message", [
    ("missing.py:build", "no such file 'missing.py'"),
    (f"{EXAMPLES / 'cs231n_style.py'}:nope", "has no function 'nope'"),
    ("no_such_package.module:build", "No module named 'no_such_package'"),
    ("cs231n_style.py", "expected FILE.py:FACTORY"),
])
@pytest.mark.parametrize("command", ["check", "diff"])
def test_bad_model_spec_exits_2(command, target, message, capsys):
    assert main([command, "--model", target]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("body, message", [
    ("def build():\n    raise RuntimeError('no weights file')\n",
     "build() raised RuntimeError: no weights file (at bad_net.py:2 in build"),
    ("def build():\n    return 3\n", "build() returned int; expected a reference_tf.own.Model"),
    ("from reference_tf import own\n\ndef build():\n"
     "    return own.Model([own.ReLU(None)], (4,), conventions=own.Conventions(layout='NCWH2'))\n",
     "expected layout to be an ordering of the letters"),
])
def test_bad_factory_exits_2(body, message, tmp_path, capsys):
    path = tmp_path / "bad_net.py"
    path.write_text(body)
    assert main(["check", "--model", f"{path}:build"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["check", "--input-shape", "1,28,28"], "argument --input-shape: goes with --model"),
    (["diff", "cnn", "--model", "x.py:build"], "expected one built-in model (linear"),
    (["diff"], "or --model FILE.py:FACTORY"),
    (["diff", "--model", "x.py:build", "--weights", "w.npz"], "argument --weights: goes with"),
])
def test_conflicting_options_exit_2(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_input_shape_rebuilds_the_declarations(capsys):
    assert main(["check", "--model", spec("cs231n"), "--input-shape", "1,12,12",
                 "--dtype", "float64"]) == 0
    assert main(["check", "--model", spec("cs231n"), "--input-shape", "1,12,12", "--data",
                 "mnist"]) == 2
    assert "28x28x1" in capsys.readouterr().err
    assert main(["check", "--model", spec("cs231n"), "--input-shape", "28,28"]) == 2
    assert "Layer 'conv1' (Conv2D): expected an input of rank 4 (N, C, H, W)" in (
        capsys.readouterr().err)


def test_diff_model_json_to_stdout_and_plot(tmp_path, capsys):
    plot = tmp_path / "heat.png"
    code = main(["diff", "--model", spec("object"), "--json", "-", "--plot", str(plot),
                 "--data", "mnist", "--batch-size", "4", "--seed", "3"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["passed"] and result["batch_shape"] == [4, 28, 28, 1]
    assert result["model"] == spec("object") and result["data"] == "mnist" and result["seed"] == 3
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    conv1 = result["layers"][0]
    assert conv1["type"] == "Conv2D (Conv.forward)"
    assert [q["label"] for q in conv1["quantities"]] == ["y", "dL/dy", "dL/dW", "dL/db", "dL/dx"]


def test_diff_model_text_in_the_users_layout(tmp_path, capsys):
    assert main(["diff", "--model", spec("cs231n"), "--batch-size", "2", "--no-fd"]) == 0
    out = capsys.readouterr().out
    assert "tfparity diff " + spec("cs231n") in out
    assert "dL/dw       (8, 1, 3, 3)" in out and "(2, 8, 28, 28)" in out  # OIHW, NCHW
    code, result = diff_json(tmp_path, "--model", spec("cs231n"), "--batch-size", "2")
    assert code == 0 and result["first_divergence"] is None


@pytest.mark.parametrize("bug", ["backward_writes_into_dy", "exception_in_backward"])
def test_diff_plot_boxes_a_fault(bug, monkeypatch, tmp_path):
    plant(bug, "cs231n", monkeypatch)
    plot = tmp_path / "heat.png"
    code, result = diff_json(tmp_path, "--model", spec("cs231n"), "--batch-size", "4",
                             "--no-fd", "--plot", str(plot))
    assert code == 1 and result["first_divergence"]["fault"] is not None
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
