"""Bugs planted into the normalization, dropout and SVM models of
``examples/own_network/cs231n_style.py`` (``build(model=...)``), shared by
``test_own_network_normalization.py`` and the catalog check of ``test_causes.py``.

Each planter monkeypatches the example module that ``tfparity diff --model`` imports, as the
planters of ``own_network_helpers`` do.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from reference_tf import own

from own_network_helpers import patch_build, rebuilt_with, summed_over_batch


class NormPlant(NamedTuple):
    """A planted bug: the example model it goes into, the planter, where diff must find it
    (layer, pass, quantity key) and the cause it must name (None: none)."""

    model: str
    planter: Callable
    where: tuple
    cause: str | None


def declared_keras_epsilon(monkeypatch, c):
    # the code adds CS231n's 1e-5, the declaration keeps Keras's default 1e-3
    patch_build(monkeypatch, c, lambda model: rebuilt_with(model, epsilon=None))


def layernorm_unbiased_variance(monkeypatch, c):
    def layernorm_forward(x, gamma, beta, ln_param):
        mean = x.mean(axis=1, keepdims=True)
        std = np.sqrt(x.var(axis=1, ddof=1, keepdims=True) + ln_param.get("eps", 1e-5))
        xhat = (x - mean) / std
        return gamma * xhat + beta, (xhat, gamma, std)

    monkeypatch.setattr(c, "layernorm_forward", layernorm_forward)


def dropout_keep_read_as_rate(monkeypatch, c):
    # CS231n's p = 0.75 keeps a unit; declared without dropout="keep" it is Keras's rate
    def change(model):
        index, layer = next((i, la) for i, la in enumerate(model.layers)
                            if isinstance(la, own.Dropout))
        return rebuilt_with(model, {index: own.Dropout(layer.impl, layer.probability)})

    patch_build(monkeypatch, c, change)


def layernorm_dgamma_times_1_01(monkeypatch, c):
    real = c.layernorm_backward

    def layernorm_backward(dout, cache):
        dx, dgamma, dbeta = real(dout, cache)
        return dx, dgamma * 1.01, dbeta

    monkeypatch.setattr(c, "layernorm_backward", layernorm_backward)


def batchnorm_sign_flip_in_one_unit(monkeypatch, c):
    real = c.batchnorm_forward

    def batchnorm_forward(x, gamma, beta, bn_param):
        out, cache = real(x, gamma, beta, bn_param)
        out[:, 3] *= -1
        return out, cache

    monkeypatch.setattr(c, "batchnorm_forward", batchnorm_forward)


def layernorm_dgamma_of_shape_1_d(monkeypatch, c):
    real = c.layernorm_backward

    def layernorm_backward(dout, cache):
        dx, dgamma, dbeta = real(dout, cache)
        return dx, dgamma.reshape(1, -1), dbeta  # as some solutions keep it

    monkeypatch.setattr(c, "layernorm_backward", layernorm_backward)


def svm_loss_summed(monkeypatch, c):
    monkeypatch.setattr(c, "svm_loss", summed_over_batch(c.svm_loss))


NORM_PLANTS = {
    "layernorm_epsilon_1e-5": NormPlant("mlp_layernorm", declared_keras_epsilon,
                                        ("ln1", "forward", "output"), "norm_epsilon"),
    "layernorm_unbiased_variance": NormPlant("mlp_layernorm", layernorm_unbiased_variance,
                                             ("ln1", "forward", "output"), "norm_variance"),
    "dropout_keep_read_as_rate": NormPlant("mlp_dropout", dropout_keep_read_as_rate,
                                           ("dropout", "forward", "output"),
                                           "dropout_probability"),
    "layernorm_dgamma_times_1_01": NormPlant("mlp_layernorm", layernorm_dgamma_times_1_01,
                                             ("ln1", "backward", "grads/gamma"), None),
    "batchnorm_sign_flip_in_one_unit": NormPlant("mlp_batchnorm",
                                                 batchnorm_sign_flip_in_one_unit,
                                                 ("bn1", "forward", "output"), None),
    "svm_loss_summed": NormPlant("mlp_svm", svm_loss_summed, ("loss", "forward", "output"),
                                 "loss_reduction"),
}
