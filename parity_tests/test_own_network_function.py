"""A whole model as one user function, ``loss, grads = f(params, x, y)`` (CS231n's
``ThreeLayerConvNet.loss``): checked end to end and per parameter, from Python and the command
line."""

from __future__ import annotations

import pytest

from reference_tf import own
from reference_tf.batches import model_batch
from reference_tf.check import check
from reference_tf.layerdiff import diff
from reports.cli import main

from own_network_helpers import DTYPES, EXAMPLES, diff_json, example

FACTORY = '''
from reference_tf import own
from reference_tf.own.loading import import_target

c = import_target({path!r})


def three_layer_net_loss(params, x, y):
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax, CS231n's layer functions."""
    conv = {{"stride": 1, "pad": 1}}
    h1, conv_cache = c.conv_forward_naive(x, params["W1"], params["b1"], conv)
    a1, relu1 = c.relu_forward(h1)
    p1, pool = c.max_pool_forward_naive(a1, {{"pool_height": 2, "pool_width": 2, "stride": 2}})
    h2, affine2 = c.affine_forward(p1, params["W2"], params["b2"])
    a2, relu2 = c.relu_forward(h2)
    scores, affine3 = c.affine_forward(a2, params["W3"], params["b3"])
    loss, dscores = c.softmax_loss(scores, y)
    grads = {{}}
    da2, grads["W3"], grads["b3"] = c.affine_backward(dscores, affine3)
    dp1, grads["W2"], grads["b2"] = c.affine_backward(c.relu_backward(da2, relu2), affine2)
    dh1 = c.relu_backward(c.max_pool_backward_naive(dp1, pool), relu1)
    _, grads["W1"], grads["b1"] = c.conv_backward_naive(dh1, conv_cache)
    return loss, grads


def build():
    def names(i):
        return {{"names": {{"kernel": f"W{{i}}", "bias": f"b{{i}}"}}}}

    return own.Function(three_layer_net_loss, [
        own.Conv2D(None, 4, 3, padding=1, name="conv", **names(1)), own.ReLU(None),
        own.MaxPool2D(None, 2), own.Dense(None, 16, name="hidden", **names(2)), own.ReLU(None),
        own.Dense(None, 10, name="scores", **names(3))], (1, 28, 28),
        conventions=own.Conventions(layout="NCHW", kernel_layout="OIHW"))
'''


@pytest.fixture
def factory(tmp_path, monkeypatch):
    """A module my_net.py (on sys.path) whose build() returns the function model."""
    path = tmp_path / "my_net.py"
    path.write_text(FACTORY.format(path=str(EXAMPLES / "cs231n_style.py")))
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


def _model(factory, dtype="float64"):
    from reference_tf.own.loading import load_model

    return load_model(f"{factory}:build").rebuilt(dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_function_model_check_passes(factory, dtype):
    model = _model(factory, dtype)
    assert sorted(model.params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert model.params["W1"].shape == (4, 1, 3, 3) and model.params["W2"].shape == (784, 16)
    x, y = model_batch(model, "strokes", 8, 0)
    result = check(model, x, y)
    assert result.passed and list(result.paths) == ["function"], result.to_dict()


@pytest.mark.parametrize("spec", ["file", "module"])
def test_function_model_from_the_command_line(factory, spec, capsys):
    target = f"{factory}:build" if spec == "file" else "my_net:build"
    assert main(["check", "--model", target, "--batch-size", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in lines[:-1]] == ["function", "function"]


def test_function_model_wrong_gradient_named_by_parameter(factory, monkeypatch, tmp_path):
    c = example("cs231n")
    real = c.affine_backward

    def affine_backward(dout, cache):
        dx, dw, db = real(dout, cache)
        return dx, dw, db * 2 if dw.shape == (784, 16) else db

    monkeypatch.setattr(c, "affine_backward", affine_backward)
    assert main(["check", "--model", f"{factory}:build", "--dtype", "float64"]) == 1
    code, result = diff_json(tmp_path, "--model", f"{factory}:build", "--batch-size", "8")
    first = result["first_divergence"]
    assert code == 1 and result["kind"] == "function"
    assert (first["layer"], first["pass"], first["key"]) == ("hidden", "backward", "grads/b2")
    assert result["third_opinion"]["verdict"] == "scratch", result["third_opinion"]
    assert first["cause"] is None, first  # twice the gradient is no known convention


def test_function_model_gradient_of_a_summed_loss_is_named(factory, monkeypatch):
    c = example("cs231n")
    real = c.affine_backward

    def affine_backward(dout, cache):
        dx, dw, db = real(dout, cache)
        return dx, dw * len(dout) if dw.shape == (784, 16) else dw, db

    monkeypatch.setattr(c, "affine_backward", affine_backward)
    model = _model(factory)
    x, y = model_batch(model, "strokes", 8, 0)
    first = diff(model, x, y).first_divergence
    assert (first.layer, first.key, first.cause.id) == ("hidden", "grads/W2",
                                                          "batch_mean_missing"), first


def test_function_model_missing_gradient_is_a_fault(factory, monkeypatch):
    model = _model(factory)
    real = model.fn
    monkeypatch.setattr(model, "fn", lambda params, x, y: (real(params, x, y)[0], {}))
    x, y = model_batch(model, "strokes", 4, 0)
    result = check(model, x, y)
    assert not result.passed
    assert "returned no gradient for ['W1', 'W2', 'W3', 'b1', 'b2', 'b3']" in (
        result.first_divergence.fault.sentence)


def test_function_parameter_names_must_be_unique():
    dense = {"names": {"kernel": "W", "bias": "b"}}
    with pytest.raises(ValueError, match="'W' is used by layers 'a' and 'b'"):
        own.Function(lambda p, x, y: None, [own.Dense(None, 4, name="a", **dense),
                                             own.Dense(None, 10, name="b", **dense)], (3,))
