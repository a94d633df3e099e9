"""User code that tries to end the process: ``sys.exit``, ``os._exit`` and a ``KeyboardInterrupt``
it raises itself become a ``UserExit`` exception while it runs inside ``guard()``, so that the
fault guard (``reference_tf.user_code``) and the loader name the layer or the factory that did
it. A real Ctrl-C still interrupts.

Left alone, ``sys.exit(0)`` in a layer's backward pass ends ``tfparity check`` with exit code 0
after a partial check, and ``os._exit(0)`` ends it at once, skipping everything. Inside
``guard()``, ``os._exit`` is replaced by a function that raises instead. Out of reach are exits
below Python (C's ``_exit`` called through ctypes, a signal the code sends its own process): the
process then ends with that status, and only the command's closing line tells a finished check
(docs/own-network.md).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from types import TracebackType
from typing import Iterator


class UserExit(Exception):
    """User code tried to end the process. The message completes "layer 'relu1' (relu_backward)
    ...", e.g. "called sys.exit(7)"; ``code`` is the exit code it asked for (None for a
    KeyboardInterrupt it raised). Its traceback is that of the exit, so it ends at the user's
    line."""

    def __init__(self, message: str, code=None):
        super().__init__(message)
        self.code = code


class _OsExit(SystemExit):
    """``os._exit(status)`` called inside ``guard()`` (a SystemExit: user code that catches
    Exception does not swallow it)."""


def _raising_exit(status: int) -> None:
    raise _OsExit(status)


class _CtrlCWatch:
    """Notes a real Ctrl-C (SIGINT) while user code runs and hands it on to the handler before it
    (Python's, or ``reports.errors.InterruptWatch``'s); installs nothing off the main thread or
    where SIGINT has no Python handler (ignored, or the default: the process ends)."""

    def __init__(self):
        self.seen, self.previous = False, None
        try:
            if callable(signal.getsignal(signal.SIGINT)):
                self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            pass

    def _handler(self, signum, frame) -> None:
        self.seen = True
        self.previous(signum, frame)

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _without_last_frame(trace: TracebackType) -> TracebackType:
    last = trace
    while last.tb_next is not None and last.tb_next.tb_next is not None:
        last = last.tb_next
    last.tb_next = None
    return trace


class _ExitPatch:
    """``os._exit`` replaced while any guard is active, in any thread (a count under a lock, so
    that overlapping guards restore the real function only when the last one ends)."""

    def __init__(self):
        self.lock, self.active, self.real = threading.Lock(), 0, None

    def __enter__(self) -> None:
        with self.lock:
            if self.active == 0:
                self.real, os._exit = os._exit, _raising_exit
            self.active += 1

    def __exit__(self, *exc_info) -> None:
        with self.lock:
            self.active -= 1
            if self.active == 0:
                os._exit = self.real


_EXIT_PATCH = _ExitPatch()


@contextmanager
def guard() -> Iterator[None]:
    """Run the block (user code) with its exits turned into ``UserExit``."""
    watch = _CtrlCWatch()
    try:
        with _EXIT_PATCH:
            yield
    except SystemExit as error:
        how, trace = "sys.exit", error.__traceback__
        if isinstance(error, _OsExit):  # the traceback ends at the user's call, not inside ours
            how, trace = "os._exit", _without_last_frame(trace)
        raise UserExit(f"called {how}({error.code!r})", error.code).with_traceback(trace) from None
    except KeyboardInterrupt as error:
        if watch.seen:
            raise
        raise UserExit("raised KeyboardInterrupt itself (not a Ctrl-C)").with_traceback(
            error.__traceback__) from None
    finally:
        watch.restore()


def what_happened(error: Exception) -> str:
    """What user code did, completing "layer 'x' (fn) ..." or "FACTORY() ...": "called
    sys.exit(7)" for a ``UserExit``, else "raised ValueError: ..."."""
    if isinstance(error, UserExit):
        return str(error)
    return f"raised {type(error).__name__}: {error}"
