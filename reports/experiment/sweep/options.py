"""The ``Executor`` of a sweep: where its runs execute, checked (no heavy imports: the command line
loads this to build its parser; ``reports.commands.report`` adds the options that select it)."""

from __future__ import annotations

from dataclasses import dataclass

EXECUTORS = ("serial", "processes", "ray")
MAX_WORKERS = 1024  # bound of --jobs and --worker-threads


@dataclass(frozen=True)
class Executor:
    """Where the runs execute: ``name`` in EXECUTORS; ``jobs`` worker processes (``processes``,
    default: one per core) or runs in flight (``ray``, default: the cluster's CPUs divided by
    ``threads``); ``threads`` BLAS and TensorFlow threads per worker (default: cores // jobs for
    ``processes``, 1 for ``ray``; the serial executor keeps the driver's own); ``address`` of a
    Ray cluster (default: start a local instance).

    Raises:
        ValueError: naming the option that does not fit the executor or is not positive.
    """

    name: str = "serial"
    jobs: int | None = None
    threads: int | None = None
    address: str | None = None

    def __post_init__(self):
        if self.name not in EXECUTORS:
            raise ValueError(f"argument --executor: expected one of {', '.join(EXECUTORS)}, "
                             f"received {self.name!r}.")
        for option, value in (("--jobs", self.jobs), ("--worker-threads", self.threads)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"argument {option}: expected a positive integer, "
                                 f"received {value!r}.")
            if self.name == "serial":
                raise ValueError(f"argument {option}: applies to --executor processes or ray, "
                                 f"received it with --executor serial.")
        if self.address is not None and self.name != "ray":
            raise ValueError(f"argument --address: applies to --executor ray, received it with "
                             f"--executor {self.name}.")

    def backend(self, splits):
        """A started backend for this executor (``splits``: the driver's data)."""
        from reports.experiment.sweep import backends

        if self.name == "serial":
            return backends.SerialBackend(splits)
        if self.name == "processes":
            cores = backends.usable_cores()
            jobs = self.jobs or cores
            return backends.ProcessBackend(jobs, self.threads or max(1, cores // jobs))
        return backends.RayBackend(splits, self.address, self.jobs, self.threads or 1)

    def arguments(self) -> list[str]:
        """The command-line options that select this executor (for the recorded command)."""
        if self.name == "serial":
            return []
        parts = ["--executor", self.name]
        for option, value in (("--jobs", self.jobs), ("--worker-threads", self.threads),
                              ("--address", self.address)):
            parts += [option, str(value)] if value is not None else []
        return parts
