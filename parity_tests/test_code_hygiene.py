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
# NamedTuple's public API has underscores, and so has IPython's display protocol.
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}
DISPLAY_API = {"_repr_html_", "_repr_png_"}
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
    return (name.startswith("_") and not name.startswith("__")
            and name not in NAMEDTUPLE_API | DISPLAY_API)


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


def module_name(relative: str) -> str:
    """"reference_tf/own/__init__.py" -> "reference_tf.own"."""
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` (relative path -> source) it imports, at any depth
    of the file (an import inside a function counts). ``from package import module`` is an
    edge to the module alone."""
    modules = {module_name(relative) for relative in sources}
    graph = {}
    for relative, source in sources.items():
        targets = set()
        for node in ast.walk(ast.parse(source, relative)):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names}
                targets.update(submodules if submodules <= modules else {node.module})
        name = module_name(relative)
        graph[name] = (targets & modules) - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that reach themselves through their imports, one sorted list per cycle."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
        return seen

    reachable = {module: reach(module) for module in graph}
    cycles = {tuple(sorted(m for m in reachable[module] if module in reachable[m]))
              for module in graph if module in reachable[module]}
    return sorted(list(cycle) for cycle in cycles)


def test_no_import_cycle_in_the_project():
    sources = {path.relative_to(ROOT).as_posix(): path.read_text() for path in python_files()
               if path.relative_to(ROOT).parts[0] in ("scratch", "reference_tf", "reports")}
    assert import_cycles(import_graph(sources)) == []


def test_import_cycle_check_finds_a_planted_cycle():
    sources = {"p/__init__.py": "from p import a\n", "p/a.py": "import p.b\n",
               "p/b.py": "def late():\n    from p.a import f\n", "p/c.py": "from p import a\n"}
    assert import_cycles(import_graph(sources)) == [["p.a", "p.b"]]


def long_functions(source: str, relative: str, limit: int) -> list[str]:
    """"path:line name (n lines)" of every function longer than ``limit`` lines."""
    return [f"{relative}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source, relative))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_reference_tf_functions_are_at_most_80_lines_and_layerdiff_350():
    found = [long for path in sorted((ROOT / "reference_tf").rglob("*.py"))
             for long in long_functions(path.read_text(), path.relative_to(ROOT).as_posix(), 80)]
    assert not found, "functions over 80 lines:\n" + "\n".join(found)
    assert len((ROOT / "reference_tf/layerdiff.py").read_text().splitlines()) <= 350


def test_long_function_check_finds_a_planted_one():
    source = "def short():\n    pass\n\n\ndef long():\n" + "    x = 1\n" * 80
    assert long_functions(source, "planted.py", 80) == ["planted.py:5 long (81 lines)"]


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
                                    "reference_tf.user_code", "reports.cli"])
def test_numpy_only_modules_import_without_tensorflow(module):
    code = f"import sys, {module}; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"importing {module} loaded TensorFlow/Keras\n{result.stderr}"
