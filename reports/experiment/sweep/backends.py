"""Where runs execute: in the driver (``SerialBackend``), in spawned worker processes
(``ProcessBackend``) or as Ray tasks (``RayBackend``).

A backend takes runs (``submit``) up to its ``capacity`` at a time and hands back finished ones
(``wait``): each as ``(token, result)``, or ``(token, Lost(reason))`` when the worker running it
died (a killed process, a lost node), in which case the driver runs it again. An exception
raised by the training itself is raised again by ``wait``. ``close(abort=True)`` stops whatever
still runs (Ctrl-C, an error); ``close()`` after the last run lets the workers exit.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, NamedTuple

from reports.errors import BadInput
from reports.experiment.sweep import worker


class ExecutorUnavailable(BadInput):
    """The executor cannot start here (e.g. Ray is not installed); the message says why."""


class Lost(NamedTuple):
    """A run whose worker died before returning it; ``reason`` says how."""

    reason: str


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class SerialBackend:
    """Runs one run at a time in the driver, with the driver's own thread settings; progress is
    reported per evaluation (``on_record``)."""

    name = "serial"
    capacity = 1

    def __init__(self, splits):
        self.splits = splits
        self.queued: list[tuple[int, object, dict, Callable | None]] = []
        self.count = 0

    def describe(self) -> dict:
        return {"executor": self.name, "workers": 1, "threads_per_worker": None}

    def submit(self, spec, execution: dict, on_record: Callable[[dict], None] | None = None) -> int:
        self.count += 1
        self.queued.append((self.count, spec, execution, on_record))
        return self.count

    def wait(self, timeout: float) -> list[tuple[int, dict | Lost]]:
        from reports.experiment import runner

        finished = []
        while self.queued:
            token, spec, execution, on_record = self.queued.pop(0)
            result = runner.train_one(spec, self.splits, on_record=on_record)
            finished.append((token, worker.with_execution(result, execution)))
        return finished

    def close(self, abort: bool = False) -> None:
        self.queued.clear()


class ProcessBackend:
    """``jobs`` worker processes started with ``spawn`` (never forked from a driver that has loaded
    TensorFlow), each with ``threads`` BLAS and TensorFlow threads (``worker.environment``), each
    ending when the driver dies (``lifeline``).

    Workers live for the whole sweep and clear their Keras session after each TensorFlow run.
    When a worker dies, ``concurrent.futures`` marks the pool broken and ends its other workers:
    every run then in flight comes back ``Lost``, and the next ``submit`` starts a new pool.
    """

    name = "processes"

    def __init__(self, jobs: int, threads: int):
        self.capacity, self.threads = jobs, threads
        self.environment = worker.environment(threads)
        self.pool: ProcessPoolExecutor | None = None
        self.futures: set = set()
        self.others: set = set()  # child processes that are not this backend's workers

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.capacity, "threads_per_worker": self.threads}

    def workers(self) -> list:
        """The live worker processes (``multiprocessing.Process``)."""
        return [p for p in multiprocessing.active_children() if p not in self.others]

    def submit(self, spec, execution: dict, on_record: Callable[[dict], None] | None = None):
        if self.pool is None:
            self.others = set(multiprocessing.active_children())
            self.pool = ProcessPoolExecutor(
                max_workers=self.capacity, mp_context=multiprocessing.get_context("spawn"),
                initializer=worker.init, initargs=(self.environment, os.getpid()))
        future = self.pool.submit(worker.run_in_process, spec, execution)
        self.futures.add(future)
        return future

    def wait(self, timeout: float) -> list[tuple[object, dict | Lost]]:
        done, _ = wait_futures(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED)
        finished, broken = [], False
        for future in done:
            self.futures.discard(future)
            try:
                finished.append((future, future.result()))
            except BrokenProcessPool as error:
                broken = True
                finished.append((future, Lost(f"a worker process died ({error})")))
        if broken:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        return finished

    def close(self, abort: bool = False) -> None:
        if self.pool is None:
            return
        if abort:
            for process in self.workers():
                process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool, self.futures = None, set()


class RayBackend:
    """One Ray task per run, ``threads`` CPUs each (``num_cpus``, with the thread variables of
    ``worker.environment`` in the task's ``runtime_env``), on the cluster at ``address`` or on a
    local instance started here (and shut down by ``close``). The data goes to Ray's object store
    once; workers return results to the driver, which alone writes the run store. Ray's own
    retries are off: a task whose worker or node died comes back ``Lost``, and the driver submits
    it again.

    Raises:
        ExecutorUnavailable: if Ray is not installed (``pip install 'tfparity[ray]'``).
    """

    name = "ray"

    def __init__(self, splits, address: str | None, jobs: int | None, threads: int):
        try:
            import ray
        except ImportError:
            raise ExecutorUnavailable("argument --executor: ray needs Ray; install it with "
                                      "pip install 'tfparity[ray]'.") from None
        self.ray, self.threads, self.address = ray, threads, address
        self.started_here = not ray.is_initialized()
        if self.started_here:
            if address is None:
                # A local instance listens on the loopback interface only.
                ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1")
            else:
                ray.init(address=address, log_to_driver=False)
        cpus = ray.cluster_resources().get("CPU", 1)
        self.capacity = jobs or max(1, int(cpus // threads))
        self.splits = ray.put(splits)
        self.task = ray.remote(worker.train).options(
            num_cpus=threads, max_retries=0,
            runtime_env={"env_vars": worker.environment(threads)})
        self.refs: set = set()

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.capacity, "threads_per_worker": self.threads,
                "address": self.address or "local instance"}

    def submit(self, spec, execution: dict, on_record: Callable[[dict], None] | None = None):
        ref = self.task.remote(spec, self.splits, execution)
        self.refs.add(ref)
        return ref

    def wait(self, timeout: float) -> list[tuple[object, dict | Lost]]:
        ray = self.ray
        ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if ready:  # and whatever else finished meanwhile
            ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        finished = []
        for ref in ready:
            self.refs.discard(ref)
            try:
                finished.append((ref, ray.get(ref)))
            except ray.exceptions.RayTaskError as error:
                raise error.as_instanceof_cause() from None
            except ray.exceptions.RayError as error:  # worker crashed, node died, object lost
                reason = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                finished.append((ref, Lost(reason)))
        return finished

    def close(self, abort: bool = False) -> None:
        if abort:
            for ref in self.refs:
                self.ray.cancel(ref, force=True)
        self.refs = set()
        if self.started_here:
            self.ray.shutdown()
