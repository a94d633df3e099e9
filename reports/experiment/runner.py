"""Training one of the report's runs (``train_one``) and the store of finished runs (``RunStore``).

A run's result is a JSON file in ``<out>/runs/`` named after its ``RunSpec`` (whose key hashes
the exact configuration), written atomically; a run whose file exists is not run again, so
re-running a command resumes it and Ctrl-C loses nothing already finished. Which runs execute
where is ``reports.experiment.sweep``'s business.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from reports.environment import load_average
from reports.errors import BadInput
from reports.experiment.datasets import Splits
from reports.experiment.drift import WeightProjection
from reports.experiment.protocol import RunSpec, steps_per_run
from reports.experiment.trainers import Side, make_trainer
from reports.files import run_schema
from reports.files.disk_errors import DiskError
from reports.files.records import write_json_atomic
from scratch import threads
from scratch.models import build
from scratch.optim import SGD
from scratch.train import run


class RunStore:
    """Finished runs under ``<root>/runs``: ``load(spec)`` (None if absent), ``save(spec,
    result)``.

    A file at a run's place that is not a run of its spec (not JSON, another schema,
    ``reports.files.run_schema``; a directory) is moved to ``<root>/runs/rejected/`` with one
    line on stderr, and the run is trained again.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / "runs"

    def path(self, spec: RunSpec) -> Path:
        return self.dir / spec.filename

    def load(self, spec: RunSpec) -> dict | None:
        path = self.path(spec)
        if not path.exists():
            return None
        result = None
        if path.is_dir():
            problem = "is a directory"
        else:
            try:
                result = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                problem = f"cannot be read as JSON ({error})"
            else:
                problem = run_schema.problem(result, spec)
        if problem is None:
            return result
        self.set_aside(path, problem)
        return None

    def set_aside(self, path: Path, problem: str) -> None:
        """Move the file (or directory) at a run's ``path`` to ``rejected/``, saying why."""
        aside = self.dir / "rejected" / path.name
        for number in itertools.count(1):
            if not aside.exists():
                break
            aside = aside.with_name(f"{path.name}.{number}")
        try:
            aside.parent.mkdir(exist_ok=True)
            os.rename(path, aside)
        except FileNotFoundError:
            return  # another report process on this directory set it aside first
        except OSError as error:
            raise BadInput(f"run file {path} {problem}; it cannot be moved aside "
                           f"({error.strerror}): delete it and run the command again.") from None
        print(f"tfparity report: run file {path.name} {problem}; moved to {aside}, the run is "
              "trained again.", file=sys.stderr, flush=True)

    def save(self, spec: RunSpec, result: dict) -> None:
        try:
            write_json_atomic(self.path(spec), result)
        except DiskError as error:
            raise DiskError(f"saving the run {spec.label()} seed {spec.seed} "
                            f"{spec.implementation}: {error}") from error


def _weights_digest(params: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(params):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(np.asarray(params[key])).tobytes())
    return digest.hexdigest()[:16]


def spec_trainer(spec: RunSpec) -> Side:
    """The trainer of one run (``trainers.make_trainer``): plain SGD at the run's rate,
    TensorFlow's steps called as the protocol's ``tf_loop`` says; both implementations start
    from the weights ``scratch.models.build(model, seed)`` draws."""
    model = build(spec.model, seed=spec.seed, dtype=spec.protocol.dtype)
    return make_trainer(model, spec.implementation, SGD(spec.lr), spec.protocol.eval_batch_size,
                        steps_per_call=spec.protocol.steps_per_call)


def load_average_1min() -> float | None:
    averages = load_average()
    return None if averages is None else averages[0]


def thread_settings(implementation: str, since: dict | None = None) -> dict:
    """The threads a run of ``implementation`` computed with: NumPy's BLAS threads per phase,
    their rules and source, and how often each count ran a phase since the usage snapshot
    ``since`` (``scratch.threads``); or TensorFlow's pools (``reference_tf.threads``)."""
    if implementation == "numpy":
        blas = threads.describe(since)
        return {key: blas[key] for key in ("source", "rules", "phases", "usage", "step_helper")}
    from reference_tf import threads as tf_threads

    return tf_threads.describe()


def train_one(spec: RunSpec, splits: Splits,
              on_record: Callable[[dict], None] | None = None) -> dict:
    """Train one run and return its result: the spec, the evaluation history and the timings.

    Each record of the history holds ``weight_projection``: the run's parameters projected by
    ``reports.experiment.drift.WeightProjection`` (the same projection for every seed and both
    implementations of a model), a list of PROJECTION_DIM floats.

    Timings: ``train_time`` is the sum of the training steps alone, ``eval_time`` the sum of the
    evaluations, ``setup_time`` building the model, compiling and one warm-up step and
    evaluation (undone before training: the weights are restored), ``wall_time`` all of it.
    The conditions they were taken under: ``threads`` (``thread_settings``) and the 1-minute
    load average at the start and the end. The history has a record after each of the spec's
    ``stops`` too (``stop_steps``).
    """
    load_at_start = load_average_1min()
    blas_usage = threads.policy().usage_snapshot()
    start = time.perf_counter()
    x, y = splits.train
    trainer, get_params, set_params = spec_trainer(spec)
    initial = get_params()
    projection = WeightProjection(spec.model, {k: v.shape for k, v in initial.items()})
    batch = slice(0, spec.protocol.batch_size)
    with np.errstate(all="ignore"):
        if getattr(trainer, "steps_per_call", 1) > 1:  # compiles the loop training calls
            trainer.train_steps(x[None, batch], y[None, batch])
        else:
            trainer.train_step(x[batch], y[batch])
        trainer.evaluate(*(part[:spec.protocol.eval_batch_size] for part in splits.test))
        set_params(initial)
        setup_time = time.perf_counter() - start
        history = run(trainer, x, y, epochs=spec.epochs, batch_size=spec.protocol.batch_size,
                      seed=spec.seed, eval_every=spec.protocol.eval_every,
                      eval_sets={"train_eval": splits.train_eval, "test": splits.test},
                      on_record=on_record, stops=stop_steps(spec, len(x)),
                      observe=lambda: {"weight_projection": projection(get_params()).tolist()})
    last = history.records[-1]
    steps = last["step"]
    return {
        "key": spec.key,
        "spec": spec.to_dict(),
        "diverged": history.diverged,
        "history": history.records,
        "steps": steps,
        "planned_steps": steps_per_run(spec, len(x)),
        "initial_weights_sha256": _weights_digest(initial),
        "setup_time": setup_time,
        "train_time": last["train_time"],
        "eval_time": last["eval_time"],
        "n_evaluations": len(history.records),
        "wall_time": time.perf_counter() - start,
        "ms_per_step": 1e3 * last["train_time"] / max(steps, 1),
        "s_per_epoch": last["train_time"] / max(last["epoch"], 1e-12),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "threads": thread_settings(spec.implementation, blas_usage),
        "load_average_1min_at_start": load_at_start,
        "load_average_1min_at_end": load_average_1min(),
    }


def stop_steps(spec: RunSpec, train_size: int) -> tuple[int, ...]:
    """The steps after which a run with ``stops`` (epoch counts) evaluates besides its schedule."""
    per_epoch = -(-train_size // spec.protocol.batch_size)
    return tuple(epochs * per_epoch for epochs in spec.stops)


def derive_prefix(spec: RunSpec, parent: dict) -> dict:
    """The result of ``spec`` taken from the result of a longer run of the same trajectory
    (``reports.experiment.protocol.prefix_parents``) that stopped at ``spec``'s last step: the
    parent's records up to that step (all of them if it diverged before) less those of its other
    stops, which is the history ``spec`` trained on its own records, bit for bit
    (``scratch.train.run``); the same initial weights, and the timings those records hold. Its
    ``derived_from`` names the parent's key; the parent's setup, threads and load average are
    this run's, since they are the same run.

    Raises:
        ValueError: the parent has no record at ``spec``'s last step and did not stop before it.
    """
    planned = spec.epochs * parent["planned_steps"] // parent["spec"]["epochs"]
    kept = [record for record in parent["history"] if record["step"] <= planned]
    stopped_before = parent["diverged"] and len(kept) == len(parent["history"])
    if kept[-1]["step"] != planned and not stopped_before:
        raise ValueError(f"run {spec.filename}: its parent {parent['key']} has no record at "
                         f"step {planned}.")
    history = [without_stop(record) for record in kept
               if not record.get("stop") or record["step"] == planned]
    last, steps = history[-1], history[-1]["step"]
    return {
        **{key: parent[key] for key in ("initial_weights_sha256", "setup_time", "finished_at",
                                        "threads", "load_average_1min_at_start",
                                        "load_average_1min_at_end", "execution")
           if key in parent},
        "key": spec.key,
        "spec": spec.to_dict(),
        "derived_from": parent["key"],
        "diverged": bool(last["diverged"]),
        "history": history,
        "steps": steps,
        "planned_steps": planned,
        "train_time": last["train_time"],
        "eval_time": last["eval_time"],
        "n_evaluations": len(history),
        "wall_time": parent["setup_time"] + last["train_time"] + last["eval_time"],
        "ms_per_step": 1e3 * last["train_time"] / max(steps, 1),
        "s_per_epoch": last["train_time"] / max(last["epoch"], 1e-12),
    }


def without_stop(record: dict) -> dict:
    """An evaluation record without its ``stop`` mark."""
    return {key: value for key, value in record.items() if key != "stop"}


def as_planned(result: dict) -> dict:
    """A run's result without the records of its ``stops`` (kept in its run file for the shorter
    runs taken from it): the history the run has without stops, as the report shows it."""
    history = result["history"]
    if not any(record.get("stop") for record in history):
        return result
    kept = [record for record in history if not record.get("stop")]
    return {**result, "history": kept, "n_evaluations": len(kept)}
