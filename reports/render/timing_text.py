"""Speed as text: the table of ``tfparity bench`` and of the report's timing phase (the same
rows, ``reports.measure.bench.bench_model``), their conditions, the per-layer profile, and the
report's runtime section (``reports.measure.timing``'s record)."""

from __future__ import annotations

import pandas as pd

from reports.environment import threads_text
from reports.render.formatting import first_load, load_change, mebibytes, milliseconds

LOOPS_SENTENCE = (
    "TensorFlow per call: one compiled call per step (`fit`'s default); K-step: {k} steps per "
    "compiled call (`fit(steps_per_execution={k})`). They differ by Python's dispatch of one "
    "call per step, not by computation.")


def table(rows: list[dict], brief: bool = False) -> list[str]:
    """Rows of ``bench_model`` as Markdown lines: NumPy's step against TensorFlow's in its two
    loops (one call per step, K steps per call) with their ratios, then evaluation throughput,
    peak memory and ``loss_and_grads``; then the sentence on TensorFlow's two loops.
    ``brief``: the step times and their ratios only."""
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
        line = (f"| {row['model']} | {milliseconds(row['numpy_step'])} | "
                f"{milliseconds(row['tensorflow_step'])} | {row['train_ratio']:.2f} | "
                f"{milliseconds(row['numpy_k_step'])} | {milliseconds(row['tensorflow_k_step'])}"
                f" | {row['k_step_ratio']:.2f} |")
        if not brief:
            line += (f" {row['numpy_eval_images_per_s']:,.0f} | "
                     f"{row['tensorflow_eval_images_per_s']:,.0f} | {row['eval_ratio']:.2f} |"
                     f" {mebibytes(row['numpy_peak_tracemalloc_mib'])} / "
                     f"{mebibytes(row['numpy_peak_rss_mib'])} | "
                     f"{mebibytes(row['tensorflow_peak_rss_mib'])} | "
                     f"{milliseconds(row['numpy_loss_and_grads'])} "
                     f"({row['loss_and_grads_of_step']:.2f}) |")
        lines.append(line)
    return lines + ["", LOOPS_SENTENCE.format(k=rows[0]["steps_per_call"]) if rows else ""]


PROFILE_TITLES = {"step": "training step (fused fast path)",
                  "layers": "layer by layer (trace path)"}


def conditions(environment: dict, rows: list[dict], load: int) -> list[str]:
    """Both sides' thread settings and the load the table was measured under, as Markdown."""
    averages = "; ".join(f"{row['model']} {first_load(row['load_average_before'])} -> "
                         f"{first_load(row['load_average_after'])}" for row in rows)
    used = "; ".join(f"{row['model']} " + ", ".join(
        f"{phase} {count}" for phase, count in row["numpy_blas_threads"].items())
        + step_helper_text(row.get("numpy_step_helper")) for row in rows)
    return [f"- Threads: {threads_text(environment)}.",
            f"- NumPy BLAS threads used: {used}.",
            f"- Load: {load} busy competitor process(es) (`--load {load}`) on "
            f"{environment['cpu_count']} logical CPUs; 1-minute load average before -> after each "
            f"model: {averages}."]


def step_helper_text(record: dict | None) -> str:
    """How a bench row's NumPy steps used the helper process (``scratch.helper``), as a clause
    (none for a model without fused blocks, or a row from before the helper)."""
    if record is None:
        return ""
    if record["fault"]:
        return f", step helper failed ({record['fault']})"
    usage = record["usage"]
    used = "on" if usage.get("on") and not usage.get("off") else (
        "off" if not usage.get("on") else f"on {usage['on']}, off {usage['off']} phase starts")
    return f", step helper process {used} ({record['rule']})"


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
            f"images, from the same initial weights; then {settings['call_repeat']} runs of "
            f"{settings['steps_per_call']} steps per side (TensorFlow's in one compiled call), "
            f"alternating after an untimed one; then {settings['eval_repeat']} evaluations of "
            f"{settings['eval_images']} images per side in batches of "
            f"{settings['eval_batch_size']}; medians with interquartile ranges, "
            f"{settings['dtype']}. {load}; {threads_text(env)}"
            + (f"; thread environment variables {variables}." if variables else "."))


def no_timing_text() -> str:
    return ("The timing phase was skipped (--no-timing): this report has no measured comparison "
            "of NumPy's and TensorFlow's speed; the wall times below are the runs' own.")


TIMING_CAPTION = ("*Timing phase: both sides interleaved in one process{helper} "
                  "([timing.md](timing.md): conditions, throughputs, memory).*")


def helper_clause(rows: list[dict]) -> str:
    """The caption's note of the models whose NumPy steps had the step helper process (a second
    core, as TensorFlow's pools have; ``scratch.helper``), if any did."""
    models = [row["model"] for row in rows
              if (row.get("numpy_step_helper") or {}).get("usage", {}).get("on")]
    return f", NumPy's {', '.join(models)} on two processes" if models else ""


def section(timing: dict | None) -> list[str]:
    """The timing phase in report.md: its step times in brief and its figure, the rest on
    timing.md (``page``); a note if skipped."""
    if timing is None:
        return [no_timing_text()]
    return ["\n".join(table(timing["rows"], brief=True)), "",
            "![timing phase](timing.png) " + TIMING_CAPTION.format(
                helper=helper_clause(timing["rows"]))]


def page(timing: dict) -> list[str]:
    """timing.md as Markdown lines: the full table and the conditions."""
    return ["# Timing phase", "", *table(timing["rows"]), "", timing_conditions(timing)]


def run_times_note(runs: pd.DataFrame, runtime: pd.DataFrame, cpus: int | None) -> str:
    """Which executors the runs' own times come from, which of them compare, the load, and the
    runs' contention-robust step ratios (``reports.analysis.tables.runtime_table``'s medians)."""
    counts = runs["executor"].value_counts()
    executors = "; ".join(f"{label} ({count} runs)" for label, count in counts.items())
    parallel = [label for label in counts.index if label not in ("serial", "unrecorded")]
    text = (f"Wall times the training runs recorded themselves (setup, training steps, "
            f"evaluations; ms/step counts the steps alone), by executor: {executors}. ")
    if "serial" in counts.index or "unrecorded" in counts.index:
        text += ("Serial runs went one at a time in the driver, so their times compare with each "
                 "other. ")
    if parallel:
        text += ("Runs of a parallel executor went side by side, several workers on the same "
                 f"{cpus} logical CPUs: each run's time includes waiting for cores and memory "
                 "bandwidth taken by whatever ran beside it (a TensorFlow run beside a NumPy run, "
                 "or two alike), so these times compare only among runs of the same executor and "
                 "thread settings, and not with serial runs. ")
    text += ("For how fast NumPy is next to TensorFlow, read the timing phase (report.md, "
             "timing.md), which measured both sides interleaved in one process with no training "
             "run beside it. ")
    load = runs["load_average"].astype(float)
    if load.notna().any():
        text += (f"The 1-minute load average at the end of a run was {load.median():.2f} (median) "
                 f"and at most {load.max():.2f}, on {cpus} logical CPUs. ")
    if cpus and load.max() > cpus:
        text += ("The load average counts the runs' own threads too (TensorFlow's pools, NumPy's "
                 "BLAS; one of each per worker under a parallel executor), so a load somewhat "
                 "above the CPU count is expected from the runs themselves; a load well above it "
                 "means other processes competed for the cores, which inflates those times. ")
    sums = runtime.groupby("model", sort=False)[
        ["ms_per_step_median_numpy", "ms_per_step_median_tensorflow"]].sum()
    medians = "; ".join(f"{model} {row.iloc[0] / row.iloc[1]:.2f}"
                        for model, row in sums.iterrows())
    return text + (f"NumPy/TensorFlow ratio of the runs' median ms/step over evaluation intervals "
                   f"(less sensitive to bursts of contention): {medians}.")
