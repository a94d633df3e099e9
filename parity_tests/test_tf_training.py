"""Training trajectories: scratch SGD and TensorFlow SGD (``reference_tf.training.KerasTrainer``,
``var -= lr * grad`` in a compiled step) from the same weights on identical batches stay
together for 100 steps: every parameter and the loss are compared after every step.

In float32 a max-pool window may hold two candidates closer than the two sides' rounding
differences, which each side can resolve differently (``pool_tie_flips``); that step's gradients
then differ by a whole window's contribution, legitimately. A step that leaves the tolerance is
accepted only if such a flip explains it, each side routing with its own weights before the step,
and TensorFlow is then restarted from scratch's weights; a float64 trajectory may not part at
all.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_tf.compare import compare, tolerances
from reference_tf.testing import pool_tie_flips
from reference_tf.training import KerasTrainer
from reference_tf.twin import copy_weights, keras_params, twin
from scratch.data.synthetic import strokes
from scratch.fusion import ConvChain
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential, build
from scratch.optim import SGD
from scratch.train import ScratchTrainer, batch_schedule, run

from helpers import DTYPES

N, BATCH, EPOCHS, LR = 200, 20, 10, 0.1  # 10 batches per epoch: 100 steps
RESTARTS_ALLOWED = {"float32": 2, "float64": 0}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mlp2", "cnn"])
def test_sgd_trajectory_matches_keras_for_100_steps(name, dtype):
    x = strokes(N, seed=8, dtype=dtype)[0]
    y = np.random.default_rng(8).integers(0, 10, size=N)
    model = build(name, seed=0, dtype=dtype)
    keras_model = twin(model)
    scratch_side = ScratchTrainer(model, SGD(LR))
    keras_side = KerasTrainer(keras_model, SGD(LR))  # the compiled step the reports train with
    params = keras_params(keras_model)
    tol = tolerances(dtype).trajectory
    worst, restarts = None, []
    for batch in batch_schedule(N, BATCH, EPOCHS, seed=0):
        xb, yb = x[batch.indices], y[batch.indices]
        before = ({key: value.copy() for key, value in model.params.items()},
                  {key: value.numpy() for key, value in params.items()})
        losses = {"loss": scratch_side.train_step(xb, yb)}, {"loss": keras_side.train_step(xb, yb)}
        mine = {**losses[0], **model.params}
        reference = {**losses[1], **{k: v.numpy() for k, v in params.items()}}
        failing = [c for c in compare(mine, reference).values() if not c.passes(tol)]
        if failing:
            # Each side at its own weights before the step: they differ by the trajectories'
            # rounding, enough to resolve a near-tie differently.
            after = {key: value.copy() for key, value in model.params.items()}
            model.set_params(before[0])
            flips = pool_tie_flips(model, xb, yb, reference_weights=before[1])
            model.set_params(after)
            assert flips, f"step {batch.step}, no max-pool tie flip to explain it: " + "; ".join(
                c.format(tol) for c in failing)
            restarts.append((batch.step, flips))
            copy_weights(model, keras_model)
            continue
        for c in compare(mine, reference).values():
            if worst is None or c.smallest_passing_tolerance > worst[1].smallest_passing_tolerance:
                worst = (batch.step, c)
    assert batch.step == 100
    assert len(restarts) <= RESTARTS_ALLOWED[dtype], f"restarts (step, tie flips): {restarts}"
    print(f"{name} {dtype}: restarts after tie flips {restarts}; worst at step {worst[0]}: "
          f"{worst[1].format(tol)}")


@pytest.mark.parametrize("relu", [True, False], ids=["after-relu-fused", "no-relu-layers"])
def test_pool_tie_flips_counts_a_window_routed_differently(relu):
    # Two channels summed by a 1x1 convolution: in the pool window, elements (0, 0) and (0, 1)
    # are an exact tie (0.5 + 0.25 and 0.25 + 0.5, or their negatives without a ReLU), routed to
    # (0, 0). Scaling one channel by 1 + 1e-9 on TensorFlow's side only makes (0, 1) its maximum:
    # one flip. With a ReLU the block is fused, so its routes come from the fused op.
    sign = 1.0 if relu else -1.0
    layers = [Conv2D(1, 1, name="conv")] + ([ReLU(name="relu")] if relu else []) + [
        MaxPool2D(2, name="pool"), Flatten(name="flatten"), Dense(10, name="logits")]
    model = Sequential(layers, (2, 2, 2), dtype="float64")
    assert any(isinstance(unit, ConvChain) for unit in model.units) == relu
    params = {key: value.copy() for key, value in model.params.items()}
    params["conv/kernel"][...] = 1.0
    params["conv/bias"][...] = 0.0
    model.set_params(params)
    x = np.zeros((1, 2, 2, 2))
    x[0, 0, 0], x[0, 0, 1], x[0, 1, :] = ((0.5, 0.25), (0.25, 0.5),
                                          (0.1, 0.1) if relu else (-0.5, -0.5))
    x[0, 0] *= sign
    y = np.array([3])
    assert pool_tie_flips(model, x, y) == 0
    shifted = np.array([1.0, 1.0 + 1e-9] if relu else [1.0 + 1e-9, 1.0]).reshape(1, 1, 2, 1)
    assert pool_tie_flips(model, x, y, reference_weights={**params, "conv/kernel": shifted}) == 1


def _keras_run(name: str, dtype: str, steps_per_call: int, lr: float):
    """A ``scratch.train.run`` of the Keras twin on strokes: 250 images in batches of 20 (the
    last of each epoch 10), an evaluation every 70 samples, two epochs; (history, weights)."""
    x = strokes(250, seed=3, dtype=dtype)[0]
    y = np.random.default_rng(3).integers(0, 10, size=250)
    keras_model = twin(build(name, seed=0, dtype=dtype))
    trainer = KerasTrainer(keras_model, SGD(lr), steps_per_call=steps_per_call)
    with np.errstate(all="ignore"):
        history = run(trainer, x, y, epochs=2, batch_size=20, seed=1, eval_every=70,
                      eval_sets={"test": (x[:100], y[:100])})
    records = [{k: v for k, v in r.items() if k not in ("train_time", "eval_time")}
               for r in history.records]
    return records, {key: value.numpy() for key, value in keras_params(keras_model).items()}


def _assert_same_run(per_step, k_step) -> None:
    assert len(per_step[0]) == len(k_step[0])
    for one, many in zip(per_step[0], k_step[0]):
        assert one.keys() == many.keys()
        for key in one:
            np.testing.assert_array_equal(one[key], many[key], err_msg=f"step {one['step']} {key}")
    for key in per_step[1]:
        np.testing.assert_array_equal(per_step[1][key], k_step[1][key], err_msg=key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["mlp1", "cnn"])
def test_keras_trainer_k_step_history_equals_per_step(name, dtype):
    # Bitwise: the k-step loop runs the per-step function's ops on the same batches, and
    # reproducible kernels make each op's result independent of how it is called.
    _assert_same_run(_keras_run(name, dtype, 1, 0.1), _keras_run(name, dtype, 4, 0.1))


@pytest.mark.parametrize(("dtype", "lr"), [("float32", 1e38), ("float64", 1.7e308)])
def test_keras_trainer_k_step_stops_at_the_first_non_finite_loss(dtype, lr):
    # The first call holds steps 1-4 (the first evaluation is due after 80 samples). At these
    # rates the linear model's loss overflows to inf inside it while its gradients stay finite,
    # so a loop that ran on would leave other weights than the per-step loop.
    per_step = _keras_run("linear", dtype, 1, lr)
    k_step = _keras_run("linear", dtype, 200, lr)
    assert per_step[0][-1]["diverged"] and per_step[0][-1]["step"] < 4
    _assert_same_run(per_step, k_step)
