"""Process-wide TensorFlow settings for comparisons that measure the implementation, not noise.

Nothing here runs at import time: the command line, the trainers and the tests call
``use_reproducible_kernels`` before they compare or train.
"""

from __future__ import annotations

from functools import cache


@cache
def use_reproducible_kernels() -> None:
    """Bitwise-reproducible TensorFlow kernels and no XLA, for the whole process (once)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_jit(False)
