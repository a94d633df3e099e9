"""Shared pytest configuration: the Hypothesis profile of the parity suite.

TensorFlow is not imported here, so tests of the scratch engine alone never load it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Derandomized: CI sees the same examples on every run, so a failure is reproducible and a pass
# is not luck; set HYPOTHESIS_PROFILE=explore to draw fresh examples locally.
settings.register_profile("parity", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "parity"))
