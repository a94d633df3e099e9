"""No false alarm on correct code, and real bugs still caught, over MNIST batches of 50 seeds.

`tfparity check --dtype float32 --data mnist --seed S` (in process, stdout captured) of
tfparity's own cnn and of the two third-party test libraries of parity_tests/third_party/ (a
CS231n-style naive-loop NCHW library and an object-style NCHW library): each clean model must
pass (exit code 0; lines with status KINK, rounding-decided ties and zeros, are counted), and the
same batches with a planted bug must fail (exit code 1): max-pool gradient to every tied maximum
on even seeds, ReLU'(0) = 1 on odd seeds. Run from the repository root:
    .venv/bin/python examples/measurements/trust_sweep.py [cnn loops objects] [--seeds 50]
Exit code 0 when every clean run passes and every planted run fails.
"""
import argparse
import contextlib
import io
import sys
import time

import pytest

sys.path.insert(0, "parity_tests")                  # the test libraries and planters
from reports.cli import main  # noqa: E402

from own_network_helpers import (  # noqa: E402
    cs231n_pool_every_tie,
    cs231n_relu_at_zero,
    library,
    library_spec,
    nchw_objects_pool_every_tie,
    nchw_objects_relu_at_zero,
)
from planted import plant_pool_split_ties, plant_relu_passes_at_zero  # noqa: E402

TARGETS = {  # name -> (check arguments, tie bug, ReLU'(0) bug)
    "cnn": (["--models", "cnn"], plant_pool_split_ties, plant_relu_passes_at_zero),
    "loops": (["--model", library_spec("loops")],
              lambda patch: cs231n_pool_every_tie(patch, library("loops")),
              lambda patch: cs231n_relu_at_zero(patch, library("loops"))),
    "objects": (["--model", library_spec("objects")],
                lambda patch: nchw_objects_pool_every_tie(patch, library("objects")),
                lambda patch: nchw_objects_relu_at_zero(patch, library("objects"))),
}


def run(arguments: list[str], seed: int, plant=None) -> tuple[int, str]:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        if plant is not None:
            plant(patch)
        code = main(["check", *arguments, "--dtype", "float32", "--data", "mnist", "--seed",
                     str(seed), "--quiet"])
    return code, out.getvalue()


parser = argparse.ArgumentParser()
parser.add_argument("targets", nargs="*", metavar="TARGET",
                    help=f"any of {', '.join(TARGETS)} (default: all)")
parser.add_argument("--seeds", type=int, default=50)
args = parser.parse_args()
unknown = sorted(set(args.targets) - set(TARGETS))
if unknown:
    parser.error(f"unknown targets {unknown}; expected some of {list(TARGETS)}")
bad = []
for name in args.targets or list(TARGETS):
    arguments, tie_bug, relu_bug = TARGETS[name]
    start, kinks, caught = time.perf_counter(), 0, 0
    for seed in range(args.seeds):
        code, text = run(arguments, seed)
        kinks += text.count("\nKINK") + text.startswith("KINK")
        if code != 0:
            bad.append((name, seed, "clean run failed", text))
        code, text = run(arguments, seed, tie_bug if seed % 2 == 0 else relu_bug)
        caught += code == 1
        if code != 1:
            bad.append((name, seed, "planted bug passed", text))
    print(f"{name}: {args.seeds} seeds, clean runs failing: "
          f"{sum(b[0] == name and b[2] == 'clean run failed' for b in bad)}, KINK lines: {kinks},"
          f" planted bugs caught: {caught}/{args.seeds}, {time.perf_counter() - start:.0f} s",
          flush=True)
for name, seed, what, text in bad:
    print(f"{name} seed {seed}: {what}\n{text}")
sys.exit(1 if bad else 0)
