"""The executor and timing-phase options of ``tfparity report`` and the ``Executor`` they select
(no heavy imports: the command line loads this to build its parser)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from reports.commands.options import at_most

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
        from reports.sweep import backends

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


def add_options(parser: argparse.ArgumentParser) -> None:
    """--executor, --jobs, --worker-threads, --address; --no-timing and --retime."""
    group = parser.add_argument_group(
        "executor", "where the training runs execute (results are the same on every executor; "
                    "docs/sweeps.md)")
    group.add_argument("--executor", choices=EXECUTORS, default="serial",
                       help="serial (default): one run after another in this process; processes: "
                            "local worker processes; ray: Ray tasks, on a local instance or the "
                            "cluster at --address")
    group.add_argument("--jobs", type=at_most(MAX_WORKERS, "a bound against typos: a worker "
                                                          "takes about 1 GB"),
                       default=None, metavar="N",
                       help="processes: worker processes (default: one per core); ray: runs in "
                            "flight (default: the cluster's CPUs / --worker-threads)")
    group.add_argument("--worker-threads", type=at_most(MAX_WORKERS, "a bound against typos"),
                       default=None, metavar="N",
                       help="BLAS and TensorFlow threads of each worker (default: cores / jobs "
                            "for processes, 1 for ray)")
    group.add_argument("--address", default=None, metavar="ADDR",
                       help="ray: address of a running cluster, e.g. auto or ray://HOST:10001 "
                            "(default: start a local Ray instance)")
    timing = parser.add_argument_group(
        "timing phase", "the runtime comparison, measured in this process alone after the sweep "
                        "(reports/timing.py)")
    timing.add_argument("--no-timing", action="store_true",
                        help="skip the timing phase (the report then has no speed comparison)")
    timing.add_argument("--retime", action="store_true",
                        help="measure the timing phase again even when nothing was trained and "
                             "OUT/timing.json has the same settings")


def from_args(args: argparse.Namespace) -> Executor:
    """The ``Executor`` the options select (ValueError for a combination that does not fit)."""
    return Executor(args.executor, args.jobs, args.worker_threads, args.address)
