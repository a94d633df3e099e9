"""TensorFlow/Keras twins of the scratch models, the comparison and the diagnosis engine.

``reference_tf.check(model)`` and ``reference_tf.diff(model)`` compare any model with its twin
(``reference_tf.api``). Names are loaded on first use, so the NumPy-only parts
(``reference_tf.compare``) import without TensorFlow.
"""

import importlib
import os
import sys

# TensorFlow's C++ INFO/WARNING chatter (CPU features, CUDA probing) is not ours to print; an
# explicit setting in the environment wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _start_tensorflow_quietly() -> None:
    """Import TensorFlow and run one op with standard error (file descriptor 2) sent to
    /dev/null: its C++ start-up lines (absl's "All log messages before absl::InitializeLog()",
    CUDA probing without a GPU) come before its logging settings apply. Used in a Jupyter kernel,
    which shows everything written to descriptor 2 in the cell; a terminal shows them as before."""
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.constant(0.0) + 1.0  # device set-up: the CUDA probe
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


if "ipykernel" in sys.modules and "tensorflow" not in sys.modules:
    _start_tensorflow_quietly()

_EXPORTS = {
    "check": "api", "diff": "api",
    "Comparison": "compare", "compare": "compare", "compare_arrays": "compare",
    "tolerances": "compare",
    "layer_pass": "gradients", "trace": "gradients", "trace_arrays": "gradients",
    "assert_layer_parity": "testing", "assert_model_parity": "testing",
    "copy_weights": "twin", "keras_params": "twin", "twin": "twin",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reference_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(f"reference_tf.{_EXPORTS[name]}"), name)
