"""The sweep's driver: claims runs, hands them to a backend, saves each result as it arrives.

``run_sweep`` returns every run's result, training only those not yet in the run store. What the
driver guarantees whatever the executor:

- a run's file is written once, atomically, by the driver, the moment its result arrives, so
  Ctrl-C, a killed worker or a lost node loses only the runs then in flight, and re-running the
  command resumes on any executor (a run's key does not depend on where it ran);
- a run is claimed (``claims``) before it is submitted and released once saved: another report
  process on the same directory skips it and, once the claimer is gone, saves nothing twice: it
  waits for the run's file, or claims and trains it if its claimer died before saving it;
- a run whose worker died is submitted again, up to ``MAX_ATTEMPTS`` times in all;
- a run that is the first epochs of a longer run of the plan (``protocol.prefix_parents``) is
  not trained: it is derived from that run's records (``runner.derive_prefix``) and saved as
  soon as the longer run's result is at hand.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from functools import cache
from typing import Callable

from reports.experiment.protocol import RunSpec, prefix_parents, steps_per_run
from reports.experiment.runner import RunStore, derive_prefix
from reports.experiment.sweep import claims
from reports.experiment.sweep.backends import Lost
from reports.experiment.sweep.options import Executor
from reports.experiment.sweep.progress import progress_bar

MAX_ATTEMPTS = 3  # runs of one spec whose worker died, before the sweep gives up on it
POLL_SECONDS = 1.0


class SweepError(RuntimeError):
    """A run could not be completed (its worker died ``MAX_ATTEMPTS`` times)."""


@cache
def _multiply_adds(model: str) -> int:
    """Multiply-adds of one example's forward pass through ``model``'s kernels."""
    from scratch.models import build

    network = build(model)
    total = 0
    for layer in network.layers:
        kernel = layer.params.get("kernel")
        if kernel is not None:  # a Conv2D kernel is applied at every output position
            positions = network.output_shapes[layer.name][:-1] if kernel.ndim == 4 else ()
            total += kernel.size * math.prod(positions)
    return total


def longest_first(specs, n_train: int) -> list[RunSpec]:
    """``specs`` by estimated work (training steps x multiply-adds per example), largest first:
    the order in which parallel executors start runs, so that no long run starts last and runs
    alone while the other workers idle."""
    return sorted(specs, key=lambda s: -steps_per_run(s, n_train) * _multiply_adds(s.model))


def _say(text: str) -> None:
    print(f"tfparity report: {text}", file=sys.stderr, flush=True)


def run_sweep(specs: list[RunSpec], store: RunStore, load_splits: Callable, executor: Executor,
              progress: bool = True) -> tuple[dict[str, dict], dict]:
    """Results of every spec (keyed by ``spec.key``), running only those not in ``store``, and a
    record of the sweep (``executor`` from the backend's ``describe()``, ``trained`` runs,
    ``lost`` runs re-submitted after their worker died, ``seconds``).

    Data is loaded (``load_splits()``) and a backend started only if something must run. The
    serial executor keeps the plan's order; parallel ones start the longest runs first
    (``longest_first``). The progress bar counts training steps over all pending runs.

    Raises:
        SweepError: a run's worker died ``MAX_ATTEMPTS`` times.
    """
    started = time.perf_counter()
    results = {spec.key: store.load(spec) for spec in specs}
    cached = sum(result is not None for result in results.values())
    record = {"executor": None, "trained": 0, "lost": 0, "derived": 0, "seconds": 0.0}
    parents = prefix_parents(specs)
    children: dict[str, list[RunSpec]] = {}  # parent key -> its pending shorter runs
    for spec in specs:
        if results[spec.key] is None and spec.key in parents:
            children.setdefault(parents[spec.key].key, []).append(spec)
    derive = Derivation(store, results, children, record)
    for spec in specs:
        if results[spec.key] is not None:
            derive.from_parent(spec, results[spec.key])
    queue = deque(spec for spec in specs if results[spec.key] is None and spec.key not in parents)
    if not queue:
        return results, record
    splits = load_splits()
    n_train = len(splits.train[0])
    planned = {spec.key: steps_per_run(spec, n_train) for spec in queue}
    bar = progress_bar(sum(planned.values()), enabled=progress, unit="step", dynamic_ncols=True,
                       desc=f"{cached}/{len(specs)} runs cached")
    backend = executor.backend(splits)
    record["executor"] = backend.describe()
    if backend.capacity > 1:
        queue = deque(longest_first(queue, n_train))
    sweep = Sweep(store, backend, bar, queue, results, record, planned, derive)
    aborted = True
    try:
        while queue or sweep.in_flight or sweep.elsewhere:
            sweep.submit_ready()
            if sweep.in_flight:
                sweep.collect()
            elif sweep.elsewhere:
                time.sleep(POLL_SECONDS)
            _check_elsewhere(sweep.elsewhere, store, queue, sweep.finish)
        aborted = False
        lost = f", {record['lost']} of them again after their worker died" if record["lost"] else ""
        derived = (f"; {record['derived']} run(s) are the first epochs of a longer one and were "
                   "taken from its records" if record["derived"] else "")
        _say(f"trained {record['trained']} run(s) on the {backend.name} executor in "
             f"{(time.perf_counter() - started) / 60:.1f} min{lost}{derived}.")
    finally:
        for _, claim in sweep.in_flight.values():
            claim.release()
        backend.close(abort=aborted)
        bar.close()
        record["seconds"] = time.perf_counter() - started
    return results, record


class Derivation:
    """Saves the shorter runs of a trajectory (``children``: parent key -> pending specs) from
    their parent's result, once it is at hand."""

    def __init__(self, store: RunStore, results: dict, children: dict, record: dict):
        self.store, self.results, self.children, self.record = store, results, children, record

    def from_parent(self, spec: RunSpec, result: dict) -> None:
        """Derive and save the pending shorter runs of ``spec`` from its ``result``."""
        for child in self.children.pop(spec.key, []):
            derived = derive_prefix(child, result)
            self.store.save(child, derived)
            self.results[child.key] = derived
            self.record["derived"] += 1


class Sweep:
    """The state of a running sweep: the ``queue`` of runs to submit, the runs ``in_flight``
    (backend token -> (spec, claim)), those claimed ``elsewhere`` by another live process, and
    the attempts per run; ``results`` and ``record`` are filled as runs finish."""

    def __init__(self, store: RunStore, backend, bar, queue: deque, results: dict, record: dict,
                 planned: dict[str, int], derive: Derivation):
        self.store, self.backend, self.bar, self.queue = store, backend, bar, queue
        self.results, self.record, self.planned = results, record, planned
        self.derive = derive
        self.counted: dict[str, int] = {}  # steps already shown per run
        self.in_flight: dict = {}          # backend token -> (spec, claim)
        self.elsewhere: dict[str, RunSpec] = {}  # claimed by another live process
        self.attempts: dict[str, int] = {}
        self.announced = False

    def advance(self, spec: RunSpec, steps: int) -> None:
        self.bar.update(steps - self.counted.get(spec.key, 0))
        self.counted[spec.key] = steps

    def finish(self, spec: RunSpec, result: dict) -> None:
        self.results[spec.key] = result
        self.advance(spec, self.planned[spec.key])
        self.derive.from_parent(spec, result)

    def submit_ready(self) -> None:
        """Claim and submit queued runs while the backend has room; a run claimed by another
        process waits ``elsewhere``, one saved meanwhile is taken as it is."""
        store, backend = self.store, self.backend
        while self.queue and len(self.in_flight) < backend.capacity:
            spec = self.queue.popleft()
            claim = claims.try_claim(claims.claim_path(store.dir, spec.filename))
            if claim is None:
                if not self.announced:
                    self.announced = True
                    held = claims.holder(claims.claim_path(store.dir, spec.filename)) or {}
                    _say(f"runs claimed by another report process (pid {held.get('pid')} on "
                         f"{held.get('host')}) are left to it; waiting for their files.")
                self.elsewhere[spec.key] = spec
                continue
            cached = store.load(spec)
            if cached is not None:  # saved by another process since we looked
                claim.release()
                self.finish(spec, cached)
                continue
            self.attempts[spec.key] = self.attempts.get(spec.key, 0) + 1
            execution = {**backend.describe(), "attempt": self.attempts[spec.key]}
            self.bar.set_postfix_str(f"{spec.label()} seed {spec.seed} {spec.implementation}"
                                     if backend.capacity == 1
                                     else f"{len(self.in_flight) + 1} in flight")
            token = backend.submit(spec, execution,
                                   on_record=lambda r, s=spec: self.advance(s, r["step"]))
            self.in_flight[token] = (spec, claim)

    def collect(self) -> None:
        """Save the runs that finished within POLL_SECONDS; queue again those whose worker died.

        Raises:
            SweepError: a run's worker died ``MAX_ATTEMPTS`` times.
        """
        for token, outcome in self.backend.wait(POLL_SECONDS):
            spec, claim = self.in_flight.pop(token)
            if isinstance(outcome, Lost):
                claim.release()
                self.record["lost"] += 1
                if self.attempts[spec.key] >= MAX_ATTEMPTS:
                    raise SweepError(f"run {spec.filename} lost its worker "
                                     f"{MAX_ATTEMPTS} times; last: {outcome.reason}")
                _say(f"{outcome.reason}; {spec.label()} seed {spec.seed} "
                     f"{spec.implementation} runs again.")
                self.advance(spec, 0)
                self.queue.appendleft(spec)
                continue
            try:  # a full disk fails the save: the claim goes all the same
                self.store.save(spec, outcome)
            finally:
                claim.release()
            self.record["trained"] += 1
            self.finish(spec, outcome)


def _check_elsewhere(elsewhere: dict, store: RunStore, queue: deque, finish: Callable) -> None:
    """Runs claimed by other processes: take the saved ones; queue again those whose claimer
    died."""
    for key, spec in list(elsewhere.items()):
        result = store.load(spec)
        if result is not None:
            del elsewhere[key]
            finish(spec, result)
            continue
        path = claims.claim_path(store.dir, spec.filename)
        probe = claims.try_claim(path)
        if probe is not None:  # its claimer is gone without saving it
            probe.release()
            del elsewhere[key]
            queue.append(spec)
