"""``tfparity bench``: training-step time and evaluation throughput, NumPy next to TensorFlow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.commands.options import add_models, in_model_order, non_negative_int, positive_int
from reports.environment import threads_text
from reports.errors import INTERRUPTED, BadInput
from reports.outputs import JSON_SUFFIXES, PLOT_SUFFIXES, check_dir, check_file


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time the NumPy engine against TensorFlow's compiled step",
        description="For each model: training step (forward + backward + SGD, one batch) and "
                    "evaluation images/s, NumPy and TensorFlow alternating in one process after a "
                    "warm-up; medians, interquartile ranges, NumPy/TensorFlow ratios and peak "
                    "memory of one step. Thread settings and the BLAS are recorded.")
    add_models(parser, "models to time")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the engines' dtype")
    parser.add_argument("--repeat", type=positive_int, default=50,
                        help="timed training steps per side")
    parser.add_argument("--steps-per-call", type=positive_int, default=200, metavar="K",
                        help="TensorFlow's steps per compiled call in its k-step loop (default "
                             "200, the report's steps between two evaluations)")
    parser.add_argument("--call-repeat", type=positive_int, default=5,
                        help="timed k-step calls per side (NumPy runs the same K steps)")
    parser.add_argument("--eval-repeat", type=positive_int, default=5,
                        help="timed evaluations of the whole evaluation set per side")
    parser.add_argument("--eval-images", type=positive_int, default=10000,
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
    parser.add_argument("--load", type=non_negative_int, default=0, metavar="N",
                        help="run N busy competitor processes during the measurement, stopped at "
                             "the end")
    parser.add_argument("--blas-threads", default=None, metavar="SPEC",
                        help="NumPy's BLAS threads: N, auto, step=N,eval=auto (phases named) or "
                             "inherit (default: $TFPARITY_BLAS_THREADS, else the policy of "
                             "scratch/threads.py; docs/performance-threads.md)")
    parser.set_defaults(func=run)


def _ms(spread: dict) -> str:
    return f"{1e3 * spread['median']:.3f} [{1e3 * spread['q1']:.3f}, {1e3 * spread['q3']:.3f}]"


def _mib(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


LOOPS_SENTENCE = (
    "TensorFlow per call: one compiled call per step (`fit`'s default); K-step: {k} steps per "
    "compiled call (`fit(steps_per_execution={k})`). They differ by Python's dispatch of one "
    "call per step, not by computation.")


def table(rows: list[dict], brief: bool = False) -> list[str]:
    """The results as Markdown lines: the table, then the sentence on TensorFlow's two loops.
    ``brief``: the step times and their ratios only (no evaluation, memory or
    ``loss_and_grads``)."""
    head = ("| model | NumPy step ms [IQR] | TF per-call ms | NumPy/TF | NumPy, K steps in a row "
            "| TF K-step ms/step | NumPy/TF |" if brief else
            "| model | NumPy step ms [IQR] | TF per-call step ms [IQR] | ratio NumPy/TF "
            "per-call | NumPy step, K in a row, ms [IQR] | TF K-step ms per step [IQR] | "
            "ratio NumPy/TF K-step |")
    lines = [head + ("" if brief else
                     " NumPy eval img/s | TF eval img/s | eval ratio NumPy/TF | NumPy peak MiB "
                     "(tracemalloc / RSS) | TF peak MiB (RSS) | NumPy loss_and_grads ms [IQR] "
                     "(of the step) |"),
             "|" + " --- |" * (7 if brief else 13)]
    for row in rows:
        line = (f"| {row['model']} | {_ms(row['numpy_step'])} | {_ms(row['tensorflow_step'])} | "
                f"{row['train_ratio']:.2f} | {_ms(row['numpy_k_step'])} | "
                f"{_ms(row['tensorflow_k_step'])} | {row['k_step_ratio']:.2f} |")
        if not brief:
            line += (f" {row['numpy_eval_images_per_s']:,.0f} | "
                     f"{row['tensorflow_eval_images_per_s']:,.0f} | {row['eval_ratio']:.2f} |"
                     f" {_mib(row['numpy_peak_tracemalloc_mib'])} / "
                     f"{_mib(row['numpy_peak_rss_mib'])} | {_mib(row['tensorflow_peak_rss_mib'])}"
                     f" | {_ms(row['numpy_loss_and_grads'])} ({row['loss_and_grads_of_step']:.2f})"
                     " |")
        lines.append(line)
    return lines + ["", LOOPS_SENTENCE.format(k=rows[0]["steps_per_call"]) if rows else ""]


PROFILE_TITLES = {"step": "training step (fused fast path)",
                  "layers": "layer by layer (trace path)"}


def conditions(environment: dict, rows: list[dict], load: int) -> list[str]:
    """Both sides' thread settings and the load the table was measured under, as Markdown."""
    averages = "; ".join(f"{row['model']} {_averages(row['load_average_before'])} -> "
                         f"{_averages(row['load_average_after'])}" for row in rows)
    used = "; ".join(f"{row['model']} " + ", ".join(
        f"{phase} {count}" for phase, count in row["numpy_blas_threads"].items()) for row in rows)
    return [f"- Threads: {threads_text(environment)}.",
            f"- NumPy BLAS threads used: {used}.",
            f"- Load: {load} busy competitor process(es) (`--load {load}`) on "
            f"{environment['cpu_count']} logical CPUs; 1-minute load average before -> after each "
            f"model: {averages}."]


def _averages(values) -> str:
    return "n/a" if values is None else f"{values[0]:.2f}"


def profile_table(name: str, profile: dict[str, list[dict]]) -> list[str]:
    lines = []
    for path, layers in profile.items():
        total = sum(layer["forward"] + layer["backward"] for layer in layers) or 1.0
        lines += [f"NumPy per-layer times, {name}, {PROFILE_TITLES[path]} (ms, median):",
                  f"{'layer':<14} {'type':<10} {'forward':>8} {'backward':>9} {'share':>6}"]
        for layer in layers:
            share = (layer["forward"] + layer["backward"]) / total
            lines.append(f"{layer['layer']:<14} {layer['type']:<10} {1e3 * layer['forward']:8.3f} "
                         f"{1e3 * layer['backward']:9.3f} {100 * share:5.1f}%")
        lines += [f"{'total':<25} {1e3 * total:18.3f}", ""]
    return lines[:-1]


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    from reports.atomic import save_figure

    names = [row["model"] for row in rows]
    positions = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "step", "training step (ms, median)"),
                           (axes[1], "eval_images_per_s", "evaluation (images/s)")):
        for offset, side, title in ((-0.2, "numpy", "NumPy"), (0.2, "tensorflow", "TensorFlow")):
            if key == "step":
                values = [1e3 * row[f"{side}_step"]["median"] for row in rows]
                errors = [[1e3 * (row[f"{side}_step"]["median"] - row[f"{side}_step"]["q1"])
                           for row in rows],
                          [1e3 * (row[f"{side}_step"]["q3"] - row[f"{side}_step"]["median"])
                           for row in rows]]
            else:
                values, errors = [row[f"{side}_{key}"] for row in rows], None
            ax.bar(positions + offset, values, 0.4, yerr=errors, label=title)
        ax.set_xticks(positions, names)
        ax.set_yscale("log")
        ax.set_title(label)
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


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
    from reports import bench
    from reports.atomic import write_text
    from reports.environment import describe
    from reports.load import competitors
    from reports.runner import write_json_atomic

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
        written.append(plot(rows, args.plot))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
