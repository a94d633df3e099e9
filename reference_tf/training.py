"""The TensorFlow side of training: a compiled step with the Keras optimizer matching a scratch
one, implementing ``scratch.train.Trainer``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from reference_tf.reproducible import use_reproducible_kernels
from reference_tf.twin import keras_params
from scratch import optim
from scratch.checks import check_positive_int

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
    plus the model's regularization losses) and ``optimizer.apply``, one compiled call per step
    (as ``fit`` does by default). ``train_steps(xs (K, N, ...), ys (K, N)) -> losses (k,)`` runs
    up to K such steps in one compiled call, the batches in order (as
    ``fit(steps_per_execution=K)`` does): the same step in a ``tf.while_loop``, which stops
    after the first non-finite loss (k <= K), so that the weights are those after that step,
    as with ``train_step``. It saves Python's dispatch of one call per step.
    ``evaluate(x, y) -> (loss, accuracy)`` runs a compiled forward pass in batches of
    ``eval_batch_size``. ``optimizer`` is the Keras optimizer: set
    ``trainer.optimizer.learning_rate`` to change the rate between calls, as in Keras.

    Args:
        model: a Keras model with one input.
        optimizer: the ``scratch.optim`` optimizer whose Keras twin trains it.
        eval_batch_size: images per compiled evaluation call.
        steps_per_call: the most steps ``scratch.train.run`` hands ``train_steps`` at once
            (1: it calls ``train_step`` for every batch).
    """

    def __init__(self, model: keras.Model, optimizer: optim.Optimizer,
                 eval_batch_size: int = 1000, steps_per_call: int = 1):
        use_reproducible_kernels()
        self.model = model
        self.eval_batch_size = eval_batch_size
        self.steps_per_call = check_positive_int("KerasTrainer", "steps_per_call",
                                                 steps_per_call)
        variables = model.trainable_variables
        dtype = variables[0].dtype  # the parameters' (the input's may be integer tokens)
        self.optimizer = keras_optimizer(optimizer, dtype)
        self.optimizer.build(variables)
        signature = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype),
                     tf.TensorSpec((None,), tf.int64)]

        def one_step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(_cross_entropy_per_example(model(x, training=True), y))
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        step = tf.function(one_step, input_signature=signature, jit_compile=False)

        @tf.function(input_signature=[tf.TensorSpec((None, *spec.shape), spec.dtype)
                                      for spec in signature], jit_compile=False)
        def steps(xs, ys):
            def body(i, losses, _finite):
                loss = one_step(xs[i], ys[i])
                return i + 1, losses.write(i, loss), tf.math.is_finite(loss)

            count = tf.shape(xs)[0]
            _, losses, _ = tf.while_loop(
                lambda i, _losses, finite: tf.logical_and(i < count, finite), body,
                (tf.constant(0), tf.TensorArray(dtype, size=0, dynamic_size=True),
                 tf.constant(True)))
            return losses.stack()

        @tf.function(input_signature=signature, jit_compile=False)
        def evaluate_batch(x, y):
            logits = model(x, training=False)
            loss_sum = tf.reduce_sum(_cross_entropy_per_example(logits, y))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), y), tf.int64))
            return loss_sum, correct

        self._step, self._steps, self._evaluate_batch = step, steps, evaluate_batch

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(self._step(x, y.astype(np.int64, copy=False)))

    def train_steps(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """The losses (k,) of up to K steps on the batches xs (K, N, ...), ys (K, N), in one
        compiled call; k < K only if the k-th loss is not finite."""
        return self._steps(xs, ys.astype(np.int64, copy=False)).numpy()

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
