"""The CS231n assignment-2 declarations of ``reference_tf.own``: batch, layer and group norm,
dropout and the SVM loss, on the models of ``examples/own_network/cs231n_style.py``."""

from __future__ import annotations

import numpy as np
import pytest

from reference_tf import own
from reference_tf.batches import model_batch
from reference_tf.layerdiff import diff
from reference_tf.own.loading import factory_call
from reference_tf.parity_check import check
from reference_tf.testing import assert_layer_parity
from reports.cli import main

from helpers import DTYPES
from norm_plants import NORM_PLANTS, layernorm_dgamma_of_shape_1_d
from own_network_helpers import diff_json, example, spec

MODELS = ("mlp_batchnorm", "cnn_spatial_batchnorm", "mlp_dropout", "mlp_layernorm",
          "cnn_groupnorm", "mlp_svm")


def model_spec(model: str) -> str:
    """``--model`` selecting one of the example's models."""
    return f'{spec("cs231n")}(model="{model}")'


@pytest.mark.parametrize("model", MODELS)
def test_cs231n_norm_model_check_passes_both_dtypes(model):
    assert main(["check", "--model", model_spec(model), "--dtype", "both",
                 "--batch-size", "8"]) == 0


@pytest.mark.parametrize("name, dtype", [(n, d) for n in NORM_PLANTS for d in DTYPES])
def test_norm_plant_named_or_not(name, dtype, monkeypatch, tmp_path):
    plant = NORM_PLANTS[name]
    plant.planter(monkeypatch, example("cs231n"))
    code, result = diff_json(tmp_path, "--model", model_spec(plant.model), "--dtype", dtype,
                             "--batch-size", "8", "--no-fd")
    first = result["first_divergence"]
    assert code == 1 and (first["layer"], first["pass"], first["key"]) == plant.where, first
    assert (first["cause"] or {}).get("id") == plant.cause, first


def test_gamma_gradient_of_shape_1_d_is_a_fault(monkeypatch, tmp_path):
    layernorm_dgamma_of_shape_1_d(monkeypatch, example("cs231n"))
    code, result = diff_json(tmp_path, "--model", model_spec("mlp_layernorm"), "--no-fd")
    first = result["first_divergence"]
    assert code == 1 and (first["layer"], first["pass"]) == ("ln1", "backward"), first
    fault = first["fault"]
    assert fault["key"] == "grads/gamma" and fault["fatal"], fault
    assert ("returned gradient dgamma of shape (1, 32), expected (32,) (the same 32 values in "
            "another shape") in fault["sentence"], fault


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("model", MODELS)
def test_clean_norm_model_names_no_cause(model, seed):
    net = example("cs231n").build(model).rebuilt(seed=seed, dtype=DTYPES[seed % 2])
    x, y = model_batch(net, "strokes", 4, seed)
    result = diff(net, x, y)
    assert result.passed and result.first_divergence is None, result.to_dict()["first_divergence"]


def test_batchnorm_running_averages_reach_the_user_code_and_back():
    net = example("cs231n").build("mlp_batchnorm").rebuilt(dtype="float64")
    x, y = model_batch(net, "strokes", 8, 0)
    net.trace(x, y)
    bn = net.layers[2]
    h = np.maximum(x.reshape(8, -1) @ net.params["fc1/w"] + net.params["fc1/b"], 0)
    # Keras's moving averages from mean 0 and variance 1, momentum 0.9, biased variance
    np.testing.assert_allclose(bn.state["moving_mean"], 0.1 * h.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.state["moving_variance"], 0.9 + 0.1 * h.var(axis=0),
                               rtol=1e-12)
    evaluated = net.predict(x)  # "test" mode: normalized with the running averages
    assert np.isfinite(evaluated).all() and evaluated.shape == (8,)


def test_dropout_declared_keep_is_keras_rate():
    layer = own.Dropout(None, 0.75, dropout="keep")
    assert layer.rate == pytest.approx(0.25) and layer.config() == {"rate": pytest.approx(0.25)}


@pytest.mark.parametrize("conventions, word", [
    ({"epsilon": 0.0}, "epsilon"), ({"epsilon": 1}, "epsilon"), ({"dropout": "drop"}, "dropout"),
    ({"bn_momentum": "torch"}, "bn_momentum"), ({"scale_shape": (1, 2, 1)}, "scale_shape"),
    ({"names": {"kernel": "w", "bias": "b", "alpha": "a"}}, "names")])
def test_norm_conventions_reject_bad_values(conventions, word):
    with pytest.raises(ValueError, match=word):
        own.Conventions(**conventions)


@pytest.mark.parametrize("text, expected", [
    ("build", ("build", (), {})),
    ('build(model="mlp_svm")', ("build", (), {"model": "mlp_svm"})),
    ("make(3, units=8, deep=True)", ("make", (3,), {"units": 8, "deep": True}))])
def test_factory_call_parses_literal_arguments(text, expected):
    assert factory_call(text) == expected


@pytest.mark.parametrize("text", ["build(model=mlp)", "build(**kw)", "build(f(1))", "a.b()"])
def test_factory_call_refuses_anything_but_literals(text):
    with pytest.raises(ValueError, match="Python literals"):
        factory_call(text)


def test_unknown_model_is_bad_input(capsys):
    assert main(["check", "--model", model_spec("mlp_nope")]) == 2
    assert "expected model in" in capsys.readouterr().err


class TorchBatchNorm:
    """A batch norm object in PyTorch's terms: gamma and beta named weight and bias, momentum
    0.1 weighing the batch, running statistics in a mapping ``state``."""

    def __init__(self):
        self.params, self.grads, self.state = {}, {}, {}

    def forward(self, x):
        mean, var = x.mean(axis=0), x.var(axis=0)
        self.xhat, self.std = (x - mean) / np.sqrt(var + 1e-5), np.sqrt(var + 1e-5)
        for key, batch in (("running_mean", mean), ("running_var", var)):
            self.state[key] = 0.9 * self.state[key] + 0.1 * batch
        return self.params["weight"] * self.xhat + self.params["bias"]

    def backward(self, dy):
        self.grads = {"weight": (dy * self.xhat).sum(axis=0), "bias": dy.sum(axis=0)}
        g = dy * self.params["weight"]
        return (g - g.mean(axis=0) - self.xhat * (g * self.xhat).mean(axis=0)) / self.std


class SeededDropout:
    """Inverted dropout drawing the same mask on every call, drop probability 0.3."""

    params: dict = {}

    def forward(self, x):
        self.mask = (np.random.default_rng(5).random(x.shape) >= 0.3) / 0.7
        return x * self.mask.astype(x.dtype)

    def backward(self, dy):
        return dy * self.mask.astype(dy.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_object_batchnorm_and_dropout_pass_check(dtype):
    c = example("cs231n")
    affine = own.functions(c.affine_forward, c.affine_backward)
    names = {"kernel": "w", "bias": "b", "gamma": "weight", "beta": "bias"}
    net = own.Model([own.Dense(affine, 16, name="fc1"), own.ReLU(own.functions(
        c.relu_forward, c.relu_backward)), own.BatchNormalization(
        TorchBatchNorm(), 0.1, bn_momentum="pytorch", name="bn"), own.Dropout(SeededDropout(), 0.3),
        own.Dense(affine, 10, name="scores")], (20,), dtype=dtype,
        conventions=own.Conventions(names=names, epsilon=1e-5))
    x = np.random.default_rng(0).standard_normal((8, 20)).astype(dtype)
    y = np.arange(8) % 10
    result = check(net, x, y)
    assert result.passed, result.to_dict()
    assert set(net.state) == {"bn/moving_mean", "bn/moving_variance"}


def test_running_average_of_another_shape_is_a_fault(monkeypatch, tmp_path):
    c = example("cs231n")
    real = c.batchnorm_forward

    def batchnorm_forward(x, gamma, beta, bn_param):
        out, cache = real(x, gamma, beta, bn_param)
        bn_param["running_mean"] = bn_param["running_mean"][None]
        return out, cache

    monkeypatch.setattr(c, "batchnorm_forward", batchnorm_forward)
    code, result = diff_json(tmp_path, "--model", model_spec("mlp_batchnorm"), "--no-fd")
    fault = result["first_divergence"]["fault"]
    assert code == 1 and (fault["layer"], fault["key"]) == ("bn1", "state/moving_mean"), fault
    assert "running average 'running_mean' of shape (1, 32), expected (32,)" in fault["sentence"]



def norm_layer(c, index: int, epsilon):
    """(declaration, input shape with the batch axis) of CS231n's layer, spatial batch or
    spatial group norm, declared with ``epsilon``."""
    functions = own.functions
    if index == 0:
        return (own.LayerNormalization(functions(c.layernorm_forward, c.layernorm_backward, {}),
                                       epsilon=epsilon), (4, 6))
    if index == 1:
        return (own.BatchNormalization(functions(c.spatial_batchnorm_forward,
                                                 c.spatial_batchnorm_backward, {}),
                                       0.9, epsilon=epsilon, layout="NCHW"), (4, 3, 5, 5))
    return (own.GroupNormalization(functions(c.spatial_groupnorm_forward,
                                             c.spatial_groupnorm_backward, 3, {}),
                                   3, epsilon=epsilon, layout="NCHW", scale_shape=(1, -1, 1, 1)),
            (2, 6, 4, 4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(3))
def test_cs231n_norm_layer_parity(index, dtype):
    layer, shape = norm_layer(example("cs231n"), index, 1e-5)
    assert_layer_parity(layer, None, shape, dtype)
    layer, shape = norm_layer(example("cs231n"), index, None)  # Keras's 1e-3, the code's 1e-5
    with pytest.raises(AssertionError, match="cause of output: .*cause: norm_epsilon"):
        assert_layer_parity(layer, None, shape, dtype)


def test_batchnorm_without_a_place_for_running_averages_is_refused():
    c = example("cs231n")
    with pytest.raises(ValueError, match="bn_param"):
        own.BatchNormalization(own.functions(c.batchnorm_forward, c.batchnorm_backward), 0.9)
    layer = own.BatchNormalization(SeededDropout(), 0.9, name="bn")  # no mapping `state`
    with pytest.raises(ValueError, match=r"'bn' .*expected SeededDropout.state to be a mapping"):
        layer.build((4,), np.random.default_rng(0), "float64")
