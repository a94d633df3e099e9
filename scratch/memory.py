"""Keep freed memory in the process for the next batch instead of returning it to the OS.

A training step allocates and frees the same arrays of a few MB (window matrices, convolution
grids) on every batch. With glibc's defaults such an array is either mmap-ed afresh or lies at the
top of the heap, which ``free`` trims, so the next batch pays a page fault per 4 KiB page again
(docs/performance.md has the measurement). TensorFlow's allocator keeps its memory for the same
reason. ``retain_freed_memory`` raises
glibc's mmap and trim thresholds so that freed blocks are reused; the resident size then stays
at its high-water mark.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 1 << 30


@cache
def retain_freed_memory() -> bool:
    """Tell glibc's malloc to keep and reuse freed blocks of up to 1 GiB (process-wide, once).

    Returns whether it took effect: False where the C library is not glibc (macOS, musl).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _THRESHOLD_BYTES))
