"""``--model FILE.py:FACTORY`` for ``tfparity check`` and ``diff``: the options and the loading."""

from __future__ import annotations

import argparse

from reports.errors import reading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--model and --input-shape."""
    parser.add_argument("--model", dest="spec", default=None, metavar="FILE.py:FACTORY",
                        help="your own network instead of a built-in one: FACTORY() in FILE.py "
                             "(or package.module:FACTORY) returns a reference_tf.own.Model or "
                             "Function, or a scratch.models.Sequential, see docs/own-network.md; "
                             "FILE.py:FACTORY(key=value, ...) passes Python literals to it, e.g. "
                             "'build(model=\"mlp_layernorm\")' (default: the built-in MODEL)")
    parser.add_argument("--input-shape", type=_shape, default=None, metavar="D1,D2,...",
                        help="with --model: per-example input shape in the model's layout, e.g. "
                             "1,28,28 (default: the model's own)")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, "
                                         f"e.g. 1,28,28, received {text!r}")
    return shape


def load(args: argparse.Namespace, dtype: str, verify: bool = True):
    """(model, x, y): the factory's model rebuilt with --seed, ``dtype`` and --input-shape, and
    its seeded batch (``reference_tf.batches.model_batch``; ``verify``: check MNIST's SHA-256).

    Raises:
        BadInput: anything wrong with the factory, its model or the batch (exit code 2).
    """
    from reference_tf.batches import model_batch
    from reference_tf.own.loading import load_model
    from reference_tf.own.model import rebuild

    with reading("--model"):  # a malformed declaration is a TypeError or ValueError
        model = rebuild(load_model(args.spec), seed=args.seed, dtype=dtype,
                        input_shape=args.input_shape)
        x, y = model_batch(model, args.data, args.batch_size, args.seed, verify)
    return model, x, y
