"""What a run file must hold for the report to read it: ``problem(result, spec)`` says in a few
words what does not fit (None when it fits), so that the run store can set the file aside and
train the run again instead of crashing on it halfway through the report.

A run file (``reports.experiment.runner.train_one``'s result, strict JSON: NaN is saved as null)
is an object with ``key`` and ``spec`` equal to the run's, a non-empty ``history`` of
evaluation records, ``diverged`` true or false, and the run's step count and timings as numbers.
"""

from __future__ import annotations

import math

# Numbers a run file holds (null allowed where a NaN or an unmeasured time is saved).
RUN_NUMBERS = ("steps", "setup_time", "train_time", "eval_time", "wall_time", "ms_per_step",
               "s_per_epoch")
# Numbers of each evaluation record the report reads, where present (the record of step 0 has
# no training loss; a diverged run's last record may lack an evaluation set).
RECORD_NUMBERS = ("samples_seen", "step", "epoch", "train_loss", "test_loss", "test_accuracy",
                  "train_eval_loss", "train_eval_accuracy", "train_time", "eval_time")


def _is_number(value) -> bool:
    """A JSON number, or null (a NaN saved as strict JSON); never a bool."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and not (isinstance(value, float) and math.isinf(value)))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problem(result, spec) -> str | None:
    """What in ``result`` (a parsed run file) does not fit a run of ``spec`` (a ``RunSpec``), as
    "holds ...", or None."""
    if not isinstance(result, dict):
        return f"holds {type(result).__name__} {_shown(result)}, expected an object"
    if result.get("key") != spec.key:
        return f"holds the run key {_shown(result.get('key'))}, expected {spec.key!r}"
    if result.get("spec") != spec.to_dict():
        return f"holds the spec {_shown(result.get('spec'))}, expected {spec.to_dict()}"
    history = result.get("history")
    if not isinstance(history, list) or not history:
        return f"holds history={_shown(history)}, expected a non-empty list of records"
    if not isinstance(result.get("diverged"), bool):
        return f"holds diverged={_shown(result.get('diverged'))}, expected true or false"
    if not isinstance(result.get("initial_weights_sha256"), str):
        return (f"holds initial_weights_sha256={_shown(result.get('initial_weights_sha256'))}, "
                "expected a string")
    for name in RUN_NUMBERS:
        if not _is_number(result.get(name, "absent")):
            return f"holds {name}={_shown(result.get(name, 'absent'))}, expected a number"
    for index, record in enumerate(history):
        if not isinstance(record, dict):
            return f"holds history[{index}]={_shown(record)}, expected a record"
        for name in RECORD_NUMBERS:
            if name in record and not _is_number(record[name]):
                return f"holds history[{index}].{name}={_shown(record[name])}, expected a number"
    return _missing_stop(result, spec)


def _missing_stop(result: dict, spec) -> str | None:
    """A run with ``stops`` must hold a record at each of them (or have diverged before): the
    shorter runs of the plan are taken from those records."""
    if not spec.stops:
        return None
    planned = result.get("planned_steps")
    if isinstance(planned, bool) or not isinstance(planned, int) or planned < spec.epochs:
        return (f"holds planned_steps={_shown(planned)}, expected a whole number of steps for "
                f"{spec.epochs} epochs")
    steps = [record.get("step") for record in result["history"]]
    last = steps[-1] if _is_number(steps[-1]) and steps[-1] is not None else 0
    for epochs in spec.stops:
        step = epochs * planned // spec.epochs
        if step not in steps and not (result["diverged"] and last < step):
            return f"holds no record at step {step}, the stop after {epochs} epochs"
    return None
