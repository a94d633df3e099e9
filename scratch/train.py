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


@dataclass(repr=False)
class History:
    """Evaluation records of a run, one dict per evaluation (the first before any step).

    Each record: samples_seen, step, epoch (fractional), train_loss (mean batch loss since the
    previous record; NaN at step 0), ``<set>_loss`` and ``<set>_accuracy`` per evaluation set,
    train_time and eval_time (cumulative seconds, kept apart), diverged. In a notebook a history
    displays its curves (``plot``).
    """

    records: list = field(default_factory=list)
    diverged: bool = False

    def column(self, key: str) -> np.ndarray:
        return np.array([r[key] for r in self.records], dtype=float)

    def __repr__(self) -> str:
        if not self.records:
            return "History(no evaluations)"
        last = self.records[-1]
        finals = ", ".join(f"{key} {last[key]:.4g}" for key in last
                           if key.endswith(("_loss", "_accuracy")))
        return (f"History({len(self.records)} evaluations over {last['samples_seen']} samples"
                f"{', diverged' if self.diverged else ''}; last: {finals})")

    def plot(self):
        """The loss (left) and accuracy (right) of every evaluation set, and the mean training
        batch loss, over the training samples seen. Returns a matplotlib figure."""
        import matplotlib.pyplot as plt

        samples = self.column("samples_seen") / 1e3
        fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
        for key in self.records[0] if self.records else []:
            if key.endswith("_loss") or key.endswith("_accuracy"):
                ax = loss_ax if key.endswith("_loss") else accuracy_ax
                label = ("training batches (mean)" if key == "train_loss" else
                         key.rsplit("_", 1)[0].replace("_", " "))
                ax.plot(samples, self.column(key), marker=".", label=label)
        for ax, name in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
            ax.set_xlabel("training samples seen (thousands)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=9)
        fig.suptitle("diverged: stopped at a non-finite loss" if self.diverged else
                     f"{len(self.records)} evaluations", fontsize=10)
        fig.tight_layout()
        plt.close(fig)  # shown once in a notebook: as the value of its cell
        return fig

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()


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


def _calls(schedule: Iterator[Batch], steps_per_call: int, eval_every: int,
           stops: frozenset = frozenset()) -> Iterator[list[Batch]]:
    """The schedule's batches grouped into the trainer's calls: consecutive batches of one size,
    at most ``steps_per_call`` of them, a group ending where an evaluation is due (every
    ``eval_every`` samples and after each step in ``stops``)."""
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
        if due or batch.step in stops or len(chunk) == steps_per_call:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(trainer: Trainer, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int = 100,
        seed: int = 0, eval_every: int = 20000, eval_sets: dict | None = None,
        on_record: Callable[[dict], None] | None = None,
        observe: Callable[[], dict] | None = None, stops=()) -> History:
    """Train ``trainer`` on (x (N, ...), y (N,)) and evaluate every ``eval_every`` samples.

    Evaluations happen before the first step, each time ``eval_every`` more samples were seen,
    after each step numbered in ``stops`` and after the last step. Evaluating changes no weight
    and the batch order of an epoch does not depend on how many epochs follow, so a record at a
    stop is, bit for bit, the last record of a run that ends there: it is marked ``"stop":
    True`` and, unlike the others, leaves the next record's ``train_loss`` (the mean batch loss
    since the previous record) alone. Without the stop records the history is the run's
    without stops, but for the evaluation time the stops took (in ``eval_time``). A
    non-finite batch loss stops the run and marks the history diverged.
    Only ``train_step`` is inside the training timer (batch gathering is not). ``observe()``, if
    given, is called at each evaluation and its dict merged into the record (e.g. a projection of
    the weights, ``reports.experiment.drift``); its time is in neither timer.
    """
    epochs = check_positive_int("fit", "epochs", epochs)
    batch_size = check_positive_int("fit", "batch_size", batch_size)
    eval_every = check_positive_int("fit", "eval_every", eval_every)
    stops = frozenset(check_positive_int("fit", "stops", stop) for stop in stops)
    eval_sets = eval_sets or {}
    history = History()
    clock = {"train": 0.0, "eval": 0.0}
    state = {"samples": 0, "step": 0, "losses": []}

    def record(stop: bool = False) -> None:
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
        if stop:
            entry["stop"] = True
        else:
            state["losses"] = []
        history.records.append(entry)
        if on_record is not None:
            on_record(entry)

    record()
    next_eval = eval_every
    for chunk in _calls(batch_schedule(len(x), batch_size, epochs, seed),
                        getattr(trainer, "steps_per_call", 1), eval_every, stops):
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
            elif batch.step in stops:
                record(stop=True)
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
