"""Disk errors are bad environment, not tfparity bugs: a full disk (ENOSPC), a file-size limit
(EFBIG, e.g. ``ulimit -f``), a read-only file system (EROFS) or an exhausted quota (EDQUOT) while
a file is written becomes a ``DiskError`` (a ``BadInput``: exit code 2) naming the file and the
error. ``check_room`` tries such a write before a long computation whose result it would lose.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from reports.errors import BadInput

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT})


class DiskError(BadInput):
    """A file could not be written for want of room or permission of the file system."""


def is_disk_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


def _reason(error: OSError) -> str:
    return f"{error.strerror or os.strerror(error.errno)} ({errno.errorcode[error.errno]})"


@contextmanager
def writing(path) -> Iterator[None]:
    """Turn a disk error raised in the block, which writes ``path``, into ``DiskError``."""
    try:
        yield
    except OSError as error:
        if not is_disk_error(error):
            raise
        raise DiskError(f"cannot write {path}: {_reason(error)}; free some space (or raise the "
                        "limit) and run the command again.") from error


def check_room(directory, nbytes: int, option: str) -> None:
    """Write ``nbytes`` to a temporary file in ``directory`` (or, if it does not exist yet, in
    its nearest existing parent: nothing is created) and delete it.

    Raises:
        BadInput: naming ``option`` and the directory if the disk refuses them.
    """
    directory = existing = Path(directory)
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            block = bytes(min(nbytes, 2**20))
            for start in range(0, nbytes, len(block)):
                probe.write(block[:nbytes - start])
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        if not is_disk_error(error):
            raise
        raise BadInput(f"argument {option}: expected room for {nbytes} bytes in {directory}, "
                       f"received {_reason(error)}.") from None
