"""The codebase keeps its rooms apart: no module reaches into another's private members, no
import cycle, functions a reader can hold in view, and the NumPy-only parts import without
TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scratch", "reference_tf", "reports", "parity_tests", "examples")
# NamedTuple's public API has underscores, and so have IPython's display protocol and os._exit
# (reference_tf/user_exits.py replaces it while user code runs).
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}
DISPLAY_API = {"_repr_html_", "_repr_png_"}
PUBLIC_UNDERSCORED = NAMEDTUPLE_API | DISPLAY_API | {"_exit"}
# Tests of a module's own internals, each with the reason.
INTERNAL_TESTS = {
    ("parity_tests/test_data_fetch.py", "npm_fetch._copy_to_temp"):
        "interrupts the fetch between two files of the tarball",
    **{("parity_tests/test_scratch_conv_pool.py", f"from scratch.ops.conv_pool import {name}"):
       "adjoint pairs and chunked sums of the fused op's own helpers"
       for name in ("_block_kernel", "_fold_block_kernel", "_summed_products")},
}


def _own_names(tree: ast.AST) -> set[str]:
    """Private names a file defines itself: functions, classes, attributes set on self/cls."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORED


def cross_module_private_uses(source: str, relative: str) -> list[str]:
    """``obj._name`` where ``_name`` is not defined in the same file, and ``from m import _name``,
    in the source of the file at ``relative`` (its path from the repository's root)."""
    tree = ast.parse(source, relative)
    own = _own_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            uses = [ast.unparse(node)]
        elif isinstance(node, ast.ImportFrom):
            uses = [f"from {node.module} import {alias.name}" for alias in node.names
                    if _private(alias.name) and node.module != "__future__"]
        else:
            continue
        found += [f"{relative}:{node.lineno}: {use}" for use in uses
                  if (relative, use) not in INTERNAL_TESTS]
    return sorted(found, key=lambda use: int(use.split(":")[1]))


def python_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_module_uses_another_modules_private_members():
    found = [use for path in python_files()
             for use in cross_module_private_uses(path.read_text(),
                                                  path.relative_to(ROOT).as_posix())]
    assert not found, "private members used across modules:\n" + "\n".join(found)


def test_hygiene_check_finds_a_planted_private_use():
    source = ("from scratch import models\n\nmodels.build('cnn').units[0]._caches\n"
              "from scratch.fusion import _fusable\nself._own = 1\nmodels._own\n")
    found = cross_module_private_uses(source, "planted.py")
    assert [use.split(": ", 1)[1] for use in found] == [
        "models.build('cnn').units[0]._caches", "from scratch.fusion import _fusable"]


@pytest.mark.parametrize("module", ["scratch", "scratch.models", "scratch.train", "scratch.data",
                                    "reference_tf", "reference_tf.compare",
                                    "reference_tf.batches", "reference_tf.adapter",
                                    "reference_tf.diff_result", "reference_tf.loss",
                                    "reference_tf.own", "reference_tf.tolerant_run",
                                    "reference_tf.user_code", "reference_tf.kinks",
                                    "reference_tf.guarding", "reference_tf.progress",
                                    "reports.cli"])
def test_numpy_only_modules_import_without_tensorflow(module):
    code = f"import sys, {module}; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"importing {module} loaded TensorFlow/Keras\n{result.stderr}"


# The rooms of reports/, lowest first: a room imports only rooms before it. The top-level
# modules errors, environment and progress sit below every room (they import none); cli sits
# above all.
ROOMS = ("files", "experiment", "measure", "analysis", "render", "commands")
BASE_MODULES = ("reports.errors", "reports.environment", "reports.progress")
MAX_MODULES_PER_FOLDER = 8
MAX_FUNCTION_LINES = 80
MAX_LAYERDIFF_LINES = 350


def module_name(path: Path) -> str:
    """``reports/render/writer.py`` -> ``reports.render.writer``; a package's ``__init__`` is the
    package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that the module ``name`` imports anywhere in ``source`` (at module
    level or inside a function); ``from package import name`` counts as the submodule when
    ``package.name`` is one, else as the package."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.add(f"{base}.{alias.name}")
                elif base in known:
                    found.add(base)
    return found - {name}


def import_graph(packages=("scratch", "reference_tf", "reports")) -> dict[str, set[str]]:
    """Module -> the project modules it imports, over ``packages``."""
    paths = {module_name(p): p for package in packages for p in (ROOT / package).rglob("*.py")}
    return {name: imported_modules(path.read_text(), name, path.name == "__init__.py",
                                   set(paths))
            for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import cycles of ``graph``: its strongly connected components of two or more modules
    (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def room_of(module: str) -> str | None:
    """The room of a ``reports`` module ("files", ..., "commands"), "top" for the modules at the
    top of reports/, None outside reports."""
    parts = module.split(".")
    if parts[0] != "reports":
        return None
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else "top"


def room_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports of ``reports`` that break its rules: only commands/ and cli import commands/; a
    room imports no room after it in ROOMS; the base modules import no room."""
    found = []
    for module, targets in sorted(graph.items()):
        room = room_of(module)
        if room is None:
            continue
        if room not in (*ROOMS, "top"):
            found.append(f"{module} is in no room of ROOMS")
        for target in sorted(targets):
            other = room_of(target)
            if other not in ROOMS:
                continue
            if other == "commands" and room != "commands" and module != "reports.cli":
                found.append(f"{module} imports the command module {target}")
            elif room == "top" and module in BASE_MODULES:
                found.append(f"{module} (a base module) imports the room module {target}")
            elif room in ROOMS and ROOMS.index(other) > ROOMS.index(room):
                found.append(f"{module} ({room}) imports {target} ({other}), a room above it")
    return found


def test_reports_rooms_import_downward_only():
    found = room_violations(import_graph(("reports",)))
    assert not found, "\n".join(found)


def test_room_rules_find_planted_upward_imports():
    graph = {"reports.render.writer": {"reports.commands.bench", "reports.files.atomic"},
             "reports.files.atomic": {"reports.analysis.tables"},
             "reports.errors": {"reports.files.outputs"},
             "reports.cli": {"reports.commands.bench"},
             "reports.commands.bench": {"reports.render.plots"},
             "reports.sweep.options": {"reports.commands.options"}}
    assert room_violations(graph) == [
        "reports.errors (a base module) imports the room module reports.files.outputs",
        "reports.files.atomic (files) imports reports.analysis.tables (analysis), a room above it",
        "reports.render.writer imports the command module reports.commands.bench",
        "reports.sweep.options is in no room of ROOMS",
        "reports.sweep.options imports the command module reports.commands.options"]


def test_project_has_no_import_cycle():
    found = [sorted(c) for c in cycles(import_graph())]
    assert not found, f"import cycles: {found}"


def test_cycle_search_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert [sorted(c) for c in cycles(graph)] == [["a", "b", "c"]]


def test_import_graph_resolves_submodules_and_relative_imports():
    source = "from scratch import threads\nfrom . import layers\nimport reports.cli\n"
    known = {"scratch", "scratch.threads", "reference_tf.own", "reference_tf.own.layers",
             "reports.cli"}
    assert imported_modules(source, "reference_tf.own.model", False, known) == {
        "scratch.threads", "reference_tf.own.layers", "reports.cli"}


def test_reports_folders_hold_three_to_eight_modules_and_say_their_role():
    for folder in sorted(p for p in (ROOT / "reports").rglob("*") if p.is_dir()
                         and (p / "__init__.py").exists() and p != ROOT / "reports"):
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert 3 <= len(modules) <= MAX_MODULES_PER_FOLDER, (folder, len(modules))
        assert ast.get_docstring(ast.parse((folder / "__init__.py").read_text())), folder


def long_functions(source: str, relative: str) -> list[str]:
    """Functions and methods of ``source`` longer than MAX_FUNCTION_LINES lines (decorators not
    counted), as "path:line name (N lines)"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{relative}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_over_80_lines_in_reports_and_reference_tf():
    found = [hit for package in ("reports", "reference_tf")
             for path in sorted((ROOT / package).rglob("*.py"))
             for hit in long_functions(path.read_text(), path.relative_to(ROOT).as_posix())]
    assert not found, "functions over 80 lines:\n" + "\n".join(found)


def test_long_function_check_finds_a_planted_one():
    source = "def short():\n    pass\n\n\ndef long():\n" + "    x = 1\n" * 80
    assert long_functions(source, "planted.py") == ["planted.py:5 long (81 lines)"]


def test_layerdiff_is_at_most_350_lines():
    lines = len((ROOT / "reference_tf/layerdiff.py").read_text().splitlines())
    assert lines <= MAX_LAYERDIFF_LINES, f"reference_tf/layerdiff.py has {lines} lines"
