"""``reference_tf.from_keras``: Keras models in. The course's four models written directly in
Keras (``activation="relu"`` on Dense/Conv2D) become the scratch models of ``scratch.models``, with
Keras's loss and gradients; scratch -> Keras -> scratch is the identity; what scratch cannot
compute is refused with the layer's name."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import scratch
from reference_tf.compare import assert_all_close
from reference_tf.from_keras import from_keras
from reference_tf.gradients import trace, trace_arrays
from reference_tf.twin import twin
from scratch.data.synthetic import strokes
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential, build
from scratch.regularizers import L2

from helpers import DTYPES

SETTINGS = ("units", "filters", "kernel_size", "strides", "padding", "pool_size")


def course_keras_model(name: str, dtype: str) -> keras.Sequential:
    """The course's model as its users write it in Keras: the ReLU inside Dense/Conv2D."""
    kw = {"dtype": dtype}
    conv = [keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1", **kw),
            keras.layers.MaxPooling2D(2, strides=2, padding="same", name="pool1", **kw),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2", **kw),
            keras.layers.MaxPooling2D(2, strides=2, padding="same", name="pool2", **kw)]
    hidden = [keras.layers.Dense(32, activation="relu", name=f"hidden{i}", **kw) for i in (1, 2)]
    body = {"linear": [], "mlp1": hidden[:1], "mlp2": hidden, "cnn": hidden[:1]}[name]
    return keras.Sequential(
        [keras.Input((28, 28, 1), dtype=dtype), *(conv if name == "cnn" else []),
         keras.layers.Flatten(name="flatten", **kw), *body,
         keras.layers.Dense(10, name="logits", **kw)], name=name)


def architecture(model: Sequential) -> tuple:
    """What defines a scratch model apart from its weights."""
    layers = tuple(
        (type(layer).__name__, layer.name,
         tuple((s, getattr(layer, s)) for s in SETTINGS if hasattr(layer, s)),
         repr(getattr(layer, "kernel_regularizer", None)))
        for layer in model.layers)
    return model.input_shape, model.dtype.name, model.num_classes, layers


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["linear", "mlp1", "mlp2", "cnn"])
def test_from_keras_course_model_is_the_scratch_model_with_keras_loss_and_gradients(name, dtype):
    keras_model = course_keras_model(name, dtype)
    model = from_keras(keras_model)
    assert architecture(model) == architecture(build(name, dtype=dtype))
    x, y = strokes(8, seed=4, dtype=dtype)
    reference = trace_arrays(trace(keras_model, x, y))
    mine = trace_arrays(model.trace(x, y))
    keys = ["loss", "logits", "input_grad", *(k for k in reference if k.startswith("grads/"))]
    assert_all_close({k: mine[k] for k in keys}, {k: reference[k] for k in keys}, dtype,
                     context=f"from_keras({name}) vs Keras")
    loss, grads = model.loss_and_grads(x, y)  # the training path (fused units)
    assert_all_close({"loss": np.float64(loss), **{f"grads/{k}": v for k, v in grads.items()}},
                     {k: reference[k] for k in keys if k != "logits" and k != "input_grad"},
                     dtype, context=f"from_keras({name}).loss_and_grads vs Keras")


def regularized_model(dtype: str) -> Sequential:
    return Sequential([
        Conv2D(4, (3, 2), strides=(2, 1), padding="same", kernel_regularizer=L2(0.02),
               name="conv"), ReLU(name="relu"), MaxPool2D(3, strides=2, padding="valid"),
        Flatten(), Dense(12, kernel_regularizer=L2(0.5)), ReLU(), Dense(7),
    ], (11, 9, 2), seed=3, dtype=dtype, num_classes=7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [lambda d: build("cnn", seed=2, dtype=d),
                                  lambda d: build("mlp2", seed=2, dtype=d), regularized_model],
                         ids=["cnn", "mlp2", "regularized"])
def test_from_keras_of_twin_is_the_identity(make, dtype):
    model = make(dtype)
    back = from_keras(twin(model))
    assert architecture(back) == architecture(model)
    assert back.params.keys() == model.params.keys()
    for key, value in model.params.items():
        assert back.params[key].tobytes() == value.tobytes(), key
    x = np.random.default_rng(0).standard_normal((3, *model.input_shape)).astype(dtype)
    y = np.arange(3)
    assert back.trace(x, y).loss == model.trace(x, y).loss


def test_scratch_from_keras_is_the_reference_tf_function():
    assert scratch.from_keras is from_keras


def _sequential(*layers, dtype="float32", input_shape=(6, 6, 1)):
    return keras.Sequential([keras.Input(input_shape, dtype=dtype), *layers])


@pytest.mark.parametrize("layers, error, message", [
    ([keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(10)], TypeError,
     r"from_keras: layer 'gap' \(GlobalAveragePooling2D\) has no scratch layer; "
     r"supported: \['Activation', 'AveragePooling2D', 'BatchNormalization', 'Conv2D', 'Dense', "
     r"'Dropout', 'Embedding', 'Flatten', 'GRU', 'LSTM', 'LayerNormalization', 'LeakyReLU', "
     r"'MaxPooling2D', 'ReLU', 'Reshape', 'SimpleRNN', 'Softmax'\]\."),
    ([keras.layers.Flatten(), keras.layers.Dense(10, activation="selu", name="d")], ValueError,
     r"from_keras: layer 'd' \(Dense\): activation='selu' is not supported; expected None, "
     r"'linear', 'relu', 'sigmoid' or 'tanh'\."),
    ([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax", name="out")],
     ValueError, r"layer 'out' \(Dense\): activation='softmax' .*\(scratch models output logits"),
    ([keras.layers.BatchNormalization(axis=1, name="bn"), keras.layers.Flatten(),
      keras.layers.Dense(10)], ValueError,
     r"layer 'bn' \(BatchNormalization\): axis=1 is not supported; expected -1"),
    ([keras.layers.Dropout(0.5, noise_shape=(None, 1, 1, 1), name="drop"),
      keras.layers.Flatten(), keras.layers.Dense(10)], ValueError,
     r"layer 'drop' \(Dropout\): noise_shape=\(None, 1, 1, 1\) is not supported"),
    ([keras.layers.Conv2D(2, 3, dilation_rate=2, name="c"), keras.layers.Flatten(),
      keras.layers.Dense(10)], ValueError,
     r"layer 'c' \(Conv2D\): dilation_rate=\(2, 2\) is not supported; expected \(1, 1\)\."),
    ([keras.layers.Flatten(), keras.layers.Dense(10, kernel_regularizer=keras.regularizers.L1(0.1),
                                                 name="d")], ValueError,
     r"layer 'd' \(Dense\): kernel_regularizer=<.*L1.*> is not supported; expected None or "
     r"keras\.regularizers\.L2\."),
    ([keras.layers.ReLU(max_value=6.0, name="relu6"), keras.layers.Flatten(),
      keras.layers.Dense(10)], ValueError,
     r"layer 'relu6' \(ReLU\): max_value=6\.0 is not supported"),
])
def test_from_keras_unsupported_layer_named(layers, error, message):
    with pytest.raises(error, match=message):
        from_keras(_sequential(*layers))


def test_from_keras_mixed_dtypes_rejected():
    # A Flatten left at the default float32 policy inside a float64 model computes in float32.
    keras_model = _sequential(keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, dtype="float64"), dtype="float64")
    with pytest.raises(ValueError, match=r"from_keras: expected every layer to compute and keep "
                                         r"its variables in float32, or every layer in float64; "
                                         r"received .*'flat': \('float32', 'float32'\)"):
        from_keras(keras_model)


def test_from_keras_rejects_models_it_cannot_read():
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    with pytest.raises(TypeError, match=r"from_keras: expected a keras\.Sequential, received "
                                        r"Functional\."):
        from_keras(functional)
    with pytest.raises(ValueError, match=r"from_keras: model 'unbuilt' has no input shape yet"):
        from_keras(keras.Sequential([keras.layers.Dense(10)], name="unbuilt"))


def test_from_keras_converters_convert_further_layer_classes():
    keras_model = _sequential(keras.layers.Flatten(), keras.layers.Identity(name="same"),
                              keras.layers.Dense(10, name="logits"))
    with pytest.raises(TypeError, match=r"layer 'same' \(Identity\) has no scratch layer"):
        from_keras(keras_model)
    model = from_keras(keras_model, converters={keras.layers.Identity: lambda layer: []})
    assert [type(layer) for layer in model.layers] == [Flatten, Dense]
