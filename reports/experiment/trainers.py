"""One constructor of a scratch model's trainer on either side: the NumPy engine itself
(``scratch.train.ScratchTrainer``) or its Keras twin (``reference_tf.training.KerasTrainer``).

Training runs, the benchmark, the decision phase and ``tfparity train`` all build their trainers
here, so both sides start from the same weights in the same way. TensorFlow is imported only
for the TensorFlow side.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from reports.experiment.protocol import IMPLEMENTATIONS
from scratch.models import Sequential
from scratch.optim import Optimizer
from scratch.train import ScratchTrainer


class Side(NamedTuple):
    """One implementation's trainer, and its parameters as a dict keyed like
    ``Sequential.params`` (``get_params`` returns copies; ``set_params`` takes such a dict)."""

    trainer: object
    get_params: Callable[[], dict]
    set_params: Callable[[dict], None]


def make_trainer(model: Sequential, implementation: str, optimizer: Optimizer,
                 eval_batch_size: int = 1000, steps_per_call: int = 1) -> Side:
    """The trainer of ``implementation`` ("numpy" or "tensorflow") for ``model``, starting from
    ``model``'s weights: the scratch model itself, or its Keras twin built now.
    ``steps_per_call``: TensorFlow's steps per compiled call when ``scratch.train.run`` drives
    it (``KerasTrainer``'s; 1: one call per step); NumPy's steps are one call each.

    Raises:
        ValueError: naming an unknown implementation.
    """
    if implementation == "numpy":
        trainer = ScratchTrainer(model, optimizer, eval_batch_size=eval_batch_size)
        return Side(trainer, lambda: {k: v.copy() for k, v in model.params.items()},
                    model.set_params)
    if implementation == "tensorflow":
        from reference_tf.training import KerasTrainer
        from reference_tf.twin import copy_weights, keras_params, twin

        keras_model = twin(model)
        trainer = KerasTrainer(keras_model, optimizer, eval_batch_size=eval_batch_size,
                               steps_per_call=steps_per_call)
        return Side(trainer, lambda: {k: v.numpy() for k, v in keras_params(keras_model).items()},
                    lambda values: copy_weights(values, keras_model))
    raise ValueError(f"make_trainer: expected implementation in {IMPLEMENTATIONS}, "
                     f"received {implementation!r}.")
