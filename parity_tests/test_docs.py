"""The documentation against the code.

Every ```python block of README.md, CONTRIBUTING.md and docs/*.md runs as written (unless an
``<!-- not run: reason -->`` line right above it says why not), and the tests it defines pass;
every ``tfparity`` and ``make`` command line in the other blocks parses; every file of docs/ is
linked from the README and every relative link resolves; the README's tables of models and
settings are the code's; the worked ``tfparity diff`` example prints what its page shows.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import re
import shlex
import sys
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import pytest

from reports.cli import build_parser, main
from reports.experiment.protocol import SETTINGS
from scratch.models import build

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash", "text")
README_MAX_LINES = 200
NOT_RUN = re.compile(r"^<!-- not run: (.*) -->$")


class Block(NamedTuple):
    """One fenced block: its page, the line of its opening fence, language, text, and the reason
    it is not run (None: it runs)."""

    page: str
    line: int
    language: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(text: str, page: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    lines, blocks, start = text.splitlines(), [], None
    for number, line in enumerate(lines, 1):
        if not line.startswith("```"):
            continue
        if start is None:
            start = number
            continue
        marker = NOT_RUN.match(lines[start - 2]) if start >= 2 else None
        blocks.append(Block(page, start, lines[start - 1][3:].strip(),
                            "\n".join(lines[start:number - 1]) + "\n",
                            marker.group(1).strip() if marker else None))
        start = None
    assert start is None, f"{page}: the block opened at line {start} is never closed"
    return blocks


def page_name(path: Path) -> str:
    return str(path.relative_to(ROOT))


BLOCKS = [block for path in PAGES for block in parse_blocks(path.read_text(), page_name(path))]
PYTHON = [block for block in BLOCKS if block.language == "python" and block.not_run is None]
SHELL = [block for block in BLOCKS if block.language in ("bash", "text")]


def test_docs_block_parser_reads_languages_lines_and_reasons():
    text = "intro\n```bash\nmake test\n```\n<!-- not run: needs a GPU -->\n```python\nx = 1\n```\n"
    assert parse_blocks(text, "page.md") == [
        Block("page.md", 2, "bash", "make test\n", None),
        Block("page.md", 6, "python", "x = 1\n", "needs a GPU")]
    with pytest.raises(AssertionError, match="never closed"):
        parse_blocks("```python\nx = 1\n", "page.md")


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_docs_block_names_a_known_language(block):
    assert block.language in LANGUAGES, (
        f"{block.id}: a block must say its language, one of {LANGUAGES}; "
        f"received {block.language!r}")


def test_docs_not_run_markers_give_a_reason_and_precede_python():
    for path in PAGES:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            marker = NOT_RUN.match(line)
            if marker:
                assert len(marker.group(1).split()) >= 3, (
                    f"{page_name(path)}:{number}: say why the block is not run")
                assert number < len(lines) and lines[number] == "```python", (
                    f"{page_name(path)}:{number}: a not-run marker must stand right above a "
                    "```python fence")


def parametrized_calls(function) -> list[dict]:
    """The keyword arguments of every case of a test function's ``parametrize`` marks."""
    axes = []
    for mark in getattr(function, "pytestmark", []):
        assert mark.name == "parametrize", f"{function.__name__}: mark {mark.name} not supported"
        names, values = mark.args
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        axes.append([dict(zip(names, v if len(names) > 1 else (v,))) for v in values])
    return [dict(kv for case in combo for kv in case.items()) for combo in itertools.product(*axes)]


@lru_cache(maxsize=None)
def run_block(block: Block) -> tuple[dict, str]:
    """Execute a block from the repository's root in a fresh namespace; (namespace, stdout)."""
    namespace: dict = {"__name__": f"docs_{Path(block.page).stem}_{block.line}"}
    path, out = list(sys.path), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.chdir(ROOT)
        try:
            code = compile("\n" * block.line + block.code, str(ROOT / block.page), "exec")
            exec(code, namespace)
        finally:
            sys.path[:] = path
    return namespace, out.getvalue()


@pytest.mark.parametrize("block", PYTHON, ids=[block.id for block in PYTHON])
def test_docs_python_block_runs_and_its_tests_pass(block):
    namespace, _ = run_block(block)
    for name, function in namespace.items():
        if name.startswith("test_") and callable(function):
            for kwargs in parametrized_calls(function):
                function(**kwargs)


def command_lines(block: Block) -> list[list[str]]:
    """The ``tfparity`` and ``make`` commands of a shell block (``$ `` prompts in text blocks)."""
    commands = []
    for line in block.code.splitlines():
        if block.language == "text":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        words = shlex.split(line, comments=True)
        if words and (words[0] in ("make", "tfparity") or words[0].endswith("/bin/tfparity")):
            commands.append(words)
    return commands


COMMANDS = [(block, words) for block in SHELL for words in command_lines(block)]
MAKE_TARGETS = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("block, words", COMMANDS,
                         ids=[f"{block.id}:{' '.join(words)}" for block, words in COMMANDS])
def test_docs_command_line_parses(block, words, capsys):
    if words[0] == "make":
        unknown = [w for w in words[1:] if "=" not in w and w not in MAKE_TARGETS]
        assert not unknown, f"{block.id}: no Makefile target {unknown}"
        return
    try:
        build_parser().parse_args(words[1:])
    except SystemExit as error:
        pytest.fail(f"{block.id}: `{' '.join(words)}` does not parse (exit {error.code}): "
                    f"{capsys.readouterr().err}")


def test_readme_links_every_file_of_docs():
    text = README.read_text()
    files = sorted(page_name(p) for p in (ROOT / "docs").iterdir() if p.is_file())
    unlinked = [f for f in files if f"]({f})" not in text]
    assert files and not unlinked, f"README.md does not link {unlinked}"


@pytest.mark.parametrize("path", PAGES, ids=[page_name(p) for p in PAGES])
def test_docs_relative_links_resolve(path):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [link for link in links if "://" not in link]
    missing = [link for link in local if not (path.parent / link).exists()]
    assert not missing, f"{page_name(path)} links to missing files {missing}"


# `scratch/ops/conv.py`, `reference_tf/twin.py::keras_layer`, `parity_tests/` (not outputs)
NAMED_PATH = re.compile(
    r"`((?:\.ci|docs|parity_tests|reference_tf|reports(?!/out)|scratch)(?:/[\w.-]+)*/?)"
    r"(?:::([\w.]+))?`")
# `reference_tf.testing.digit_like_batch`, `scratch.data`
NAMED_OBJECT = re.compile(r"`((?:reference_tf|reports|scratch)(?:\.\w+)+)`")


def resolve(dotted: str):
    """The module or attribute a dotted name names (ImportError/AttributeError if none)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(dotted)


@pytest.mark.parametrize("path", PAGES, ids=[page_name(p) for p in PAGES])
def test_docs_named_files_and_objects_exist(path):
    text, missing = path.read_text(), []
    for name, member in NAMED_PATH.findall(text):
        file = ROOT / name
        if not file.exists():
            missing.append(name)
        elif member and file.suffix == ".py":
            source = file.read_text()
            module = name[:-3].replace("/", ".")
            if name.startswith("parity_tests/"):
                found = re.search(rf"^def {re.escape(member)}\(", source, re.M) is not None
            else:
                try:
                    resolve(f"{module}.{member}")
                    found = True
                except (ImportError, AttributeError):
                    found = False
            if not found:
                missing.append(f"{name}::{member}")
    for dotted in NAMED_OBJECT.findall(text):
        try:
            resolve(dotted)
        except (ImportError, AttributeError):
            missing.append(dotted)
    assert not missing, f"{page_name(path)} names what does not exist: {missing}"


def test_readme_is_at_most_200_lines():
    count = len(README.read_text().splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines, at most {README_MAX_LINES}"


def model_tables(text: str) -> list[dict[str, list[str]]]:
    """The Markdown tables whose first column names the four models (in backticks), each as
    {model: its other cells}."""
    tables, rows = [], {}
    for line in [*text.splitlines(), ""]:
        line = line.strip()
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            match = re.fullmatch(rf"`({'|'.join(SETTINGS)})`", cells[0])
            if match:
                rows[match.group(1)] = cells[1:]
        elif rows:
            tables, rows = [*tables, rows], {}
    return tables


def test_readme_model_table_matches_the_models():
    tables = [t for t in model_tables(README.read_text()) if all(len(c) == 2 for c in t.values())]
    assert len(tables) == 1 and sorted(tables[0]) == sorted(SETTINGS), tables
    for name, (layers, params) in tables[0].items():
        model = build(name)
        types = [re.match(r"\w+", part).group() for part in layers.split(" -> ")]
        assert types == [type(layer).__name__ for layer in model.layers], (name, layers)
        count = sum(value.size for value in model.params.values())
        assert int(params.replace(",", "")) == count, (name, params, count)


@pytest.mark.parametrize("path", [README, ROOT / "docs" / "report.md"],
                         ids=["README.md", "docs/report.md"])
def test_docs_settings_table_matches_the_protocol(path):
    tables = [t for t in model_tables(path.read_text())
              if all("epochs" in cell for cells in t.values() for cell in cells)]
    assert len(tables) == 1, f"{page_name(path)}: expected one table of settings"
    settings = {name: tuple((int(e), float(lr)) for e, lr in (
        re.fullmatch(r"(\d+) epochs, lr ([\d.]+)", cell).groups() for cell in cells))
        for name, cells in tables[0].items()}
    assert settings == SETTINGS


def python_block(page: str, after: str) -> Block:
    """The first python block of ``page`` below the line ``after``."""
    text = (ROOT / page).read_text()
    assert after in text, f"{page} has no line {after!r}"
    line = text[:text.index(after)].count("\n") + 1
    return next(b for b in PYTHON if b.page == page and b.line > line)


README_EXAMPLE = ("README.md", "## Parity testing your own layer")


def test_readme_example_catches_a_wrong_tanh_derivative(monkeypatch):
    namespace, _ = run_block(python_block(*README_EXAMPLE))
    monkeypatch.setattr(namespace["Tanh"], "call_backward", lambda self, dy: dy * (1 - self.cache))
    with pytest.raises(AssertionError, match="input_grad"):
        namespace["test_tanh_matches_keras"]("float64")


STATUS = re.compile(r"^(\S*)\s.*?\s(y|loss|dL/\w+)\s.*\s(ok|inherited|OWN ERROR)\s+(\S+)$")


def diff_statuses(output: str) -> list[tuple[str, ...]]:
    """(layer, quantity, status, cause) of every row of ``tfparity diff``'s tables, and the
    first divergence sentence up to its numbers, its cause and its verdict."""
    rows, layer = [], ""
    for line in output.splitlines():
        match = STATUS.match(line)
        if match:
            layer = match.group(1) or layer
            rows.append((layer, *match.group(2, 3, 4)))
        elif line.startswith("First divergence:"):
            verdict = line.rsplit(", so ", 1)[-1] if ", so " in line else ""
            cause = re.search(r"\(cause: (\w+)\)", line)
            rows.append(("first divergence", line.split(": relative")[0],
                         cause and cause.group(1), verdict))
    return rows


def diagnosis_example(after: str) -> tuple[str, str]:
    """(the text block docs/diagnosis.md shows after its first python block below the line
    ``after``, what that python block prints)."""
    block = python_block("docs/diagnosis.md", after)
    shown = next(b for b in BLOCKS if b.page == block.page and b.line > block.line)
    assert shown.language == "text"
    return shown.code, run_block(block)[1]


def test_diagnosis_worked_example_prints_what_the_page_shows():
    shown, printed = diagnosis_example("## A worked example")
    expected = diff_statuses(shown)
    assert len(expected) > 30 and diff_statuses(printed) == expected, printed


def through_time_paragraphs(output: str) -> list[str]:
    """The "Through time" paragraphs of ``tfparity diff`` up to their first number."""
    return [line.split(" (step error")[0] for line in output.splitlines()
            if line.startswith("Through time (")]


def test_diagnosis_through_time_example_prints_what_the_page_shows():
    shown, printed = diagnosis_example("## Through time: sequence layers")
    expected = diff_statuses(shown)
    assert len(expected) > 15 and diff_statuses(printed) == expected, printed
    paragraphs = through_time_paragraphs(shown)
    assert paragraphs and through_time_paragraphs(printed) == paragraphs, printed


def test_diagnosis_check_example_prints_what_the_page_shows(capsys):
    shown = next(b for b in SHELL if b.page == "docs/diagnosis.md"
                 and b.code.startswith("$ tfparity check\n"))
    command, *listing = shown.code.splitlines()
    assert main(shlex.split(command.removeprefix("$ "))[1:]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:4] for line in printed] == [line.split()[:4] for line in listing], printed
