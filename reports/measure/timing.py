"""The report's runtime answer: a timing phase that runs alone in the driver, after the sweep.

For each model of the report, at the protocol's batch size: NumPy and TensorFlow training steps
interleaved in one process after a warm-up, and the evaluation throughput over as many images as
the protocol's test set, in its evaluation batches; medians with interquartile ranges
(``reports.measure.bench.bench_model``, what ``tfparity bench`` measures). It starts once the sweep
has finished and its workers have stopped, so no training run of this report executes beside it,
and it records its conditions: the driver's machine, software and thread settings
(``reports.environment.describe``), the load average before and after, and the executor of the
sweep. Training runs that execute side by side compete for cores and memory bandwidth; their own
wall times are kept and shown as such, but the NumPy/TensorFlow comparison comes from here.

The record is saved as ``<out>/timing.json`` and reused by a later invocation that trains
nothing and asks for the same settings, so re-running a finished report does not measure again
(``retime`` does); an invocation that trained runs measures afresh.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from reports.environment import load_average
from reports.experiment.protocol import Protocol
from reports.files.records import saved_or_measured

FILE = "timing.json"
# The quick protocol's repetitions (the full one takes reports.measure.bench.Settings' defaults).
QUICK = {"repeat": 20, "warmup": 3, "eval_repeat": 3, "call_repeat": 3}


def settings(models: list[str], protocol: Protocol, eval_images: int):
    """The ``reports.measure.bench.Settings`` of a report's timing phase."""
    from reports.measure import bench

    repeats = QUICK if protocol.epochs is not None else {}
    return bench.Settings(models=tuple(models), dtype=protocol.dtype,
                          batch_size=protocol.batch_size, eval_images=eval_images,
                          eval_batch_size=protocol.eval_batch_size,
                          steps_per_call=protocol.k_steps, **repeats)


def measure(models: list[str], protocol: Protocol, eval_images: int, sweep: dict | None) -> dict:
    """Time every model (``reports.measure.bench.bench_model``) and return the record: ``settings``,
    ``rows`` (one per model, as ``tfparity bench`` writes them) and ``conditions``.

    ``sweep`` is the record of the sweep that preceded this phase (``driver.run_sweep``), None
    if this invocation trained nothing."""
    from reports.environment import describe
    from reports.measure import bench

    chosen = settings(models, protocol, eval_images)
    environment = describe()
    started = time.perf_counter()
    rows = [bench.bench_model(name, chosen) for name in chosen.models]
    return {
        "settings": asdict(chosen),
        "rows": rows,
        "conditions": {
            "where": "the driver process alone, after the sweep",
            "sweep": sweep,
            "environment": environment,
            "load_average_after": load_average(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": time.perf_counter() - started,
        },
    }


def load_or_measure(out: Path, models: list[str], protocol: Protocol, eval_images: int,
                    sweep: dict | None, retime: bool = False) -> dict:
    """The timing record in ``out/timing.json`` if it has these settings and this invocation
    trained nothing (``sweep`` None) and not ``retime``; else a new measurement, saved there
    atomically."""
    return saved_or_measured(Path(out) / FILE, asdict(settings(models, protocol, eval_images)),
                             not retime and sweep is None,
                             lambda: measure(models, protocol, eval_images, sweep))
