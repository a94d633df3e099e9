"""Mini-batch training with a replayable batch order and a history of evaluations.

The loop is written against a small protocol so that another implementation (the TensorFlow
twin) can be driven through the identical batches:

    trainer.train_step(x_batch, y_batch) -> float    # one update; returns the batch loss
    trainer.evaluate(x, y) -> (loss, accuracy)

A trainer whose ``steps_per_call`` attribute is above 1 is handed up to that many consecutive
batches of one size at once, stacked, and returns their losses (the last may be the first
non-finite one):

    trainer.train_steps(x_batches (K, B, ...), y_batches (K, B)) -> losses (k,), k <= K
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple, Protocol

import numpy as np

from scratch import threads
from scratch.checks import check_positive_int
from scratch.memory import retain_freed_memory
from scratch.models import Sequential
from scratch.optim import SGD, Optimizer


class Trainer(Protocol):
    def train_step(self, x: np.ndarray, y: np.ndarray) -> float: ...
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]: ...


class Batch(NamedTuple):
    epoch: int            # 0-based
    step: int             # 1-based global step after this batch
    indices: np.ndarray   # (batch,) row indices into the training set


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffle of epoch ``epoch``: a permutation of range(n), a pure function of (seed,
    epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_schedule(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[Batch]:
    """Every batch of a run in order; the last batch of an epoch may be smaller."""
    step = 0
    for epoch in range(epochs):
        order = epoch_permutation(n, seed, epoch)
        for start in range(0, n, batch_size):
            step += 1
            yield Batch(epoch, step, order[start:start + batch_size])


@dataclass
class History:
    """Evaluation records of a run, one dict per evaluation (the first before any step).

    Each record: samples_seen, step, epoch (fractional), train_loss (mean batch loss since the
    previous record; NaN at step 0), ``<set>_loss`` and ``<set>_accuracy`` per evaluation set,
    train_time and eval_time (cumulative seconds, kept apart), diverged.
    """

    records: list = field(default_factory=list)
    diverged: bool = False

    def column(self, key: str) -> np.ndarray:
        return np.array([r[key] for r in self.records], dtype=float)


class ScratchTrainer:
    """A scratch model with an optimizer of ``scratch.optim``, implementing the ``Trainer``
    protocol. Steps run ``Sequential.loss_and_grads`` (the fused units); the caller validates
    the data once (``fit`` does), so batches are not checked again. Steps and evaluations run
    with the BLAS threads of their phase (``scratch.threads``)."""

    def __init__(self, model: Sequential, optimizer: Optimizer, eval_batch_size: int = 1000):
        self.model, self.optimizer, self.eval_batch_size = model, optimizer, eval_batch_size
        retain_freed_memory()

    def train_step(self, x, y):
        threads.use("step")
        loss, grads = self.model.loss_and_grads(x, y, check=False)
        self.optimizer.step(self.model.params, grads)
        return loss

    def evaluate(self, x, y):
        threads.use("eval")
        return self.model.evaluate(x, y, self.eval_batch_size, check=False)


def _calls(schedule: Iterator[Batch], steps_per_call: int, eval_every: int
           ) -> Iterator[list[Batch]]:
    """The schedule's batches grouped into the trainer's calls: consecutive batches of one size,
    at most ``steps_per_call`` of them, a group ending where an evaluation is due."""
    chunk: list[Batch] = []
    samples, next_eval = 0, eval_every  # as ``run`` counts them
    for batch in schedule:
        if chunk and len(batch.indices) != len(chunk[0].indices):
            yield chunk
            chunk = []
        chunk.append(batch)
        samples += len(batch.indices)
        due = samples >= next_eval
        if due:
            next_eval += eval_every
        if due or len(chunk) == steps_per_call:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(trainer: Trainer, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int = 100,
        seed: int = 0, eval_every: int = 20000, eval_sets: dict | None = None,
        on_record: Callable[[dict], None] | None = None,
        observe: Callable[[], dict] | None = None) -> History:
    """Train ``trainer`` on (x (N, ...), y (N,)) and evaluate every ``eval_every`` samples.

    Evaluations happen before the first step, each time ``eval_every`` more samples were seen and
    after the last step. A non-finite batch loss stops the run and marks the history diverged.
    Only ``train_step`` is inside the training timer (batch gathering is not). ``observe()``, if
    given, is called at each evaluation and its dict merged into the record (e.g. a projection of
    the weights, ``reports.experiment.drift``); its time is in neither timer.
    """
    epochs = check_positive_int("fit", "epochs", epochs)
    batch_size = check_positive_int("fit", "batch_size", batch_size)
    eval_every = check_positive_int("fit", "eval_every", eval_every)
    eval_sets = eval_sets or {}
    history = History()
    clock = {"train": 0.0, "eval": 0.0}
    state = {"samples": 0, "step": 0, "losses": []}

    def record() -> None:
        start = time.perf_counter()
        entry = {"samples_seen": state["samples"], "step": state["step"],
                 "epoch": state["samples"] / len(x),
                 "train_loss": float(np.mean(state["losses"])) if state["losses"] else math.nan}
        for set_name, (xs, ys) in eval_sets.items():
            entry[f"{set_name}_loss"], entry[f"{set_name}_accuracy"] = trainer.evaluate(xs, ys)
        clock["eval"] += time.perf_counter() - start
        if observe is not None:
            entry.update(observe())
        entry.update(train_time=clock["train"], eval_time=clock["eval"], diverged=history.diverged)
        history.records.append(entry)
        state["losses"] = []
        if on_record is not None:
            on_record(entry)

    record()
    next_eval = eval_every
    for chunk in _calls(batch_schedule(len(x), batch_size, epochs, seed),
                        getattr(trainer, "steps_per_call", 1), eval_every):
        start = time.perf_counter()
        if len(chunk) == 1:
            losses = [trainer.train_step(x[chunk[0].indices], y[chunk[0].indices])]
        else:
            indices = np.stack([batch.indices for batch in chunk])
            losses = trainer.train_steps(x[indices], y[indices])
        clock["train"] += time.perf_counter() - start
        for batch, loss in zip(chunk, losses):
            state["samples"] += len(batch.indices)
            state["step"] = batch.step
            state["losses"].append(float(loss))
            if not math.isfinite(loss):
                history.diverged = True
                record()
                return history
            if state["samples"] >= next_eval:
                record()
                next_eval += eval_every
    if history.records[-1]["samples_seen"] != state["samples"]:
        record()
    return history


def fit(model: Sequential, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float,
        batch_size: int = 100, seed: int = 0, eval_every: int = 20000,
        eval_sets: dict | None = None, on_record: Callable[[dict], None] | None = None) -> History:
    """Train a scratch model with plain SGD; see ``run`` for the schedule and the history.

    Args:
        model: a ``Sequential``; trained in place.
        x: training images (N, *model.input_shape) of the model's dtype; y: labels (N,).
        epochs, lr, batch_size, seed: the run; ``seed`` fixes the per-epoch shuffles.
        eval_sets: name -> (images, labels) evaluated at every record, e.g. {"train": ..., "test":
        ...}.
    """
    model.check_inputs(x, y)
    for _set_name, (xs, ys) in (eval_sets or {}).items():
        model.check_inputs(xs, ys)
    trainer = ScratchTrainer(model, SGD(lr))
    return run(trainer, x, y, epochs=epochs, batch_size=batch_size, seed=seed,
               eval_every=eval_every, eval_sets=eval_sets, on_record=on_record)
