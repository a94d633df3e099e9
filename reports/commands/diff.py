"""``tfparity diff MODEL``: the layer, pass and parameter where NumPy and TensorFlow part ways."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reports.commands import user_model
from reports.commands.options import (
    BATCH_DATA,
    MAX_IMAGES,
    MODEL_NAMES,
    add_no_verify,
    add_quiet,
    add_seed,
    at_most,
    checks_mnist,
)
from reports.errors import BadInput, reading
from reports.files.outputs import JSON_SUFFIXES, PLOT_SUFFIXES, check_file
from reports.progress import progress_for

STDOUT = "-"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "diff", help="compare one model with TensorFlow layer by layer, forward and backward",
        description="Run the scratch model and its Keras twin on one seeded batch and compare "
                    "every layer's output, the gradient it receives, its parameter gradients and"
                    " the gradient it sends back: propagated (each side end to end) and isolated"
                    " (the scratch layer on TensorFlow's input and upstream gradient). Names the"
                    " first divergent layer and pass and asks float64 finite differences which "
                    "side is wrong. Exit code 0 when nothing diverges, 1 when something does.")
    parser.add_argument("model", nargs="?", choices=MODEL_NAMES,
                        help="the model: " + ", ".join(MODEL_NAMES)
                             + " (or --model FILE.py:FACTORY)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help="the engines' dtype (default: the weight file's dtype with "
                             "--weights, else float64)")
    add_seed(parser, "seeds the initial weights and the batch")
    parser.add_argument("--batch-size", type=at_most(MAX_IMAGES, "MNIST's training images"),
                        default=16, help="examples")
    parser.add_argument("--weights", type=Path, default=None, metavar="FILE.npz",
                        help="a .npz written by `tfparity train --save` (default: the seed's "
                             "initial weights)")
    parser.add_argument("--data", choices=BATCH_DATA, default="strokes",
                        help="strokes: digit-like strokes on exact zeros (ties and zero "
                             "pre-activations included); mnist: training images drawn with --seed")
    add_no_verify(parser)
    parser.add_argument("--json", default=None, metavar="FILE.json",
                        help="write the whole comparison as JSON to FILE.json, or to stdout "
                             "instead of the tables with `--json -` (default: no JSON)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="write a heat map of the per-layer errors as .png, .svg or .pdf "
                             "(default: no plot)")
    parser.add_argument("--no-fd", action="store_true",
                        help="skip the finite-difference opinion on the first divergence")
    add_quiet(parser, "; also with --json -")
    user_model.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.spec is None):
        raise BadInput("expected one built-in model (" + ", ".join(MODEL_NAMES) + ") or "
                       "--model FILE.py:FACTORY")
    if args.spec is not None and args.weights is not None:
        raise BadInput("argument --weights: goes with the built-in models; a factory's model "
                       "has its own weights")
    if args.input_shape is not None and args.spec is None:
        raise BadInput("argument --input-shape: goes with --model FILE.py:FACTORY")
    if args.json not in (None, STDOUT):
        check_file(args.json, "--json", JSON_SUFFIXES)
    if args.plot is not None:
        check_file(args.plot, "--plot", PLOT_SUFFIXES)

    from reports.files.weights import load_weights, read_weights
    from scratch.models import build

    weights, dtype = None, args.dtype
    if args.weights is not None:
        with reading("--weights"):
            dtype = dtype or read_weights(args.weights).meta["dtype"]
            expected = build(args.model, seed=args.seed, dtype=dtype).params
            weights = load_weights(args.weights, expected, model=args.model,
                                   cast=args.dtype is not None)
        if weights.meta["dtype"] != dtype:
            print(f"tfparity diff: weights cast from {weights.meta['dtype']} to {dtype} "
                  "(--dtype)", file=sys.stderr)
    from reference_tf import diff
    from reference_tf.display import heatmap_figure
    from reports.files.atomic import save_figure
    from reports.files.records import to_json_safe, write_json_atomic
    from reports.render.layerdiff_text import render

    options = {"seed": args.seed, "data": args.data, "verify": checks_mnist(args),
               "fd": not args.no_fd,
               "progress": progress_for(args.quiet or args.json == STDOUT)}
    if args.spec is not None:
        model, x, y = user_model.load(args, dtype or "float64", checks_mnist(args))
        result = diff(model, x, y, name=args.spec, **options)
    else:
        result = diff(args.model, dtype=dtype or "float64", batch_size=args.batch_size,
                      weights=weights, **options)
    payload = result.to_dict()
    if args.json == STDOUT:
        print(json.dumps(to_json_safe(payload), indent=1, allow_nan=False))
    else:
        print(render(result))
        if args.json is not None:
            write_json_atomic(Path(args.json), payload)
            print(f"\nJSON: {args.json}")
    if args.plot is not None:
        save_figure(heatmap_figure(result), args.plot, dpi=110, bbox_inches="tight")
        if args.json != STDOUT:
            print(f"heat map: {args.plot}")
    return 0 if payload["passed"] else 1
