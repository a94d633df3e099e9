"""A worker process that ends when the driver that started it dies, however the driver dies.

A ``processes`` worker waits for tasks on a pipe whose write end it holds itself, so it never
sees its driver go: after a SIGKILL of the driver it would live on, holding its memory and the
driver's stdout and stderr (``tfparity report ... | tee log`` would never return). On Linux the
kernel sends the worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a
daemon thread polls the parent pid every ``POLL_SECONDS``. A worker holds nothing the driver
has not saved: the driver alone writes the run store.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_SECONDS = 1.0


def _set_parent_death_signal() -> bool:
    """Ask the kernel for SIGKILL when the parent dies; whether it took."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (the driver that started it) dies; at once if it
    already has (it died before this was set up: this process has another parent now)."""
    if not _set_parent_death_signal():
        threading.Thread(target=_watch, args=(parent_pid,), daemon=True,
                         name="tfparity-lifeline").start()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)
