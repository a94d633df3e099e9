"""The shortest version of docs/own-network.md (the README's snippet) runs as written, against the
CS231n-style example library as the user's ``layers.py``, and catches a bug in it."""

from __future__ import annotations

import sys

import pytest

from reports.cli import main

from helpers import doc_python_block
from own_network_helpers import example, plant

SECTION = "## The shortest version"


def snippet() -> str:
    return doc_python_block(SECTION)


@pytest.fixture
def my_cnn(tmp_path, monkeypatch):
    """The snippet as my_cnn.py, importing the example library as the user's layers.py."""
    monkeypatch.setitem(sys.modules, "layers", example("cs231n"))
    path = tmp_path / "my_cnn.py"
    path.write_text(snippet())
    return f"{path}:build"


def test_shortest_version_is_at_most_15_lines_of_declarations():
    lines = [line for line in snippet().splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) <= 15, len(lines)


def test_shortest_version_passes_check(my_cnn, capsys):
    assert main(["check", "--model", my_cnn]) == 0, capsys.readouterr().out


def test_shortest_version_catches_a_planted_bug(my_cnn, monkeypatch, tmp_path):
    plant("input_gradient_without_kernel_flip", "cs231n", monkeypatch)
    assert main(["check", "--model", my_cnn, "--dtype", "float64", "--batch-size", "4"]) == 1
    assert main(["diff", "--model", my_cnn, "--batch-size", "4", "--no-fd"]) == 1
