"""Progress on stderr for ``tfparity check`` and ``diff``: which phase, layer and pass.

On a terminal one line is rewritten in place and cleared at the end; elsewhere (a log, a CI
job) a line is printed when the phase changes, and within a phase at most once a second. The
messages come from ``reference_tf.progress`` ("float32 trace path, yours: conv2 backward").
"""

from __future__ import annotations

import shutil
import sys
import time


class StderrProgress:
    """A ``reference_tf.progress.Progress`` printing on ``stream`` (default stderr)."""

    def __init__(self, stream=None, interval: float = 1.0):
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval, self.phase, self.last = interval, None, -float("inf")

    def __call__(self, message: str) -> None:
        if self.live:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + message[:width])
            self.stream.flush()
            return
        phase, now = message.split(":")[0], time.monotonic()
        if phase != self.phase or now - self.last >= self.interval:
            print(message, file=self.stream, flush=True)
            self.phase, self.last = phase, now

    def close(self) -> None:
        """Clear the terminal line (before the results are printed)."""
        if self.live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def progress_for(quiet: bool) -> StderrProgress | None:
    """The progress printer of a command, None with --quiet."""
    return None if quiet else StderrProgress()
