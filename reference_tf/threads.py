"""TensorFlow's thread pools for the comparison, set before TensorFlow starts its runtime.

TensorFlow runs each op's work on an intra-op pool and independent ops on an inter-op pool; both
default to one thread per core. ``default_policy()`` states the counts tfparity runs TensorFlow
with (docs/performance-threads.md has the measurements). TensorFlow's own variables win:
``TF_NUM_INTRAOP_THREADS`` and ``TF_NUM_INTEROP_THREADS``, read when the runtime starts. The
pools cannot change once the runtime has started (the first tensor or model), so ``configure``
must run before that; afterwards it records what the runtime already has.
"""

from __future__ import annotations

import os

from scratch.threads import usable_cores

POOLS = ("intra_op", "inter_op")
VARIABLES = {"intra_op": "TF_NUM_INTRAOP_THREADS", "inter_op": "TF_NUM_INTEROP_THREADS"}


def default_policy() -> dict[str, int]:
    """The counts tfparity sets: one thread per usable core in each pool. These are
    TensorFlow's own defaults, made explicit so that the record states them; fewer threads were
    slower for TensorFlow, idle and loaded (docs/performance-threads.md)."""
    cores = usable_cores()
    return {"intra_op": cores, "inter_op": cores}


_SETTINGS: dict | None = None


def _getters():
    import tensorflow as tf

    threading = tf.config.threading
    return {"intra_op": (threading.get_intra_op_parallelism_threads,
                         threading.set_intra_op_parallelism_threads),
            "inter_op": (threading.get_inter_op_parallelism_threads,
                         threading.set_inter_op_parallelism_threads)}


def configure() -> dict:
    """Set both pools to ``default_policy()`` unless a TensorFlow variable names a count, and
    return the record (``describe()``). Later calls change nothing and return the same record.

    The record, per pool: ``threads`` (the count TensorFlow runs with, None where it is
    TensorFlow's own default) and ``source`` (the variable, ``"tfparity policy"``, or
    ``"runtime already started"`` when TensorFlow had started before ``configure``).
    """
    global _SETTINGS
    if _SETTINGS is not None:
        return describe()
    policy = default_policy()
    settings = {}
    for pool, (get, set_) in _getters().items():
        variable = VARIABLES[pool]
        if os.environ.get(variable):  # TensorFlow reads it itself when its runtime starts
            settings[pool] = {"threads": _int_or_text(os.environ[variable]), "source": variable}
            continue
        try:
            set_(policy[pool])
            settings[pool] = {"threads": policy[pool], "source": "tfparity policy"}
        except RuntimeError:
            current = get()
            settings[pool] = {"threads": current or None, "source": "runtime already started"}
    _SETTINGS = settings
    return describe()


def _int_or_text(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def describe() -> dict:
    """The pools' thread counts and where they came from (see ``configure``); before
    ``configure`` ran, what TensorFlow reports (None for its defaults)."""
    if _SETTINGS is not None:
        return {pool: dict(_SETTINGS[pool]) for pool in POOLS}
    return {pool: {"threads": get() or None, "source": "not configured"}
            for pool, (get, _) in _getters().items()}
