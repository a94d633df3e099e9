"""Rounding-decided kinks (``reference_tf.kinks``): ties and zeros that rounding decided
differently pass ``check`` with status KINK and their positions listed; a real bug at a tie or a
zero still fails on the same batch.

The end-to-end cases use the FFT convolution of ``parity_tests/third_party/objects_nchw.py``:
its all-zero windows come out as +-1e-9 instead of exactly 0, so tens of thousands of ReLU
inputs and some max-pool ties are decided by rounding, in both dtypes.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from reference_tf.batches import model_batch
from reference_tf.kinks import pool_flips, relu_flips
from reference_tf.layerdiff import diff
from reference_tf.own.loading import load_model
from reference_tf.parity_check import check
from reference_tf.testing import assert_model_parity
from reports.cli import main

from own_network_helpers import (
    DTYPES,
    library,
    library_spec,
    nchw_objects_pool_every_tie,
    nchw_objects_relu_at_zero,
)


def test_relu_flips_hand_case():
    # 1e-9 against -1e-10: another side of 0 within rounding; -1 vs 2: a real difference;
    # 0 vs 0 and 3 vs 3: the same branch
    reference = np.array([1e-9, 2.0, 0.0, 3.0])
    mine = np.array([-1e-10, -1.0, 0.0, 3.0])
    assert relu_flips(mine, reference, bound=1e-5 * 3.0).tolist() == [True, False, False, False]


def test_pool_flips_hand_case():
    # one 2x2 window: TensorFlow's maximum is 1e-9 at (0, 1), the model's input is all zeros,
    # so its first maximum is (0, 0); a second window with a real difference is no flip
    reference = np.zeros((1, 2, 4, 1))
    mine = np.zeros((1, 2, 4, 1))
    reference[0, 0, 1, 0] = 1e-9
    reference[0, 1, 3, 0], mine[0, 0, 2, 0] = 1.0, 1.0
    [flip] = pool_flips(mine, reference, (2, 2), (2, 2), "valid", bound=1e-5)
    assert (flip.reference, flip.mine) == ((0, 0, 1, 0), (0, 0, 0, 0))
    assert (flip.rows, flip.cols) == (slice(0, 2), slice(0, 2))


@pytest.fixture(scope="module")
def fft_model():
    return load_model(library_spec("objects", "build_fft"))


def _check(model, dtype: str, seed: int = 0):
    model = model.rebuilt(seed=seed, dtype=dtype)
    x, y = model_batch(model, "mnist", 4, seed)
    return check(model, x, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_rounding_decided_kinks_pass_with_status_kink(fft_model, dtype):
    result = _check(fft_model, dtype)
    assert result.passed
    assert [path.status for path in result.paths.values()] == ["KINK", "KINK"]
    kinds = {flip.kind for flip in result.kinks}
    assert kinds == {"relu", "pool"}
    relu = next(flip for flip in result.kinks if flip.kind == "relu")
    assert relu.reference[0] == 0.0 and relu.mine[0] > 0 and relu.dtype == dtype
    assert result.to_dict()["paths"]["trace"]["status"] == "KINK"


def test_check_without_kinks_has_status_pass():
    model = load_model(library_spec("objects"))
    result = _check(model, "float32")
    assert [path.status for path in result.paths.values()] == ["PASS", "PASS"]
    assert result.kinks == []


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_real_tie_bug_among_kinks_still_fails(fft_model, dtype, monkeypatch):
    nchw_objects_pool_every_tie(monkeypatch, library("objects"))
    result = _check(fft_model, dtype)
    assert not result.passed
    assert "FAIL" in [path.status for path in result.paths.values()]


def test_check_real_relu_bug_among_kinks_still_fails(fft_model, monkeypatch):
    nchw_objects_relu_at_zero(monkeypatch, library("objects"))
    assert not _check(fft_model, "float32").passed


def test_cli_check_lists_kinks_and_reports_progress_on_stderr(capsys):
    code = main(["check", "--model", library_spec("objects", "build_fft"), "--dtype", "float32",
                 "--data", "mnist", "--batch-size", "4"])
    out, err = capsys.readouterr()
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["KINK", "KINK"]
    assert "rounding-decided kinks (ties or zeros decided differently by rounding" in lines[0]
    assert any(line.strip().startswith("layer 'relu1': ReLU input x(") for line in lines)
    assert re.search(r"\.\.\. and \d+ more", out)
    assert lines[-1].endswith("2 of them with rounding-decided kinks (status KINK, listed above)")
    assert "float32 trace path, yours: conv1 forward" in err
    assert "float32 trace path, TensorFlow" in err


def test_cli_diff_explains_kinks_instead_of_accumulated_rounding(tmp_path, capsys):
    path = tmp_path / "diff.json"
    code = main(["diff", "--model", library_spec("objects", "build_fft"), "--dtype", "float32",
                 "--data", "mnist", "--batch-size", "4", "--json", str(path), "--quiet"])
    out, err = capsys.readouterr()
    result = json.loads(path.read_text())
    assert code == 0, out
    assert result["status"] == "KINK" and result["passed"]
    assert result["first_divergence"] is None and result["first_propagated_failure"] is not None
    assert {flip["kind"] for flip in result["kinks"]} == {"relu", "pool"}
    assert "Passed with rounding-decided kinks (status KINK)" in out
    assert "rounding accumulated across layers" not in out
    assert "layer 'relu1': ReLU input x(" in out
    assert "your model" not in err  # --quiet


def test_diff_real_tie_bug_among_kinks_is_no_kink(fft_model, monkeypatch):
    nchw_objects_pool_every_tie(monkeypatch, library("objects"))
    model = fft_model.rebuilt(seed=0, dtype="float32")
    x, y = model_batch(model, "mnist", 4, 0)
    result = diff(model, x, y)
    assert not result.passed and result.status == "FAIL" and result.kinks == []


def test_assert_model_parity_passes_rounding_decided_kinks(fft_model):
    model = fft_model.rebuilt(seed=0, dtype="float32")
    x, y = model_batch(model, "strokes", 4, 0)
    comparisons = assert_model_parity(model, x, y)
    assert comparisons["loss"].passes(1e-5)


def test_assert_model_parity_real_tie_bug_among_kinks_fails(fft_model, monkeypatch):
    nchw_objects_pool_every_tie(monkeypatch, library("objects"))
    model = fft_model.rebuilt(seed=0, dtype="float32")
    x, y = model_batch(model, "strokes", 4, 0)
    with pytest.raises(AssertionError, match="first divergence: layer 'pool"):
        assert_model_parity(model, x, y)


def test_cli_diff_reports_progress_on_stderr(capsys):
    code = main(["diff", "--model", library_spec("objects"), "--dtype", "float32",
                 "--batch-size", "2", "--no-fd"])
    out, err = capsys.readouterr()
    assert code == 0, out
    assert "float32 your model: conv1 forward" in err
    assert "float32 isolated, yours on TensorFlow's inputs" in err
