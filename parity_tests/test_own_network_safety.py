"""User code runs on private copies and every result is checked: writes, wrong shapes, dtypes and
return values, and exceptions are faults naming the layer, the function and the pass. NumPy only.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_tf import own
from reference_tf.own import UserCodeError
from scratch.train import fit

from own_network_helpers import example

NCHW = own.Conventions(layout="NCHW", kernel_layout="OIHW", names={"kernel": "w", "bias": "b"})


def _conv(forward=None, backward=None, conv_param=None):
    c = example("cs231n")
    return own.Conv2D(own.functions(forward or c.conv_forward_naive,
                                    backward or c.conv_backward_naive,
                                    conv_param=conv_param or {"stride": 1, "pad": 1}),
                      2, 3, padding=1, name="conv", **NCHW.to_dict())


def _built(layer, input_shape=(1, 5, 5), dtype="float64"):
    return layer.build(input_shape, np.random.default_rng(0), dtype)


def _faults(call, *args) -> UserCodeError:
    with pytest.raises(UserCodeError) as info:
        call(*args)
    return info.value


def _x(shape=(2, 1, 5, 5), dtype="float64"):
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


def test_write_into_input_is_named_and_the_callers_array_untouched():
    c = example("cs231n")

    def relu_forward(x):
        np.maximum(x, 0, out=x)
        return x, x > 0

    layer = _built(own.ReLU(own.functions(relu_forward, c.relu_backward), name="relu1"))
    x = _x()
    before = x.copy()
    error = _faults(layer.forward, x)
    np.testing.assert_array_equal(x, before)
    assert not error.fatal and str(error) == ("layer 'relu1' (relu_forward) modified the input "
                                              "it received")
    np.testing.assert_array_equal(error.value, np.maximum(before, 0))


def test_write_into_parameter_is_named():
    c = example("cs231n")

    def conv_backward_naive(dout, cache):
        dx, dw, db = c.conv_backward_naive(dout, cache)
        w = cache[1]
        w -= 0.1 * dw  # an SGD step inside the backward pass
        return dx, dw, db

    layer = _built(_conv(backward=conv_backward_naive))
    layer.forward(_x())
    error = _faults(layer.backward, np.ones((2, 2, 5, 5)))
    assert [f.problem for f in error.faults] == ["modified its parameter 'w'"]
    assert error.faults[0].key == "params/w" and error.faults[0].direction == "backward"


def test_wrong_output_shape_is_fatal_and_names_the_declaration():
    layer = _built(_conv(conv_param={"stride": 1, "pad": 0}))  # declared padding=1
    error = _faults(layer.forward, _x())
    assert error.fatal and error.faults[0].key == "output"
    assert "returned output y of shape (2, 2, 3, 3), expected (2, 2, 5, 5) (NCHW)" in str(error)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_other_dtype_is_a_fault_that_goes_on_with_a_cast(dtype):
    c = example("cs231n")

    def conv_forward_naive(x, w, b, conv_param):
        out, cache = c.conv_forward_naive(x, w, b, conv_param)
        return out.astype(np.float64 if dtype == "float32" else np.float32), cache

    layer = _built(_conv(forward=conv_forward_naive), dtype=dtype)
    error = _faults(layer.forward, _x(dtype=dtype))
    assert not error.fatal and error.value.dtype == dtype
    assert f"from a {dtype} model" in str(error)


def test_wrong_return_values_are_fatal():
    c = example("cs231n")
    no_cache = _built(own.ReLU(own.functions(lambda x: np.maximum(x, 0), c.relu_backward)))
    assert "expected a pair (out, cache)" in str(_faults(no_cache.forward, _x()))

    def conv_backward_naive(dout, cache):
        return c.conv_backward_naive(dout, cache)[0]

    layer = _built(_conv(backward=conv_backward_naive))
    layer.forward(_x())
    error = _faults(layer.backward, np.ones((2, 2, 5, 5)))
    assert error.fatal and "expected (dx, dw, db)" in str(error)


def test_exception_names_layer_pass_and_last_frame():
    def relu_forward(x):
        return np.maximum(x, 0), x[:, :, :, :, None].reshape(3)

    layer = _built(own.ReLU(own.functions(relu_forward, lambda d, c: d), name="relu1"))
    error = _faults(layer.forward, _x())
    fault = error.faults[0]
    assert error.fatal
    assert (fault.layer, fault.direction, fault.key) == ("relu1", "forward", "output")
    assert fault.problem.startswith("raised ValueError: cannot reshape")
    assert "test_own_network_safety.py" in fault.frame and "in relu_forward" in fault.frame


def test_object_without_gradients_is_fatal():
    class Scale:
        def __init__(self):
            self.params, self.grads = {"W": None, "b": None}, {}

        def forward(self, x):
            self.x = x
            return x @ self.params["W"] + self.params["b"]

        def backward(self, dy):
            return dy @ self.params["W"].T

    layer = _built(own.Dense(Scale(), 3, names={"kernel": "W", "bias": "b"}), input_shape=(4,))
    layer.forward(np.ones((2, 4)))
    error = _faults(layer.backward, np.ones((2, 3)))
    assert error.fatal and "left no gradient ['W', 'b'] in Scale.grads" in str(error)


def test_object_methods_under_other_names():
    class Relu:
        def fprop(self, x):
            self.mask = x > 0
            return x * self.mask

        def bprop(self, dy):
            return dy * self.mask

    layer = _built(own.ReLU(own.methods(Relu(), forward="fprop", backward="bprop")))
    x = _x()
    np.testing.assert_array_equal(layer.forward(x), np.maximum(x, 0))
    assert layer.function == "Relu.fprop"
    with pytest.raises(TypeError, match=r"Relu to have a method forward\(\)"):
        own.methods(Relu())


def test_object_without_params_mapping_is_a_bad_declaration():
    class Linear:
        def forward(self, x):
            return x

        def backward(self, dy):
            return dy

    with pytest.raises(ValueError, match="Linear.params"):
        _built(own.Dense(Linear(), 3), input_shape=(4,))


@pytest.mark.parametrize("result, problem", [
    (lambda logits, y: logits.sum(), "expected a pair (loss, dlogits)"),
    (lambda logits, y: (np.ones(len(y)), logits), "returned a loss of shape"),
    (lambda logits, y: (1.0, logits[:, :2]), "returned dlogits of shape"),
    (lambda logits, y: (1.0, logits.astype(np.float32)), "of dtype float32 from a float64")])
def test_loss_results_are_checked(result, problem):
    error = _faults(own.Loss(result).compute, np.zeros((3, 10)), np.arange(3))
    assert error.faults[0].layer == "loss" and problem in str(error)


def test_loss_that_writes_into_logits():
    def softmax_loss(x, y):
        x -= x.max(axis=1, keepdims=True)
        return example("cs231n").softmax_loss(x, y)

    logits = np.random.default_rng(0).standard_normal((4, 10))
    error = _faults(own.Loss(softmax_loss).compute, logits, np.arange(4))
    assert str(error) == "layer 'loss' (softmax_loss) modified the logits it received"
    assert not error.fatal and error.value[1].shape == (4, 10)


class Counting:
    """Wraps an object layer, counting its forward and backward calls."""

    def __init__(self, obj):
        self.obj, self.calls = obj, []
        self.params, self.grads = obj.__dict__.get("params", {}), obj.__dict__.get("grads", {})

    def forward(self, x):
        self.calls.append("forward")
        self.obj.params = self.params
        return self.obj.forward(x)

    def backward(self, dy):
        self.calls.append("backward")
        dx = self.obj.backward(dy)
        self.grads.update(getattr(self.obj, "grads", {}))
        return dx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_user_code_runs_in_fit_evaluate_and_predict(dtype):
    o = example("object")
    relu = Counting(o.ReLU())
    net = own.Model([own.Flatten(o.Flatten()), own.Dense(Counting(o.Linear(784, 16)), 16),
                     own.ReLU(relu), own.Dense(o.Linear(16, 10), 10)], (28, 28, 1),
                    loss=own.Loss(o.softmax_cross_entropy),
                    conventions=own.Conventions(dense_layout="OI",
                                                names={"kernel": "W", "bias": "b"}),
                    dtype=dtype)
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 28, 28, 1)).astype(dtype), rng.integers(0, 10, 40)
    before = net.evaluate(x, y)[0]
    history = fit(net, x, y, epochs=3, lr=0.5, batch_size=10, eval_every=40,
                  eval_sets={"train": (x, y)})
    assert relu.calls.count("backward") == 12 and relu.calls.count("forward") >= 12 + 4
    assert history.records[-1]["train_loss"] < before
    calls = len(relu.calls)
    assert net.predict(x).shape == (40,) and len(relu.calls) == calls + 1


def test_model_layers_share_one_layout():
    c = example("cs231n")
    relu = own.functions(c.relu_forward, c.relu_backward)
    with pytest.raises(ValueError, match="model's activation layout NCHW; ReLU.* declares NHWC"):
        own.Model([own.ReLU(relu, layout="NHWC"), own.Dense(own.functions(c.affine_forward,
                                                                           c.affine_backward), 10)],
                  (1, 4, 4), conventions=NCHW)
