"""``tfparity bench``: training-step time and evaluation throughput, NumPy next to TensorFlow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.commands.options import (
    MAX_IMAGES,
    add_models,
    at_most,
    at_most_or_zero,
    in_model_order,
)
from reports.errors import INTERRUPTED, BadInput
from reports.experiment.protocol import MAX_STEPS_PER_CALL
from reports.files.outputs import JSON_SUFFIXES, PLOT_SUFFIXES, check_dir, check_file


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time the NumPy engine against TensorFlow's compiled step",
        description="For each model: training step (forward + backward + SGD, one batch) and "
                    "evaluation images/s, NumPy and TensorFlow alternating in one process after a "
                    "warm-up, TensorFlow's step called once per step and K steps per call; "
                    "medians, interquartile ranges, NumPy/TensorFlow ratios and peak memory of "
                    "one step. Thread settings and the BLAS are recorded.")
    add_models(parser, "models to time")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the engines' dtype")
    parser.add_argument("--repeat", type=at_most(10000, "10000 steps of the cnn take hours"),
                        default=50,
                        help="timed training steps per side")
    parser.add_argument("--steps-per-call", type=at_most(MAX_STEPS_PER_CALL, "the longest call "
                                                       "the report makes"),
                        default=200, metavar="K",
                        help="TensorFlow's steps per compiled call in its k-step loop (200: "
                             "the full report's steps between two evaluations)")
    parser.add_argument("--call-repeat", type=at_most(1000, "a median of 1000 is steady"),
                        default=5,
                        help="timed k-step calls per side (NumPy runs the same K steps)")
    parser.add_argument("--eval-repeat", type=at_most(1000, "a median of 1000 is steady"),
                        default=5,
                        help="timed evaluations of the whole evaluation set per side")
    parser.add_argument("--eval-images", type=at_most(MAX_IMAGES, "MNIST's training images"),
                        default=10000,
                        help="size of the evaluation set, evaluated in batches of 1000")
    parser.add_argument("--out", type=Path, default=Path("reports/out/bench"), metavar="DIR",
                        help="directory for bench.json and bench.md")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE.json",
                        help="results file (default: DIR/bench.json)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="also draw the step times and throughputs as .png, .svg or .pdf "
                             "(default: no plot)")
    parser.add_argument("--profile", action="store_true",
                        help="also print the NumPy side's forward/backward times per layer, on the "
                             "fused training path and layer by layer")
    parser.add_argument("--load", type=at_most_or_zero(64, "more busy processes measure the "
                                                            "scheduler, not the engines"),
                        default=0, metavar="N",
                        help="run N busy competitor processes during the measurement, stopped at "
                             "the end")
    parser.add_argument("--blas-threads", default=None, metavar="SPEC",
                        help="NumPy's BLAS threads: N, auto, step=N,eval=auto (phases named) or "
                             "inherit (default: $TFPARITY_BLAS_THREADS, else the policy of "
                             "scratch/threads.py; docs/performance-threads.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = check_dir(args.out, "--out")
    json_path = check_file(args.json or out / "bench.json", "--json", JSON_SUFFIXES)
    if args.plot is not None:
        check_file(args.plot, "--plot", PLOT_SUFFIXES)

    from scratch import threads

    try:
        threads.configure(args.blas_threads)
    except ValueError as error:
        raise BadInput(str(error)) from error

    from reference_tf import threads as tf_threads
    from reports.environment import describe
    from reports.files.atomic import write_text
    from reports.files.records import write_json_atomic
    from reports.measure import bench
    from reports.measure.competitors import competitors
    from reports.render.timing_text import conditions, profile_table, table

    tf_threads.configure()  # before anything starts TensorFlow's runtime
    settings = bench.Settings(models=tuple(in_model_order(args.models)), dtype=args.dtype,
                              repeat=args.repeat, eval_repeat=args.eval_repeat,
                              steps_per_call=args.steps_per_call, call_repeat=args.call_repeat,
                              eval_images=args.eval_images, load=args.load)
    environment = describe()
    rows, profiles = [], {}
    try:
        with competitors(args.load) as processes:
            for name in settings.models:
                if args.profile:
                    profiles[name] = bench.profile_layers(name, settings)
                    print("\n".join(profile_table(name, profiles[name])) + "\n", flush=True)
                rows.append(bench.bench_model(name, settings))
                print(f"{name}: step ratio {rows[-1]['train_ratio']:.2f} (per-call), "
                      f"{rows[-1]['k_step_ratio']:.2f} (K-step), eval ratio "
                      f"{rows[-1]['eval_ratio']:.2f}", flush=True)
    except KeyboardInterrupt:
        print("\ntfparity bench: interrupted; competitors stopped, nothing written.",
              file=sys.stderr)
        return INTERRUPTED
    # A competitor's return code -SIGTERM says it was still running when the measurement ended.
    load = {"competitors": args.load, "pids": [p.pid for p in processes],
            "returncodes": [p.returncode for p in processes]}
    lines = table(rows) + [""] + conditions(environment, rows, args.load)
    print("\n" + "\n".join(lines))
    print(f"thread environment {environment['thread_environment']}; BLAS {environment['blas']}")
    write_json_atomic(json_path, {"settings": bench.asdict(settings), "environment": environment,
                                  "load": load, "results": rows, "profiles": profiles})
    md_path = write_text(out / "bench.md", "\n".join(lines) + "\n")
    written = [json_path, md_path]
    if args.plot is not None:
        from reports.render.plots import timing_chart

        written.append(timing_chart(rows, args.plot))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
