"""Per-run claims, so that report processes sharing a run directory never train the same run twice.

A claim is the file ``<runs>/<run file stem>.claim`` locked with ``flock`` by the driver that
trains the run, holding that driver's host and pid (for the messages of the others). The kernel
releases the lock when its process ends, however it ends (Ctrl-C, SIGKILL, a crash), so a claim
whose claimer died is free again at once: it is reclaimed by the next driver that tries, with no
timeout to wait out. A driver releases a claim by deleting the file while still holding the lock;
``try_claim`` checks, once locked, that the file it locked is still the one at the path, so a
claim deleted under it by its previous holder is never taken as valid.

``flock`` is reliable on a local file system; on NFS, Linux maps it to POSIX locks, which need a
lock daemon on the server (docs/sweeps.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from reports.files.disk_errors import writing

SUFFIX = ".claim"


class Claim:
    """A held claim on one run: ``release()`` deletes it (after the run was saved or abandoned)."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        """Delete the claim file and drop the lock (idempotent)."""
        if self.fd < 0:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = -1


def claim_path(runs_dir: Path, run_filename: str) -> Path:
    """Where the claim of the run stored as ``run_filename`` lives."""
    return Path(runs_dir) / (Path(run_filename).stem + SUFFIX)


def try_claim(path: Path) -> Claim | None:
    """The claim at ``path`` if no living process holds it, else None (``DiskError`` when the
    disk refuses the claim file)."""
    with writing(path):
        return _try_claim(path)


def _try_claim(path: Path) -> Claim | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # the claim file may be deleted between open and lock: try again
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(fd).st_ino:
            os.close(fd)
            continue
        record = {"host": socket.gethostname(), "pid": os.getpid(),
                  "claimed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        return Claim(path, fd)
    return None


def holder(path: Path) -> dict | None:
    """The host and pid written in a claim file (None if absent or unreadable): who holds it, or
    held it last if it is free."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
