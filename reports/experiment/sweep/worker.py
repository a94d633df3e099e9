"""What runs inside a worker: a process of the ``processes`` executor or a Ray task.

The thread settings of a worker are environment variables (``environment``) that must be in
place before NumPy loads its BLAS and before TensorFlow starts its runtime; that is why this
module imports neither at module level: a spawned worker unpickles a reference to it first, sets
the variables (``init``), and only the first run imports NumPy and TensorFlow. A Ray worker gets
the same variables from the task's ``runtime_env`` when Ray starts it.

Each run is trained by ``reports.experiment.runner.train_one`` exactly as the serial executor trains
it, and its result gains an ``execution`` record: executor, worker (host and pid), attempt, the
thread variables the worker computed with, and the worker's peak memory so far. After a TensorFlow
run the Keras session is cleared, so that a long-lived worker's memory stays flat.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

# The variables through which a worker's threads are set; each gets the worker's thread count.
# TFPARITY_BLAS_THREADS fixes every phase of scratch.threads' policy (an inherited setting such
# as eval=auto would otherwise take more cores, and a count that depends on the load).
WORKER_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TFPARITY_BLAS_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

_SPLITS: dict = {}  # Protocol -> Splits, loaded once per worker process


def environment(threads: int) -> dict[str, str]:
    """The variables that give NumPy's BLAS and both TensorFlow pools ``threads`` threads; the
    NumPy step's helper process (a second core, ``scratch.helper``) only from two threads on."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"worker: expected threads to be a positive integer, "
                         f"received {threads!r}.")
    return {**dict.fromkeys(WORKER_VARIABLES, str(threads)),
            "TFPARITY_STEP_HELPER": "auto" if threads >= 2 else "off"}


def thread_environment() -> dict[str, str | None]:
    """The variables that set threads (``reports.environment.THREAD_VARIABLES``) as this
    process sees them (None where unset)."""
    from reports.environment import THREAD_VARIABLES

    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


def label() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def max_rss_mib() -> float | None:
    """This process's peak resident memory so far, in MiB (None where unavailable)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, else KiB


def init(env: dict[str, str], driver_pid: int) -> None:
    """Start of a ``processes`` worker: it ends with its driver (``lifeline``), takes its thread
    variables, and leaves Ctrl-C to the driver (which stops the workers itself: a Ctrl-C in a
    terminal reaches the whole process group)."""
    from reports.experiment.sweep.lifeline import die_with_parent

    die_with_parent(driver_pid)
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _splits(protocol):
    if protocol not in _SPLITS:
        from reports.experiment import datasets

        _SPLITS[protocol] = datasets.load(protocol)
    return _SPLITS[protocol]


def train(spec, splits, execution: dict) -> dict:
    """Train ``spec`` on ``splits`` and return its result with the ``execution`` record
    completed by this worker's label and thread variables."""
    from reference_tf import threads as tf_threads
    from reports.experiment import runner

    if spec.implementation == "tensorflow":
        tf_threads.configure()  # the pools from the variables, before the runtime starts
    result = runner.train_one(spec, splits)
    if spec.implementation == "tensorflow":
        import keras

        keras.backend.clear_session()
    return with_execution(result, execution)


def with_execution(result: dict, execution: dict) -> dict:
    """``result`` with its ``execution`` record: ``execution`` (executor, workers, attempt...)
    and this process's label, thread variables and peak memory."""
    result["execution"] = {**execution, "worker": label(),
                           "thread_environment": thread_environment(),
                           "worker_max_rss_mib": max_rss_mib()}
    return result


def run_in_process(spec, execution: dict) -> dict:
    """A ``processes`` task: train ``spec`` on the data of its protocol, loaded once per worker."""
    return train(spec, _splits(spec.protocol), execution)
