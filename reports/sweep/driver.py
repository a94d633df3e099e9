"""The sweep's driver: claims runs, hands them to a backend, saves each result as it arrives.

``run_sweep`` returns every run's result, training only those not yet in the run store. What the
driver guarantees whatever the executor:

- a run's file is written once, atomically, by the driver, the moment its result arrives, so
  Ctrl-C, a killed worker or a lost node loses only the runs then in flight, and re-running the
  command resumes on any executor (a run's key does not depend on where it ran);
- a run is claimed (``claims``) before it is submitted and released once saved: another report
  process on the same directory skips it and, once the claimer is gone, saves nothing twice: it
  waits for the run's file, or claims and trains it if its claimer died before saving it;
- a run whose worker died is submitted again, up to ``MAX_ATTEMPTS`` times in all.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from functools import cache
from typing import Callable

from reports.experiments import RunSpec, steps_per_run
from reports.progress import progress_bar
from reports.runner import RunStore
from reports.sweep import claims
from reports.sweep.backends import Lost
from reports.sweep.options import Executor

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
    queue = deque(spec for spec in specs if results[spec.key] is None)
    record = {"executor": None, "trained": 0, "lost": 0, "seconds": 0.0}
    if not queue:
        return results, record
    splits = load_splits()
    n_train = len(splits.train[0])
    planned = {spec.key: steps_per_run(spec, n_train) for spec in queue}
    bar = progress_bar(sum(planned.values()), enabled=progress, unit="step", dynamic_ncols=True,
                       desc=f"{len(specs) - len(queue)}/{len(specs)} runs cached")
    counted: dict[str, int] = {}  # steps already shown per run
    in_flight: dict = {}          # backend token -> (spec, claim)
    elsewhere: dict[str, RunSpec] = {}  # claimed by another live process
    attempts: dict[str, int] = {}
    backend = executor.backend(splits)
    record["executor"] = backend.describe()
    if backend.capacity > 1:
        queue = deque(longest_first(queue, n_train))

    def advance(spec: RunSpec, steps: int) -> None:
        bar.update(steps - counted.get(spec.key, 0))
        counted[spec.key] = steps

    def finish(spec: RunSpec, result: dict) -> None:
        results[spec.key] = result
        advance(spec, planned[spec.key])

    aborted, announced = True, False
    try:
        while queue or in_flight or elsewhere:
            while queue and len(in_flight) < backend.capacity:
                spec = queue.popleft()
                claim = claims.try_claim(claims.claim_path(store.dir, spec.filename))
                if claim is None:
                    if not announced:
                        announced = True
                        held = claims.holder(claims.claim_path(store.dir, spec.filename)) or {}
                        _say(f"runs claimed by another report process (pid {held.get('pid')} on "
                             f"{held.get('host')}) are left to it; waiting for their files.")
                    elsewhere[spec.key] = spec
                    continue
                cached = store.load(spec)
                if cached is not None:  # saved by another process since we looked
                    claim.release()
                    finish(spec, cached)
                    continue
                attempts[spec.key] = attempts.get(spec.key, 0) + 1
                execution = {**backend.describe(), "attempt": attempts[spec.key]}
                bar.set_postfix_str(f"{spec.label()} seed {spec.seed} {spec.implementation}"
                                    if backend.capacity == 1 else f"{len(in_flight) + 1} in flight")
                token = backend.submit(spec, execution,
                                       on_record=lambda r, s=spec: advance(s, r["step"]))
                in_flight[token] = (spec, claim)
            if in_flight:
                for token, outcome in backend.wait(POLL_SECONDS):
                    spec, claim = in_flight.pop(token)
                    if isinstance(outcome, Lost):
                        claim.release()
                        record["lost"] += 1
                        if attempts[spec.key] >= MAX_ATTEMPTS:
                            raise SweepError(f"run {spec.filename} lost its worker "
                                             f"{MAX_ATTEMPTS} times; last: {outcome.reason}")
                        _say(f"{outcome.reason}; {spec.label()} seed {spec.seed} "
                             f"{spec.implementation} runs again.")
                        advance(spec, 0)
                        queue.appendleft(spec)
                        continue
                    store.save(spec, outcome)
                    claim.release()
                    record["trained"] += 1
                    finish(spec, outcome)
            elif elsewhere:
                time.sleep(POLL_SECONDS)
            _check_elsewhere(elsewhere, store, queue, finish)
        aborted = False
        lost = f", {record['lost']} of them again after their worker died" if record["lost"] else ""
        _say(f"trained {record['trained']} run(s) on the {backend.name} executor in "
             f"{(time.perf_counter() - started) / 60:.1f} min{lost}.")
    finally:
        for _, claim in in_flight.values():
            claim.release()
        backend.close(abort=aborted)
        bar.close()
        record["seconds"] = time.perf_counter() - started
    return results, record


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
