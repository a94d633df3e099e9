"""How many threads the BLAS under NumPy runs with, per phase of the engine's work.

OpenBLAS starts one thread per core and splits every product above a small size among them.
When another process holds one of the cores, each product waits for the thread that process
pushed off its core: on two shared cores a training step became 2-40x slower and an evaluation
1.7-11x. The engine therefore sets the BLAS threads itself, per phase
(docs/performance-threads.md has the measurements behind ``POLICY``):

- ``"step"``: a training step (``ScratchTrainer.train_step``, batch 100): one thread. Its
  products are too small for a second thread to pay, even with both cores free.
- ``"eval"``: evaluation (``ScratchTrainer.evaluate``, batches of 1000): ``"auto"``, i.e. as
  many threads as there are cores no other process is running on when the phase starts (at
  least one): on an idle machine a second thread makes the dense models' evaluation 1.3-1.6x
  faster, on a busy one it would collapse.

Who decides, first match wins:

1. ``TFPARITY_BLAS_THREADS`` (or ``--blas-threads``): ``N`` or ``auto`` (every phase),
   ``step=N,eval=auto`` (the phases named; the others keep ``POLICY``), or ``inherit``
   (leave the BLAS as it started: OpenBLAS's default of one thread per core).
2. The BLAS's own variables (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ...): if any is
   set, the engine leaves the BLAS as that setting made it.
3. ``POLICY``.

The step phase may also have a helper process (``scratch.helper``), which runs the second half
of each batch through the fused convolution blocks on another core. ``TFPARITY_STEP_HELPER``
decides: ``auto`` (the default: when the step phase starts with at least two cores that no
other process is running on), ``on`` or ``off``. The numbers are the same either way.

The count is set when a phase starts and left set while it lasts (``use``): a call in the phase
already running costs one comparison, where threadpoolctl's context manager costs about 40
microseconds (a tenth of a small model's step). An ``"auto"`` phase looks at the machine once,
when it starts (well under a millisecond on an idle machine).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from contextlib import contextmanager
from typing import Iterator, Mapping

import numpy as np  # noqa: F401 -- loads the BLAS, so that threadpoolctl finds it
from threadpoolctl import ThreadpoolController

from scratch import helper

ENV_VAR = "TFPARITY_BLAS_THREADS"
HELPER_VAR = "TFPARITY_STEP_HELPER"
HELPER_RULES = ("auto", "on", "off")
PHASES = ("step", "eval")
AUTO, INHERIT = "auto", "inherit"
POLICY: dict[str, int | str] = {"step": 1, "eval": AUTO}
# Variables through which a user sets the BLAS's threads directly; any of them set wins.
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

_PAIR = re.compile(r"^\s*(\w+)\s*=\s*(\S+)\s*$")


def _rule(text: str, where: str) -> int | str:
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{where}: expected a positive number of threads or {AUTO!r}, "
                         f"received {text.strip()!r}.")
    return value


def parse(spec: str, where: str = ENV_VAR) -> dict[str, int | str | None]:
    """The rule of each phase from a setting such as ``"1"``, ``"auto"``, ``"step=1,eval=2"``
    or ``"inherit"`` (None: leave the BLAS alone); phases not named keep ``POLICY``.

    Raises:
        ValueError: naming ``where``, the accepted forms and what was received.
    """
    text = spec.strip()
    if text.lower() == INHERIT:
        return dict.fromkeys(PHASES)
    if "=" not in text:
        return dict.fromkeys(PHASES, _rule(text, where))
    rules: dict[str, int | str | None] = dict(POLICY)
    for part in text.split(","):
        match = _PAIR.match(part)
        if match is None or match[1] not in PHASES:
            raise ValueError(f"{where}: expected N, {AUTO!r}, {INHERIT!r} or phase=N pairs with "
                             f"phases {', '.join(PHASES)} (e.g. 'step=1,eval=auto'), "
                             f"received {spec!r}.")
        rules[match[1]] = _rule(match[2], f"{where} ({match[1]})")
    return rules


def helper_rule(text: str, where: str = HELPER_VAR) -> str:
    """``TFPARITY_STEP_HELPER``'s value checked: one of ``HELPER_RULES``.

    Raises:
        ValueError: naming ``where``, the accepted values and what was received.
    """
    rule = text.strip().lower()
    if rule not in HELPER_RULES:
        raise ValueError(f"{where}: expected one of {', '.join(HELPER_RULES)}, "
                         f"received {text!r}.")
    return rule


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _runnable_here() -> int:
    """Runnable threads of this process and of its helper process (``scratch.helper``, which
    polls for a few milliseconds after each half it ran): not load from elsewhere."""
    count = 0
    for root in ["/proc/self", *(f"/proc/{pid}" for pid in helper.running_pids())]:
        try:
            tids = os.listdir(f"{root}/task")
        except OSError:  # the helper ended meanwhile
            continue
        for tid in tids:
            try:
                with open(f"{root}/task/{tid}/stat", "rb") as f:
                    count += f.read().rsplit(b")", 1)[1].split()[0] == b"R"
            except OSError:  # the thread ended meanwhile
                pass
    return count


def busy_elsewhere(looks: int = 5) -> int | None:
    """How many threads of other processes are running or waiting to run right now: the
    machine's runnable count (/proc/loadavg) less this process's (and its helper's) runnable
    threads, the
    median of ``looks`` looks (a process that runs for a moment is not load, and a busy one
    missed by one look still is: the two counts are read at different instants, and this
    process's threads may change state between them); None without /proc."""
    try:
        counts = []
        for _ in range(looks):
            with open("/proc/loadavg", "rb") as f:
                machine = int(f.read().split()[3].split(b"/")[0])
            counts.append(max(machine - _runnable_here(), 0))
    except (OSError, ValueError, IndexError):
        return None
    return sorted(counts)[len(counts) // 2]


def auto_threads(cores: int | None = None) -> int:
    """The ``"auto"`` count: the cores no other process is running on now, at least 1 (and 1
    where the machine's load cannot be read)."""
    cores = usable_cores() if cores is None else cores
    others = busy_elsewhere()
    return 1 if others is None else max(1, cores - others)


class BlasThreads:
    """The BLAS thread rule of each phase, where it came from, and the switch between phases.

    Args:
        environ: the variables to decide from (default ``os.environ``).
        override: if given, takes the place of ``TFPARITY_BLAS_THREADS`` (a command-line option).

    Attributes:
        rules: phase -> a count, ``"auto"``, or None (leave the BLAS alone).
        source: who set the rules (``"tfparity policy"``, the variable, ``"--blas-threads"``).
        last: phase -> the count the phase last ran with (phases that ran).
        usage: phase -> Counter of counts, one per start of the phase.

    Raises:
        ValueError: for a malformed ``TFPARITY_BLAS_THREADS`` or ``override``.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, override: str | None = None):
        environ = os.environ if environ is None else environ
        user = {name: environ[name] for name in BLAS_VARIABLES if environ.get(name)}
        if override is not None:
            self.source, self.rules = "--blas-threads", parse(override, "--blas-threads")
        elif environ.get(ENV_VAR):
            self.source, self.rules = ENV_VAR, parse(environ[ENV_VAR])
        elif user:
            self.source = ", ".join(f"{name}={value}" for name, value in user.items())
            self.rules = dict.fromkeys(PHASES)
        else:
            self.source, self.rules = "tfparity policy", dict(POLICY)
        self.helper_rule = helper_rule(environ.get(HELPER_VAR) or AUTO)
        self.helper = False   # whether the running step phase has the helper process
        self.helper_usage: Counter = Counter()   # "on"/"off" -> step phase starts
        self.last: dict[str, int | None] = {}
        self.usage: dict[str, Counter] = {phase: Counter() for phase in PHASES}
        self.started_with: list[int] = []
        self._controller = None
        self._set_to: int | None = None   # the count this object last gave the BLAS
        self._phase: str | None = None

    @property
    def controller(self) -> ThreadpoolController:
        """threadpoolctl's controller of the loaded BLAS libraries, made on first use."""
        if self._controller is None:
            self._controller = ThreadpoolController().select(user_api="blas")
            self.started_with = [lib["num_threads"] for lib in self._controller.info()]
        return self._controller

    def _blas_threads(self) -> int | None:
        libs = self.controller.lib_controllers
        return libs[0].get_num_threads() if libs else None

    @property
    def running(self) -> str | None:
        """The phase running now (the last one ``use`` started), None before the first."""
        return self._phase

    def current(self) -> int:
        """The BLAS's thread count right now (1 without a BLAS that threadpoolctl knows)."""
        return self._blas_threads() or 1

    def _set(self, count: int) -> None:
        for lib in self.controller.lib_controllers:
            lib.set_num_threads(count)
        self._set_to = count

    def use(self, phase: str) -> None:
        """Run the BLAS with ``phase``'s count from now on; nothing if ``phase`` is running."""
        if phase == self._phase:
            return
        if phase not in self.rules:
            raise ValueError(f"BlasThreads: expected a phase in {PHASES}, received {phase!r}.")
        rule = self.rules[phase]
        count = auto_threads() if rule == AUTO else rule
        if phase == "step":
            self.helper = self.helper_rule == "on" or (
                self.helper_rule == AUTO and auto_threads() >= 2)
            self.helper_usage["on" if self.helper else "off"] += 1
        if count is None:
            count = self._blas_threads()
        elif count != self._set_to:
            self._set(count)
        self._phase = phase
        self.last[phase] = count
        self.usage[phase][count] += 1

    @contextmanager
    def phase(self, phase: str, helper: bool | None = None) -> Iterator[None]:
        """``use(phase)`` for a block, then the counts the BLAS and this object had before;
        ``helper`` True or False decides the step helper for the block instead of its rule."""
        before = [lib.get_num_threads() for lib in self.controller.lib_controllers]
        state = self._phase, self._set_to, self.helper
        self.use(phase)
        if helper is not None:
            self.helper = helper
        try:
            yield
        finally:
            for lib, count in zip(self.controller.lib_controllers, before):
                lib.set_num_threads(count)
            self._phase, self._set_to, self.helper = state

    def restore(self) -> None:
        """Give the BLAS back the thread counts it had before this object first set them."""
        if self._set_to is not None:
            for lib, count in zip(self.controller.lib_controllers, self.started_with):
                lib.set_num_threads(count)
        self._phase = self._set_to = None

    def usage_snapshot(self) -> dict[str, Counter]:
        """A copy of ``usage`` (and of ``helper_usage``, as phase ``"helper"``), for
        ``describe(since=...)``."""
        return {phase: Counter(counts) for phase, counts in
                {**self.usage, "helper": self.helper_usage}.items()}

    def describe(self, since: dict[str, Counter] | None = None) -> dict:
        """What to record: ``source``, ``rules``, ``phases`` (the count each phase last ran
        with; for a phase that has not run, its fixed count, the BLAS's current count where the
        BLAS is left alone, None for ``"auto"``), ``usage`` (count -> starts of the phase with
        it, since the ``usage_snapshot`` ``since`` if given) and each BLAS library (API,
        version, architecture, threading layer, the thread count it started with)."""
        libraries = [{key: info.get(key) for key in
                      ("internal_api", "version", "architecture", "threading_layer")}
                     | {"started_with_threads": started}
                     for info, started in zip(self.controller.info(), self.started_with)]
        phases = {}
        for phase, rule in self.rules.items():
            if phase in self.last:
                phases[phase] = self.last[phase]
            else:
                phases[phase] = self._blas_threads() if rule is None else (
                    None if rule == AUTO else rule)
        return {"source": self.source, "rules": dict(self.rules), "phases": phases,
                "usage": {phase: {str(k): v for k, v in sorted(
                    (counts - (since or {}).get(phase, Counter())).items(), key=str)}
                    for phase, counts in self.usage.items()},
                "libraries": libraries,
                "step_helper": {"rule": self.helper_rule, "usage": dict(
                    self.helper_usage - (since or {}).get("helper", Counter())),
                    "fault": helper.fault}}


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
    ``os.environ``), giving the BLAS back its starting counts first. Raises ValueError for a
    bad setting (and then keeps the current one)."""
    global _ACTIVE
    chosen = BlasThreads(override=override)
    if _ACTIVE is not None:
        _ACTIVE.restore()
    _ACTIVE = chosen
    return _ACTIVE


def use(phase: str) -> None:
    """``policy().use(phase)``: what the engine calls at the start of each step or evaluation."""
    policy().use(phase)


def step_helper() -> bool:
    """Whether the step phase is running and has the helper process (``scratch.helper``)."""
    active = policy()
    return active.helper and active.running == "step"


def blas_threads(phase: str, helper: bool | None = None):
    """A context manager running its block with ``phase``'s BLAS threads, e.g. for direct calls
    of ``Sequential.evaluate``: ``with blas_threads("eval"): model.evaluate(x, y)``; ``helper``
    as in ``BlasThreads.phase``."""
    return policy().phase(phase, helper)


def describe(since: dict[str, Counter] | None = None) -> dict:
    """``policy().describe(since)``: the BLAS threads per phase and where they came from."""
    return policy().describe(since)
