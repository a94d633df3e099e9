"""``reference_tf.threads``: TensorFlow's pools are set (and recorded) before its runtime starts,
TensorFlow's own variables win, and a runtime already started is recorded as such. Each case
runs in a fresh interpreter: this test process may have started TensorFlow already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference_tf import threads

PROBE = """
import json, sys
from reference_tf import threads
import tensorflow as tf
if sys.argv[1] == "runtime first":
    tf.constant(1.0) + 1.0
record = threads.configure()
tf.constant(1.0) + 1.0
again = threads.configure()
pools = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
         "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
print(json.dumps({"record": record, "again": again, "pools": pools}))
"""


def probe(case: str, **variables: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in threads.VARIABLES.values()}
    done = subprocess.run([sys.executable, "-c", PROBE, case], capture_output=True, text=True,
                          env=environ | variables | {"TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300,
                          cwd=Path(__file__).resolve().parents[1], check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["configure first", "runtime first"])
def test_tf_threads_configure_sets_records_and_lets_variables_win(case):
    result = probe(case, TF_NUM_INTEROP_THREADS="1")
    policy = threads.default_policy()
    # TensorFlow reads its variable itself (its getter then reports 0, its default).
    assert result["record"]["inter_op"] == {"threads": 1, "source": "TF_NUM_INTEROP_THREADS"}
    assert result["pools"]["inter_op"] == 0
    if case == "configure first":
        assert result["record"]["intra_op"] == {"threads": policy["intra_op"],
                                                "source": "tfparity policy"}
        assert result["pools"]["intra_op"] == policy["intra_op"]
    else:
        assert result["record"]["intra_op"] == {"threads": None,
                                                "source": "runtime already started"}
    assert result["again"] == result["record"]
