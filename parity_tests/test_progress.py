"""Progress bars in a terminal and in a Jupyter kernel, with and without ipywidgets
(``reports.experiment.sweep.progress``): a widget, a plain text bar with no warning, or nothing
when disabled."""

from __future__ import annotations

from reports.experiment.sweep.progress import progress_bar

from helpers import kernel_outputs

BAR = """
from reports.experiment.sweep.progress import progress_bar

bar = progress_bar(3, unit="step", desc="runs")
for _ in range(3):
    bar.update(1)
bar.close()
"""
WIDGET = "application/vnd.jupyter.widget-view+json"


def test_progress_bar_in_a_kernel_without_ipywidgets_is_plain_text(tmp_path):
    outputs = kernel_outputs("import sys\nsys.modules['ipywidgets'] = None  # not installed\n"
                             + BAR, tmp_path)
    assert [o.output_type for o in outputs] == ["stream"] * len(outputs)
    assert {o.name for o in outputs} == {"stdout"}, outputs  # no warning on stderr
    text = "".join(o.text for o in outputs)
    assert "runs: 100%" in text and "3/3" in text and "IProgress" not in text


def test_progress_bar_in_a_kernel_with_ipywidgets_is_the_widget(tmp_path):
    outputs = kernel_outputs(BAR, tmp_path)
    assert any(WIDGET in o.get("data", {}) for o in outputs), outputs
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], outputs


def test_progress_bar_in_a_terminal_writes_to_stderr(capsys):
    bar = progress_bar(2, unit="step")
    bar.update(2)
    bar.close()
    captured = capsys.readouterr()
    assert captured.out == "" and "2/2" in captured.err


def test_progress_bar_disabled_shows_nothing(capsys):
    bar = progress_bar(2, enabled=False, unit="step")
    bar.update(2)
    bar.close()
    assert capsys.readouterr() == ("", "")
