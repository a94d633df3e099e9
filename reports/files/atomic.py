"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

Every file tfparity writes (weights, run files, results.json, report.md, tables, figures) goes
through ``atomic_write``: a temporary file in the destination's directory, flushed, then renamed
over the destination. An interrupted write leaves the destination as it was and no temporary
file behind. The new file gets the usual mode (0666 less the umask, e.g. 0644), not the 0600 of
a temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from reports.files.disk_errors import writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing (``mode`` "w" text or "wb" binary) that replaces
    ``path`` when the block ends without an exception; parent directories are created. A full
    disk or a file-size limit raises ``reports.files.disk_errors.DiskError`` naming ``path``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def write_text(path, text: str) -> Path:
    """``text`` to ``path``, atomically; returns the path."""
    with atomic_write(path) as handle:
        handle.write(text)
    return Path(path)


def write_json(path, payload) -> Path:
    """``payload`` as strict JSON (no NaN/inf: ``to_json_safe`` first where needed), atomically."""
    with atomic_write(path) as handle:
        json.dump(payload, handle, allow_nan=False)
    return Path(path)


def save_figure(figure, path, **savefig_kwargs) -> Path:
    """A matplotlib figure to ``path`` (format from its suffix), atomically."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    return path
