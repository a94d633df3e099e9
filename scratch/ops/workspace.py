"""Arrays reused from one batch to the next of an evaluation."""

from __future__ import annotations

import numpy as np


class Workspace:
    """Scratch arrays keyed by role, shape and dtype, handed out again on the next request.

    An evaluation pushes batch after batch of one shape through the same layers. A fresh array of
    tens of MB pays its page faults on every batch (at batch 1000 the CNN's window matrices cost
    more to fault in than to multiply); a reused one does not. The array returned for a role is the
    same on every call with that shape, so the caller must be done with it before asking again.
    """

    def __init__(self):
        self._arrays: dict[tuple, np.ndarray] = {}

    def empty(self, role: str, shape, dtype) -> np.ndarray:
        """An uninitialized array of ``shape`` and ``dtype`` for ``role``, reused across calls."""
        key = (role, tuple(shape), np.dtype(dtype))
        if key not in self._arrays:
            self._arrays[key] = np.empty(shape, dtype)
        return self._arrays[key]
