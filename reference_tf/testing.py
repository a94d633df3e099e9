"""Parity assertions for tests: a scratch layer or model against its Keras twin.

    from reference_tf.testing import assert_layer_parity
    assert_layer_parity(MyAvgPool2D(2), keras.layers.AveragePooling2D(2, dtype="float64"),
                        input_shape=(4, 6, 6, 3), dtype="float64")

Each assertion raises AssertionError listing every quantity outside its tolerance (see
``reference_tf.compare``) with its errors, worst index and both values, then the cause the
convention catalog names for it (``reference_tf.causes``), and returns the comparisons when
everything passes. A layer written in other conventions (``reference_tf.own``) is compared in
its own layouts and parameter names, and a fault of its code (a write into an array it was
handed, a wrong shape or dtype, an exception) is an AssertionError too.
"""

from __future__ import annotations

import keras
import numpy as np

from reference_tf.adapter import from_keras, model_grads, to_keras
from reference_tf.causes import cause_clause, find_cause, layer_case, tried
from reference_tf.causes.registry import error
from reference_tf.compare import Comparison, assert_all_close, compare, tolerance_for
from reference_tf.gradients import layer_pass, loss_function, trace, trace_arrays
from reference_tf.guarding import guarding
from reference_tf.kinks import agrees, replay
from reference_tf.twin import copy_state, copy_weights, twin
from reference_tf.twin import keras_layer as twin_layer
from reference_tf.user_code import UserCodeError
from scratch.fusion import ConvChain
from scratch.layers import Layer, MaxPool2D, ReLU
from scratch.models import Sequential
from scratch.ops import max_pool2d_backward, max_pool2d_forward


def _check_dtype(owner: str, dtype) -> np.dtype:
    resolved = np.dtype(dtype)
    if resolved.name not in ("float32", "float64"):
        raise TypeError(f"{owner}: expected dtype 'float32' or 'float64', "
                        f"received dtype={dtype!r}.")
    return resolved


def assert_layer_parity(scratch_layer: Layer, keras_layer: keras.layers.Layer | None,
                        input_shape: tuple, dtype="float64", *, x: np.ndarray | None = None,
                        dy: np.ndarray | None = None, seed: int = 0) -> dict[str, Comparison]:
    """Check one layer's forward output, input gradient and parameter gradients against Keras.

    The scratch layer is built for ``input_shape[1:]`` (unless already built) and its parameters
    and state are copied into the Keras layer, so both compute with identical weights. Both run
    a training-mode pass (``forward``; Keras with ``training=True``), after which the state is
    compared too (BatchNormalization's moving statistics). The backward pass uses an upstream
    gradient dy: for L = sum(output * dy), dL/dx and dL/d(param) are compared.

    Args:
        scratch_layer: a ``scratch.layers.Layer`` or a ``reference_tf.own`` layer, built or not.
        keras_layer: the Keras layer of the same settings with dtype ``dtype``; its variables
            must be named like the scratch params ("kernel", "bias") and state (a declared
            layer's are converted, ``reference_tf.adapter``). None: the built-in twin or the
            declared twin (``reference_tf.twin.keras_layer``, Dropout sharing the
            scratch mask).
        input_shape: (N, ...) including the batch axis, in the layer's layout.
        dtype: "float32" or "float64"; selects the tolerances.
        x: the input (N, ...); default standard normal drawn with ``seed``.
        dy: the upstream gradient (the output's shape); default standard normal.
        seed: seeds the default x, dy and the scratch layer's initial parameters.

    A sequence layer's ``input_mask`` (set before the call) is given to the Keras layer as its
    ``mask``; an Embedding's integer input has no input gradient to compare.

    Returns:
        The comparisons keyed "output", "input_grad", "grads/<param>", "state/<key>".
    """
    dtype = _check_dtype("assert_layer_parity", dtype)
    if not isinstance(scratch_layer, Layer):
        hint = (" (a Keras layer: it goes second, as keras_layer)"
                if isinstance(scratch_layer, keras.layers.Layer) else "")
        raise TypeError(f"assert_layer_parity: expected scratch_layer to be a "
                        f"scratch.layers.Layer, received {type(scratch_layer).__name__}{hint}.")
    if keras_layer is not None and not isinstance(keras_layer, keras.layers.Layer):
        raise TypeError(f"assert_layer_parity: expected keras_layer to be a keras.layers.Layer or "
                        f"None, received {type(keras_layer).__name__}.")
    input_shape = tuple(int(s) for s in input_shape)
    rng = np.random.default_rng(seed)
    if not scratch_layer.built:  # a declared layer's twin depends on its input rank
        scratch_layer.build(input_shape[1:], rng, dtype)
    if keras_layer is None:
        keras_layer = twin_layer(scratch_layer, dtype.name, share_masks=True)
    if np.dtype(keras_layer.dtype) != dtype:
        raise ValueError(f"assert_layer_parity: Keras layer '{keras_layer.name}' has dtype "
                         f"{keras_layer.dtype}, expected {dtype.name}; create it with "
                         f"dtype={dtype.name!r}.")
    state_before = {key: value.copy() for key, value in scratch_layer.state.items()}
    if x is None:
        x = rng.standard_normal(input_shape).astype(dtype)
    try:
        with guarding([scratch_layer]):  # an exception in the layer's code: a fault
            out = scratch_layer.forward(x)
            if not keras_layer.built:
                keras_layer.build((None, *input_shape[1:]))
            _check_output_shapes(scratch_layer, keras_layer, x.shape, out.shape)
            if dy is None:
                dy = rng.standard_normal(out.shape).astype(dtype)
            dx = scratch_layer.backward(dy)
    except UserCodeError as error:
        raise AssertionError(f"{scratch_layer!r}: {error}") from error
    copy_weights(to_keras(scratch_layer, scratch_layer.params),
                 {v.name: v for v in keras_layer.trainable_weights})
    copy_state(state_before, {v.name: v for v in keras_layer.non_trainable_weights})
    reference = layer_pass(keras_layer, x, dy, mask=scratch_layer.input_mask)
    expected = {key: value for key, value in reference.arrays().items()
                if not key.startswith("grads/") and value is not None}
    expected.update({f"grads/{k}": v
                     for k, v in from_keras(scratch_layer, reference.grads).items()})
    mine = {"output": out, **({} if dx is None else {"input_grad": dx}),
            **{f"grads/{k}": v for k, v in scratch_layer.grads.items()},
            **{f"state/{k}": v for k, v in scratch_layer.state.items()}}
    try:
        return assert_all_close(mine, expected, dtype,
                                context=f"{scratch_layer!r} vs Keras, input shape {input_shape}")
    except AssertionError as failure:
        raise AssertionError("\n".join([str(failure), *_layer_causes(scratch_layer, mine, expected,
                                                                    x, dy, dtype)])) from None


def _layer_causes(layer: Layer, mine: dict, expected: dict, x: np.ndarray, dy: np.ndarray,
                  dtype: np.dtype) -> list[str]:
    """One line per failing quantity: the cause the catalog names, or that none matched."""
    lines = []
    for key, reference in expected.items():
        tolerance = tolerance_for(key, dtype)
        if key not in mine or error(mine[key], reference) <= tolerance:
            continue
        direction = "backward" if key == "input_grad" or key.startswith("grads/") else "forward"
        case = layer_case(layer, key, direction, mine[key], reference, x, dy, tolerance)
        lines.append(f"cause of {key}: {cause_clause(find_cause(case), tried(case))}")
    return lines


def _check_output_shapes(scratch_layer: Layer, keras_layer: keras.layers.Layer,
                         input_shape: tuple, shape: tuple) -> None:
    """Raise AssertionError, naming the settings the two layers disagree on, if the Keras layer
    gives another output shape than ``shape`` (the scratch layer's) for ``input_shape``."""
    expected = tuple(keras_layer.compute_output_shape(tuple(input_shape)))
    if expected == tuple(shape):
        return
    config = keras_layer.get_config()
    differ = [f"{key}: scratch {value!r}, Keras {config[key]!r}"
              for key, value in vars(scratch_layer).items()
              if key in config and key not in ("name", "dtype", "trainable")
              and _setting(value) != _setting(config[key])]
    raise AssertionError(
        f"assert_layer_parity: {scratch_layer!r} gives output shape {tuple(shape)}, the Keras "
        f"layer '{keras_layer.name}' {expected}, for input shape {tuple(input_shape)}; settings "
        f"that differ: {'; '.join(differ) or 'none of the shared ones'}.")


def _setting(value):
    """A layer setting comparable across both libraries (tuples and lists alike, case of
    strings such as padding ignored)."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return value.lower() if isinstance(value, str) else value


def assert_model_parity(model: Sequential, x: np.ndarray, y: np.ndarray,
                        keras_model: keras.Model | None = None,
                        twins: dict | None = None) -> dict[str, Comparison]:
    """Check a whole model: logits, loss, every layer output and output gradient, every
    parameter gradient and the input gradient.

    Args:
        model: any ``scratch.models.Sequential``, a ``reference_tf.own.Model`` included (with
            its own loss, layouts and parameter names).
        x: inputs (N, *model.input_shape) of the model's dtype; y: labels (N,).
        keras_model: the twin, used with its own weights; default ``twin(model,
            twins, share_masks=True)`` (weights and state copied from ``model``, the
            scratch Dropout masks shared).
        twins: Keras factories for custom layer classes, see
            ``reference_tf.twin.keras_layer``.

    Both run a training-mode pass (``Sequential.trace``, Keras with ``training=True``); the
    moving statistics after it are compared too. Ties and zeros that rounding decided
    differently on the two sides are no failure (``reference_tf.kinks``): when the model's code
    run again with TensorFlow's branch there agrees, that run's comparisons are returned.

    Returns:
        The comparisons keyed as ``reference_tf.gradients.trace_arrays``.
    """
    context = f"model ({', '.join(layer.name for layer in model.layers)})"
    given = keras_model
    if keras_model is None:  # built before the step: the state before it
        keras_model = twin(model, twins, share_masks=True)
    state_before = {key: np.array(value) for key, value in model.state.items()}
    try:
        with guarding(model.layers):
            mine = trace_arrays(model.trace(x, y))
    except UserCodeError as error:
        raise AssertionError(f"{context}: {error}\n"
                             f"{_model_cause(model, x, y, given, twins)}") from error
    reference = trace(keras_model, x, y, loss_fn=loss_function(model))
    # Keras names the variables "kernel" and "bias"; a declared layer has its own names
    reference = reference._replace(grads=model_grads(model, reference.grads))
    context = f"{context} vs Keras, batch {x.shape}"
    try:
        return assert_all_close(mine, trace_arrays(reference), model.dtype, context=context,
                                batch_statistics=model.mixes_examples)
    except AssertionError as failure:
        # ties or zeros decided differently by rounding are no failure (reference_tf.kinks)
        with guarding(model.layers):
            replayed, _ = replay(model, x, y, reference, model.mixes_examples, state_before)
        if replayed is not None and agrees(trace_arrays(replayed), trace_arrays(reference),
                                           model.dtype, model.mixes_examples):
            return compare(trace_arrays(replayed), trace_arrays(reference))
        raise AssertionError(f"{failure}\n{_model_cause(model, x, y, given, twins)}"
                             ) from None


def _model_cause(model: Sequential, x, y, keras_model, twins) -> str:
    """The first divergence of ``reference_tf.layerdiff.diff`` and its cause, in one line
    (against ``keras_model``, or a fresh twin of the model as it is now when None)."""
    from reference_tf.layerdiff import diff

    first = diff(model, x, y, twins=twins, keras_model=keras_model).first_divergence
    if first is None:
        return "first divergence: none (no layer's own error exceeds the tolerance)"
    return (f"first divergence: layer '{first.layer}' ({first.layer_type}), {first.direction} "
            f"pass, {first.label}; {cause_clause(first.cause, first.causes_tried)}")


def _routes(pool: MaxPool2D, pool_input: np.ndarray, after_relu: bool) -> np.ndarray:
    """NHWC bool mask over a max pool's input: the element that receives each window's gradient
    (the first maximum, as both sides route it). After a ReLU only positive windows count: a
    zero maximum's gradient stops at the ReLU wherever it goes."""
    y_pool, cache = max_pool2d_forward(pool_input, pool.pool_size, pool.strides, pool.padding)
    upstream = (y_pool > 0) if after_relu else np.ones_like(y_pool, bool)
    return max_pool2d_backward(upstream.astype(pool_input.dtype), cache) != 0


def pool_tie_flips(model: Sequential, x: np.ndarray, y: np.ndarray,
                   reference_weights: dict | None = None) -> int:
    """Max-pool windows whose gradient TensorFlow sends to a different element than scratch's
    training step does.

    Both sides send a window's gradient to its first maximum; where two candidates are closer
    than the two sides' rounding differences (a near-tie), each side may see a different one
    first. Such a flip is legitimate and changes the gradient by a whole window's contribution,
    so a float32 trajectory can part from TensorFlow's there. Counted on (x (N, ...), y (N,)),
    over the windows whose gradient matters (after a ReLU, those with a positive maximum):
    TensorFlow's routes from its own MaxPool2D inputs, at ``reference_weights`` (a dict keyed
    like ``model.params``; default the model's weights), scratch's at the model's weights, from
    the fused blocks its training step runs (``scratch.fusion``) or else from its own layers'
    outputs.
    """
    keras_model = twin(model, share_masks=True)
    if reference_weights is not None:
        copy_weights(reference_weights, keras_model)
    mine, theirs = model.trace(x, y), trace(keras_model, x, y)
    fused, h = {}, x
    for unit in model.units:
        if isinstance(unit, ConvChain):
            fused.update(unit.pool_routes(h))
        h = unit.infer(h)
    flips, previous = 0, None
    for layer in model.layers:
        if isinstance(layer, MaxPool2D) and previous is not None:
            after_relu = isinstance(previous, ReLU)
            scratch_routes = fused.get(layer.name)
            if scratch_routes is None:
                scratch_routes = _routes(layer, mine.outputs[previous.name], after_relu)
            theirs_routes = _routes(layer, theirs.outputs[previous.name], after_relu)
            differ = np.count_nonzero(scratch_routes != theirs_routes)
            flips += -(-differ // 2)  # a moved route differs at two elements, a lost one at one
        previous = layer
    return flips
