"""``tfparity check``: a fast CI gate; every quantity of one forward/backward pass of each model.

The issue asked for logits, loss and the parameter gradients; every layer's output and output
gradient and the input gradient come from the same two traces at no extra cost, and some bugs
show only there: a max-pool that splits the gradient among tied zeros of a dead ReLU changes
dL/d(output) of that ReLU, whose mask then removes the difference before any parameter sees it.
"""

from __future__ import annotations

import argparse

from scratch.models import MODELS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="compare logits, loss and parameter gradients of each model with TensorFlow",
        description="For each model and dtype, one seeded batch through the scratch model and its "
                    "Keras twin; one line per model with PASS/FAIL and the worst error (the larger "
                    "of relative L2 and scaled max abs, over logits, loss, every parameter "
                    "gradient, every layer output and output gradient and the input gradient) "
                    "relative to its tolerance. Exit code 0 only if all pass.")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS),
                        help="default: all of them")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0, help="weights and batch seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples (default 16)")
    parser.add_argument("--data", choices=["random", "mnist"], default="random",
                        help="random: digit-like strokes on exact zeros (default); mnist")
    parser.set_defaults(func=run)


def check_model(name: str, dtype: str, seed: int = 0, batch_size: int = 16,
                data: str = "random") -> tuple[bool, str, float, float]:
    """(passed, worst quantity, its error, its tolerance) of one model and dtype."""
    from reference_tf.compare import tolerance_for
    from reference_tf.gradients import trace, trace_arrays
    from reference_tf.twin import twin
    from reports.layerdiff import load_batch, make_model, safe_compare

    model = make_model(name, seed, dtype)
    x, y = load_batch(data, batch_size, seed, dtype)
    keras_model = twin(model, share_masks=True)  # before the scratch step moves the statistics
    mine, ref = trace_arrays(model.trace(x, y)), trace_arrays(trace(keras_model, x, y))
    scored = []
    for key, b in ref.items():
        error = safe_compare(mine[key], b, key).smallest_passing_tolerance
        tol = tolerance_for(key, dtype, model.mixes_examples)
        scored.append((error / tol, key, error, tol))
    _, key, error, tol = max(scored)
    return all(s[0] <= 1 for s in scored), key, error, tol


def run(args: argparse.Namespace) -> int:
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]
    failed = []
    for name in args.models:
        for dtype in dtypes:
            passed, key, error, tol = check_model(name, dtype, args.seed, args.batch_size,
                                                  args.data)
            if not passed:
                failed.append((name, dtype))
            print(f"{'PASS' if passed else 'FAIL'}  {name:<6}  {dtype}  worst error {error:.1e} "
                  f"(tolerance {tol:.0e}) in {key}", flush=True)
    total = len(args.models) * len(dtypes)
    if failed:
        print(f"{len(failed)} of {total} failed; locate each with "
              + ", ".join(f"`tfparity diff {n} --dtype {d}`" for n, d in failed))
        return 1
    print(f"all {total} passed")
    return 0
