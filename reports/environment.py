"""A description of the machine and software a report ran on (for results.json and report.md)."""

from __future__ import annotations

import os
import platform
import sys

# Settings that change either side's speed; TF_ENABLE_ONEDNN_OPTS=0 swaps TensorFlow's oneDNN
# kernels for Eigen's, which are slower (docs/performance.md).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS")


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
    """Versions (python, numpy, tensorflow, keras, BLAS), CPU, thread settings and load average."""
    import keras
    import numpy as np
    import tensorflow as tf

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
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
