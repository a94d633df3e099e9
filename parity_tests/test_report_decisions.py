"""``tfparity report``'s design-decision phase (``reports.measure.decisions``) and its section
(``reports.render.decisions_text``): one quick report on the offline synthetic data measures every
decision; the record's structure and the properties the section's findings rest on are checked
(never its timings' sizes), the section is rendered from the record, and the flags skip, reuse
and re-measure it."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest

from reference_tf.compare import tolerances
from reports.cli import main
from reports.experiment import datasets
from reports.experiment.protocol import QUICK
from reports.measure import decisions
from reports.render import decisions_text

ARGS = ["report", "--quick", "--data", "templates", "--seeds", "1", "--models", "linear",
        "--no-timing", "--no-progress"]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("decisions")
    code = main([*ARGS, "--out", str(out)])
    return code, out, json.loads((out / decisions.FILE).read_text())


def timings(value, path=""):
    """Every (path, seconds or ms) of a record: medians, quartiles, ms per step, ratios."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("median", "q1", "q3", "ms_per_step", "ratio", "seconds"):
                yield from ((f"{path}/{key}", v) for v in np.ravel(item))
            else:
                yield from timings(item, f"{path}/{key}")


def test_decisions_record_has_every_decision(quick_report):
    code, out, record = quick_report
    assert code == 0
    assert list(record["decisions"]) == list(decisions.DECISIONS)
    assert set(decisions_text.ROWS) == set(decisions.DECISIONS)
    assert record["settings"] == json.loads(json.dumps(asdict(decisions.settings(QUICK))))
    conditions = record["conditions"]
    assert len(conditions["environment"]["load_average_1_5_15min"]) == 3
    assert len(conditions["load_average_after"]) == 3
    assert {"numpy_blas_threads", "tensorflow_threads"} <= set(conditions["environment"])
    assert conditions["commit"] is None or len(conditions["commit"].split("-")[0]) == 40
    results = json.loads((out / "results.json").read_text())
    assert results["decisions"] == record


def test_decisions_times_finite_and_positive(quick_report):
    found = dict(timings(quick_report[2]))
    assert len(found) >= 20
    bad = {path: value for path, value in found.items()
           if not (isinstance(value, float) and math.isfinite(value) and value > 0)}
    assert bad == {}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decisions_short_run_accuracy_is_a_real_accuracy(quick_report, dtype):
    run = quick_report[2]["decisions"]["dtype"][dtype]
    test_images = 1000  # the quick protocol's test set
    for side in ("numpy", "tensorflow"):
        accuracy = run[side]["test_accuracy"]
        assert 0 <= accuracy <= 1
        assert math.isclose(accuracy * test_images, round(accuracy * test_images), abs_tol=1e-6)
        assert math.isfinite(run[side]["test_loss"]) and run[side]["test_loss"] > 0
    assert abs(run["numpy"]["test_accuracy"] - run["tensorflow"]["test_accuracy"]) == pytest.approx(
        run["accuracy_gap"])


def test_decisions_float64_brings_the_implementations_closer(quick_report):
    dtype = quick_report[2]["decisions"]["dtype"]
    assert dtype["float64"]["weight_distance"] < dtype["float32"]["weight_distance"]
    assert dtype["float32"]["weight_distance"] < tolerances("float32").gradient


def test_decisions_shared_start_gives_the_smallest_distance(quick_report):
    sharing = quick_report[2]["decisions"]["sharing"]
    shared = sharing["shared"]["weight_distance"]
    assert shared < sharing["other_order"]["weight_distance"]
    assert shared < sharing["other_weights"]["weight_distance"]
    assert sharing["shared"] == quick_report[2]["decisions"]["dtype"]["float32"]


def test_decisions_fused_step_gradients_match_the_layer_by_layer_ones(quick_report):
    fusion = quick_report[2]["decisions"]["fusion"]
    assert 0 <= fusion["max_abs_grad_difference"] < tolerances("float32").gradient
    assert fusion["ratio"] == pytest.approx(fusion["layers_step"]["median"]
                                            / fusion["fused_step"]["median"])


def test_decisions_determinism_modes_took_effect(quick_report):
    determinism = quick_report[2]["decisions"]["determinism"]
    assert determinism["off_in"] == "the driver process"  # --quick
    assert determinism["on"]["enabled"] is True and determinism["off"]["enabled"] is False
    assert determinism["on"]["bitwise_equal"] is True
    assert determinism["on"]["max_abs_difference"] == 0.0


@pytest.mark.slow
def test_decisions_determinism_off_in_a_spawned_process():
    from tensorflow.python.framework import config as tf_config

    protocol = replace(QUICK, data="templates")
    chosen = decisions.Settings(train_images=200, fresh_process=True)
    measured = decisions.determinism(chosen, protocol, datasets.load(protocol))
    assert measured["off_in"] == "a spawned process"
    assert measured["on"]["enabled"] is True and measured["off"]["enabled"] is False
    assert measured["on"]["bitwise_equal"] is True
    assert tf_config.is_op_determinism_enabled()  # this process's mode is left on


@pytest.mark.parametrize("params, reference, expected", [
    ({"a": [1.0, 2.0]}, {"a": [1.0, 2.0]}, 0.0),
    ({"a": [2.0, 4.0], "b": [0.0]}, {"a": [1.0, 2.0], "b": [0.0]}, 1.0),
    ({"a": [3.0], "b": [0.0]}, {"a": [0.0], "b": [4.0]}, 1.25),
])
def test_relative_distance_cases(params, reference, expected):
    assert decisions.relative_distance(params, reference) == pytest.approx(expected)


def test_bitwise_equal_tells_a_single_ulp():
    a = {"w": np.array([1.0, 2.0], np.float32)}
    b = {"w": np.array([1.0, np.nextafter(np.float32(2), np.float32(3))], np.float32)}
    assert decisions.bitwise_equal(a, copy.deepcopy(a)) and not decisions.bitwise_equal(b, a)


def test_decisions_section_renders_every_decision(quick_report):
    record = quick_report[2]
    lines = decisions_text.section(record)
    text = "\n".join(lines)
    page = "\n".join(decisions_text.page(record))
    # report.md: the decisions and their effects; the page: every column.
    for shown, columns in ((text, decisions_text.COLUMNS[:2]), (page, decisions_text.COLUMNS)):
        table = [line for line in shown.splitlines() if line.startswith("| ")]
        assert table[0] == "| " + " | ".join(columns) + " |"
        assert len(table) == 2 + len(decisions.DECISIONS)  # header, separator, one per decision
        assert all(line.count(" | ") == len(columns) - 1 for line in table)
    assert "How measured: " in page and "Decision conditions: " in page
    assert (quick_report[1] / decisions_text.PAGE).read_text() == page + "\n"
    measured = record["decisions"]
    for number in (f"{1e3 * measured['fusion']['fused_step']['median']:.2f} ms",
                   f"{1e3 * measured['compilation']['eager_step']['median']:.2f} ms",
                   f"{measured['sharing']['other_weights']['weight_distance']:.1e}",
                   f"{measured['dtype']['float64']['weight_distance']:.1e}",
                   f"{100 * measured['dtype']['float64']['numpy']['test_accuracy']:.2f}%"):
        assert number in text
    report = (quick_report[1] / "report.md").read_text()
    assert text in report


def test_decisions_section_states_nondeterministic_runs():
    record = {"settings": asdict(decisions.Settings()), "decisions": {},
              "conditions": {}}
    trial = {"enabled": False, "ms_per_step": [2.0, 4.0], "bitwise_equal": False,
             "max_abs_difference": 3e-7}
    determinism = {"on": {**trial, "enabled": True, "bitwise_equal": True,
                          "max_abs_difference": 0.0, "ms_per_step": [4.5, 4.5]},
                   "off": trial, "off_in": "a spawned process", "ratio": 1.5}
    _, effect, follows = decisions_text.determinism_row(determinism, record["settings"])
    assert "off 3.00 ms/step, two identical runs not bitwise equal (up to 3.0e-07 apart)" in effect
    assert "1.50x the time" in effect and "run-to-run noise" in follows


def test_decisions_section_without_a_record():
    text = "\n".join(decisions_text.section(None))
    assert decisions_text.HEADING in text and "--no-decisions" in text


def test_report_reuses_decisions_when_nothing_was_trained(quick_report, monkeypatch):
    out = quick_report[1]
    before = (out / decisions.FILE).read_text()

    def must_not_measure(*args, **kwargs):
        raise AssertionError("the decisions were measured again")

    monkeypatch.setattr(decisions, "measure", must_not_measure)
    assert main([*ARGS, "--out", str(out)]) == 0
    assert (out / decisions.FILE).read_text() == before


def test_report_remeasure_decisions_measures_again(quick_report, monkeypatch):
    out, saved, calls = quick_report[1], quick_report[2], []

    def measure(protocol, splits, sweep):
        calls.append((protocol.epochs, len(splits.test[1]), sweep))
        return saved

    monkeypatch.setattr(decisions, "measure", measure)
    assert main([*ARGS, "--out", str(out), "--remeasure-decisions"]) == 0
    assert calls == [(1, 1000, None)]


def test_report_no_decisions_skips_the_phase(quick_report, monkeypatch):
    out = quick_report[1]
    monkeypatch.setattr(decisions, "load_or_measure",
                        lambda *args, **kwargs: pytest.fail("the decisions phase ran"))
    assert main([*ARGS, "--out", str(out), "--no-decisions"]) == 0
    report = (out / "report.md").read_text()
    assert "The design decisions were not measured (--no-decisions)." in report
    assert "--no-decisions --out" in report
    assert json.loads((out / "results.json").read_text())["decisions"] is None
