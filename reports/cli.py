"""Entry point of the ``tfparity`` command line.

``main(argv=None) -> int`` is callable in-process and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version

# TensorFlow's C++ INFO/WARNING chatter (CPU features, CUDA probing) is not ours to print, and
# figures are files, never windows. Explicit settings in the environment win.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

# Commands that run TensorFlow, and so switch on its reproducible kernels first.
TENSORFLOW_COMMANDS = frozenset({"report", "bench", "check", "diff", "train"})

# Modules of reports.commands, in the order --help lists them.
COMMANDS: tuple[str, ...] = ("data", "report", "bench", "check", "diff", "train")


def _version() -> str:
    try:
        return version("tfparity")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfparity",
        description="Prove that a from-scratch NumPy network computes what TensorFlow computes.",
    )
    parser.add_argument("--version", action="version", version=f"tfparity {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"reports.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in TENSORFLOW_COMMANDS:
        from reference_tf.reproducible import use_reproducible_kernels

        use_reproducible_kernels()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
