"""The full product of the no-false-cause check of docs/causes.md: every clean model x 50 seeds
x both dtypes x strokes and MNIST batches of 2, the clean sequence examples of examples/own_network
x 50 seeds x both dtypes, through reference_tf.layerdiff.diff, then the same for the
normalization, dropout and SVM models of examples/own_network/cs231n_style.py (batches of 4: a
batch norm of 2 examples is degenerate); counts the divergences and every cause named (both must
be 0). Run from the repository root:
    .venv/bin/python examples/measurements/cause_sweep.py [--own-only]
"""
import sys
import time

import numpy as np

from reference_tf.adapter import keras_weights
from reference_tf.batches import model_batch
from reference_tf.layerdiff import diff
from reference_tf.own.loading import load_model
from reference_tf.reproducible import use_reproducible_kernels
from reference_tf.twin import copy_state, copy_weights, twin
from scratch.data import load_mnist
from scratch.data.synthetic import strokes
from scratch.models import INPUT_SHAPES, MODELS, build

use_reproducible_kernels()
images, labels = load_mnist("float64").train
start, diffs, failures, causes = time.perf_counter(), 0, [], []
OWN = ("mlp_batchnorm", "cnn_spatial_batchnorm", "mlp_dropout", "mlp_layernorm", "cnn_groupnorm",
       "mlp_svm")


def record(result, *where):
    """Count one diff, its divergence and the causes it names."""
    global diffs
    diffs += 1
    if not result.passed:
        failures.append(where)
    causes.extend((*where, q) for layer in result.to_dict()["layers"]
                  for q in layer["quantities"] if q.get("cause"))


for name in [] if "--own-only" in sys.argv else sorted(MODELS):
    for dtype in ("float32", "float64"):
        model = build(name, dtype=dtype)
        reference = twin(model, share_masks=True)
        for seed in range(50):
            fresh = build(name, seed=seed, dtype=dtype)
            model.set_params(fresh.params)
            copy_state(fresh, model)
            copy_weights(model, reference)
            copy_state(model, reference)
            for data in ("strokes", "mnist"):
                if name in INPUT_SHAPES:  # token sequences: their synthetic batches only
                    if data == "mnist":
                        continue
                    x, y = model_batch(model, data, 2, seed)
                elif data == "strokes":
                    x, y = strokes(2, seed=seed, dtype=dtype)
                else:
                    index = np.random.default_rng(seed).choice(len(images), 2, replace=False)
                    x, y = images[index].astype(dtype), labels[index]
                record(diff(model, x, y, keras_model=reference), name, dtype, seed, data)
    print(f"{name}: done, {diffs} diffs so far, {time.perf_counter() - start:.0f} s", flush=True)
for name in OWN:
    for dtype in ("float32", "float64"):
        model = load_model(f'examples/own_network/cs231n_style.py:build(model="{name}")')
        model = model.rebuilt(dtype=dtype)
        reference = twin(model, share_masks=True)
        for seed in range(50):
            fresh = model.rebuilt(seed=seed)
            model.set_params(fresh.params)
            copy_state(fresh, model)
            copy_weights(keras_weights(model), reference)
            copy_state(model, reference)
            for data in ("strokes", "mnist"):
                x, y = model_batch(model, data, 4, seed)
                record(diff(model, x, y, keras_model=reference), name, dtype, seed, data)
    print(f"{name}: done, {diffs} diffs so far, {time.perf_counter() - start:.0f} s", flush=True)
# The clean sequence examples of reference_tf.own (docs/own-network.md): 50 seeds x both dtypes,
# each on its seeded caption batch of 4.
for spec in ('cs231n_rnn.py:build(model="rnn")', 'cs231n_rnn.py:build(model="lstm")',
             'torch_style_rnn.py:build(model="lstm")', 'torch_style_rnn.py:build(model="gru")'):
    declared = load_model(f"examples/own_network/{spec}")
    for dtype in ("float32", "float64"):
        for seed in range(50):
            model = declared.rebuilt(seed=seed, dtype=dtype)
            x, y = model_batch(model, "strokes", 4, seed)
            record(diff(model, x, y), spec, dtype, seed)
    print(f"{spec}: done, {diffs} diffs so far, {time.perf_counter() - start:.0f} s", flush=True)
print(f"{diffs} diffs, {len(failures)} divergences {failures[:5]}, {len(causes)} causes named "
      f"{causes[:5]}, {time.perf_counter() - start:.0f} s")
sys.exit(1 if failures or causes else 0)
