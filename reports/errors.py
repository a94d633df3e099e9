"""The exit codes of every ``tfparity`` command and the errors that select them.

A command's ``run(args)`` returns ``OK`` or ``FAILED`` (a result) and raises ``BadInput`` for
what the user gave (arguments, files, paths, data). ``reports.cli.main`` turns ``BadInput`` and
the data errors of ``scratch.data`` into ``BAD_INPUT``, Ctrl-C into ``INTERRUPTED``, and any
other exception into ``INTERNAL`` with the traceback in a log file (``write_crash_log``).
"""

from __future__ import annotations

import platform
import signal
import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path

OK = 0            # success; parity holds
FAILED = 1        # parity failure, divergence found, or training diverged
BAD_INPUT = 2     # bad arguments or input: files, paths, data
INTERNAL = 3      # a bug of tfparity: one line on stderr, the traceback in a log file
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

EXIT_CODES_HELP = (
    "Exit codes: 0 success (parity holds); 1 parity failure, divergence found or training "
    "diverged; 2 bad arguments or input (files, paths, data); 3 internal error (a one-line "
    "message, the traceback in a log file whose path is printed); 130 interrupted (Ctrl-C).")


class BadInput(Exception):
    """An argument, file, path or data set that cannot be used; the message names it, says what
    was expected and what was received."""


def is_input_error(error: BaseException) -> bool:
    """Whether ``error`` is about what the user gave: ``BadInput``, or a data error of
    ``scratch.data`` (exit code BAD_INPUT wherever it is raised)."""
    if isinstance(error, BadInput):
        return True
    mnist = sys.modules.get("scratch.data.mnist")  # not loaded: none of its errors was raised
    return mnist is not None and isinstance(error, (mnist.MnistDataError,
                                                    mnist.MnistNotFoundError))


@contextmanager
def reading(option: str):
    """Turn ValueError/TypeError/OSError raised while reading what ``option`` (e.g. "--weights")
    names into ``BadInput`` naming the option, for code that reads what the user gave."""
    try:
        yield
    except (ValueError, TypeError, OSError) as error:
        if is_input_error(error):
            raise
        raise BadInput(f"argument {option}: {error}") from error


class InterruptWatch:
    """While active, notes Ctrl-C (SIGINT) before raising KeyboardInterrupt as Python does, so
    that code turning the KeyboardInterrupt into another error (an import that fails halfway,
    as Keras's does) cannot hide it: ``seen`` says it came. Ignored SIGINT stays ignored; off the
    main thread nothing is installed."""

    def __enter__(self) -> "InterruptWatch":
        self.seen, self.previous = False, None
        try:
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
                self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            pass
        return self

    def _handler(self, signum, frame) -> None:
        self.seen = True
        signal.default_int_handler(signum, frame)

    def __exit__(self, *exc_info) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def write_crash_log(prog: str, argv: list[str], error: BaseException) -> Path:
    """Write the traceback of ``error`` with the command line and versions to a new log file in
    the temporary directory, named after ``prog`` (e.g. "tfparity diff"); return its path."""
    handle = tempfile.NamedTemporaryFile(
        "w", prefix=f"{prog.replace(' ', '-')}-", suffix=".log", delete=False)
    with handle:
        handle.write(f"command: tfparity {' '.join(argv)}\n")
        handle.write(f"python {platform.python_version()} on {platform.platform()}\n\n")
        traceback.print_exception(type(error), error, error.__traceback__, file=handle)
    return Path(handle.name)


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` of an exception."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
