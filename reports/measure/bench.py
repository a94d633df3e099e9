"""Speed of the NumPy engine next to TensorFlow's compiled step, measured in one process.

For each model: the training step (forward + backward + SGD update on one batch) and evaluation
throughput (images/s over an evaluation set in batches), NumPy and TensorFlow alternating after a
warm-up, so that both see the same machine load; medians with the interquartile range, and the
NumPy/TensorFlow ratio. TensorFlow's step is timed in its two loops: one compiled call per step
(``fit``'s default), and K steps in one call (``fit(steps_per_execution=K)``), which saves
Python's dispatch of a call per step; NumPy's steps are timed beside each. Recorded too: the
BLAS threads of each NumPy phase (``scratch.threads``) and the load average before and after.
Peak memory of one step: NumPy's allocations by ``tracemalloc``; for both sides the growth of
the process's resident high-water mark (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``)
during the first full-size step, since TensorFlow's C++ allocator is invisible to
``tracemalloc``.
"""

from __future__ import annotations

import time
import tracemalloc
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from reports.environment import load_average
from reports.experiment.trainers import make_trainer
from scratch import helper, ops, threads
from scratch.data.mnist import IMAGE_SHAPE, NUM_CLASSES
from scratch.data.tokens import token_sequences
from scratch.fusion import ConvChain, backward
from scratch.models import MODELS, build
from scratch.optim import SGD
from scratch.train import ScratchTrainer

if TYPE_CHECKING:
    from reference_tf.training import KerasTrainer

SIDES = ("numpy", "tensorflow")


@dataclass
class Spread:
    """Median and interquartile range of repeated timings, in seconds."""

    median: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, seconds) -> "Spread":
        q1, median, q3 = np.percentile(np.asarray(seconds, dtype=float), [25, 50, 75])
        return cls(float(median), float(q1), float(q3), len(seconds))


@dataclass
class Settings:
    models: tuple = tuple(MODELS)
    dtype: str = "float32"
    repeat: int = 50          # timed training steps per side
    warmup: int = 5           # untimed steps per side first
    eval_repeat: int = 5      # timed evaluations of the whole evaluation set per side
    batch_size: int = 100
    eval_images: int = 10000
    eval_batch_size: int = 1000
    lr: float = 0.01
    seed: int = 0
    load: int = 0             # busy competitor processes during the measurement
    steps_per_call: int = 200  # K: TensorFlow's steps per compiled call in its k-step loop
    call_repeat: int = 5      # timed k-step calls, each beside NumPy's same K steps


def interleaved(calls: dict[str, Callable[[], object]], repeat: int, warmup: int) -> dict:
    """Time each callable ``repeat`` times, alternating them (and who goes first) after ``warmup``
    untimed rounds. Returns name -> list of seconds."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    seconds = {name: [] for name in calls}
    names = list(calls)
    for round_index in range(repeat):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            calls[name]()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_peak_growth(call: Callable[[], object]) -> float | None:
    """MiB by which the resident high-water mark rose above the resident size during ``call``;
    None where /proc/self/clear_refs is not available (not Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current VmRSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    call()
    after = _status_kib("VmHWM")
    return None if before is None or after is None else max(after - before, 0) / 1024


def tracemalloc_peak(call: Callable[[], object]) -> float:
    """MiB of the peak of Python/NumPy allocations made during ``call``."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _data(settings: Settings, name: str):
    """Random MNIST-shaped images, or token sequences for the ``tokens`` model."""
    if name == "tokens":
        return token_sequences(settings.eval_images, settings.seed)
    rng = np.random.default_rng(settings.seed)
    x = rng.random((settings.eval_images, *IMAGE_SHAPE)).astype(settings.dtype)
    y = rng.integers(0, NUM_CLASSES, settings.eval_images)
    return x, y


def _trainers(name: str, settings: Settings):
    model = build(name, seed=settings.seed, dtype=settings.dtype)
    numpy_side, tf_side = (make_trainer(model, side, SGD(settings.lr), settings.eval_batch_size)
                           for side in SIDES)
    return numpy_side.trainer, tf_side.trainer, model


# Seconds the bench waits for the step helper process to start (scratch.helper).
HELPER_WAIT = 30.0


def bench_model(name: str, settings: Settings) -> dict:
    """One model's row: train step and evaluation timings of both sides, ratios and memory."""
    x, y = _data(settings, name)
    numpy_side, tf_side, model = _trainers(name, settings)
    sides = dict(zip(SIDES, (numpy_side, tf_side)))
    b = settings.batch_size
    batches = [(x[s:s + b], y[s:s + b]) for s in range(0, len(x) - b + 1, b)]
    # Memory first: one image traces TensorFlow's step, then the first full-size step is measured.
    row: dict = {"model": name, "load_average_before": load_average()}
    usage = threads.policy().usage_snapshot()
    fused = any(isinstance(unit, ConvChain) for unit in model.units)  # what the helper runs
    threads.use("step")
    if fused and threads.step_helper():  # started now, so that every timed step can use it
        helper.ready_helper(wait=HELPER_WAIT)
    for side, trainer in sides.items():
        trainer.train_step(x[:1], y[:1])
        row[f"{side}_peak_rss_mib"] = rss_peak_growth(
            lambda trainer=trainer: trainer.train_step(*batches[0]))
    row["numpy_peak_tracemalloc_mib"] = tracemalloc_peak(lambda: numpy_side.train_step(*batches[0]))

    counter = defaultdict(int)

    def step(side):
        def call():
            xb, yb = batches[counter[side] % len(batches)]
            counter[side] += 1
            return sides[side].train_step(xb, yb)
        return call

    def loss_and_grads():
        # The documented call alone (inputs checked, no update), beside the trainer's whole step.
        xb, yb = batches[counter["loss_and_grads"] % len(batches)]
        counter["loss_and_grads"] += 1
        threads.use("step")
        return model.loss_and_grads(xb, yb)

    calls = {**{side: step(side) for side in SIDES}, "loss_and_grads": loss_and_grads}
    train = interleaved(calls, settings.repeat, settings.warmup)
    k_step = _k_step_times(numpy_side, tf_side, batches, settings)
    evaluate = interleaved({side: (lambda t=trainer: t.evaluate(x, y))
                            for side, trainer in sides.items()},
                           settings.eval_repeat, 1)
    for side in SIDES:
        row[f"{side}_step"] = asdict(Spread.of(train[side]))
        spread = Spread.of(evaluate[side])
        row[f"{side}_eval"] = asdict(spread)
        row[f"{side}_eval_images_per_s"] = len(x) / spread.median
    row["steps_per_call"] = settings.steps_per_call
    for side in SIDES:
        row[f"{side}_k_step"] = asdict(Spread.of(k_step[side]))
    row["k_step_ratio"] = row["numpy_k_step"]["median"] / row["tensorflow_k_step"]["median"]
    row["numpy_loss_and_grads"] = asdict(Spread.of(train["loss_and_grads"]))
    row["loss_and_grads_of_step"] = (row["numpy_loss_and_grads"]["median"]
                                     / row["numpy_step"]["median"])
    row["train_ratio"] = row["numpy_step"]["median"] / row["tensorflow_step"]["median"]
    row["eval_ratio"] = row["numpy_eval_images_per_s"] / row["tensorflow_eval_images_per_s"]
    described = threads.describe(since=usage)
    row["numpy_blas_threads"] = described["phases"]
    row["numpy_step_helper"] = described["step_helper"] if fused else None
    row["load_average_after"] = load_average()
    return row


def _k_step_times(numpy_side: ScratchTrainer, tf_side: KerasTrainer, batches: list,
                  settings: Settings) -> dict[str, list[float]]:
    """Seconds per step of K = ``settings.steps_per_call`` steps: TensorFlow's in one compiled
    call (``KerasTrainer.train_steps``, its batches stacked as in training), NumPy's the same K
    batches one step after the other; the two alternate, one untimed round first."""
    k = settings.steps_per_call
    picked = [batches[i % len(batches)] for i in range(k)]
    xs, ys = np.stack([xb for xb, _ in picked]), np.stack([yb for _, yb in picked])

    def numpy_steps():
        for xb, yb in picked:
            numpy_side.train_step(xb, yb)

    calls = {"numpy": numpy_steps, "tensorflow": lambda: tf_side.train_steps(xs, ys)}
    return {side: [t / k for t in seconds]
            for side, seconds in interleaved(calls, settings.call_repeat, 1).items()}


def _unit_label(unit) -> tuple[str, str]:
    if isinstance(unit, ConvChain):
        convs = [conv.name for conv, _ in unit.blocks]
        return f"{convs[0]}..{unit.blocks[-1][1].name}", f"fused x{len(convs)}"
    return unit.name, type(unit).__name__


def _profile_units(units: list, xb: np.ndarray, yb: np.ndarray, settings: Settings) -> list[dict]:
    """Median forward and backward time of each unit (a layer, or a fused chain) in a training
    step (``scratch.fusion.backward`` without input gradient)."""
    forward, backward_times = defaultdict(list), defaultdict(list)
    position = {id(unit): index for index, unit in enumerate(units)}
    for round_index in range(settings.warmup + settings.repeat):
        timed = round_index >= settings.warmup
        h = xb
        for index, unit in enumerate(units):
            start = time.perf_counter()
            h = unit.call(h)
            if timed:
                forward[index].append(time.perf_counter() - start)
        _, dy = ops.softmax_cross_entropy(h, yb)
        stamps = []  # (unit index, time its backward pass started)
        backward(units, dy, input_grad=False,
                 each=lambda unit, _, stamps=stamps: stamps.append((position[id(unit)],
                                                                    time.perf_counter())))
        stamps.append((None, time.perf_counter()))
        if timed:
            for (index, began), (_, ended) in zip(stamps, stamps[1:]):
                backward_times[index].append(ended - began)
    return [{"layer": label, "type": kind, "forward": float(np.median(forward[index])),
             "backward": (float(np.median(backward_times[index])) if backward_times[index]
                          else 0.0)}
            for index, (label, kind) in enumerate(map(_unit_label, units))]


def profile_layers(name: str, settings: Settings) -> dict[str, list[dict]]:
    """Per-unit times of the NumPy model's training step, in seconds, on two paths: "step", the
    fused fast path ``ScratchTrainer`` trains with, and "layers", layer by layer as
    ``Sequential.trace`` runs (what ``tfparity diff`` compares); both with the BLAS threads of a
    training step."""
    x, y = _data(settings, name)
    model = build(name, seed=settings.seed, dtype=settings.dtype)
    xb, yb = x[:settings.batch_size], y[:settings.batch_size]
    with threads.blas_threads("step"):
        return {"step": _profile_units(model.units, xb, yb, settings),
                "layers": _profile_units(model.layers, xb, yb, settings)}
