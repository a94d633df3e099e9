"""``reference_tf.check`` and ``reference_tf.diff``: any model against its Keras twin, in one call
from a notebook; ``tfparity check`` and ``tfparity diff`` call the same two functions.

A model is a built-in name (``scratch.models.MODELS``, built with ``seed``), a
``scratch.models.Sequential`` (your own layers included), a ``reference_tf.own.Model`` or a
``reference_tf.own.Function``. Without a batch, both draw the command line's seeded one
(``reference_tf.batches.model_batch``: digit-like strokes, or MNIST). An exception raised by a
layer written outside tfparity becomes a fault of that layer and pass in the result
(``reference_tf.user_code``), not a traceback. TensorFlow runs its reproducible kernels
(``reference_tf.reproducible``), as for the command line.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

from reference_tf.batches import model_batch
from reference_tf.own.model import Function, rebuild
from reference_tf.reproducible import use_reproducible_kernels
from reference_tf.user_code import Fault, call_user
from scratch.models import MODELS, Sequential, build

DEFAULT_DTYPE = "float64"  # a built-in model's dtype when none is given: the tightest tolerances
BATCH_SIZE = 16            # the command line's default batch


def resolve(model, x, y, *, dtype: str | None, seed: int, data: str | None, batch_size: int,
            verify: bool, name: str | None, caller: str) -> tuple:
    """(model, x, y, name, data): the model built or converted to ``dtype``, the batch, and its
    source (for a batch of the caller's: ``data``, default "given").

    A built-in name is built with ``seed`` in ``dtype`` (default float64). A model object is used
    as it is, or rebuilt in ``dtype`` with its weights and state cast. Without ``x`` the batch is
    ``model_batch(model, data or "strokes", batch_size, seed, verify)``.

    Raises:
        TypeError: ``model`` is none of the accepted kinds.
        ValueError: an unknown name, ``x`` without ``y`` or ``y`` without ``x``, a bad batch.
    """
    if isinstance(model, str):
        if model not in MODELS:
            raise ValueError(f"{caller}: expected model to be one of {', '.join(MODELS)} or a "
                             f"model object, received {model!r}.")
        name = name or model
        model = build(model, seed=seed, dtype=dtype or DEFAULT_DTYPE)
    elif isinstance(model, (Sequential, Function)):
        name = name or "model"
        if dtype is not None and np.dtype(dtype) != model.dtype:
            model = _in_dtype(model, dtype)
    else:
        raise TypeError(f"{caller}: expected model to be a built-in name ({', '.join(MODELS)}), "
                        "a scratch.models.Sequential, a reference_tf.own.Model or "
                        f"reference_tf.own.Function, received {type(model).__name__}.")
    if (x is None) != (y is None):
        raise ValueError(f"{caller}: expected both x (N, ...) and labels y (N,), or neither (the "
                         f"seeded batch), received {'x' if y is None else 'y'} alone.")
    if x is not None:
        return model, x, y, name, data or "given"
    data = data or "strokes"
    return model, *model_batch(model, data, batch_size, seed, verify), name, data


def _in_dtype(model, dtype: str):
    """``model`` rebuilt in ``dtype`` with its parameters and state cast."""
    rebuilt = rebuild(model, dtype=dtype)
    source, target = (getattr(m, "architecture", m) for m in (model, rebuilt))
    target.set_params({k: np.asarray(v, dtype=dtype) for k, v in source.params.items()})
    target.set_state({k: np.asarray(v, dtype=dtype) for k, v in source.state.items()})
    return rebuilt


def _written_outside(method) -> bool:
    return not getattr(method, "__module__", "").startswith(("scratch.", "reference_tf."))


@contextmanager
def user_layers_guarded(model) -> Iterator[None]:
    """While inside, an exception raised by ``call`` or ``call_backward`` of a layer class
    written outside tfparity (a ``scratch.layers.Layer`` subclass of your own) is a fatal
    fault of that layer (``user_code.UserCodeError``), as ``reference_tf.own`` layers report
    theirs. tfparity's own layers are left alone: their exceptions are tfparity's bugs."""
    patched = []
    for layer in getattr(model, "layers", []) if isinstance(model, Sequential) else []:
        for method, key, direction in (("call", "output", "forward"),
                                   ("call_backward", "input_grad", "backward")):
            bound = getattr(layer, method)
            if method in vars(layer) or not _written_outside(getattr(type(layer), method)):
                continue

            def fault(k, problem, fatal, frame=None, layer=layer, method=method,
                      direction=direction):
                return Fault(layer.name, f"{type(layer).__name__}.{method}", direction, k,
                             problem, fatal, frame)

            def guarded(*args, bound=bound, key=key, fault=fault):
                return call_user(bound, args, {}, key, fault)

            setattr(layer, method, guarded)
            patched.append((layer, method))
    try:
        yield
    finally:
        for layer, method in patched:
            delattr(layer, method)


def check(model, x=None, y=None, *, dtype: str | None = None, seed: int = 0,
          data: str | None = None, batch_size: int = BATCH_SIZE, verify: bool = True,
          name: str | None = None, twins: dict | None = None, progress=None):
    """Both gradient paths of ``model`` against its Keras twin on one batch: ``tfparity check``.

    Args:
        model: a name in ``scratch.models.MODELS``, a ``Sequential``, an ``own.Model`` or an
            ``own.Function``.
        x: inputs (N, *model.input_shape) of the model's dtype; y: labels (N,). Both None: the
            command line's seeded batch of ``batch_size`` examples from ``data`` ("strokes", the
            default, or "mnist"; ``verify``: check MNIST's SHA-256). With ``x``, ``data`` only
            names where it came from (default "given").
        dtype: "float32" or "float64"; None: the model's own (a built-in name: float64).
        seed: seeds the batch, and the weights of a built-in name.
        name: how the result names the model (default: the built-in name, else "model").
        twins: Keras factories for your own layer classes (``reference_tf.twin.keras_layer``).
        progress: told each phase, layer and pass (``reference_tf.progress.Progress``, e.g.
            ``reports.progress.progress_for``); None: silent.

    Returns:
        A ``reference_tf.parity_check.CheckResult``: PASS/FAIL per path, the worst error against its
        tolerance; it displays itself as a table in a notebook.
    """
    from reference_tf.parity_check import check as check_paths

    use_reproducible_kernels()
    model, x, y, name, _ = resolve(model, x, y, dtype=dtype, seed=seed, data=data,
                                   batch_size=batch_size, verify=verify, name=name,
                                   caller="check")
    with user_layers_guarded(model):
        return check_paths(model, x, y, twins, name=name, progress=progress)


def diff(model, x=None, y=None, *, dtype: str | None = None, data: str | None = None,
         seed: int = 0, fd: bool = True, batch_size: int = BATCH_SIZE, weights: dict | None = None,
         verify: bool = True, name: str | None = None, twins: dict | None = None,
         progress=None):
    """``model`` against its Keras twin layer by layer, forward and backward: ``tfparity diff``.

    Args:
        model, x, y, dtype, seed, data, batch_size, verify, name, twins, progress: as in
            ``check``.
        fd: ask float64 finite differences which side is wrong at the first divergence.
        weights: parameters keyed like ``model.params`` to compare at (e.g. a trained model's,
            ``reports``' weight files); default: the model's own.

    Returns:
        A ``reference_tf.diff_result.ModelDiff``: the forward and backward tables, the first
        divergence with its cause; in a notebook it displays the tables and the heat map.
    """
    from reference_tf.finite_diff import third_opinion
    from reference_tf.layerdiff import diff as diff_layers

    use_reproducible_kernels()
    model, x, y, name, data = resolve(model, x, y, dtype=dtype, seed=seed, data=data,
                                      batch_size=batch_size, verify=verify, name=name,
                                      caller="diff")
    if weights is not None:
        model.set_params(weights)
    with user_layers_guarded(model):
        result = diff_layers(model, x, y, name=name, seed=seed, data=data, twins=twins,
                             data_unverified=data == "mnist" and not verify, progress=progress)
        if fd and result.first_divergence is not None:
            if progress is not None:
                progress(f"finite differences on {result.first_divergence.layer}, "
                         f"{result.first_divergence.direction} pass")
            result.opinion = third_opinion(result)
    if progress is not None:
        progress.close()
    return result
