"""The report's runtime section in words: the timing phase's answer and its conditions
(``reports.timing``), then what the runs' own wall times are and which of them compare."""

from __future__ import annotations

import pandas as pd

from reports.environment import threads_text


def _ms(spread: dict) -> str:
    q1, median, q3 = (1e3 * spread[key] for key in ("q1", "median", "q3"))
    return f"{median:.3f} ms [IQR {q1:.3f}-{q3:.3f}]"


def faster(ratio: float) -> str:
    """A NumPy/TensorFlow time ratio in words."""
    if ratio >= 1:
        return f"NumPy is {ratio:.2f}x slower than TensorFlow"
    return f"NumPy is {1 / ratio:.2f}x faster than TensorFlow"


def timing_prose(timing: dict) -> list[str]:
    """One line per model: training step and evaluation throughput of both sides, and ratios."""
    out = []
    for row in timing["rows"]:
        out.append(
            f"- **{row['model']}**: a training step takes {_ms(row['numpy_step'])} in NumPy and "
            f"{_ms(row['tensorflow_step'])} in TensorFlow ({faster(row['train_ratio'])} per "
            f"step); evaluation runs at {row['numpy_eval_images_per_s']:,.0f} images/s in NumPy "
            f"and {row['tensorflow_eval_images_per_s']:,.0f} in TensorFlow (NumPy/TensorFlow "
            f"throughput {row['eval_ratio']:.2f}).")
    return out


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
    before, after = env.get("load_average_1_5_15min"), conditions.get("load_average_after")
    load = (f"Load average (1/5/15 min) {_loads(before)} before and {_loads(after)} after, on "
            f"{env.get('cpu_count')} logical CPUs" if before and after else
            "Load average not available")
    return (f"Timing conditions: the timing phase ran in {conditions['where']} "
            f"({sweep_text(conditions.get('sweep'))}; measured at {conditions['measured_at']}, "
            f"{conditions['seconds']:.0f} s). For each model, {settings['repeat']} training steps "
            f"per side at batch size {settings['batch_size']} after {settings['warmup']} untimed "
            f"ones, the two sides alternating (and who goes first) in one process on random "
            f"images, from the same initial weights; then {settings['call_repeat']} runs of "
            f"{settings['steps_per_call']} steps per side (TensorFlow's in one compiled call), "
            f"alternating after an untimed one; then "
            f"{settings['eval_repeat']} evaluations of {settings['eval_images']} images per side "
            f"in batches of {settings['eval_batch_size']}; medians with interquartile ranges, "
            f"{settings['dtype']}. {load}; {threads_text(env)}"
            + (f"; thread environment variables {variables}." if variables else "."))


def _loads(values) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def no_timing_text() -> str:
    return ("The timing phase was skipped (--no-timing): this report has no measured comparison "
            "of NumPy's and TensorFlow's speed; the wall times below are the runs' own.")


def run_times_note(runs: pd.DataFrame, runtime: pd.DataFrame, cpus: int | None) -> str:
    """Which executors the runs' own times come from, which of them compare, the load, and the
    runs' contention-robust step ratios (``reports.analysis.runtime_table``'s medians)."""
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
