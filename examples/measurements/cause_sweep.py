"""The full product of the no-false-cause check of docs/causes.md: every clean model x 50 seeds
x both dtypes x strokes and MNIST batches of 2, and the clean sequence examples of
examples/own_network x 50 seeds x both dtypes, through reference_tf.layerdiff.diff; counts the
divergences and every cause named (both must be 0). Run from the repository root:
    .venv/bin/python examples/measurements/cause_sweep.py
"""
import sys
import time

import numpy as np

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
for name in sorted(MODELS):
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
                result = diff(model, x, y, keras_model=reference)
                diffs += 1
                if not result.passed:
                    failures.append((name, dtype, seed, data))
                causes += [(name, dtype, seed, data, q) for layer in result.to_dict()["layers"]
                           for q in layer["quantities"] if q.get("cause")]
    print(f"{name}: done, {diffs} diffs so far, {time.perf_counter() - start:.0f} s", flush=True)
# The clean sequence examples of reference_tf.own (docs/own-network.md): 50 seeds x both dtypes,
# each on its seeded caption batch of 4.
for spec in ("cs231n_rnn.py:build:model=rnn", "cs231n_rnn.py:build:model=lstm",
             "torch_style_rnn.py:build:model=lstm", "torch_style_rnn.py:build:model=gru"):
    declared = load_model(f"examples/own_network/{spec}")
    for dtype in ("float32", "float64"):
        for seed in range(50):
            model = declared.rebuilt(seed=seed, dtype=dtype)
            x, y = model_batch(model, "strokes", 4, seed)
            result = diff(model, x, y)
            diffs += 1
            if not result.passed:
                failures.append((spec, dtype, seed))
            causes += [(spec, dtype, seed, q) for layer in result.to_dict()["layers"]
                       for q in layer["quantities"] if q.get("cause")]
    print(f"{spec}: done, {diffs} diffs so far, {time.perf_counter() - start:.0f} s", flush=True)
print(f"{diffs} diffs, {len(failures)} divergences {failures[:5]}, {len(causes)} causes named "
      f"{causes[:5]}, {time.perf_counter() - start:.0f} s")
sys.exit(1 if failures or causes else 0)
