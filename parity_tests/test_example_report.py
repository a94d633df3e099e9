"""docs/example-report/ is a report exactly as `make report` wrote it: every number in its
report.md is present in its own results.json, and every file it links is there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "example-report"
# A number as the report prints one: sign, thousands separators, decimals, exponent.
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?(?!\d)", re.I)


def numbers_in(text: str) -> set[str]:
    return {match.group().lstrip("+-") for match in NUMBER.finditer(text)}


def numbers_in_json(value) -> set[str]:
    """Every number of a JSON document: its numbers as written and the numbers inside its
    strings."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= numbers_in(str(key)) | numbers_in_json(item)
    elif isinstance(value, list):
        for item in value:
            found |= numbers_in_json(item)
    elif isinstance(value, str):
        found |= numbers_in(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found |= numbers_in(repr(value))
    return found


@pytest.fixture(scope="module")
def example() -> tuple[str, set[str]]:
    report = (EXAMPLE / "report.md").read_text()
    results = json.loads((EXAMPLE / "results.json").read_text())
    return report, numbers_in_json(results)


def test_example_report_numbers_are_in_its_results(example):
    report, known = example
    missing = sorted(numbers_in(report) - known)
    assert not missing, f"numbers in report.md that results.json does not hold: {missing}"


def test_example_report_links_exist(example):
    report, _ = example
    links = re.findall(r"\]\(([^)#\s]+)\)", report)
    assert links, "report.md links no figure or table"
    absent = [link for link in links if not (EXAMPLE / link).exists()]
    assert not absent, f"report.md links files that are not there: {absent}"


def test_numbers_in_finds_a_hand_typed_number():
    # The check above must be able to fail: a number typed into the prose is caught.
    assert numbers_in("NumPy is 2.39x faster, 30,712 img/s, 1.3e-08 apart") == {
        "2.39", "30,712", "1.3e-08"}
    assert "2.40" not in numbers_in_json({"step": "2.39x faster", "n": 2.41})
