"""Speed as text: the table of ``tfparity bench`` and of the report's timing phase (the same
rows, ``reports.measure.bench.bench_model``), their conditions, the per-layer profile, and the
report's runtime section (``reports.measure.timing``'s record)."""

from __future__ import annotations

from reports.environment import threads_text
from reports.render.formatting import first_load, load_change, mebibytes, milliseconds


def table(rows: list[dict]) -> list[str]:
    """Rows of ``bench_model`` as Markdown lines: both sides' step times, evaluation throughput,
    ratios and peak memory."""
    lines = ["| model | NumPy step ms [IQR] | TF step ms [IQR] | step ratio NumPy/TF | "
             "NumPy eval img/s | TF eval img/s | eval ratio NumPy/TF | NumPy peak MiB "
             "(tracemalloc / RSS) | TF peak MiB (RSS) | NumPy loss_and_grads ms [IQR] "
             "(of the step) |",
             "|" + " --- |" * 10]
    for row in rows:
        lines.append(
            f"| {row['model']} | {milliseconds(row['numpy_step'])} | "
            f"{milliseconds(row['tensorflow_step'])} | "
            f"{row['train_ratio']:.2f} | {row['numpy_eval_images_per_s']:,.0f} | "
            f"{row['tensorflow_eval_images_per_s']:,.0f} | {row['eval_ratio']:.2f} | "
            f"{mebibytes(row['numpy_peak_tracemalloc_mib'])} / "
            f"{mebibytes(row['numpy_peak_rss_mib'])} | "
            f"{mebibytes(row['tensorflow_peak_rss_mib'])} | "
            f"{milliseconds(row['numpy_loss_and_grads'])} "
            f"({row['loss_and_grads_of_step']:.2f}) |")
    return lines


PROFILE_TITLES = {"step": "training step (fused fast path)",
                  "layers": "layer by layer (trace path)"}


def conditions(environment: dict, rows: list[dict], load: int) -> list[str]:
    """Both sides' thread settings and the load the table was measured under, as Markdown."""
    averages = "; ".join(f"{row['model']} {first_load(row['load_average_before'])} -> "
                         f"{first_load(row['load_average_after'])}" for row in rows)
    used = "; ".join(f"{row['model']} " + ", ".join(
        f"{phase} {count}" for phase, count in row["numpy_blas_threads"].items()) for row in rows)
    return [f"- Threads: {threads_text(environment)}.",
            f"- NumPy BLAS threads used: {used}.",
            f"- Load: {load} busy competitor process(es) (`--load {load}`) on "
            f"{environment['cpu_count']} logical CPUs; 1-minute load average before -> after each "
            f"model: {averages}."]


def profile_table(name: str, profile: dict[str, list[dict]]) -> list[str]:
    """``bench.profile_layers``' per-layer times of one model as text lines, one block per path."""
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


def sweep_text(sweep: dict | None) -> str:
    """What preceded the timing phase in the invocation that measured it."""
    if not sweep or not sweep.get("executor"):
        return "that invocation trained no run before it"
    executor = sweep["executor"]
    text = (f"it followed a sweep of {sweep['trained']} run(s) on the {executor['executor']} "
            f"executor ({sweep['seconds'] / 60:.1f} min)")
    if executor.get("threads_per_worker") is not None:
        text += (f", whose {executor['workers']} workers of {executor['threads_per_worker']} "
                 f"thread(s) each had stopped")
    return text


def timing_conditions(timing: dict) -> str:
    """How the timing phase measured, and under which conditions."""
    settings, conditions = timing["settings"], timing["conditions"]
    env = conditions["environment"]
    variables = {k: v for k, v in env.get("thread_environment", {}).items() if v is not None}
    load = load_change(conditions)
    load = load[0].upper() + load[1:]  # it opens a sentence
    return (f"Timing conditions: the timing phase ran in {conditions['where']} "
            f"({sweep_text(conditions.get('sweep'))}; measured at {conditions['measured_at']}, "
            f"{conditions['seconds']:.0f} s). For each model, {settings['repeat']} training steps "
            f"per side at batch size {settings['batch_size']} after {settings['warmup']} untimed "
            f"ones, the two sides alternating (and who goes first) in one process on random "
            f"images, from the same initial weights; then "
            f"{settings['eval_repeat']} evaluations of {settings['eval_images']} images per side "
            f"in batches of {settings['eval_batch_size']}; medians with interquartile ranges, "
            f"{settings['dtype']}. {load}; {threads_text(env)}"
            + (f"; thread environment variables {variables}." if variables else "."))


def no_timing_text() -> str:
    return ("The timing phase was skipped (--no-timing): this report has no measured comparison "
            "of NumPy's and TensorFlow's speed; the wall times below are the runs' own.")


TIMING_CAPTION = ("*Timing phase: step time and evaluation throughput of both sides, measured "
                  "interleaved in one process.*")


def section(timing: dict | None) -> list[str]:
    """The timing phase in report.md: its table, conditions and figure; a note if skipped."""
    if timing is None:
        return [no_timing_text()]
    return ["\n".join(table(timing["rows"])), "", timing_conditions(timing), "",
            "![timing phase](timing.png) " + TIMING_CAPTION]
