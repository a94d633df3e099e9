"""The finite-difference opinion on slow code probes what fits its time budget and says how
many positions it probed (``reference_tf.finite_diff.BUDGET``)."""

from __future__ import annotations

import time

import numpy as np

from reference_tf import finite_diff


def _slow_judge(monkeypatch, seconds: float, budget: float):
    # f(v) = sum(v**2) per row; the "scratch" gradient is wrong (v instead of 2 v)
    monkeypatch.setattr(finite_diff, "BUDGET", budget)
    rows = np.linspace(1.0, 2.0, 20).reshape(1, 20)

    def f():
        time.sleep(seconds)
        return (rows ** 2).sum(axis=1)

    return finite_diff.judge(rows, f, lambda: (rows ** 2).sum(axis=1), rows.copy(), 2 * rows,
                             "input gradient")


def test_fd_opinion_on_slow_code_probes_fewer_positions_and_says_so(monkeypatch):
    opinion = _slow_judge(monkeypatch, seconds=0.02, budget=0.1)
    assert opinion.verdict == "scratch"
    assert 1 <= opinion.details["positions_probed"] < finite_diff.PROBES
    assert f"{opinion.details['positions_probed']} of the 12 most disputed" in opinion.sentence


def test_fd_opinion_on_fast_code_probes_every_position(monkeypatch):
    opinion = _slow_judge(monkeypatch, seconds=0.0, budget=3.0)
    assert opinion.verdict == "scratch"
    assert opinion.details["positions_probed"] == finite_diff.PROBES
    assert "Slow code" not in opinion.sentence
