"""The TensorFlow side of training: a compiled step with the Keras optimizer matching a scratch
one, implementing ``scratch.train.Trainer``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from reference_tf.reproducible import use_reproducible_kernels
from reference_tf.twin import keras_params
from scratch import optim

KERAS_OPTIMIZERS = {
    optim.SGD: keras.optimizers.SGD, optim.RMSprop: keras.optimizers.RMSprop,
    optim.Adam: keras.optimizers.Adam, optim.AdamW: keras.optimizers.AdamW,
}


def _cross_entropy_per_example(logits, labels):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def keras_optimizer(optimizer: optim.Optimizer, dtype: str) -> keras.optimizers.Optimizer:
    """The ``keras.optimizers`` optimizer of the same class and settings as a scratch optimizer.

    Keras holds the learning rate in a variable of ``keras.config.floatx()`` (float32 by
    default), which would round a float64 model's rate to float32; the variable is created in
    ``dtype`` instead, the rate the scratch optimizer uses for parameters of that dtype.

    Args:
        optimizer: a ``scratch.optim`` SGD, RMSprop, Adam or AdamW.
        dtype: the model's dtype, "float32" or "float64".
    """
    keras_class = KERAS_OPTIMIZERS.get(type(optimizer))
    if keras_class is None:
        raise TypeError(f"keras_optimizer: expected one of "
                        f"{sorted(cls.__name__ for cls in KERAS_OPTIMIZERS)}, received "
                        f"{type(optimizer).__name__}.")
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        return keras_class(**optimizer.get_config())
    finally:
        keras.config.set_floatx(previous)


class KerasTrainer:
    """A Keras model trained by the Keras optimizer matching a scratch optimizer, with a compiled
    ``tf.function`` step (no XLA).

    ``train_step(x (N, ...), y (N,)) -> float`` runs forward, backward (the mean cross-entropy
    plus the model's regularization losses) and ``optimizer.apply``; ``evaluate(x, y) -> (loss,
    accuracy)`` runs a compiled forward pass in batches of ``eval_batch_size``. ``optimizer`` is
    the Keras optimizer: set ``trainer.optimizer.learning_rate`` to change the rate between
    steps, as in Keras.
    """

    def __init__(self, model: keras.Model, optimizer: optim.Optimizer,
                 eval_batch_size: int = 1000):
        use_reproducible_kernels()
        self.model = model
        self.eval_batch_size = eval_batch_size
        variables = model.trainable_variables
        # the parameters' dtype (the input's may be integer tokens)
        self.optimizer = keras_optimizer(optimizer, variables[0].dtype)
        self.optimizer.build(variables)
        signature = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype),
                     tf.TensorSpec((None,), tf.int64)]

        @tf.function(input_signature=signature, jit_compile=False)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(_cross_entropy_per_example(model(x, training=True), y))
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        @tf.function(input_signature=signature, jit_compile=False)
        def evaluate_batch(x, y):
            logits = model(x, training=False)
            loss_sum = tf.reduce_sum(_cross_entropy_per_example(logits, y))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), y), tf.int64))
            return loss_sum, correct

        self._step, self._evaluate_batch = step, evaluate_batch

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self._step(x, y.astype(np.int64, copy=False)))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        total_loss, correct = 0.0, 0
        for start in range(0, len(x), self.eval_batch_size):
            loss_sum, hits = self._evaluate_batch(
                x[start:start + self.eval_batch_size],
                y[start:start + self.eval_batch_size].astype(np.int64, copy=False))
            total_loss += float(loss_sum)
            correct += int(hits)
        return total_loss / len(x), correct / len(x)



def keras_optimizer_variables(optimizer: keras.optimizers.Optimizer,
                              model: keras.Model) -> dict[str, dict[str, keras.Variable]]:
    """A Keras optimizer's per-variable state keyed like ``scratch.optim.Optimizer.state``:
    slot ("momentum", "velocity", ...) -> {"<layer>/<variable>" -> the Keras variable}.

    Keras names the state of variable ``v`` in slot ``s`` ``f"{v.path with '/' -> '_'}_{s}"``.
    """
    named = {variable.name: variable for variable in optimizer.variables}
    state: dict[str, dict[str, keras.Variable]] = {}
    for key, variable in keras_params(model).items():
        prefix = variable.path.replace("/", "_") + "_"
        for name, slot_variable in named.items():
            if name.startswith(prefix):
                state.setdefault(name[len(prefix):], {})[key] = slot_variable
    return state
