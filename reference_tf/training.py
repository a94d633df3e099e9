"""The TensorFlow side of training: a compiled SGD step implementing ``scratch.train.Trainer``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from reference_tf.reproducible import use_reproducible_kernels
from scratch.optim import SGD


def _cross_entropy_per_example(logits, labels):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


class KerasTrainer:
    """Plain SGD on a Keras model with a compiled ``tf.function`` step (no XLA).

    ``train_step(x (N, ...), y (N,)) -> float`` does forward, backward and
    ``var -= lr * grad`` exactly as ``scratch.optim.SGD``; ``evaluate(x, y) -> (loss, accuracy)``
    runs a compiled forward pass in batches of ``eval_batch_size``.
    """

    def __init__(self, model: keras.Model, lr: float, eval_batch_size: int = 1000):
        use_reproducible_kernels()
        self.model = model
        self.lr = SGD(lr).lr  # same validation of the learning rate as the scratch side
        self.eval_batch_size = eval_batch_size
        dtype = model.inputs[0].dtype
        variables = model.trainable_variables
        lr_tensor = tf.constant(self.lr, dtype=dtype)
        signature = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), dtype),
                     tf.TensorSpec((None,), tf.int64)]

        @tf.function(input_signature=signature, jit_compile=False)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(_cross_entropy_per_example(model(x, training=True), y))
            for variable, grad in zip(variables, tape.gradient(loss, variables)):
                variable.assign_sub(lr_tensor * grad)
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
