"""Sequential models, the MNIST models of the assignment and the sequential-MNIST models
(``rnn``, ``lstm``, ``gru``: 28 rows of 28 pixels as 28 time steps), and ``tokens``, a
classifier of padded synthetic token sequences."""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

import numpy as np

from scratch import ops
from scratch.checks import check_dtype_name, check_float_array, check_labels, check_positive_int
from scratch.data import tokens
from scratch.data.mnist import IMAGE_SHAPE, NUM_CLASSES
from scratch.fusion import Unit, backward, fuse
from scratch.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
)
from scratch.sequence_layers import GRU, LSTM, Embedding, Reshape, SimpleRNN

MNIST_INPUT_SHAPE = IMAGE_SHAPE


class Trace(NamedTuple):
    """Everything one forward/backward pass computed, keyed by layer name.

    logits (N, K); loss; outputs[name] = the layer's output; output_grads[name] = dL/d(output);
    grads[name/key] = dL/d(param); input_grad = dL/dx, shape (N, *input_shape); state[name/key]
    = the non-trainable state after the pass (BatchNormalization's moving statistics), copies.
    """

    logits: np.ndarray
    loss: float
    outputs: dict
    output_grads: dict
    grads: dict
    input_grad: np.ndarray
    state: dict


def _assign(kind: str, targets: dict, values: dict) -> None:
    """Copy ``values`` into the arrays of ``targets`` in place (same keys, shapes and dtypes)."""
    missing, extra = set(targets) - set(values), set(values) - set(targets)
    if missing or extra:
        raise ValueError(f"Sequential: {kind} keys differ: missing {sorted(missing)}, "
                         f"unexpected {sorted(extra)}.")
    for key, target in targets.items():
        value = np.asarray(values[key])
        if value.shape != target.shape or value.dtype != target.dtype:
            raise ValueError(f"Sequential: {kind} '{key}' expected {target.dtype.name} "
                             f"{target.shape}, received {value.dtype.name} {value.shape}.")
        target[...] = value


def _keras_default_name(layer: Layer) -> str:
    """Keras's automatic layer names (its ``to_snake_case``): Conv2D -> conv2d, ReLU -> re_lu,
    MaxPool2D -> max_pool2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Sequential:
    """A stack of layers built for per-example ``input_shape``, e.g. (28, 28, 1).

    Kernels are Glorot-uniform, biases zero; one ``numpy.random.Generator(seed)`` draws the
    kernels in layer order, so the same seed gives the same weights bit for bit (Dropout layers
    spawn their mask generators from it without changing those draws).

    ``params`` (trainable) and ``state`` (non-trainable, e.g. "bn1/moving_mean") are keyed
    "<layer>/<key>" like Keras's variable paths. ``trace`` and ``loss_and_grads`` are
    training-mode passes, ``forward``, ``evaluate`` and ``predict`` inference (see
    ``scratch.layers``).
    """

    def __init__(self, layers: list[Layer], input_shape: tuple, seed: int = 0,
                 dtype="float32", num_classes: int = NUM_CLASSES):
        self.dtype = check_dtype_name("Sequential", dtype)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential: expected a non-empty list of Layer objects, received "
                            f"{layers!r}.")
        self.layers = list(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes
        self.seed = seed
        self._fused = None
        self._name_layers()
        later = [layer.name for layer in self.layers[1:] if layer.takes_indices]
        if later:
            raise ValueError(f"Sequential: layers taking integer indices (Embedding) must come "
                             f"first, received {later} later in the stack.")
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        self.output_shapes: dict[str, tuple] = {}
        for layer in self.layers:
            layer.build(shape, rng, self.dtype)
            shape = layer.compute_output_shape(shape)
            self.output_shapes[layer.name] = shape
        if shape != self.logits_shape():
            raise ValueError(
                f"Sequential: expected the last layer to produce {self.logits_shape()} logits "
                f"per example, received output shape {shape}."
            )
        self.params = {f"{layer.name}/{key}": value
                       for layer in self.layers for key, value in layer.params.items()}
        self.state = {f"{layer.name}/{key}": value
                      for layer in self.layers for key, value in layer.state.items()}

    def _name_layers(self) -> None:
        seen: dict[str, int] = {}
        for layer in self.layers:
            if layer.name is None:
                base = _keras_default_name(layer)
                count = seen.get(base, 0)
                layer.name = base if count == 0 else f"{base}_{count}"
                seen[base] = count + 1
        names = [layer.name for layer in self.layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError("Sequential: layer names must be unique, received duplicates "
                             f"{duplicates}.")

    def logits_shape(self) -> tuple:
        """The per-example output the last layer must produce: (num_classes,)."""
        return (self.num_classes,)

    @property
    def mixes_examples(self) -> bool:
        """True if a layer's training-mode output depends on the whole batch (batch statistics)."""
        return any(layer.mixes_examples for layer in self.layers)

    @property
    def grads(self) -> dict:
        """dL/d(param) of the last backward pass, keyed like ``params``."""
        return {f"{layer.name}/{key}": value
                for layer in self.layers for key, value in layer.grads.items()}

    def set_params(self, values: dict) -> None:
        """Copy ``values`` (same keys, shapes and dtype as ``params``) into the model in place."""
        _assign("parameter", self.params, values)

    def set_state(self, values: dict) -> None:
        """Copy ``values`` (same keys, shapes and dtype as ``state``) into the model in place."""
        _assign("state", self.state, values)

    # Checks ----------------------------------------------------------------------------------
    def check_inputs(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """Validate a batch x (N, *input_shape), N >= 1, of the model's dtype (integer indices
        if the first layer takes them) and labels y (N,)."""
        if self.layers[0].takes_indices:
            self.layers[0].check_input_array(x)
        else:
            check_float_array("Sequential input", "x", x, self.dtype)
        if x.shape[1:] != self.input_shape or x.ndim != len(self.input_shape) + 1:
            raise ValueError("Sequential input: expected x of shape (N, "
                             f"{', '.join(map(str, self.input_shape))}), received shape {x.shape}.")
        if x.shape[0] == 0:
            raise ValueError(f"Sequential input: expected at least one example (N >= 1), "
                             f"received x of shape {x.shape}.")
        if y is not None:
            check_labels("Sequential input", y, x.shape[0], self.num_classes)

    # Passes ----------------------------------------------------------------------------------
    def set_masks(self, x: np.ndarray) -> None:
        """Set every layer's ``input_mask`` for a pass over the batch x (N, *input_shape): masks
        start at the first layer (``Embedding(mask_zero=True)``) and go on through the layers'
        ``compute_mask``, as Keras propagates them."""
        mask = None
        for index, layer in enumerate(self.layers):
            layer.input_mask = mask
            mask = layer.compute_mask(x if index == 0 else None, mask)

    def _outputs(self, x: np.ndarray) -> dict:
        """Every layer's output, layer by layer (unchecked)."""
        self.set_masks(x)
        outputs = {}
        for layer in self.layers:
            x = layer.call(x)
            outputs[layer.name] = x
        return outputs

    @property
    def units(self) -> list[Unit]:
        """The layers as ``loss_and_grads``, ``forward``, ``evaluate`` and ``predict`` run them:
        runs of tfparity's own Conv2D -> ReLU -> MaxPool2D fused into one ``ConvChain`` each
        (``scratch.fusion.fuse``), every other layer as itself. Made once per model."""
        # Keyed by the layer list, so that a copy of the model with other layers (e.g.
        # scratch.gradcheck's float64 copy) makes its own units.
        if self._fused is None or self._fused[0] is not self.layers:
            self._fused = (self.layers, fuse(self.layers, self.output_shapes))
        return self._fused[1]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        self.set_masks(x)
        for unit in self.units:
            x = unit.infer(x)
        return x

    def compute_loss(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss, dL/dlogits (N, K)) of logits (N, K) for labels (N,): the mean softmax
        cross-entropy; every pass of the model calls this, so a subclass may define its loss."""
        return ops.softmax_cross_entropy(logits, labels)

    def regularization_loss(self) -> float:
        """The sum of the layers' weight penalties (``kernel_regularizer``; 0.0 without any), the
        term ``trace`` and ``loss_and_grads`` add to the mean cross-entropy, as Keras adds
        ``model.losses``."""
        return sum(regularizer(layer.params[key])
                   for layer in self.layers for key, regularizer in layer.regularizers.items())

    def _add_penalty_grads(self) -> float:
        """Add the weight penalties' gradients to the layers' ``grads``; return the penalties."""
        for layer in self.layers:
            for key, regularizer in layer.regularizers.items():
                layer.grads[key] = layer.grads[key] + regularizer.gradient(layer.params[key])
        return self.regularization_loss()

    def trace(self, x: np.ndarray, y: np.ndarray, input_grad: bool = True) -> Trace:
        """One forward and backward pass, layer by layer, keeping every layer's output and
        output gradient: the trace path (``tfparity diff``).

        It is a training-mode pass like ``loss_and_grads``, i.e. one training step without the
        update: BatchNormalization uses the batch's statistics and updates its moving
        statistics (``Trace.state`` holds them afterwards), Dropout draws a new mask (kept as
        the layer's ``keep``; ``scratch.layers.replaying_masks`` reuses it).

        Args:
            x: inputs (N, *input_shape) of the model's dtype; y: labels (N,).
            input_grad: False leaves ``Trace.input_grad`` None and skips dL/dx of the first
                layer with parameters.
        """
        self.check_inputs(x, y)
        outputs = self._outputs(x)
        logits = outputs[self.layers[-1].name]
        loss, dlogits = self.compute_loss(logits, y)
        output_grads = {}

        def keep(layer, dy):
            output_grads[layer.name] = dy

        dx = backward(self.layers, dlogits, input_grad=input_grad, each=keep)
        loss += self._add_penalty_grads()
        return Trace(logits, loss, outputs, dict(reversed(output_grads.items())), self.grads, dx,
                     {key: value.copy() for key, value in self.state.items()})

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, *, check: bool = True
                       ) -> tuple[float, dict]:
        """Mean softmax cross-entropy of (x (N, *input_shape), y (N,)) plus the
        ``regularization_loss``, and its parameter gradients keyed like ``params``: the training
        computation, through ``units`` (equal to ``trace`` up to BLAS summation order, without
        per-layer outputs or dL/dx).

        ``check=False`` skips validating x and y, for callers that validated them already
        (``fit`` checks the whole training set once).
        """
        if check:
            self.check_inputs(x, y)
        self.set_masks(x)
        for unit in self.units:
            x = unit.call(x)
        loss, dlogits = self.compute_loss(x, y)
        backward(self.units, dlogits, input_grad=False)
        return loss + self._add_penalty_grads(), self.grads

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes) for inputs x (N, *input_shape), through ``units``."""
        self.check_inputs(x)
        return self._logits(x)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000, *,
                 check: bool = True) -> tuple[float, float]:
        """(mean loss, accuracy) over x (N, *input_shape), y (N,), in batches of ``batch_size``
        through ``units``; ``check=False`` as in ``loss_and_grads``."""
        if check:
            self.check_inputs(x, y)
        batch_size = check_positive_int("Sequential.evaluate", "batch_size", batch_size)
        total_loss, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            logits = self._logits(xb)
            loss, _ = self.compute_loss(logits, yb)
            total_loss += loss * len(xb)
            correct += int((logits.argmax(axis=1) == yb).sum())
        return total_loss / len(x), correct / len(x)

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Predicted classes (N,) int64 of x (N, *input_shape), in batches of ``batch_size``."""
        self.check_inputs(x)
        batch_size = check_positive_int("Sequential.predict", "batch_size", batch_size)
        return np.concatenate([self._logits(x[s:s + batch_size]).argmax(axis=1)
                               for s in range(0, len(x), batch_size)])

    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts."""
        rows = [("layer", "type", "output shape", "params")]
        for layer in self.layers:
            count = sum(v.size for v in layer.params.values())
            rows.append((layer.name, type(layer).__name__,
                         str((None, *self.output_shapes[layer.name])),
                         str(count)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        total = sum(v.size for v in self.params.values())
        return "\n".join(lines + [f"total params: {total} ({self.dtype.name})"])


def _linear() -> list[Layer]:
    return [Flatten(name="flatten"), Dense(NUM_CLASSES, name="logits")]


def _mlp1() -> list[Layer]:
    return [Flatten(name="flatten"), Dense(32, name="hidden1"), ReLU(name="hidden1_relu"),
            Dense(NUM_CLASSES, name="logits")]


def _mlp2() -> list[Layer]:
    return [Flatten(name="flatten"), Dense(32, name="hidden1"), ReLU(name="hidden1_relu"),
            Dense(32, name="hidden2"), ReLU(name="hidden2_relu"), Dense(NUM_CLASSES, name="logits")]


def _cnn() -> list[Layer]:
    return [
        Conv2D(8, 3, strides=1, padding="same", name="conv1"), ReLU(name="conv1_relu"),
        MaxPool2D(2, strides=2, padding="same", name="pool1"),
        Conv2D(8, 3, padding="same", name="conv2"), ReLU(name="conv2_relu"),
        MaxPool2D(2, strides=2, padding="same", name="pool2"),
        Flatten(name="flatten"),
        Dense(32, name="hidden1"), ReLU(name="hidden1_relu"),
        Dense(NUM_CLASSES, name="logits"),
    ]


def _cnn_bn() -> list[Layer]:
    """The cnn with BatchNormalization between each convolution and its ReLU (the convolutions
    lose their bias, which the normalization would cancel) and Dropout(0.5) before the logits."""
    return [
        Conv2D(8, 3, strides=1, padding="same", use_bias=False, name="conv1"),
        BatchNormalization(name="bn1"), ReLU(name="conv1_relu"),
        MaxPool2D(2, strides=2, padding="same", name="pool1"),
        Conv2D(8, 3, padding="same", use_bias=False, name="conv2"),
        BatchNormalization(name="bn2"), ReLU(name="conv2_relu"),
        MaxPool2D(2, strides=2, padding="same", name="pool2"),
        Flatten(name="flatten"),
        Dense(32, name="hidden1"), ReLU(name="hidden1_relu"),
        Dropout(0.5, name="dropout"),
        Dense(NUM_CLASSES, name="logits"),
    ]


# Sequential MNIST: each image read as a sequence of 28 rows (time steps) of 28 pixels.
SEQUENCE_UNITS = 64


def _rows() -> Reshape:
    return Reshape(IMAGE_SHAPE[:2], name="rows")


def _rnn() -> list[Layer]:
    return [_rows(), SimpleRNN(SEQUENCE_UNITS, name="rnn"), Dense(NUM_CLASSES, name="logits")]


def _lstm() -> list[Layer]:
    return [_rows(), LSTM(SEQUENCE_UNITS, name="lstm"), Dense(NUM_CLASSES, name="logits")]


def _gru() -> list[Layer]:
    return [_rows(), GRU(SEQUENCE_UNITS, name="gru"), Dense(NUM_CLASSES, name="logits")]


def _tokens() -> list[Layer]:
    """Padded token sequences (``scratch.data.tokens``): the Embedding masks the padding, the
    LSTM skips it."""
    return [Embedding(tokens.VOCABULARY, 16, mask_zero=True, name="embedding"),
            LSTM(32, name="lstm"), Dense(NUM_CLASSES, name="logits")]


MODELS: dict[str, Callable[[], list[Layer]]] = {
    "linear": _linear, "mlp1": _mlp1, "mlp2": _mlp2, "cnn": _cnn, "cnn_bn": _cnn_bn,
    "rnn": _rnn, "lstm": _lstm, "gru": _gru, "tokens": _tokens,
}
# Per-example inputs of the models that do not read MNIST images (MNIST_INPUT_SHAPE).
INPUT_SHAPES = {"tokens": (tokens.STEPS,)}
IMAGE_MODELS = tuple(name for name in MODELS if name not in INPUT_SHAPES)


def build(name: str, seed: int = 0, dtype="float32") -> Sequential:
    """One of the models of ``MODELS``: images (N, 28, 28, 1) -> 10 logits, or for ``tokens``
    padded token sequences (N, 20) -> 10 logits."""
    if name not in MODELS:
        raise ValueError(f"build: expected a model name in {list(MODELS)}, received {name!r}.")
    return Sequential(MODELS[name](), INPUT_SHAPES.get(name, MNIST_INPUT_SHAPE), seed=seed,
                      dtype=dtype)
