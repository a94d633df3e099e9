"""Weight files (``reports.files.weights``) and ``tfparity train --save`` / ``diff --weights``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reference_tf.twin import copy_weights, twin
from reports.cli import main
from reports.files.weights import load_weights, read_weights, save_weights
from scratch.models import build


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_round_trip_exact_and_usable_by_keras(dtype, tmp_path):
    model = build("cnn", seed=3, dtype=dtype)
    path = save_weights(tmp_path / "w", model.params, "cnn", epochs=2)
    assert path.name == "w.npz" and [p.name for p in tmp_path.iterdir()] == ["w.npz"]
    loaded = load_weights(path, build("cnn", seed=4, dtype=dtype).params, model="cnn")
    assert loaded.meta == {"format": 1, "model": "cnn", "dtype": dtype, "epochs": 2}
    assert list(loaded) == list(model.params)
    for key, value in model.params.items():
        assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value), key
    keras_model = twin(build("cnn", seed=4, dtype=dtype))
    copy_weights(dict(loaded), keras_model)
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype(dtype)
    np.testing.assert_allclose(keras_model(x).numpy(), model.forward(x), rtol=1e-4, atol=1e-6)


def _file(tmp_path, params, model="mlp1"):
    return save_weights(tmp_path / "w.npz", params, model)


@pytest.mark.parametrize("case, message", [
    ("missing", "missing ['logits/bias']"),
    ("extra", "unexpected ['extra/bias']"),
    ("shape", "'hidden1/bias' has shape (31,), the model expects (32,)"),
    ("dtype", "'hidden1/kernel' is float32, the model is float64"),
    ("model", "holds model 'mlp2', expected 'mlp1'"),
])
def test_weights_load_errors_name_the_key(case, message, tmp_path):
    params = dict(build("mlp1", dtype="float64").params)
    model = "mlp1"
    if case == "missing":
        del params["logits/bias"]
    elif case == "extra":
        params["extra/bias"] = np.zeros(3)
    elif case == "shape":
        params["hidden1/bias"] = np.zeros(31)
    elif case == "dtype":
        params = {k: v.astype(np.float32) for k, v in params.items()}
    else:
        model = "mlp2"
    path = _file(tmp_path, params, model)
    with pytest.raises(ValueError) as error:
        load_weights(path, build("mlp1", dtype="float64").params, model="mlp1")
    assert message in str(error.value) and "w.npz" in str(error.value)


def test_weights_explicit_cast_and_foreign_files(tmp_path):
    params = build("linear", dtype="float32").params
    path = _file(tmp_path, params, "linear")
    cast = load_weights(path, build("linear", dtype="float64").params, cast=True)
    assert all(v.dtype == np.float64 and np.array_equal(v, params[k]) for k, v in cast.items())
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, **params)
    with pytest.raises(ValueError, match="no '__meta__' entry"):
        read_weights(foreign)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"expected a .npz archive \(a zip file"):
        read_weights(tmp_path / "text.npz")
    with pytest.raises(ValueError, match="float32 or all float64"):
        save_weights(tmp_path / "mixed.npz", {"a": np.zeros(2), "b": np.zeros(2, np.float32)}, "x")


def test_train_save_then_diff_the_saved_weights(tmp_path, capsys):
    saved = {}
    for impl in ["numpy", "tensorflow"]:
        path = tmp_path / f"{impl}.npz"
        code = main(["train", "mlp1", "--data", "templates", "--train-size", "600", "--impl", impl,
                     "--save", str(path)])
        assert code == 0 and f"weights: {path}" in capsys.readouterr().out
        saved[impl] = read_weights(path)
        assert saved[impl].meta["implementation"] == impl
        assert saved[impl].meta["samples_seen"] == 600
    initial = build("mlp1").params
    for key, value in saved["numpy"].items():
        assert not np.array_equal(value, initial[key]), f"{key} did not train"
        np.testing.assert_allclose(saved["tensorflow"][key], value, rtol=1e-3, atol=1e-5,
                                   err_msg=key)
    report = tmp_path / "diff.json"
    assert main(["diff", "mlp1", "--weights", str(tmp_path / "numpy.npz"), "--json",
                 str(report)]) == 0
    assert json.loads(report.read_text())["dtype"] == "float32"
    resumed = tmp_path / "resumed.npz"
    assert main(["train", "mlp1", "--data", "templates", "--train-size", "100", "--weights",
                 str(tmp_path / "numpy.npz"), "--save", str(resumed)]) == 0
    assert main(["train", "cnn", "--data", "templates", "--weights", str(resumed)]) == 2
    assert "holds model 'mlp1', expected 'cnn'" in capsys.readouterr().err
