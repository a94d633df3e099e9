"""SIGKILL of the driver of ``tfparity report --executor processes`` ends its workers and the
resource tracker too (``reports.experiment.sweep.lifeline``), so ``tfparity report ... | tee
log`` returns.

Processes are found through /proc (Linux); the deadlines are generous bounds, not timings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")]

ARGS = ["report", "--quick", "--data", "templates", "--seeds", "1", "--models", "cnn",
        "--executor", "processes", "--jobs", "2", "--worker-threads", "1", "--no-timing",
        "--no-decisions", "--no-progress"]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def _children(pid: int) -> dict[int, str]:
    """pid -> command line of each child of ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (_stat(int(entry.name)) or ("", 0))[1] == pid:
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
    return {child: cmdline.decode(errors="replace") for child, cmdline in found.items()}


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has ended


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_driver_sigkill_ends_every_worker_and_tee_returns(tmp_path):
    command = " ".join([sys.executable, "-m", "reports.cli", *ARGS, "--out", str(tmp_path / "out"),
                        "2>&1", "|", "tee", str(tmp_path / "log")])
    pipeline = subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL)
    helpers: dict[int, str] = {}
    try:
        drivers: list[int] = []

        def workers_started() -> bool:
            drivers[:] = [pid for pid, cmd in _children(pipeline.pid).items()
                          if "reports.cli" in cmd]
            helpers.update(_children(drivers[0]) if drivers else {})
            return sum("spawn_main" in cmd for cmd in helpers.values()) == 2

        assert _wait_for(workers_started, 240), f"no two workers: {helpers}"
        assert any("resource_tracker" in cmd for cmd in helpers.values()), helpers
        os.kill(drivers[0], signal.SIGKILL)
        assert pipeline.wait(timeout=60) is not None  # tee returned: no one holds the pipe
        assert _wait_for(lambda: not any(map(_alive, helpers)), 10), {
            pid: helpers[pid] for pid in helpers if _alive(pid)}
    finally:
        for pid in [pid for pid in helpers if _alive(pid)]:
            os.kill(pid, signal.SIGKILL)
        if pipeline.poll() is None:
            pipeline.kill()
