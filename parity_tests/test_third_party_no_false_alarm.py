"""Correct third-party code passes ``tfparity check`` in float32 on an MNIST batch, and a planted
tie-routing or ReLU'(0) bug fails on the same batch (seed 0 and batches of 8 here, to stay fast;
seeds 0-49 with batches of 16 in ``examples/measurements/trust_sweep.py``, measured in
docs/diagnosis.md)."""

from __future__ import annotations

import pytest

from reports.cli import main

from own_network_helpers import (
    cs231n_relu_at_zero,
    library,
    library_spec,
    nchw_objects_pool_every_tie,
)

BUGS = {("loops", "relu"): cs231n_relu_at_zero, ("objects", "tie"): nchw_objects_pool_every_tie}


def _check(name: str, seed: int) -> int:
    return main(["check", "--model", library_spec(name), "--dtype", "float32", "--data", "mnist",
                 "--seed", str(seed), "--batch-size", "8", "--quiet"])


@pytest.mark.parametrize("name", ["loops", "objects"])
def test_third_party_clean_library_passes_check_on_mnist(name, capsys):
    code = _check(name, 0)
    out, err = capsys.readouterr()
    assert code == 0, out
    assert "trace path, yours" not in err  # --quiet: no progress


@pytest.mark.parametrize("name, bug", sorted(BUGS))
def test_third_party_planted_kink_bug_fails_on_the_same_batch(name, bug, monkeypatch, capsys):
    BUGS[name, bug](monkeypatch, library(name))
    assert _check(name, 0) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "KINK" not in out
