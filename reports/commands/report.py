"""``tfparity report``: train the four models with the course's settings in NumPy and TensorFlow
and write the comparison report (learning curves, tables, runtime, stability, verdicts)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from reports.commands.options import add_no_verify, at_most
from reports.errors import INTERRUPTED, BadInput
from reports.experiment.protocol import (
    ALL_SETTINGS,
    DATA_SOURCES,
    DTYPES,
    FULL,
    MAX_STEPS_PER_CALL,
    QUICK,
    SETTINGS,
    TF_LOOPS,
    check_models,
    plan,
)
from reports.experiment.sweep.options import EXECUTORS, MAX_WORKERS, Executor
from reports.files.disk_errors import DiskError
from reports.files.outputs import check_dir

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "out"
META = "environment.json"  # machine and data of the last invocation that trained something


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="train both implementations with the course's settings and write the report",
        description="Train linear, mlp1, mlp2 and cnn with three settings each, in NumPy and in "
                    "TensorFlow from identical weights and batches, for several seeds, and write "
                    "report.md, results.json, tables and plots. Each finished run is saved at "
                    "once; re-running the same command resumes.")
    parser.add_argument("--models", nargs="+", choices=list(ALL_SETTINGS),
                        default=list(SETTINGS), metavar="MODEL",
                        help=f"models to train, any of {', '.join(ALL_SETTINGS)} (default: the "
                             f"course's four, {', '.join(SETTINGS)}; the sequence models "
                             "rnn, lstm, gru run only when named)")
    parser.add_argument("--seeds", type=at_most(100, "each seed adds 24 runs; 100 seeds of the "
                                                  "full report take days"), default=None,
                        help="seeds per experiment (default: 3, or 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="the whole pipeline on a small subset: 2000 training and 1000 test "
                             "images, "
                             "1 epoch per setting, evaluation every 500 samples, 1 seed (< 2 min)")
    parser.add_argument("--data", choices=DATA_SOURCES, default="mnist",
                        help="mnist, or templates (an offline stand-in: ten noisy class "
                             "templates, scratch.data.synthetic)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="the dtype both implementations train in (default: float32; "
                             "float64 for tight parity)")
    parser.add_argument("--tf-loop", choices=TF_LOOPS, default="k-step",
                        help="k-step: TensorFlow runs the steps between two evaluations (at most "
                             f"{MAX_STEPS_PER_CALL}) in one compiled call, as "
                             "fit(steps_per_execution=K); per-step: one call per step, as fit's "
                             "default (default: k-step; the same history)")
    add_no_verify(parser)
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="run directory (default: "
                             "reports/out/<full|quick>[-templates][-float64])")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor_options(parser)
    decisions = parser.add_argument_group(
        "design decisions", "the phase after the timing phase that measures the effect of each "
                            "design decision of the comparison (docs/report.md)")
    decisions.add_argument("--no-decisions", action="store_true",
                           help="skip the design-decision measurements (the report says they "
                                "were not measured)")
    decisions.add_argument("--remeasure-decisions", action="store_true",
                           help="measure the design decisions again even if decisions.json has "
                                "them (by default reused when nothing was trained)")
    parser.set_defaults(func=run)


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """--executor, --jobs, --worker-threads, --address; --no-timing and --retime."""
    group = parser.add_argument_group(
        "executor", "where the training runs execute (results are the same on every executor; "
                    "docs/sweeps.md)")
    group.add_argument("--executor", choices=EXECUTORS, default="serial",
                       help="serial (default): one run after another in this process; processes: "
                            "local worker processes; ray: Ray tasks, on a local instance or the "
                            "cluster at --address")
    group.add_argument("--jobs", type=at_most(MAX_WORKERS, "a bound against typos: a worker "
                                                          "takes about 1 GB"),
                       default=None, metavar="N",
                       help="processes: worker processes (default: one per core); ray: runs in "
                            "flight (default: the cluster's CPUs / --worker-threads)")
    group.add_argument("--worker-threads", type=at_most(MAX_WORKERS, "a bound against typos"),
                       default=None, metavar="N",
                       help="BLAS and TensorFlow threads of each worker (default: cores / jobs "
                            "for processes, 1 for ray)")
    group.add_argument("--address", default=None, metavar="ADDR",
                       help="ray: address of a running cluster, e.g. auto or ray://HOST:10001 "
                            "(default: start a local Ray instance)")
    timing = parser.add_argument_group(
        "timing phase", "the runtime comparison, measured in this process alone after the sweep "
                        "(reports/measure/timing.py)")
    timing.add_argument("--no-timing", action="store_true",
                        help="skip the timing phase (the report then has no speed comparison)")
    timing.add_argument("--retime", action="store_true",
                        help="measure the timing phase again even when nothing was trained and "
                             "OUT/timing.json has the same settings")


def executor_from_args(args: argparse.Namespace) -> Executor:
    """The ``Executor`` the options select (ValueError for a combination that does not fit)."""
    return Executor(args.executor, args.jobs, args.worker_threads, args.address)


def _command_line(args, models: list[str], out: Path, executor) -> str:
    parts = ["tfparity report", "--models", *models, "--seeds", str(args.seeds)]
    parts += ["--quick"] * args.quick + (["--data", args.data] if args.data != "mnist" else [])
    parts += ["--dtype", args.dtype] if args.dtype != "float32" else []
    parts += ["--no-verify"] * args.no_verify
    parts += executor.arguments() + ["--no-timing"] * args.no_timing
    parts += ["--no-decisions"] * args.no_decisions
    return " ".join(parts + ["--out", str(out)])


def _meta(path: Path) -> dict | None:
    """The environment and data record of ``path`` (META), or None if absent or unreadable."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and {"environment", "data"} <= set(meta) else None


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    name = ("quick" if args.quick else "full") + ("" if args.data == "mnist" else f"-{args.data}")
    name += "" if args.dtype == "float32" else f"-{args.dtype}"
    out = check_dir(args.out if args.out is not None else DEFAULT_OUT / name, "--out")

    from reports.experiment import datasets, runner
    from reports.experiment.sweep.driver import run_sweep
    from reports.files.records import write_json_atomic
    from reports.measure import decisions, timing
    from reports.render import writer
    from scratch import threads as blas_threads

    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    models = check_models(args.models)
    protocol = replace(QUICK if args.quick else FULL, data=args.data, dtype=args.dtype,
                       tf_loop=args.tf_loop)
    specs = plan(models, args.seeds, protocol)
    try:
        blas_threads.policy()  # a malformed TFPARITY_BLAS_THREADS fails here, not mid-run
        executor = executor_from_args(args)
    except ValueError as error:
        raise BadInput(str(error)) from error
    store = runner.RunStore(out)

    def load_splits() -> datasets.Splits:
        from reference_tf import threads as tf_threads
        from reports.environment import describe

        tf_threads.configure()  # before the first TensorFlow run starts its runtime
        splits = datasets.load(protocol, verify=not args.no_verify)
        write_json_atomic(out / META, {
            "environment": describe(),
            "data": {"source": splits.source, "training_images": len(splits.train[1]),
                     "train_eval_images": len(splits.train_eval[1]),
                     "test_images": len(splits.test[1])}})
        return splits

    print(f"tfparity report: {len(specs)} runs ({len(models)} models x 3 settings x {args.seeds} "
          f"seed(s) x 2 implementations) in {out}", flush=True)
    try:
        results, sweep = run_sweep(specs, store, load_splits, executor,
                                   progress=not args.no_progress)
    except KeyboardInterrupt:
        done = sum(store.load(spec) is not None for spec in specs)
        print(f"\ntfparity report: interrupted; {done}/{len(specs)} runs are saved in {store.dir}; "
              f"run the same command again to resume.", file=sys.stderr)
        return INTERRUPTED
    except DiskError as error:
        done = sum(store.load(spec) is not None for spec in specs)
        raise DiskError(f"{error} ({done}/{len(specs)} runs are saved in {store.dir}: they "
                        "will not run again.)") from error

    meta = _meta(out / META)
    if meta is None:
        from reports.environment import describe

        meta = {"environment": describe(), "data": {}}
    timed = None
    if not args.no_timing:
        test_images = (meta["data"].get("test_images")
                       or len(datasets.load(protocol, verify=not args.no_verify).test[1]))
        timed = timing.load_or_measure(out, models, protocol, test_images,
                                       sweep if sweep["trained"] else None, retime=args.retime)
    measured = None
    if not args.no_decisions:
        measured = decisions.load_or_measure(
            out, protocol, lambda: datasets.load(protocol, verify=not args.no_verify),
            sweep if sweep["trained"] else None, remeasure=args.remeasure_decisions)
    invocation = writer.Invocation(
        command=_command_line(args, models, out, executor), models=models, seeds=args.seeds,
        protocol=protocol, environment=meta["environment"],
        elapsed=time.perf_counter() - started, data=meta["data"], sweep=sweep)
    report = writer.write(out, [runner.as_planned(results[spec.key]) for spec in specs],
                          invocation=invocation,
                          timing=timed, decisions=measured)
    print(f"tfparity report: wrote {report}")
    print(f"run directory: {out}")
    return 0
