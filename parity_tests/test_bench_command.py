"""Smoke tests of ``tfparity bench``: it runs, writes what it says, and measures interleaved.

No timing is asserted: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import signal

import pytest

from reports.cli import main
from reports.measure import bench
from scratch import threads
from scratch.models import build


def test_bench_interleaved_alternates_who_goes_first():
    calls = []
    seconds = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                repeat=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {name: len(values) for name, values in seconds.items()} == {"a": 3, "b": 3}


def test_bench_spread_median_and_quartiles():
    # Linear interpolation of the sorted values 1, 2, 3, 4, 10: Q1 = 2, median 3, Q3 = 4.
    assert bench.Spread.of([4, 1, 10, 3, 2]) == bench.Spread(3.0, 2.0, 4.0, 5)


def test_bench_tracemalloc_peak_sees_a_numpy_allocation():
    import numpy as np

    assert bench.tracemalloc_peak(lambda: np.ones(2**20, dtype=np.float64)) >= 8.0


@pytest.mark.parametrize("models", [["linear", "cnn"]])
def test_bench_command_writes_table_json_plot_and_profile(tmp_path, capsys, fresh_blas_policy,
                                                          process_alive, models):
    out = tmp_path / "bench"
    code = main(["bench", "--models", *models, "--repeat", "2", "--eval-repeat", "1",
                 "--eval-images", "200", "--steps-per-call", "3", "--call-repeat", "2",
                 "--out", str(out), "--profile", "--plot",
                 str(out / "bench.png"), "--load", "2", "--blas-threads", "eval=2"])
    assert code == 0
    printed = capsys.readouterr().out
    payload = json.loads((out / "bench.json").read_text())
    assert [row["model"] for row in payload["results"]] == models
    for row in payload["results"]:
        for side in bench.SIDES:
            assert row[f"{side}_step"]["n"] == 2
            assert (row[f"{side}_step"]["q1"] <= row[f"{side}_step"]["median"]
                    <= row[f"{side}_step"]["q3"])
            assert row[f"{side}_eval_images_per_s"] > 0
            assert row[f"{side}_k_step"]["n"] == 2
        assert row["steps_per_call"] == 3
        assert math.isclose(row["k_step_ratio"],
                            row["numpy_k_step"]["median"] / row["tensorflow_k_step"]["median"])
        assert math.isclose(row["train_ratio"],
                            row["numpy_step"]["median"] / row["tensorflow_step"]["median"])
        assert row["numpy_peak_tracemalloc_mib"] > 0
        assert row["numpy_loss_and_grads"]["n"] == 2
        assert math.isclose(row["loss_and_grads_of_step"],
                            row["numpy_loss_and_grads"]["median"] / row["numpy_step"]["median"])
        assert f"| {row['model']} |" in printed
    assert "blas" in payload["environment"] and "thread_environment" in payload["environment"]
    phases = {"step": threads.POLICY["step"], "eval": 2}
    assert payload["environment"]["numpy_blas_threads"]["phases"] == phases
    assert payload["environment"]["numpy_blas_threads"]["source"] == "--blas-threads"
    assert set(payload["environment"]["tensorflow_threads"]) == {"intra_op", "inter_op"}
    assert payload["settings"]["load"] == payload["load"]["competitors"] == 2
    # Both competitors ran until the end (stopped by SIGTERM) and are gone.
    assert payload["load"]["returncodes"] == [-signal.SIGTERM] * 2
    assert not any(process_alive(pid) for pid in payload["load"]["pids"])
    for row in payload["results"]:
        assert row["numpy_blas_threads"] == phases
        assert len(row["load_average_before"]) == len(row["load_average_after"]) == 3
        # The helper runs fused conv blocks only; beside two busy competitors auto leaves it off.
        helper = row["numpy_step_helper"]
        assert helper is None if row["model"] != "cnn" else (
            helper["rule"] == "auto" and helper["usage"].get("on") is None and not helper["fault"])
    assert [layer["layer"] for layer in payload["profiles"]["cnn"]["layers"]] == [
        layer.name for layer in build("cnn").layers]
    assert [layer["layer"] for layer in payload["profiles"]["cnn"]["step"]] == [
        "conv1..pool2", "flatten", "hidden1", "hidden1_relu", "logits"]
    assert "NumPy per-layer times, cnn, training step (fused fast path)" in printed
    markdown = (out / "bench.md").read_text()
    assert markdown.count("\n") == 2 + len(models) + 6
    assert "K-step: 3 steps per compiled call (`fit(steps_per_execution=3)`)" in markdown
    assert f"step {threads.POLICY['step']}, eval 2 (--blas-threads" in markdown
    assert f"cnn step {threads.POLICY['step']}, eval 2" in markdown and "`--load 2`" in markdown
    assert "TensorFlow threads: intra-op" in markdown
    assert (out / "bench.png").stat().st_size > 0


def test_bench_command_rejects_bad_blas_threads(capsys, fresh_blas_policy):
    assert main(["bench", "--models", "linear", "--blas-threads", "step=0"]) == 2
    assert "--blas-threads (step): expected a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("load", ["-1", "x"])
def test_bench_command_rejects_bad_load(capsys, load):
    assert main(["bench", "--load", load]) == 2
    assert f"received {load!r}" in capsys.readouterr().err


def test_bench_command_rejects_unknown_model(capsys):
    assert main(["bench", "--models", "resnet"]) == 2
    assert "resnet" in capsys.readouterr().err


@pytest.mark.parametrize("records, clause, text", [
    ({"mlp2": None, "cnn": None}, "", ""),
    ({"mlp2": None, "cnn": {"rule": "auto", "usage": {"on": 3}, "fault": None}},
     ", NumPy's cnn on two processes", ", step helper process on (auto)"),
    ({"cnn": {"rule": "auto", "usage": {"off": 2}, "fault": None}}, "",
     ", step helper process off (auto)"),
    ({"cnn": {"rule": "on", "usage": {"on": 1, "off": 2}, "fault": None}},
     ", NumPy's cnn on two processes",
     ", step helper process on 1, off 2 phase starts (on)"),
    ({"cnn": {"rule": "on", "usage": {"on": 1}, "fault": "the helper exited with code -9"}},
     ", NumPy's cnn on two processes",
     ", step helper failed (the helper exited with code -9)"),
])
def test_bench_step_helper_named_in_caption_and_conditions(records, clause, text):
    from reports.render import timing_text

    rows = [{"model": model, "numpy_step_helper": record} for model, record in records.items()]
    assert timing_text.helper_clause(rows) == clause
    assert timing_text.step_helper_text(rows[-1]["numpy_step_helper"]) == text
