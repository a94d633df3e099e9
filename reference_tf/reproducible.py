"""Process-wide TensorFlow settings: its environment defaults and its reproducible kernels.

``set_environment_defaults`` must run before TensorFlow is imported (``import reference_tf``
runs it; the command line and the tests call it again with their own choices);
``use_reproducible_kernels`` runs before a comparison or a training run. Thread pools:
``reference_tf.threads``. Imports neither NumPy nor TensorFlow.
"""

from __future__ import annotations

import os
from functools import cache

LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
_OURS: dict[str, str] = {}  # the variables this function set, and to what


def set_environment_defaults(*, log_level: int = 2, onednn: bool | None = None) -> None:
    """TensorFlow's environment variables as tfparity runs it; a variable set in the environment
    before (not by this function) wins.

    Args:
        log_level: ``TF_CPP_MIN_LOG_LEVEL``. TensorFlow's C++ chatter (CPU features, CUDA
            probing) is not ours to print: 2 keeps ERROR and FATAL, 3 only FATAL (it drops the
            "failed call to cuInit" line of machines without a GPU). Of several calls, the
            quietest level stays.
        onednn: False sets ``TF_ENABLE_ONEDNN_OPTS=0`` (Eigen's kernels instead of oneDNN's);
            None leaves TensorFlow's default (oneDNN on).
    """
    wanted = {LOG_LEVEL: str(log_level)}
    if onednn is not None:
        wanted[ONEDNN] = "1" if onednn else "0"
    for variable, value in wanted.items():
        current = os.environ.get(variable)
        if current is not None and _OURS.get(variable) != current:
            continue  # set by the user
        if variable == LOG_LEVEL and current is not None:
            value = str(max(int(current), int(value)))
        os.environ[variable] = _OURS[variable] = value


@cache
def use_reproducible_kernels() -> None:
    """Bitwise-reproducible TensorFlow kernels and no XLA, for the whole process (once)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_jit(False)
