"""``tfparity diff MODEL``: the layer, pass and parameter where NumPy and TensorFlow part ways."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reference_tf.batches import DATA_SOURCES
from reports.commands import user_model
from scratch.models import MODELS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "diff", help="compare one model with TensorFlow layer by layer, forward and backward",
        description="Run the scratch model and its Keras twin on one seeded batch and compare every "
                    "layer's output, the gradient it receives, its parameter gradients and the "
                    "gradient it sends back: propagated (each side end to end) and isolated (the "
                    "scratch layer on TensorFlow's input and upstream gradient). Names the first "
                    "divergent layer and pass and asks float64 finite differences which side is "
                    "wrong. Exit code 0 when nothing diverges, 1 when something does.")
    parser.add_argument("model", nargs="?", choices=list(MODELS),
                        help="a built-in model (or --model FILE.py:FACTORY)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help="default: the weight file's dtype with --weights, else float64")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the initial weights and the batch (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples (default 16)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="a .npz written by `tfparity train --save` (keys like the params)")
    parser.add_argument("--data", choices=DATA_SOURCES, default="strokes",
                        help="strokes: digit-like strokes on exact zeros (default; ties and zero "
                             "pre-activations included); mnist: training images drawn with --seed")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help="write the whole comparison as JSON to FILE (stdout without FILE, "
                             "instead of the tables)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="write a heat map of the per-layer errors")
    parser.add_argument("--no-fd", action="store_true",
                        help="skip the finite-difference opinion on the first divergence")
    user_model.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reference_tf.finite_diff import third_opinion
    from reference_tf.layerdiff import diff, diff_model
    from reports.layerdiff_text import render
    from reports.runner import to_json_safe, write_json_atomic
    from reports.weights import load_weights, read_weights
    from scratch.models import build

    if (args.model is None) == (args.spec is None):
        print("tfparity diff: name one built-in model or give --model FILE.py:FACTORY",
              file=sys.stderr)
        return 2
    if args.spec is not None and args.weights is not None:
        print("tfparity diff: --weights goes with the built-in models; a factory sets its own "
              "weights", file=sys.stderr)
        return 2
    if args.input_shape is not None and args.spec is None:
        print("tfparity diff: --input-shape goes with --model", file=sys.stderr)
        return 2
    weights, dtype = None, args.dtype
    try:
        if args.spec is not None:
            model, x, y = user_model.load(args, dtype or "float64")
            result = diff(model, x, y, name=args.spec, seed=args.seed, data=args.data)
        else:
            if args.weights is not None:
                dtype = dtype or read_weights(args.weights).meta.get("dtype")
                expected = build(args.model, seed=args.seed, dtype=dtype).params
                weights = load_weights(args.weights, expected, model=args.model,
                                       cast=args.dtype is not None)
                if weights.meta.get("dtype") != dtype:
                    print(f"tfparity diff: weights cast from {weights.meta.get('dtype')} to "
                          f"{dtype} (--dtype)", file=sys.stderr)
            result = diff_model(args.model, dtype or "float64", args.seed, args.batch_size,
                                args.data, weights)
    except ValueError as error:
        print(f"tfparity diff: {error}", file=sys.stderr)
        return 2
    if not args.no_fd:
        third_opinion(result)
    payload = result.to_dict()
    if args.json == "-":
        print(json.dumps(to_json_safe(payload), indent=1, allow_nan=False))
    else:
        print(render(result))
        if args.json is not None:
            write_json_atomic(Path(args.json), payload)
            print(f"\nJSON: {args.json}")
    if args.plot is not None:
        from reports.layerdiff_plot import heatmap

        heatmap(result, args.plot)
        if args.json != "-":
            print(f"heat map: {args.plot}")
    return 0 if payload["passed"] else 1
