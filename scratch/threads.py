"""How many threads the BLAS under NumPy runs with, per phase of the engine's work.

OpenBLAS starts one thread per core and splits every product above a small size among them.
The engine's products are small (a batch of 100 through layers of 8-32 units), so on an idle
machine a second thread gains little, and on a busy one it costs dearly: each product then waits
for a thread that another process has pushed off its core, and a training step became 14-40x
slower on two shared cores (docs/performance-threads.md has the measurements). The engine
therefore sets the BLAS threads itself, per phase:

- ``"step"``: a training step (``ScratchTrainer.train_step``, batch 100);
- ``"eval"``: evaluation (``ScratchTrainer.evaluate``, batches of 1000).

``POLICY`` holds the counts. Who decides, first match wins:

1. ``TFPARITY_BLAS_THREADS``: ``N`` (every phase), ``step=N,eval=M`` (the phases named; the
   others keep the policy), or ``inherit`` (leave the BLAS as it started: OpenBLAS's default).
2. The BLAS's own variables (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ...): if any is set,
   the engine leaves the BLAS as that setting made it.
3. ``POLICY``.

A phase sets the count once and leaves it set (``use``): the engine's steps call it every time,
and a call that finds the count already right costs a dictionary look-up, where threadpoolctl's
context manager costs about 40 microseconds (a tenth of a small model's step).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator, Mapping

import numpy as np  # loads the BLAS, so that threadpoolctl finds it
from threadpoolctl import ThreadpoolController

ENV_VAR = "TFPARITY_BLAS_THREADS"
PHASES = ("step", "eval")
POLICY: dict[str, int] = {"step": 1, "eval": 1}
# Variables through which a user sets the BLAS's threads directly; any of them set wins.
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
INHERIT = "inherit"

_PAIR = re.compile(r"^\s*(\w+)\s*=\s*(\S+)\s*$")


def _count(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{where}: expected a positive number of threads, received {text!r}.")
    return value


def parse(spec: str, where: str = ENV_VAR) -> dict[str, int | None]:
    """Thread counts per phase from a setting such as ``"1"``, ``"step=1,eval=2"`` or
    ``"inherit"`` (None: leave the BLAS alone); phases not named keep ``POLICY``.

    Raises:
        ValueError: naming ``where``, the accepted forms and what was received.
    """
    text = spec.strip()
    if text.lower() == INHERIT:
        return dict.fromkeys(PHASES)
    if "=" not in text:
        return dict.fromkeys(PHASES, _count(text, where))
    counts: dict[str, int | None] = dict(POLICY)
    for part in text.split(","):
        match = _PAIR.match(part)
        if match is None or match[1] not in PHASES:
            raise ValueError(f"{where}: expected N, {INHERIT!r} or phase=N pairs with phases "
                             f"{', '.join(PHASES)} (e.g. 'step=1,eval=2'), received {spec!r}.")
        counts[match[1]] = _count(match[2], f"{where} ({match[1]})")
    return counts


class BlasThreads:
    """The BLAS thread count of each phase, where it came from, and the switch between them.

    Args:
        environ: the variables to decide from (default ``os.environ``); ``override``, if given,
            takes the place of ``TFPARITY_BLAS_THREADS`` (e.g. a command-line option).

    Raises:
        ValueError: for a malformed ``TFPARITY_BLAS_THREADS`` or ``override``.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, override: str | None = None):
        environ = os.environ if environ is None else environ
        user = {name: environ[name] for name in BLAS_VARIABLES if environ.get(name)}
        if override is not None:
            self.source, self.counts = "--blas-threads", parse(override, "--blas-threads")
        elif environ.get(ENV_VAR):
            self.source, self.counts = ENV_VAR, parse(environ[ENV_VAR])
        elif user:
            self.source = ", ".join(f"{name}={value}" for name, value in user.items())
            self.counts = dict.fromkeys(PHASES)
        else:
            self.source, self.counts = "tfparity policy", dict(POLICY)
        self._controller = None
        self._current: int | None = None
        self.started_with: list[int] = []

    @property
    def controller(self) -> ThreadpoolController:
        """threadpoolctl's controller of the loaded BLAS libraries, made on first use."""
        if self._controller is None:
            self._controller = ThreadpoolController().select(user_api="blas")
            self.started_with = [lib["num_threads"] for lib in self._controller.info()]
        return self._controller

    def _set(self, count: int) -> None:
        for lib in self.controller.lib_controllers:
            lib.set_num_threads(count)
        self._current = count

    def _count_of(self, phase: str) -> int | None:
        try:
            return self.counts[phase]
        except KeyError:
            raise ValueError(f"BlasThreads: expected a phase in {PHASES}, "
                             f"received {phase!r}.") from None

    def use(self, phase: str) -> None:
        """Run the BLAS with ``phase``'s count from now on (nothing if it is None or set)."""
        count = self._count_of(phase)
        if count is not None and count != self._current:
            self._set(count)

    @contextmanager
    def phase(self, phase: str) -> Iterator[None]:
        """``use(phase)`` for a block, then the counts the BLAS had before it."""
        before = [lib.get_num_threads() for lib in self.controller.lib_controllers]
        previous = self._current
        self.use(phase)
        try:
            yield
        finally:
            for lib, count in zip(self.controller.lib_controllers, before):
                lib.set_num_threads(count)
            self._current = previous

    def restore(self) -> None:
        """Give the BLAS back the thread counts it had before this object first set them."""
        if self._current is not None:
            for lib, count in zip(self.controller.lib_controllers, self.started_with):
                lib.set_num_threads(count)
            self._current = None

    def threads(self, phase: str) -> int | None:
        """The count ``phase`` runs with: its own, or the BLAS's current one where it has none
        (None if no BLAS library was found)."""
        count = self._count_of(phase)
        if count is not None:
            return count
        libs = self.controller.lib_controllers
        return libs[0].get_num_threads() if libs else None

    def describe(self) -> dict:
        """What to record: source, threads per phase, and each BLAS library (API, version,
        architecture, threading layer, the thread count it started with)."""
        libraries = [{key: info.get(key) for key in
                      ("internal_api", "version", "architecture", "threading_layer")}
                     | {"started_with_threads": started}
                     for info, started in zip(self.controller.info(), self.started_with)]
        return {"source": self.source, "phases": {p: self.threads(p) for p in PHASES},
                "libraries": libraries}


_ACTIVE: BlasThreads | None = None


def policy() -> BlasThreads:
    """The process's ``BlasThreads``, decided from ``os.environ`` on first use.

    Raises:
        ValueError: for a malformed ``TFPARITY_BLAS_THREADS``.
    """
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = BlasThreads()
    return _ACTIVE


def configure(override: str | None = None) -> BlasThreads:
    """Decide the process's ``BlasThreads`` again (from ``override`` if given, else from
    ``os.environ``), e.g. for a command-line option. Raises ValueError for a bad setting."""
    global _ACTIVE
    chosen = BlasThreads(override=override)
    if _ACTIVE is not None:
        _ACTIVE.restore()
    _ACTIVE = chosen
    return _ACTIVE


def use(phase: str) -> None:
    """``policy().use(phase)``: what the engine calls at the start of each step or evaluation."""
    policy().use(phase)


def blas_threads(phase: str):
    """A context manager running its block with ``phase``'s BLAS threads, e.g. for direct calls
    of ``Sequential.evaluate``: ``with blas_threads("eval"): model.evaluate(x, y)``."""
    return policy().phase(phase)


def describe() -> dict:
    """``policy().describe()``: the BLAS threads per phase and where they came from."""
    return policy().describe()
