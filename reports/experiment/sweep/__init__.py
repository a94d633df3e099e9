"""Running a report's training runs on an executor: one after another in the driver (``serial``),
in local worker processes (``processes``) or as Ray tasks (``ray``).

``driver.run_sweep`` is the entry point. The run store (``reports.experiment.runner.RunStore``)
stays the single source of truth whatever the executor: only the driver writes it, each run
atomically as its result arrives, and a run is claimed (``claims``) before it starts, so that two
report processes on the same directory never both train it. ``worker`` is what runs inside a worker;
it imports nothing heavy at module level, so that a worker sets its thread variables before NumPy
and TensorFlow load; ``lifeline`` makes a worker end when its driver dies.

This package imports nothing at import time (workers unpickle ``reports.experiment.sweep.worker``
first).
"""
