"""``scratch`` and every one of its submodules import without TensorFlow or Keras."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs in a fresh interpreter: this test process may already have imported TensorFlow.
PROBE = """
import json, pkgutil, sys
import scratch
names = sorted(m.name for m in pkgutil.walk_packages(scratch.__path__, prefix="scratch."))
for name in names:
    __import__(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({"modules": names, "frameworks": loaded}))
"""


def test_scratch_never_imports_tensorflow():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # The probe must really have walked the package, including the modules named here.
    assert {"scratch.models", "scratch.train", "scratch.ops", "scratch.gradcheck",
            "scratch.ops.conv"} <= set(report["modules"]), report["modules"]
    assert report["frameworks"] == [], f"scratch imported {report['frameworks']}"
