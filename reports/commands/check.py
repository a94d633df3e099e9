"""``tfparity check``: a fast CI gate; both gradient paths of each model against TensorFlow.

Every quantity of one forward/backward pass is compared, not only the logits, loss and parameter
gradients: some bugs show only in a layer's output gradient (a max-pool that splits the gradient
among tied zeros of a dead ReLU changes dL/d(output) of that ReLU, whose mask then removes the
difference before any parameter sees it).
"""

from __future__ import annotations

import argparse

from reports.commands import user_model
from reports.commands.options import (
    BATCH_DATA,
    MAX_IMAGES,
    add_models,
    add_no_verify,
    add_quiet,
    add_seed,
    at_most,
    checks_mnist,
    in_model_order,
)
from reports.errors import BadInput
from reports.progress import progress_for


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="compare both gradient paths of each model with TensorFlow",
        description="For each model and dtype, one seeded batch through the scratch model and its "
                    "Keras twin, on both paths: 'trace' (layer by layer: logits, loss, every layer "
                    "output and output gradient, every parameter gradient and the input gradient) "
                    "and 'training' (the fused computation a training step runs: loss and every "
                    "parameter gradient). One line per model, dtype and path with PASS/FAIL and "
                    "the worst error (the larger of relative L2 and scaled max abs) relative to "
                    "its tolerance. Exit code 0 only if all pass, 1 if any fails.")
    add_models(parser, "models to check (not with --model)")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both",
                        help="the dtype(s) to check")
    add_seed(parser, "seeds the weights and the batch")
    parser.add_argument("--batch-size", type=at_most(MAX_IMAGES, "MNIST's training images"),
                        default=16, help="examples")
    parser.add_argument("--data", choices=BATCH_DATA, default="strokes",
                        help="strokes: digit-like strokes on exact zeros; mnist: training images "
                             "drawn with --seed")
    add_no_verify(parser)
    add_quiet(parser)
    user_model.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reference_tf import check
    from reference_tf.display import check_lines

    if args.input_shape is not None and args.spec is None:
        raise BadInput("argument --input-shape: goes with --model FILE.py:FACTORY")
    if args.models is not None and args.spec is not None:
        raise BadInput("argument --models: not with --model FILE.py:FACTORY (it checks your "
                       "model alone); give one or the other")
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]
    names = [args.spec] if args.spec is not None else in_model_order(args.models)
    verify = checks_mnist(args)
    if args.data == "mnist" and not verify:
        print("data: MNIST from $TFPARITY_MNIST_DIR, SHA-256 not checked (--no-verify)",
              flush=True)
    failed, total, kinked = [], 0, 0
    progress = progress_for(args.quiet)
    for name in names:
        for dtype in dtypes:
            if args.spec is None:
                result = check(name, dtype=dtype, seed=args.seed, data=args.data,
                               batch_size=args.batch_size, verify=verify, progress=progress)
            else:
                model, x, y = user_model.load(args, dtype, verify)
                result = check(model, x, y, name=name, progress=progress)
            if progress is not None:
                progress.close()
            total += len(result.paths)
            kinked += sum(path.status == "KINK" for path in result.paths.values())
            for line in check_lines(result):
                print(line, flush=True)
            if not result.passed:
                failed.append((name, dtype))
    if failed:
        target = "--model {} " if args.spec is not None else "{} "
        print(f"{len(failed)} of {len(names) * len(dtypes)} model/dtype pairs failed; locate "
              "each with " + ", ".join(f"`tfparity diff {target.format(n)}--dtype {d}`"
                                       for n, d in failed))
        return 1
    kind = "your model" if args.spec is not None else f"{len(names)} models"
    kinks = (f"; {kinked} of them with rounding-decided kinks (status KINK, listed above)"
             if kinked else "")
    print(f"all {total} checks passed ({kind} x {len(dtypes)} dtypes x "
          f"{'paths' if args.spec is not None else 'trace and training paths'}){kinks}")
    return 0
