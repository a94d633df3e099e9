"""Shared pytest configuration: the Hypothesis profile of the parity suite, shared fixtures.

TensorFlow is not imported here, so tests of the scratch engine alone never load it.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from reference_tf.reproducible import set_environment_defaults

# The suite compares against TensorFlow's Eigen kernels: its oneDNN kernels crashed inside eager
# Conv2D and its gradients on some machines (docs/performance.md). The bench and the report keep
# TensorFlow's default (oneDNN on). Set before any test module imports TensorFlow; an explicit
# setting in the environment wins.
set_environment_defaults(log_level=2, onednn=False)
os.environ.setdefault("MPLBACKEND", "Agg")

# Derandomized: CI sees the same examples on every run, so a failure is reproducible and a pass
# is not luck; set HYPOTHESIS_PROFILE=explore to draw fresh examples locally.
settings.register_profile("parity", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "parity"))


# Test modules importing one of these (TensorFlow, or the modules that run it: the comparison and
# the command line) are left out of the engine-only lane (`make test-fast`).
TENSORFLOW_SIDE = ("tensorflow", "keras", "reference_tf", "reports")


def pytest_addoption(parser):
    parser.addoption("--engine-only", action="store_true",
                     help="collect only the test modules that import none of TensorFlow, Keras, "
                          "reference_tf, reports (the fast lane of `make test-fast`)")


def imports_tensorflow_side(path: Path) -> bool:
    """Whether a test module names a TensorFlow-side package in any import statement."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(name.split(".")[0] in TENSORFLOW_SIDE for name in names):
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if (config.getoption("--engine-only") and collection_path.suffix == ".py"
            and collection_path.name.startswith("test_")):
        return imports_tensorflow_side(collection_path) or None
    return None


def pytest_collection_finish(session):
    """The comparisons run on TensorFlow's reproducible kernels, as the command line does; the
    switch is made only when a collected test module loaded TensorFlow. The engine-only lane
    fails if a module it kept loaded TensorFlow all the same (through a helper)."""
    if session.config.getoption("--engine-only") and "tensorflow" in sys.modules:
        raise pytest.UsageError("--engine-only: a collected test module imported TensorFlow; "
                                "move its TensorFlow part to a module of its own.")
    if "tensorflow" in sys.modules:
        from reference_tf.reproducible import use_reproducible_kernels

        use_reproducible_kernels()


@pytest.fixture
def fresh_blas_policy():
    """After the test, the NumPy engine's BLAS thread policy (``scratch.threads``) is decided
    from the environment again, and the BLAS runs with its counts."""
    yield
    from scratch import threads

    threads.configure()


def _process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def process_alive():
    """``alive(pid) -> bool``: whether the process exists and is not a zombie (Linux /proc)."""
    return _process_alive
