"""Busy competitor processes, so that a measurement can be taken on a machine whose cores are
shared, reproducibly (``tfparity bench --load N``).

Each competitor is a Python busy loop in its own process and session (a Ctrl-C in the terminal
reaches only tfparity, which then stops them). Every competitor is bounded three ways: the
context manager stops it on leaving (normally, on an exception or on Ctrl-C), it exits by
itself after ``max_seconds``, and it exits when its parent process is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

MAX_SECONDS = 3600.0

# Says it is ready (one byte on stdout), then spins until the deadline passes or the parent
# changes (the parent died: re-parented).
BUSY_LOOP = """
import os, sys, time
deadline, parent = time.monotonic() + float(sys.argv[1]), int(sys.argv[2])
os.write(1, b"r")
os.close(1)
while time.monotonic() < deadline and os.getppid() == parent:
    for _ in range(100000):
        pass
"""


def stop(processes: list[subprocess.Popen], grace: float = 5.0) -> None:
    """Terminate ``processes``, kill any still running after ``grace`` seconds, and reap all."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def competitors(count: int, max_seconds: float = MAX_SECONDS) -> Iterator[list[subprocess.Popen]]:
    """Run ``count`` busy processes for the block (none for 0) and stop them at its end.

    Args:
        count: number of competitor processes, >= 0.
        max_seconds: each exits by itself after this long, whatever happens to the block.

    Yields:
        The competitors' ``subprocess.Popen`` objects, once every one of them is spinning (a
        measurement taken in the block never sees a competitor still starting up).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"competitors: expected count to be an integer >= 0, received {count!r}.")
    if not max_seconds > 0:
        raise ValueError(f"competitors: expected max_seconds > 0, received {max_seconds!r}.")
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen(
                [sys.executable, "-c", BUSY_LOOP, str(max_seconds), str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True))
        for process in processes:
            if process.stdout.read(1) != b"r":
                raise RuntimeError(f"competitors: a busy process exited at start-up (exit code "
                                   f"{process.wait()}).")
            process.stdout.close()
        yield processes
    finally:
        stop(processes)
