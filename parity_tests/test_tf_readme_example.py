"""The README's "Parity testing your own layer" example runs as written, and can fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Parity testing your own layer"


def readme_example() -> dict:
    """Execute the section's first Python block and return its namespace."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no '{SECTION}' section"
    block = re.search(r"```python\n(.*?)```", text.split(SECTION, 1)[1], re.S)
    assert block is not None, f"the '{SECTION}' section has no python block"
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(block.group(1), str(README), "exec"), namespace)
    return namespace


EXAMPLE = readme_example()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("test", ["test_tanh_matches_keras", "test_model_with_tanh_matches_keras"])
def test_readme_example_passes(test, dtype):
    EXAMPLE[test](dtype)


def test_readme_example_catches_a_wrong_tanh_derivative(monkeypatch):
    monkeypatch.setattr(EXAMPLE["Tanh"], "call_backward", lambda self, dy: dy * (1 - self.cache))
    with pytest.raises(AssertionError, match="input_grad"):
        EXAMPLE["test_tanh_matches_keras"]("float64")
