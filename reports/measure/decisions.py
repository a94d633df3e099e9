"""The design decisions that shape the report's comparison, each with its effect measured.

A phase of ``tfparity report`` that runs in the driver after the timing phase
(``reports.measure.timing``) and measures, on the report's own data:

- ``fusion``: NumPy's training computation through the fused Conv2D -> ReLU -> MaxPool2D units
  (``Sequential.loss_and_grads``, what training runs) against the layer-by-layer pass over
  every layer's hooks (``Sequential.trace``, what ``tfparity diff`` runs), interleaved, and the
  largest difference of their parameter gradients;
- ``dtype``: a short paired run (NumPy and TensorFlow from the same weights and batches) in
  float32 and in float64: time per step, final test accuracy and the NumPy-TensorFlow weight
  distance of each;
- ``compilation``: TensorFlow's training step as the compiled ``tf.function`` the report trains
  with against the same step run eagerly (``tf.config.run_functions_eagerly``), interleaved;
- ``determinism``: two identical TensorFlow short runs with op determinism on (in the driver)
  and two with it off (in a fresh spawned process, since the setting is process-wide; in the
  driver for ``--quick``): time per step, and whether the two runs' weights are bitwise equal;
- ``sharing``: the short float32 paired run with both sides sharing initial weights and batch
  order, against one where TensorFlow takes another seed's batch order and one where it starts
  from another seed's weights: weight distance and test-accuracy gap.

The record (``measure``) holds the measurements, the settings and the conditions (load average
before and after, thread settings, commit); ``load_or_measure`` saves it as
``<out>/decisions.json`` atomically and reuses it like ``reports.measure.timing`` reuses its record.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from reports.environment import load_average
from reports.experiment.datasets import Splits
from reports.experiment.protocol import Protocol, RunSpec
from reports.files.records import saved_or_measured

FILE = "decisions.json"
DECISIONS = ("fusion", "dtype", "compilation", "determinism", "sharing")
# The quick protocol's sizes (the full one takes Settings' defaults); a larger rate, so that the
# quick short runs' ten steps move the accuracy off chance.
# The quick protocol measures determinism off in the driver too (a spawned process costs a
# TensorFlow start-up, tens of seconds on a loaded machine).
QUICK = {"repeat": 5, "warmup": 2, "train_images": 1000, "lr": 0.1, "fresh_process": False}


@dataclass(frozen=True)
class Settings:
    """What the decisions phase measures on.

    ``model``: the model of every measurement (the cnn: the only one with fused blocks);
    ``repeat``/``warmup``: timed and untimed steps per side of the interleaved timings;
    ``train_images``: the first training images of the report's data the short runs train on
    for ``epochs`` epochs at ``lr`` (the cnn's first setting by default) and batch
    ``batch_size``; ``seed``
    draws weights and batch order, ``other_seed`` the unshared ones; ``fresh_process``: measure
    determinism off in a spawned process (``determinism``).
    """

    model: str = "cnn"
    batch_size: int = 100
    repeat: int = 30
    warmup: int = 3
    train_images: int = 10000
    epochs: int = 1
    lr: float = 0.01
    seed: int = 0
    other_seed: int = 1
    fresh_process: bool = True


def settings(protocol: Protocol) -> Settings:
    """The decisions phase's settings for a report's protocol (smaller for ``--quick``)."""
    sizes = QUICK if protocol.epochs is not None else {}
    return Settings(batch_size=protocol.batch_size, **sizes)


def spread(seconds) -> dict:
    """Median and interquartile range of timings in seconds (``reports.measure.bench.Spread``)."""
    from reports.measure.bench import Spread

    return asdict(Spread.of(seconds))


def relative_distance(params: dict, reference: dict) -> float:
    """||params - reference|| / ||reference|| over all arrays of two parameter dicts with the
    same keys, in float64."""
    keys = sorted(reference)
    diff = np.concatenate([(np.asarray(params[k], np.float64)
                            - np.asarray(reference[k], np.float64)).ravel() for k in keys])
    norm = np.concatenate([np.asarray(reference[k], np.float64).ravel() for k in keys])
    return float(np.linalg.norm(diff) / np.linalg.norm(norm))


def max_abs_difference(params: dict, reference: dict) -> float:
    """The largest |params - reference| over all arrays of two dicts with the same keys."""
    return max(float(np.max(np.abs(np.asarray(params[k], np.float64)
                                   - np.asarray(reference[k], np.float64)))) for k in reference)


def bitwise_equal(params: dict, reference: dict) -> bool:
    """True if every array of ``params`` has the bytes of ``reference``'s."""
    return all(np.asarray(params[k]).tobytes() == np.asarray(reference[k]).tobytes()
               for k in reference)


def short_splits(splits: Splits, chosen: Settings, dtype: str) -> Splits:
    """The first ``train_images`` training images (also as the train-evaluation set, which the
    short runs do not evaluate) and the test set of ``splits``, in ``dtype``."""
    x, y = splits.train
    x_test, y_test = splits.test
    n = chosen.train_images
    train = (x[:n].astype(dtype), y[:n])
    return Splits(train, train, (x_test.astype(dtype), y_test), splits.source)


def fusion(chosen: Settings, x: np.ndarray, y: np.ndarray) -> dict:
    """Fused training computation against the layer-by-layer one on one batch x (N, 28, 28, 1),
    y (N,): their timings (seconds), the ratio layers/fused of the medians, and the largest
    difference of their parameter gradients. Both in this process (the step helper off), so
    that the ratio is the fusion's alone."""
    from reports.measure.bench import interleaved
    from scratch import threads
    from scratch.models import build

    model = build(chosen.model, seed=chosen.seed, dtype=x.dtype.name)
    fused = {k: v.copy() for k, v in model.loss_and_grads(x, y)[1].items()}
    layers = {k: v.copy() for k, v in model.trace(x, y, input_grad=False).grads.items()}
    with threads.blas_threads("step", helper=False):
        seconds = interleaved({"fused": lambda: model.loss_and_grads(x, y),
                               "layers": lambda: model.trace(x, y, input_grad=False)},
                              chosen.repeat, chosen.warmup)
    result = {side: spread(seconds[side]) for side in seconds}
    return {"fused_step": result["fused"], "layers_step": result["layers"],
            "ratio": result["layers"]["median"] / result["fused"]["median"],
            "max_abs_grad_difference": max_abs_difference(layers, fused)}


def compilation(chosen: Settings, x: np.ndarray, y: np.ndarray) -> dict:
    """TensorFlow's training step compiled (``tf.function``, as ``KerasTrainer`` runs it)
    against eager, interleaved on one batch: timings (seconds) and the ratio eager/compiled."""
    import tensorflow as tf

    from reports.experiment.trainers import make_trainer
    from reports.measure.bench import interleaved
    from scratch.models import build
    from scratch.optim import SGD

    model = build(chosen.model, seed=chosen.seed, dtype=x.dtype.name)
    trainer = make_trainer(model, "tensorflow", SGD(chosen.lr)).trainer

    def step(eagerly: bool):
        def call():
            tf.config.run_functions_eagerly(eagerly)
            return trainer.train_step(x, y)
        return call

    previous = tf.config.functions_run_eagerly()
    try:
        seconds = interleaved({"compiled": step(False), "eager": step(True)},
                              chosen.repeat, chosen.warmup)
    finally:
        tf.config.run_functions_eagerly(previous)
    result = {side: spread(seconds[side]) for side in seconds}
    return {"compiled_step": result["compiled"], "eager_step": result["eager"],
            "ratio": result["eager"]["median"] / result["compiled"]["median"]}


def short_run(spec: RunSpec, splits: Splits, order_seed: int) -> tuple[dict, dict]:
    """Train ``spec`` (its weights from ``spec.seed``) on ``splits.train`` in the batch order of
    ``order_seed``, after one untimed step that is undone (it traces TensorFlow's step).

    Returns ({"ms_per_step", "test_accuracy", "test_loss"}, the final parameters)."""
    from reports.experiment.runner import spec_trainer
    from scratch.train import run

    trainer, get_params, set_params = spec_trainer(spec)
    x, y = splits.train
    initial = get_params()
    trainer.train_step(x[:spec.protocol.batch_size], y[:spec.protocol.batch_size])
    set_params(initial)
    history = run(trainer, x, y, epochs=spec.epochs, batch_size=spec.protocol.batch_size,
                  seed=order_seed, eval_every=spec.epochs * len(x), eval_sets={"test": splits.test})
    last = history.records[-1]
    return ({"ms_per_step": 1e3 * last["train_time"] / max(last["step"], 1),
             "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"]},
            get_params())


def _spec(chosen: Settings, protocol: Protocol, implementation: str, seed: int,
          dtype: str) -> RunSpec:
    return RunSpec(chosen.model, 0, chosen.epochs, chosen.lr, seed, implementation,
                   replace(protocol, dtype=dtype, batch_size=chosen.batch_size))


def paired_run(chosen: Settings, protocol: Protocol, splits: Splits, dtype: str = "float32",
               tf_init_seed: int | None = None, tf_order_seed: int | None = None) -> dict:
    """A short run of NumPy and of TensorFlow; TensorFlow's initial weights and batch order come
    from ``chosen.seed`` unless ``tf_init_seed`` / ``tf_order_seed`` say otherwise.

    Returns both sides' ``short_run`` records, the relative distance of the final weights
    (``relative_distance``, NumPy against TensorFlow) and |NumPy - TF| of the test accuracy."""
    data = short_splits(splits, chosen, dtype)
    numpy_record, numpy_params = short_run(
        _spec(chosen, protocol, "numpy", chosen.seed, dtype), data, chosen.seed)
    tf_record, tf_params = short_run(
        _spec(chosen, protocol, "tensorflow",
              chosen.seed if tf_init_seed is None else tf_init_seed, dtype),
        data, chosen.seed if tf_order_seed is None else tf_order_seed)
    return {"dtype": dtype, "numpy": numpy_record, "tensorflow": tf_record,
            "weight_distance": relative_distance(numpy_params, tf_params),
            "accuracy_gap": abs(numpy_record["test_accuracy"] - tf_record["test_accuracy"])}


def determinism_trial(deterministic: bool, chosen: Settings, protocol: Protocol,
                      splits: Splits) -> dict:
    """Two identical TensorFlow short runs on ``splits`` (``short_splits``' output) with op
    determinism on or off, each with a new ``KerasTrainer`` (so a new ``tf.function``, whose
    kernels are built in that mode); the process's mode is restored afterwards.

    Returns the mode TensorFlow reports during the runs, both runs' ms per step, whether their
    final weights are bitwise equal and their largest difference."""
    from tensorflow.python.framework import config as tf_config

    from reference_tf import threads as tf_threads
    from reference_tf.reproducible import use_reproducible_kernels

    tf_threads.configure()
    use_reproducible_kernels()  # what KerasTrainer calls (once per process): done before the mode
    previous = tf_config.is_op_determinism_enabled()
    # TensorFlow exports only enable_op_determinism; disable_op_determinism is its unexported
    # counterpart in the same module.
    (tf_config.enable_op_determinism if deterministic else tf_config.disable_op_determinism)()
    try:
        enabled = bool(tf_config.is_op_determinism_enabled())
        spec = _spec(chosen, protocol, "tensorflow", chosen.seed, "float32")
        (first, first_params), (second, second_params) = (
            short_run(spec, splits, chosen.seed) for _ in range(2))
    finally:
        (tf_config.enable_op_determinism if previous else tf_config.disable_op_determinism)()
    return {"deterministic": deterministic, "enabled": enabled,
            "ms_per_step": [first["ms_per_step"], second["ms_per_step"]],
            "bitwise_equal": bitwise_equal(second_params, first_params),
            "max_abs_difference": max_abs_difference(second_params, first_params)}


def determinism(chosen: Settings, protocol: Protocol, splits: Splits) -> dict:
    """``determinism_trial`` with op determinism on, in this process (where the report's
    TensorFlow runs trained with it on), then off: in a fresh spawned process that switches it
    off before any op runs if ``chosen.fresh_process``, else in this process.

    The setting is process-wide; the fresh process rules out that anything built earlier in
    this process with determinism on (the eager kernel cache) carries over into "off"."""
    data = short_splits(splits, chosen, "float32")  # all a trial needs (it is pickled)
    on = determinism_trial(True, chosen, protocol, data)
    if chosen.fresh_process:
        with ProcessPoolExecutor(max_workers=1,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            off = pool.submit(determinism_trial, False, chosen, protocol, data).result()
    else:
        off = determinism_trial(False, chosen, protocol, data)
    return {"on": on, "off": off, "off_in": "a spawned process" if chosen.fresh_process
            else "the driver process",
            "ratio": float(np.mean(on["ms_per_step"]) / np.mean(off["ms_per_step"]))}


def commit() -> str | None:
    """The git commit of this checkout (with "-dirty" if it has uncommitted changes), or None
    outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def measure(protocol: Protocol, splits: Splits, sweep: dict | None) -> dict:
    """Measure every decision of DECISIONS on ``splits`` (the report's data) and return the
    record: ``settings``, ``decisions`` (name -> measurements) and ``conditions``.

    ``sweep`` is the record of the sweep that preceded this phase, None if this invocation
    trained nothing."""
    from reference_tf import threads as tf_threads
    from reports.environment import describe

    tf_threads.configure()  # the report's pools, if TensorFlow has not started yet
    chosen = settings(protocol)
    environment = describe()
    started = time.perf_counter()
    x, y = (part[:chosen.batch_size] for part in splits.train)
    x = x.astype("float32")
    shared = paired_run(chosen, protocol, splits)
    decisions = {
        "fusion": fusion(chosen, x, y),
        "dtype": {"float32": shared, "float64": paired_run(chosen, protocol, splits, "float64")},
        "compilation": compilation(chosen, x, y),
        "determinism": determinism(chosen, protocol, splits),
        "sharing": {"shared": shared,
                    "other_order": paired_run(chosen, protocol, splits,
                                              tf_order_seed=chosen.other_seed),
                    "other_weights": paired_run(chosen, protocol, splits,
                                                tf_init_seed=chosen.other_seed)},
    }
    return {
        "settings": asdict(chosen),
        "decisions": decisions,
        "conditions": {
            "where": "the driver process alone, after the sweep and the timing phase",
            "sweep": sweep,
            "environment": environment,
            "load_average_after": load_average(),
            "commit": commit(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": time.perf_counter() - started,
        },
    }


def load_or_measure(out: Path, protocol: Protocol, load_splits, sweep: dict | None,
                    remeasure: bool = False) -> dict:
    """The record in ``out/decisions.json`` if it has these settings and this invocation
    trained nothing (``sweep`` None) and not ``remeasure``; else a new measurement on
    ``load_splits()``, saved there atomically."""
    return saved_or_measured(Path(out) / FILE, asdict(settings(protocol)),
                             not remeasure and sweep is None,
                             lambda: measure(protocol, load_splits(), sweep))
