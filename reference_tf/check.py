"""The CI gate behind ``tfparity check``: one forward/backward pass of a model on both paths.

A scratch model computes gradients on two paths: ``trace`` (layer by layer, every output and
gradient: what ``diff`` compares) and ``loss_and_grads`` (the fused units a training step runs).
Both are compared with the Keras twin's trace on the same batch and weights: the trace path on
every quantity (logits, loss, each layer's output and output gradient, every parameter gradient,
the input gradient and the moving statistics after the step), the training path on the loss and
every parameter gradient. Both paths are training-mode passes: the Keras twin is built before
the step (with the moving statistics before it) and shares the scratch Dropout masks, which the
training path replays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference_tf.batches import load_batch
from reference_tf.compare import tolerance_for
from reference_tf.gradients import trace, trace_arrays
from reference_tf.layerdiff import safe_compare
from reference_tf.twin import twin
from scratch.layers import replaying_masks
from scratch.models import Sequential, build

PATHS = ("trace", "training")


class PathCheck(NamedTuple):
    """One path's verdict: its worst quantity, that quantity's error (the larger of relative L2
    and scaled max abs) and tolerance, and how many quantities were compared."""

    path: str
    passed: bool
    worst: str
    error: float
    tolerance: float
    quantities: int


def _worst(path: str, mine: dict, reference: dict, dtype: str,
           batch_statistics: bool) -> PathCheck:
    scored = []
    for key, expected in reference.items():
        error = safe_compare(mine[key], expected, key).smallest_passing_tolerance
        tolerance = tolerance_for(key, dtype, batch_statistics)
        scored.append((error / tolerance, key, error, tolerance))
    ratio, key, error, tolerance = max(scored)
    return PathCheck(path, all(s[0] <= 1 for s in scored), key, error, tolerance, len(scored))


def check(model: Sequential, x: np.ndarray, y: np.ndarray,
          counterparts: dict | None = None) -> dict[str, PathCheck]:
    """Both paths of ``model`` against its Keras twin on (x (N, *input_shape), y (N,)).

    Returns:
        ``{"trace": PathCheck, "training": PathCheck}``.
    """
    dtype, batch_statistics = model.dtype.name, model.mixes_examples
    keras_model = twin(model, counterparts, share_masks=True)
    layer_by_layer = trace_arrays(model.trace(x, y))
    reference = trace_arrays(trace(keras_model, x, y))
    with replaying_masks(model.layers):
        loss, grads = model.loss_and_grads(x, y)
    training = {"loss": np.float64(loss), **{f"grads/{k}": v for k, v in grads.items()}}
    return {
        "trace": _worst("trace", layer_by_layer, reference, dtype, batch_statistics),
        "training": _worst("training", training, {k: reference[k] for k in training}, dtype,
                           batch_statistics),
    }


def check_model(name: str, dtype: str, seed: int = 0, batch_size: int = 16,
                data: str = "strokes", verify: bool = True) -> dict[str, PathCheck]:
    """``check`` of the built-in model ``name`` on a seeded batch (``batches.load_batch``;
    ``verify``: check MNIST's SHA-256)."""
    model = build(name, seed=seed, dtype=dtype)
    x, y = load_batch(data, batch_size, seed, dtype, verify)
    return check(model, x, y)
