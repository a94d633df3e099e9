"""User sequence layers and the masked sequence loss, declared as the Keras layers they equal.

``Embedding``, ``SimpleRNN``, ``LSTM`` and ``GRU`` take CS231n's function pairs
(``word_embedding_forward(x, W)``, ``rnn_forward(x, h0, Wx, Wh, b)``, ``lstm_forward``, ...) or
objects in PyTorch's style; the per-step affine layer (``temporal_affine_forward``) is
``reference_tf.own.Dense`` on (N, T, D) inputs. A recurrent layer's conventions
(``RecurrentConventions``: gate order, one or two biases, (in, out) or (out, in) weights,
time-major data, an initial state passed in) are converted in ``reference_tf.own.conventions``.
A function pair that takes an initial state gets zeros (N, units), as Keras starts from.

``SequenceLoss(fn, reduction)`` is CS231n's ``temporal_softmax_loss(x, y, mask)``: softmax
cross-entropy of logits (N, T, V) and labels (N, T), the mask being the labels that are not
the padding index, with the declared divisor:

- ``"batch"``: the sum over the N*T steps divided by N (CS231n);
- ``"steps"``: divided by N*T (Keras's loss with ``sample_weight=mask``);
- ``"valid_steps"``: divided by the number of unmasked steps (a mask Keras propagates).
"""

from __future__ import annotations

import numpy as np

from reference_tf.loss import Loss
from reference_tf.own.conventions import (
    RecurrentConventions,
    recurrent_params_from_user,
    recurrent_params_to_user,
    sequence_from_user,
    sequence_to_user,
)
from reference_tf.own.layers import Functions, OwnLayer
from scratch import sequence_layers
from scratch.checks import check_bool, check_labels, check_positive_int

SEQUENCE_REDUCTIONS = ("batch", "steps", "valid_steps")


class Embedding(OwnLayer):
    """A user lookup table declared as ``keras.layers.Embedding(input_dim, output_dim)``
    (without a mask): integer indices (N, T) -> (N, T, output_dim). Parameter: "embeddings"
    (input_dim, output_dim), named ``name_of_table`` (CS231n's ``W``). The backward pass returns
    the table's gradient only (CS231n's ``word_embedding_backward``)."""

    keras_class = "Embedding"
    input_rank = 1
    takes_indices = True
    input_grad = False

    def __init__(self, impl, input_dim: int, output_dim: int, name: str | None = None,
                 name_of_table: str = "W", **conventions):
        super().__init__(impl, name, **conventions)
        self.input_dim = check_positive_int(self.owner, "input_dim", input_dim)
        self.output_dim = check_positive_int(self.owner, "output_dim", output_dim)
        self.table = name_of_table

    def config(self):
        return {"input_dim": self.input_dim, "output_dim": self.output_dim}

    @property
    def param_names(self):
        return {"embeddings": self.table}

    def check_input_array(self, x):
        sequence_layers.check_indices(self.owner, x, self.input_dim)

    def output_shape_for(self, input_shape):
        return (*input_shape, self.output_dim)

    def twin_stack(self):
        return [("Embedding", self.config())]

    def params_to_keras(self, params):
        return {"embeddings": np.asarray(params[self.table])}

    def params_from_keras(self, arrays):
        return {self.table: np.array(arrays["embeddings"])}

    def keras_init(self, input_shape, rng):
        return _scratch_init(sequence_layers.Embedding(self.input_dim, self.output_dim),
                             input_shape, rng, self.dtype)


def _scratch_init(layer, input_shape, rng, dtype) -> dict:
    """Keras's initial values, as tfparity's own layer of the same kind draws them."""
    layer.build(tuple(input_shape), rng, dtype)
    return dict(layer.params)


class Recurrent(OwnLayer):
    """What the user's SimpleRNN, LSTM and GRU share: input (N, T, D), output (N, T, units)
    (``return_sequences``, CS231n's ``h``) or (N, units); parameters "kernel" (Wx),
    "recurrent_kernel" (Wh), "bias" (b) and with two biases "recurrent_bias", in the declared
    ``RecurrentConventions`` (keywords ``gate_order``, ``biases``, ``weight_layout``,
    ``time_major``, ``initial_state``, ``names``)."""

    input_rank = 2
    cell = ""  # a key of reference_tf.own.conventions.KERAS_GATES
    scratch_class = None

    def __init__(self, impl, units: int, return_sequences: bool = True,
                 name: str | None = None, *, gate_order: str | None = None, biases: int = 1,
                 weight_layout: str = "IO", time_major: bool = False,
                 initial_state: bool = True, names: dict | None = None, **conventions):
        super().__init__(impl, name, **conventions)
        self.units = check_positive_int(self.owner, "units", units)
        self.return_sequences = check_bool(self.owner, "return_sequences", return_sequences)
        self.initial_state = check_bool(self.owner, "initial_state", initial_state)
        self.recurrent = RecurrentConventions(gate_order, biases, weight_layout, time_major,
                                              names)
        self.recurrent.gates(self.cell)  # a wrong gate order fails here, at the declaration
        takes_state = isinstance(self.impl, Functions) and self.initial_state
        self.extra_inputs = ("h0",) if takes_state else ()

    @property
    def split_bias(self) -> bool:
        return False

    def config(self):
        return {"units": self.units, "return_sequences": self.return_sequences}

    @property
    def declaration(self):
        base = super().declaration
        return base._replace(config={**base.config, **self.recurrent.to_dict()})

    @property
    def param_names(self):
        return dict(self.recurrent.names)

    def check_input_channels(self, input_shape):
        kernel = self.params.get(self.recurrent.names["kernel"])
        if kernel is not None:
            expected = kernel.shape[self.recurrent.weight_layout.index("I")]
            if input_shape[1] != expected:
                raise ValueError(f"{self.owner}: expected {expected} features per step, "
                                 f"received per-example input shape {tuple(input_shape)}.")

    def output_shape_for(self, input_shape):
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def twin_stack(self):
        return [(self.keras_class, self.config())]

    def params_to_keras(self, params):
        return recurrent_params_from_user(self.cell, params, self.recurrent, self.split_bias)

    def params_from_keras(self, arrays):
        return recurrent_params_to_user(self.cell, arrays, self.recurrent, self.split_bias)

    def keras_bias_parts(self, params: dict) -> tuple:
        """(input part, recurrent part) of the twin's bias in Keras's layout; the recurrent
        part is zero with one bias."""
        bias = self.params_to_keras(params)["bias"]
        if self.recurrent.biases == 1 or self.split_bias:
            return bias, np.zeros_like(bias)
        only = dict(params, **{self.recurrent.names["recurrent_bias"]: np.zeros_like(
            params[self.recurrent.names["recurrent_bias"]])})
        inputs = self.params_to_keras(only)["bias"]
        return inputs, bias - inputs

    def keras_init(self, input_shape, rng):
        return _scratch_init(self.scratch_layer(), input_shape, rng, self.dtype)

    def scratch_layer(self):
        return self.scratch_class(self.units, return_sequences=self.return_sequences)

    def extra_values(self, x):
        return (np.zeros((x.shape[0], self.units), dtype=self.dtype),) if self.extra_inputs \
            else ()

    def to_user(self, x):
        return sequence_to_user(x, self.recurrent.time_major)

    def from_user(self, y):
        return sequence_from_user(y, self.recurrent.time_major)


class SimpleRNN(Recurrent):
    """A user vanilla RNN declared as ``keras.layers.SimpleRNN(units)``: h_t = tanh(x_t Wx +
    h_{t-1} Wh + b) from h_0 = 0 (CS231n's ``rnn_forward(x, h0, Wx, Wh, b)``)."""

    keras_class = "SimpleRNN"
    cell = "simple_rnn"
    scratch_class = sequence_layers.SimpleRNN


class LSTM(Recurrent):
    """A user LSTM declared as ``keras.layers.LSTM(units)``; CS231n's ``lstm_forward`` has
    ``gate_order="ifog"``, PyTorch's ``nn.LSTM`` ``gate_order="ifgo", biases=2,
    weight_layout="OI"``."""

    keras_class = "LSTM"
    cell = "lstm"
    scratch_class = sequence_layers.LSTM


class GRU(Recurrent):
    """A user GRU declared as ``keras.layers.GRU(units, reset_after=...)``; PyTorch's
    ``nn.GRU`` is ``reset_after=True, gate_order="rzn", biases=2, weight_layout="OI"``. With
    ``reset_after`` and two biases, they are the rows of Keras's (2, 3U) bias; with one, the
    bias is that (2, 3U) array."""

    keras_class = "GRU"
    cell = "gru"

    def __init__(self, impl, units: int, return_sequences: bool = True, reset_after: bool = True,
                 name: str | None = None, **settings):
        self.reset_after = check_bool("GRU", "reset_after", reset_after)
        super().__init__(impl, units, return_sequences, name, **settings)

    @property
    def split_bias(self):
        return self.reset_after

    def config(self):
        return {**super().config(), "reset_after": self.reset_after}

    def scratch_layer(self):
        return sequence_layers.GRU(self.units, return_sequences=self.return_sequences,
                                   reset_after=self.reset_after)


class SequenceLoss(Loss):
    """Softmax cross-entropy of logits (N, T, V) and labels (N, T), masked where the label is
    ``pad``, as the user computes it: ``loss, dlogits = fn(logits, labels, mask)`` (CS231n's
    ``temporal_softmax_loss``), with the declared ``reduction`` (see the module)."""

    per_step = True

    def __init__(self, fn, reduction: str = "batch", pad: int = 0):
        if not callable(fn):
            raise TypeError(f"SequenceLoss: expected fn to be a function (logits, labels, mask) "
                            f"-> (loss, dlogits), received {type(fn).__name__}.")
        if reduction not in SEQUENCE_REDUCTIONS:
            raise ValueError(f"SequenceLoss: expected reduction in {SEQUENCE_REDUCTIONS}, "
                             f"received reduction={reduction!r}.")
        if isinstance(pad, bool) or not isinstance(pad, int):
            raise ValueError(f"SequenceLoss: expected pad to be an integer label, received "
                             f"pad={pad!r}.")
        self.fn, self.reduction, self.pad = fn, reduction, pad

    @property
    def label(self) -> str:
        return f"SequenceSoftmaxCrossEntropy ({self.reduction})"

    @property
    def settings(self) -> dict:
        return {"reduction": self.reduction, "pad": self.pad}

    def arguments(self, logits: np.ndarray, labels: np.ndarray) -> tuple:
        return logits, labels, labels != self.pad

    def check_labels(self, labels, n: int, steps: int, classes: int) -> None:
        """Labels (n, steps) of integers in [0, classes)."""
        if not isinstance(labels, np.ndarray) or labels.shape != (n, steps):
            shape = getattr(labels, "shape", type(labels).__name__)
            raise ValueError(f"SequenceLoss: expected labels of shape ({n}, {steps}) (N, T), "
                             f"received {shape}.")
        check_labels("SequenceLoss", labels.ravel(), n * steps, classes)

    def keras(self, dtype: str):
        """Keras's sparse softmax cross-entropy from logits with ``sample_weight=mask``: summed
        and divided by N ("batch") or by the unmasked count ("valid_steps"), or with Keras's own
        mean over the N*T steps ("steps")."""
        import keras
        from keras import ops

        reduction = "sum_over_batch_size" if self.reduction == "steps" else "sum"
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction,
                                                          dtype=dtype)

        def value(labels, logits):
            mask = ops.cast(ops.not_equal(labels, self.pad), dtype)
            total = loss(labels, logits, sample_weight=mask)
            if self.reduction == "batch":
                return total / ops.cast(ops.shape(logits)[0], dtype)
            if self.reduction == "valid_steps":
                return total / ops.maximum(ops.sum(mask), 1.0)
            return total

        return value
