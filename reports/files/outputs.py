"""Output paths checked before any work starts.

A command calls ``check_file``/``check_dir`` for every output it will write (``--save``,
``--json``, ``--plot``, ``--out``) before it trains or compares anything, so a read-only place or
a wrong suffix costs a second, not the run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from reports.errors import BadInput

WEIGHTS_SUFFIXES = (".npz",)
JSON_SUFFIXES = (".json",)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")  # formats matplotlib picks from the suffix


def check_dir(path, option: str) -> Path:
    """``path`` as a Path if it is, or can be created as, a directory this process can write in.

    Raises:
        BadInput: naming ``option`` (e.g. "--out") and why not: an existing file, a parent that
            is a file, or no permission to write (tested by creating a temporary file).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInput(f"argument {option}: expected a directory, received {path}, an existing "
                       "file.")
    _check_writable(path, option)
    return path


def check_file(path, option: str, suffixes: tuple[str, ...]) -> Path:
    """``path`` as a Path if a file with one of ``suffixes`` can be written there.

    Raises:
        BadInput: naming ``option`` and the path: another suffix, an existing directory, or a
            place that cannot be written (see ``check_dir``).
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise BadInput(f"argument {option}: expected a file name ending in "
                       f"{' or '.join(suffixes)}, received {str(path)!r}.")
    if path.is_dir():
        raise BadInput(f"argument {option}: expected a file, received {path}, an existing "
                       "directory.")
    _check_writable(path.parent, option)
    return path


def _check_writable(directory: Path, option: str) -> None:
    """Raise BadInput unless ``directory`` exists or can be created, and can be written in."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadInput(f"argument {option}: expected a directory that exists or can be created, "
                       f"received {directory}, below the file {existing}.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise BadInput(f"argument {option}: expected a writable directory, received {directory}: "
                       f"cannot write in {existing} ({error.strerror}).") from None
