"""A description of the machine and software a report ran on (for results.json and report.md),
and its load average."""

from __future__ import annotations

import os
import platform
import sys

# Settings that change either side's speed; TF_ENABLE_ONEDNN_OPTS=0 swaps TensorFlow's oneDNN
# kernels for Eigen's, which are slower (docs/performance.md).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TFPARITY_BLAS_THREADS", "TFPARITY_STEP_HELPER", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS")


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, None where the platform has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas() -> dict:
    import numpy as np

    try:
        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
    except TypeError:  # numpy < 1.26 has no mode argument
        return {"name": "unknown"}
    blas = deps.get("blas", {})
    return {k: blas.get(k) for k in ("name", "version", "openblas configuration") if k in blas}


def describe() -> dict:
    """Versions (python, numpy, tensorflow, keras, BLAS), CPU, thread settings and load average.

    Thread settings: ``numpy_blas_threads`` (``scratch.threads.describe()``: per phase and where
    the counts came from) and ``tensorflow_threads`` (``reference_tf.threads.describe()``).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from reference_tf import threads as tf_threads
    from scratch import threads as blas_threads

    threading = tf.config.threading
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "blas": _blas(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "thread_environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "tf_intra_op_threads": threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": threading.get_inter_op_parallelism_threads(),
        "numpy_blas_threads": blas_threads.describe(),
        "tensorflow_threads": tf_threads.describe(),
        "load_average_1_5_15min": load_average(),
    }


def threads_text(env: dict) -> str:
    """Both sides' thread settings from a ``describe()`` record, as one clause; for a record made
    before they were recorded, TensorFlow's pool sizes as its getters gave them."""
    blas, pools = env.get("numpy_blas_threads"), env.get("tensorflow_threads")
    if blas is None or pools is None:
        return (f"TensorFlow intra/inter-op threads {env.get('tf_intra_op_threads')}/"
                f"{env.get('tf_inter_op_threads')} (0 = one per core)")
    phases = ", ".join(f"{phase} {rule if rule is not None else 'as the BLAS started'}"
                       for phase, rule in blas["rules"].items())
    libraries = "; ".join(f"{lib['internal_api']} {lib['version']}, {lib['architecture']}, "
                          f"{lib['started_with_threads']} by default" for lib in blas["libraries"])
    tf_pools = ", ".join(f"{pool.replace('_', '-')} {setting['threads'] or 'default'} "
                         f"({setting['source']})" for pool, setting in pools.items())
    helper = blas.get("step_helper")
    helper = "" if helper is None else (
        f"; NumPy step helper process: {helper['rule']} (auto: two idle cores when the step phase "
        f"starts)")
    return (f"NumPy BLAS threads per phase: {phases} ({blas['source']}; auto: the cores idle "
            f"when the phase starts; "
            f"{libraries or 'no BLAS found'}){helper}; TensorFlow threads: {tf_pools}")
