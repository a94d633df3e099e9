"""``reports.load_report(DIR)`` opens a finished report: its answers (as report.md prints them),
figures inline, the experiment table, the runs as a DataFrame, the homework's two figures."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import reports
from reports.render.report_view import markdown_html

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "example-report"


@pytest.fixture(scope="module")
def report():
    return reports.load_report(EXAMPLE)


def test_load_report_html_holds_the_answers_of_report_md_and_its_figures(report):
    html = report._repr_html_()
    answers = re.findall(r"^- \*\*(\w+)\*\*: (.+)$", (EXAMPLE / "report.md").read_text(), re.M)
    assert len(answers) == 3 * len(report.models)
    for model, answer in answers:
        assert f"<li><b>{model}</b>: {markdown_html(answer)}</li>" in html
    assert html.count('<img src="data:image/png;base64,') == len(list(EXAMPLE.glob("*.png")))
    assert html.count("<table") == 2  # the timing table, the experiment table
    for row in report.results["report"]["tables"]["experiments"]:
        assert row["rule (NumPy)"].replace(">", "&gt;").replace("<", "&lt;") in html


def test_load_report_runs_frame_has_every_run(report):
    runs = report.runs
    saved = json.loads((EXAMPLE / "results.json").read_text())["runs"]
    assert len(runs) == len(saved) == 72
    assert {"model", "setting", "seed", "implementation", "verdict", "final_test_accuracy",
            "ms_per_step"} <= set(runs.columns)
    assert sorted(zip(runs["model"], runs["seed"], runs["implementation"])) == sorted(
        (r["spec"]["model"], r["spec"]["seed"], r["spec"]["implementation"]) for r in saved)


def test_load_report_draws_the_homeworks_two_figures(report):
    curves = report.plot_learning_curves()
    assert len(curves.axes) == 3 * len(report.models)
    assert all(len(ax.lines) == 4 for ax in curves.axes)  # train and test, NumPy and TF
    assert len(report.plot_learning_curves(["cnn"]).axes) == 3
    table = report.plot_summary_table()
    cells = table.axes[0].tables[0].get_celld()
    assert max(row for row, _ in cells) == len(report.summary)  # a row per experiment
    with pytest.raises(ValueError, match="expected models among linear, mlp1, mlp2, cnn"):
        report.plot_learning_curves(["resnet"])


def test_load_report_of_a_directory_without_results_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        reports.load_report(tmp_path)
    shutil.copy(EXAMPLE / "report.md", tmp_path / "results.json")
    with pytest.raises(ValueError, match="not valid JSON"):
        reports.load_report(tmp_path)
