"""The report's experiment results in words and Markdown: the tables of report.md, the findings
and answers for each model, the verdict rules, the protocol and the machine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.analysis import fitting
from reports.analysis.tables import EXPERIMENT
from reports.environment import threads_text
from reports.experiment.protocol import Protocol
from reports.render.formatting import distance, loads, pair, percent, times

LOADS = "load_average_1_5_15min"  # the environment record's load averages at the start


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (cells as already formatted strings)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _setting(row) -> str:
    return f"#{row.setting} ({row.epochs} ep, lr {row.lr:g})"


def summary_markdown(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": summary["model"], "setting": [_setting(r) for r in summary.itertuples()],
        "NumPy test acc. %": [f"{percent(m)} ± {percent(s)}"
                              for m, s in zip(summary["numpy_mean"], summary["numpy_std"])],
        "TensorFlow test acc. %": [f"{percent(m)} ± {percent(s)}"
                                   for m, s in zip(summary["tensorflow_mean"],
                                                   summary["tensorflow_std"])],
        "NumPy - TF (pp)": [f"{100 * d:+.2f}" for d in summary["difference"]],
        "paired NumPy - TF, 95% CI (pp)": [_paired(r) for r in summary.itertuples()],
    })


def _paired(row) -> str:
    if not np.isfinite(row.paired_low):
        return f"n/a ({row.paired_n} paired seed{'s' * (row.paired_n != 1)}; needs 3)"
    mean, low, high = (100 * value for value in (row.paired_mean, row.paired_low, row.paired_high))
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def runtime_markdown(runtime: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": runtime["model"], "setting": [_setting(r) for r in runtime.itertuples()],
        "ms/step NumPy": runtime["ms_per_step_numpy"].map("{:.3f}".format),
        "ms/step TF": runtime["ms_per_step_tensorflow"].map("{:.3f}".format),
        "step ratio NumPy/TF": runtime["step_ratio"].map("{:.2f}".format),
        "s/epoch NumPy": runtime["s_per_epoch_numpy"].map("{:.2f}".format),
        "s/epoch TF": runtime["s_per_epoch_tensorflow"].map("{:.2f}".format),
        "eval s NumPy": runtime["eval_time_numpy"].map("{:.2f}".format),
        "eval s TF": runtime["eval_time_tensorflow"].map("{:.2f}".format),
        "run s NumPy": runtime["wall_time_numpy"].map("{:.1f}".format),
        "run s TF": runtime["wall_time_tensorflow"].map("{:.1f}".format),
        "total ratio": runtime["total_ratio"].map("{:.2f}".format),
        "executor": runtime["executor"],
    })


def accuracy_markdown(summary: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: final test accuracy of both sides (mean ± std over seeds when there are
    several), their difference and the paired interval (when some experiment has one)."""
    several = summary["seeds"].max() > 1
    table = pd.DataFrame({
        "model": summary["model"], "setting": [_setting(r) for r in summary.itertuples()],
        "test acc. % NumPy / TF": [
            " / ".join(percent(mean) + (f" ± {percent(std)}" if several else "")
                       for mean, std in ((r.numpy_mean, r.numpy_std),
                                         (r.tensorflow_mean, r.tensorflow_std)))
            for r in summary.itertuples()],
        "NumPy - TF (pp)": [f"{100 * d:+.2f}" for d in summary["difference"]],
    })
    if np.isfinite(summary["paired_low"].astype(float)).any():
        table["paired 95% CI (pp)"] = [_paired(r) if np.isfinite(r.paired_low) else "n/a"
                                       for r in summary.itertuples()]
    return table


def _verdicts(stability: pd.DataFrame, verdicts: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Per experiment: the verdicts over seeds of both sides, and the rule that gave NumPy's
    (its first such seed)."""
    by = {(r.model, r.setting, r.implementation): r for r in verdicts.itertuples()}
    verdict, rule = [], []
    for r in stability.itertuples():
        ours, theirs = by[(r.model, r.setting, "numpy")], by[(r.model, r.setting, "tensorflow")]
        if ours.all_verdicts == theirs.all_verdicts:
            seeds = f"{ours.agreeing_seeds}/{ours.seeds}, " if ours.seeds > 1 else ""
            verdict.append(f"{ours.verdict} ({seeds}both)")
        else:
            verdict.append(f"NumPy **{ours.verdict}** ({ours.agreeing_seeds}/{ours.seeds}), TF "
                           f"**{theirs.verdict}** ({theirs.agreeing_seeds}/{theirs.seeds})")
        rule.append(ours.rule)
    return verdict, rule


def stability_markdown(stability: pd.DataFrame, drift: pd.DataFrame,
                       verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: verdicts, stability of both sides (NumPy / TF) and how far apart they
    are."""
    merged = stability.merge(drift, on=EXPERIMENT, how="left")
    columns = {"model": merged["model"], "setting": [_setting(r) for r in merged.itertuples()]}
    columns["verdict (seeds)"], columns["rule (NumPy)"] = _verdicts(merged, verdicts)
    for name, label in (("diverged_runs", "diverged"), ("fluctuation", "fluctuation (pp)"),
                        ("largest_drop", "largest drop (pp)")):
        fmt = (lambda v: str(int(v))) if name == "diverged_runs" else percent
        columns[f"{label} NumPy / TF"] = [pair(a, b, fmt) for a, b in zip(
            merged[f"{name}_numpy"], merged[f"{name}_tensorflow"])]
    columns["acc. gap test / train (pp)"] = [
        pair(a, b, lambda v: percent(v, 3))
        for a, b in zip(merged["max_test_curve_gap"], merged["max_train_curve_gap"])]
    columns["test loss gap"] = merged["max_test_loss_gap"].map(distance)
    columns["weights NumPy-TF"] = merged["max_weight_distance"].map(distance)
    columns["weights seed-seed (end)"] = merged["final_seed_distance"].map(distance)
    return pd.DataFrame(columns)


def findings(model: str, timing_row: dict | None, runtime: pd.DataFrame,
             accuracy: pd.DataFrame, stability: pd.DataFrame, verdicts: pd.DataFrame) -> dict:
    """Everything with a number the answers for one model state, formatted as printed: the size
    of each finding (the tables hold the details). ``accuracy``: the summary table;
    ``stability``: the stability table merged with the drift table."""
    rows = runtime[runtime["model"] == model]
    medians = rows["ms_per_step_median_numpy"].sum() / rows["ms_per_step_median_tensorflow"].sum()
    found = {"runs_step": times(medians)}
    if timing_row is not None:
        found.update(step=times(timing_row["k_step_ratio"]),
                     eval=times(1 / timing_row["eval_ratio"]))
    acc = accuracy[accuracy["model"] == model]
    best = acc.loc[acc["numpy_mean"].idxmax()]
    worst = acc.loc[acc["difference"].abs().idxmax()]
    found.update(best_setting=f"#{best['setting']}", best_accuracy=percent(best["numpy_mean"]),
                 largest_difference=f"{100 * abs(worst['difference']):.2f}",
                 largest_difference_setting=f"#{worst['setting']}",
                 largest_seed_std=percent(np.nanmax(acc[["numpy_std",
                                                      "tensorflow_std"]].to_numpy())))
    finite = acc[np.isfinite(acc["paired_low"].astype(float))]
    if not finite.empty:
        apart = finite[(finite["paired_low"] > 0) | (finite["paired_high"] < 0)]
        found["versus"] = (f"the paired 95% interval holds 0 in {len(finite) - len(apart)} of "
                           f"{len(finite)} settings")
        if len(apart):
            found["versus"] += " (not for " + ", ".join(f"#{r}" for r in apart["setting"]) + ")"
    elif acc["seeds"].min() > 1:
        found["versus"] = f"largest std over seeds {found['largest_seed_std']} pp"
    else:
        found["versus"] = "one seed"
    ours = verdicts[(verdicts["model"] == model) & (verdicts["implementation"] == "numpy")]
    found["verdicts"] = ", ".join(f"{verdict} in {count}"
                                  for verdict, count in ours["verdict"].value_counts().items())
    stab = stability[stability["model"] == model]
    found.update(max_weight_distance=distance(stab["max_weight_distance"].max()),
                 min_seed_distance=distance(stab["final_seed_distance"].min()),
                 max_accuracy_gap=percent(stab["max_test_curve_gap"].max(), 3),
                 diverged_numpy=str(int(stab["diverged_runs_numpy"].sum())),
                 diverged_tensorflow=str(int(stab["diverged_runs_tensorflow"].sum())),
                 max_fluctuation=percent(stab[["fluctuation_numpy",
                                            "fluctuation_tensorflow"]].to_numpy().max()))
    return found


def answers(model: str, found: dict, verdicts: pd.DataFrame) -> list[str]:
    """The three answers for one model (runtime; performance and stability; final accuracy),
    each a few sentences stating the finding with its size from ``found`` and pointing to the
    table or figure with the details."""
    if "step" in found:
        runtime = (f"NumPy's step is {found['step']} than TensorFlow's k-step loop, its "
                   f"evaluation {found['eval']} (timing table; the runs' own steps: "
                   f"{found['runs_step']}).")
    else:
        runtime = (f"No timing phase ran; the runs' own median step times make NumPy "
                   f"{found['runs_step']} than TensorFlow.")
    ours = verdicts[verdicts["model"] == model]
    agree = all(group["all_verdicts"].nunique() == 1 for _, group in ours.groupby("setting"))
    diverged = ("no run diverged" if found["diverged_numpy"] == found["diverged_tensorflow"] == "0"
                else f"{found['diverged_numpy']} NumPy and {found['diverged_tensorflow']} "
                     "TensorFlow runs diverged")
    seeds = ("" if found["min_seed_distance"] == "n/a" else
             f"; two seeds end at least {found['min_seed_distance']} apart")
    performance = (
        f"Settings {found['verdicts']} ({'both sides alike' if agree else 'the sides DIFFER'} "
        "in every seed); "
        f"{diverged}; test accuracy fluctuating by at most {found['max_fluctuation']} pp at the "
        f"end. The weights stay within {found['max_weight_distance']} (relative{seeds}), the "
        f"accuracy curves within {found['max_accuracy_gap']} pp (figure).")
    final = (f"Best is {found['best_setting']} ({found['best_accuracy']}% in NumPy); the two "
             f"sides' final test accuracies differ by at most {found['largest_difference']} pp "
             f"({found['largest_difference_setting']}; {found['versus']}).")
    return [runtime, performance, final]


def runs_conditions(runs: pd.DataFrame) -> dict:
    """Where the runs' own times were taken: runs per executor, 1-minute load average at the
    end of a run (median, max), formatted as printed."""
    load = runs["load_average"].astype(float)
    return {"executors": "; ".join(f"{label} ({count} runs)"
                                   for label, count in runs["executor"].value_counts().items()),
            "load_median": f"{load.median():.2f}" if load.notna().any() else "n/a",
            "load_max": f"{load.max():.2f}" if load.notna().any() else "n/a"}


def rules_text() -> str:
    """The verdict rules of ``reports.analysis.fitting`` with their thresholds, in the order
    applied."""
    d = fitting
    return (
        "Rules, in this order (train = the training subset): **diverged**: a loss became NaN/inf "
        f"or exceeded {d.DIVERGENCE_LOSS_FACTOR:g} x the initial test loss; **over-fitting**: "
        f"final train - test accuracy gap >= {100 * d.OVERFIT_MIN_GAP:g} pp and at the end the "
        f"test loss >= {100 * d.OVERFIT_LOSS_RISE:g}% above its minimum or the test accuracy >= "
        f"{100 * d.OVERFIT_ACCURACY_DROP:g} pp below its best; **under-fitting**: final train "
        f"accuracy < {100 * d.UNDERFIT_MIN_TRAIN_ACCURACY:g}%, or more than "
        f"{100 * d.UNDERFIT_CAPACITY_GAP:g} pp below the model's best final train accuracy in "
        f"this report, or rising by more than {100 * d.UNDERFIT_LATE_GAIN:g} pp over the last "
        f"{100 * d.LATE_FRACTION:g}% of the samples; otherwise **good fit**.")


def _source(name: str, source: str) -> str:
    """``name`` (``source``), without the name twice when the source begins with it."""
    return source if source.startswith(name) else f"`{name}` ({source})"


def protocol_text(protocol: Protocol, data: dict, seeds: int) -> str:
    epochs = f"every setting cut to {protocol.epochs} epoch(s) (quick run)" \
        if protocol.epochs else "epochs and learning rate per setting (experiment table)"
    test_set = "all test images" if protocol.test_size is None \
        else f"the first {protocol.test_size} test images"
    return (f"Plain SGD, batch {protocol.batch_size}, mean softmax cross-entropy, "
            f"{protocol.dtype}, data {_source(protocol.data, data.get('source', '?'))}: "
            f"{data.get('training_images', '?')} training images; evaluation every "
            f"{protocol.eval_every} samples on the first {data.get('train_eval_images', '?')} "
            f"training images and on {test_set}; {epochs}. {seeds} seed(s): seed s draws the "
            "initial weights (copied to the Keras twin) and the batch order, shared by both "
            "implementations. TensorFlow: compiled `tf.function`, "
            + ("one call per step" if protocol.steps_per_call == 1 else
               f"{protocol.steps_per_call} steps per call") + ", no XLA, deterministic ops.")


def environment_text(env: dict, threads_stated: bool) -> str:
    """The machine and software; the thread settings unless ``threads_stated`` already (by the
    timing conditions, from the same environment record)."""
    blas = env.get("blas", {})
    threads = {k: v for k, v in env.get("thread_environment",
                                        {}).items() if v is not None} or "none set"
    return (f"{env.get('cpu_model')} x {env.get('cpu_count')} logical CPUs, {env.get('platform')}; "
            f"Python {env.get('python')}, NumPy {env.get('numpy')} with {blas.get('name')} "
            f"{blas.get('version', '')}, TensorFlow {env.get('tensorflow')}, Keras "
            f"{env.get('keras')}; "
            + ("threads as in the timing conditions" if threads_stated else
               f"{threads_text(env)}; thread environment variables: {threads}")
            + f"; load average (1/5/15 min) at the start {loads(env.get(LOADS))}.")
