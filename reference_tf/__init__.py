"""TensorFlow/Keras twins of the scratch models, the comparison and the diagnosis engine.

Names are loaded on first use, so the NumPy-only parts (``reference_tf.compare``) import without
TensorFlow.
"""

import importlib

from reference_tf.reproducible import set_environment_defaults

set_environment_defaults()  # before anything imports TensorFlow

_EXPORTS = {
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
