"""Bugs a user could write into the two example libraries: ``tfparity check --model`` fails and
``tfparity diff --model`` names the layer, the pass and the quantity; the clean examples pass.
"""

from __future__ import annotations

import pytest

from reports.cli import main

from own_network_helpers import BUGS, DTYPES, STYLES, diff_json, plant, spec


@pytest.mark.parametrize("style", STYLES)
def test_clean_example_check_passes_both_dtypes(style, capsys):
    code = main(["check", "--model", spec(style)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, "\n".join(lines)
    assert [line.split()[2] for line in lines[:-1]] == [d for d in DTYPES for _ in range(2)]


@pytest.mark.parametrize("bug", BUGS)
@pytest.mark.parametrize("style", STYLES)
def test_planted_bug_check_fails(style, bug, monkeypatch, capsys):
    expected = plant(bug, style, monkeypatch)
    code = main(["check", "--model", spec(style), "--dtype", expected.dtype, "--batch-size", "8"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out, out
    if expected.fault is not None:
        assert expected.fault in out, out


@pytest.mark.parametrize("bug", BUGS)
@pytest.mark.parametrize("style", STYLES)
def test_planted_bug_diff_names_layer_pass_and_quantity(style, bug, monkeypatch, tmp_path):
    expected = plant(bug, style, monkeypatch)
    code, result = diff_json(tmp_path, "--model", spec(style), "--dtype", expected.dtype,
                             "--batch-size", "8", "--no-fd")
    first = result["first_divergence"]
    assert code == 1 and not result["passed"]
    assert (first["layer"], first["pass"], first["key"]) == expected.expected[style], first
    if expected.fault is None:
        assert first["fault"] is None and first["isolated"]["rel_l2"] > 1e-3, first
    else:
        assert expected.fault in first["fault"]["sentence"], first["fault"]


@pytest.mark.parametrize("style, function", [("cs231n", "relu_backward"),
                                             ("object", "ReLU.backward")])
def test_write_into_dy_is_named_by_layer_and_function(style, function, monkeypatch, capsys):
    plant("backward_writes_into_dy", style, monkeypatch)
    assert main(["diff", "--model", spec(style), "--batch-size", "4", "--no-fd"]) == 1
    out = capsys.readouterr().out
    assert ("First divergence: layer 'relu3' (ReLU (relu_forward)), backward pass, dL/dy: "
            if style == "cs231n" else "First divergence: layer 'relu3'") in out
    assert f"layer 'relu3' ({function}) modified the upstream gradient it received" in out


@pytest.mark.parametrize("style", STYLES)
def test_exception_reports_last_frame_and_compares_everything_before(style, monkeypatch,
                                                                     tmp_path):
    plant("exception_in_backward", style, monkeypatch)
    code, result = diff_json(tmp_path, "--model", spec(style), "--batch-size", "4", "--no-fd")
    fault = result["first_divergence"]["fault"]
    assert code == 1 and fault["fatal"] and "own_network_helpers.py" in fault["frame"]
    assert "dout.reshape(x.shape)" in fault["frame"] or "dy.reshape(self.shape)" in fault["frame"]
    quantities = {(layer["name"], q["label"]): q for layer in result["layers"]
                  for q in layer["quantities"]}
    # the forward pass and the backward pass down to pool2 were compared and agree
    assert all(q["propagated"] is not None and not q["propagated_fails"]
               for (name, label), q in quantities.items()
               if q["pass"] == "forward" or name in ("loss", "logits", "scores", "relu3", "fc1"))
    assert quantities["pool2", "dL/dy"]["propagated"] is not None
    assert quantities["conv2", "dL/dx"]["propagated"] is None  # never computed
