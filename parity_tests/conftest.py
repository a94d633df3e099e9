"""Shared pytest configuration: the Hypothesis profile of the parity suite.

TensorFlow is not imported here, so tests of the scratch engine alone never load it.
"""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, settings

# The suite compares against TensorFlow's Eigen kernels: its oneDNN kernels crashed inside eager
# Conv2D and its gradients on some machines (docs/performance.md). The bench and the report keep
# TensorFlow's default (oneDNN on). Set before any test module imports TensorFlow; an explicit
# setting in the environment wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

# Derandomized: CI sees the same examples on every run, so a failure is reproducible and a pass
# is not luck; set HYPOTHESIS_PROFILE=explore to draw fresh examples locally.
settings.register_profile("parity", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "parity"))


def pytest_collection_finish(session):
    """The comparisons run on TensorFlow's reproducible kernels, as the command line does; the
    switch is made only when a collected test module loaded TensorFlow."""
    if "tensorflow" in sys.modules:
        from reference_tf.reproducible import use_reproducible_kernels

        use_reproducible_kernels()
