"""Argument types and options shared by the subcommands.

A type raises ``argparse.ArgumentTypeError``, so argparse answers with the option's name, what
was expected and what was received, and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Callable

# The one model order: that of scratch.models.MODELS (not imported here: parsing the command
# line needs no NumPy; a test checks that the two agree).
MODEL_NAMES: tuple[str, ...] = ("linear", "mlp1", "mlp2", "cnn", "cnn_bn", "rnn", "lstm", "gru",
                                 "tokens")
# Upper bound of batch sizes and image counts: MNIST's training set, the largest a command reads.
MAX_IMAGES = 60000
# The batches of check and diff: reference_tf.batches.DATA_SOURCES (not imported here: it loads
# NumPy; a test checks that the two agree).
BATCH_DATA = ("strokes", "mnist")


def positive_int(text: str) -> int:
    value = _int(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def at_most(limit: int, why: str, parse: Callable[[str], int] = positive_int
            ) -> Callable[[str], int]:
    """An argument type for a positive integer (or what ``parse`` accepts) of at most ``limit``;
    ``why`` completes "expected at most LIMIT (...)" in the refusal, e.g. "MNIST's training
    images"."""
    def bounded(text: str) -> int:
        value = parse(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"expected at most {limit} ({why}), received "
                                             f"{text!r}")
        return value

    return bounded


def at_most_or_zero(limit: int, why: str) -> Callable[[str], int]:
    """``at_most`` for a non-negative integer."""
    return at_most(limit, why, non_negative_int)


def non_negative_int(text: str) -> int:
    value = _int(text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, received {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, received {text!r}")
    return value


def _int(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}") from None


def in_model_order(names) -> list[str]:
    """``names`` without repeats, in the order of ``MODEL_NAMES``; all of them for None (no
    --models)."""
    return [name for name in MODEL_NAMES if names is None or name in set(names)]


def add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=MODEL_NAMES, help="the model: " + ", ".join(MODEL_NAMES))


def add_models(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=None, metavar="MODEL",
                        help=f"{what}, any of {', '.join(MODEL_NAMES)}; run in that order "
                             "(default: all of them)")


def add_seed(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--seed", type=non_negative_int, default=0, help=what)


def checks_mnist(args: argparse.Namespace) -> bool:
    """Whether the MNIST a batch command (check, diff) reads gets its SHA-256 checked: always
    but with --no-verify and a $TFPARITY_MNIST_DIR (the cache is checked on every load)."""
    from scratch.data.mnist import ENV_DIR

    return not (args.no_verify and os.environ.get(ENV_DIR))


def add_no_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-verify", action="store_true",
                        help="use MNIST files of $TFPARITY_MNIST_DIR (or --dir) that differ from "
                             "the published ones (SHA-256 not checked; every output says so)")


def add_quiet(parser: argparse.ArgumentParser, also: str = "") -> None:
    parser.add_argument("--quiet", action="store_true",
                        help=f"no progress on stderr{also} (default: the phase, layer and pass "
                             "being compared)")
