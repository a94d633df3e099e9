"""``examples/homework.ipynb`` runs from a clean kernel with no error output, shows HTML tables and
inline figures, and its saved outputs are those of the current code.

The saved outputs are compared with a fresh run's text (``text/plain`` and streams), cell by
cell. Errors at rounding level (numbers in scientific notation below 1e-6, e.g. a relative error
of 2.2e-16) are compared by order of magnitude; every other character must be equal. Figures are
not compared byte for byte. ``make notebook`` executes and saves the notebook again.
"""

from __future__ import annotations

import copy
import math
import os
import re
from html import escape
from pathlib import Path

import nbformat
import pytest

from helpers import run_in_kernel

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "homework.ipynb"
SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?e[-+]\d+")
TIMING = re.compile(r"\b\d+(?:\.\d+)? ?(?:ms|s|min)\b")  # ignored: a run's own timings


@pytest.fixture(scope="module")
def saved_and_run():
    """(the notebook as saved, the notebook run again from a clean kernel). The kernel uses the
    inline figures of a Jupyter kernel (not the suite's Agg backend) and the suite's TensorFlow
    kernels (oneDNN off, as ``make notebook``)."""
    saved = nbformat.read(NOTEBOOK, as_version=4)
    fresh = copy.deepcopy(saved)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    run_in_kernel(fresh, EXAMPLES, env=env)
    return saved, fresh


def _outputs(cell) -> list:
    return cell.get("outputs", []) if cell.cell_type == "code" else []


def text_outputs(cell) -> list[str]:
    """A code cell's text: streams and ``text/plain``, with timings masked."""
    texts = [o.get("text", "") if o.output_type == "stream" else
             o.get("data", {}).get("text/plain", "") for o in _outputs(cell)]
    return [TIMING.sub("<time>", text) for text in texts]


def same_text(saved: str, fresh: str) -> bool:
    """Equal, except numbers in scientific notation below 1e-6 in magnitude, which need only be
    within a factor of 10 of each other."""
    if SCIENTIFIC.sub("<e>", saved) != SCIENTIFIC.sub("<e>", fresh):
        return False
    for a, b in zip(SCIENTIFIC.findall(saved), SCIENTIFIC.findall(fresh)):
        x, y = abs(float(a)), abs(float(b))
        if a != b and not (max(x, y) < 1e-6 and (min(x, y) == 0 and max(x, y) < 1e-12
                                                  or min(x, y) > 0
                                                  and abs(math.log10(x / y)) <= 1)):
            return False
    return True


def test_homework_notebook_runs_without_error_output(saved_and_run):
    _, fresh = saved_and_run
    errors = [(index, o.get("ename") or o.get("text", "")[:300])
              for index, cell in enumerate(fresh.cells) for o in _outputs(cell)
              if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")]
    assert not errors, errors


def test_homework_notebook_shows_tables_and_inline_figures(saved_and_run):
    for notebook in saved_and_run:
        data = [o.get("data", {}) for cell in notebook.cells for o in _outputs(cell)]
        html = "".join(d.get("text/html", "") for d in data)
        assert html.count("<table") >= 10
        assert html.count('<img src="data:image/png;base64,') >= 5  # heat maps, report figures
        assert sum("image/png" in d for d in data) >= 3              # History, the two figures
        assert escape("First divergence: layer 'my_relu' (MyReLU), backward pass") in html


def test_homework_notebook_saved_outputs_are_the_current_codes(saved_and_run):
    saved, fresh = saved_and_run
    differ = [(index, s, f) for index, (a, b) in enumerate(zip(saved.cells, fresh.cells))
              for s, f in [(text_outputs(a), text_outputs(b))]
              if len(s) != len(f) or not all(map(same_text, s, f))]
    assert not differ, ("cells whose saved text differs from a fresh run (run `make notebook`):"
                        + "".join(f"\n[{i}] saved {s!r}\n    fresh {f!r}" for i, s, f in differ))


def test_same_text_tolerates_rounding_level_numbers_only():
    assert same_text("rel 2.2e-16 ok", "rel 4.4e-16 ok")
    assert same_text("0.0e+00", "3.1e-17")
    assert not same_text("rel 2.2e-16 ok", "rel 2.2e-14 ok")
    assert not same_text("error 1.1e+00", "error 1.2e+00")
    assert not same_text("PASS 2.2e-16", "FAIL 2.2e-16")
