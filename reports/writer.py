"""Writing a report directory: tables (CSV, Markdown), pictures, results.json and report.md.

Every sentence of report.md with a number in it is formatted from the tables computed from the
runs; nothing here trains or measures.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from reports import analysis, decisions_text, diagnosis, plots, timing_text
from reports.atomic import write_text
from reports.environment import threads_text
from reports.experiments import IMPLEMENTATIONS, RECORDS, SETTINGS, Protocol
from reports.runner import write_json_atomic

TIMING_OUTPUTS = ("timing.json", "timing.md", "timing.png")  # absent with --no-timing
EXPERIMENTS_PAGE = "experiments.md"  # the whole experiment table, its legend and the rules
OUTPUTS = ("report.md", "results.json", "summary_table.png", "summary_table.csv",
           "summary_table.md", "runtime.png", "runtime.csv", "runtime.md", "stability.csv",
           "verdicts.csv", "drift.csv", EXPERIMENTS_PAGE, *TIMING_OUTPUTS, "decisions.json",
           decisions_text.PAGE)
# and curve_figure(model) per model; timing's and the decisions' files absent with --no-timing
# and --no-decisions
# The experiment table's columns in report.md; EXPERIMENTS_PAGE has them all.
BRIEF_COLUMNS = ("model", "setting", "test acc. % NumPy / TF", "paired 95% CI (pp)",
                 "verdict (seeds)")


def curve_figure(model: str) -> str:
    """The file name of a model's figure of differences and learning curves."""
    return f"curves_{model}.png"
THRESHOLDS = {name: getattr(diagnosis, name) for name in (
    "DIVERGENCE_LOSS_FACTOR", "UNDERFIT_MIN_TRAIN_ACCURACY", "UNDERFIT_CAPACITY_GAP",
    "UNDERFIT_LATE_GAIN",
    "LATE_FRACTION", "OVERFIT_MIN_GAP", "OVERFIT_LOSS_RISE", "OVERFIT_ACCURACY_DROP",
    "FLUCTUATION_WINDOW")}


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (cells as already formatted strings)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _pct(value: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.{digits}f}"


def _setting(row) -> str:
    return f"#{row.setting} ({row.epochs} ep, lr {row.lr:g})"


def summary_markdown(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": summary["model"], "setting": [_setting(r) for r in summary.itertuples()],
        "NumPy test acc. %": [f"{_pct(m)} ± {_pct(s)}"
                              for m, s in zip(summary["numpy_mean"], summary["numpy_std"])],
        "TensorFlow test acc. %": [f"{_pct(m)} ± {_pct(s)}"
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


def _pair(numpy_value, tf_value, fmt=None) -> str:
    """"NumPy / TF" of one quantity (percent by default)."""
    fmt = fmt or _pct
    return f"{fmt(numpy_value)} / {fmt(tf_value)}"


def _distance(value: float) -> str:
    """A relative distance: two decimals from 0.01 on, else two significant digits."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


def accuracy_markdown(summary: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: final test accuracy of both sides (mean ± std over seeds when there are
    several), their difference and the paired interval (when some experiment has one)."""
    several = summary["seeds"].max() > 1
    table = pd.DataFrame({
        "model": summary["model"], "setting": [_setting(r) for r in summary.itertuples()],
        "test acc. % NumPy / TF": [
            " / ".join(_pct(mean) + (f" ± {_pct(std)}" if several else "")
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
    merged = stability.merge(drift, on=analysis.EXPERIMENT, how="left")
    columns = {"model": merged["model"], "setting": [_setting(r) for r in merged.itertuples()]}
    columns["verdict (seeds)"], columns["rule (NumPy)"] = _verdicts(merged, verdicts)
    for name, label in (("diverged_runs", "diverged"), ("fluctuation", "fluctuation (pp)"),
                        ("largest_drop", "largest drop (pp)")):
        fmt = (lambda v: str(int(v))) if name == "diverged_runs" else _pct
        columns[f"{label} NumPy / TF"] = [_pair(a, b, fmt) for a, b in zip(
            merged[f"{name}_numpy"], merged[f"{name}_tensorflow"])]
    columns["acc. gap test / train (pp)"] = [
        _pair(a, b, lambda v: _pct(v, 3))
        for a, b in zip(merged["max_test_curve_gap"], merged["max_train_curve_gap"])]
    columns["test loss gap"] = merged["max_test_loss_gap"].map(_distance)
    columns["weights NumPy-TF"] = merged["max_weight_distance"].map(_distance)
    columns["weights seed-seed (end)"] = merged["final_seed_distance"].map(_distance)
    return pd.DataFrame(columns)


def _times(ratio: float) -> str:
    """A NumPy/TensorFlow time ratio as "N.NNx faster" or "N.NNx slower" (NumPy's)."""
    if not np.isfinite(ratio):
        return "n/a"
    return f"{ratio:.2f}x slower" if ratio >= 1 else f"{1 / ratio:.2f}x faster"


def findings(model: str, timing_row: dict | None, runtime: pd.DataFrame,
             accuracy: pd.DataFrame, stability: pd.DataFrame, verdicts: pd.DataFrame) -> dict:
    """Everything with a number the answers for one model state, formatted as printed: the size
    of each finding (the tables hold the details). ``accuracy``: the summary table;
    ``stability``: the stability table merged with the drift table."""
    rows = runtime[runtime["model"] == model]
    medians = rows["ms_per_step_median_numpy"].sum() / rows["ms_per_step_median_tensorflow"].sum()
    found = {"runs_step": _times(medians)}
    if timing_row is not None:
        found.update(step=_times(timing_row["k_step_ratio"]),
                     eval=_times(1 / timing_row["eval_ratio"]))
    acc = accuracy[accuracy["model"] == model]
    best = acc.loc[acc["numpy_mean"].idxmax()]
    worst = acc.loc[acc["difference"].abs().idxmax()]
    found.update(best_setting=f"#{best['setting']}", best_accuracy=_pct(best["numpy_mean"]),
                 largest_difference=f"{100 * abs(worst['difference']):.2f}",
                 largest_difference_setting=f"#{worst['setting']}",
                 largest_seed_std=_pct(np.nanmax(acc[["numpy_std",
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
    found.update(max_weight_distance=_distance(stab["max_weight_distance"].max()),
                 min_seed_distance=_distance(stab["final_seed_distance"].min()),
                 max_accuracy_gap=_pct(stab["max_test_curve_gap"].max(), 3),
                 diverged_numpy=str(int(stab["diverged_runs_numpy"].sum())),
                 diverged_tensorflow=str(int(stab["diverged_runs_tensorflow"].sum())),
                 max_fluctuation=_pct(stab[["fluctuation_numpy",
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


CAPTIONS = {
    "curves": "*Each model: top, black NumPy-TF weights far below grey seed-seed; below, solid "
              "NumPy on dashed TF.*",
    "curves_one_seed": "*Each model: top, NumPy-TF gaps (log); below, solid NumPy on dashed "
                       "TF.*",
    "timing": "*Timing phase: both sides interleaved in one process ([timing.md](timing.md): "
              "its conditions, throughputs and memory).*",
    "runtime": "*The runs' own times, by executor: {executors}; they compare only within one "
               "executor ([runtime.md](runtime.md): the table, the load).*",
}


def runs_conditions(runs: pd.DataFrame) -> dict:
    """Where the runs' own times were taken: runs per executor, 1-minute load average at the
    end of a run (median, max), formatted as printed."""
    load = runs["load_average"].astype(float)
    return {"executors": "; ".join(f"{label} ({count} runs)"
                                   for label, count in runs["executor"].value_counts().items()),
            "load_median": f"{load.median():.2f}" if load.notna().any() else "n/a",
            "load_max": f"{load.max():.2f}" if load.notna().any() else "n/a"}


def rules_text() -> str:
    """The verdict rules of ``reports.diagnosis`` with their thresholds, in the order applied."""
    d = diagnosis
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


def _protocol_text(protocol: Protocol, data: dict, seeds: int) -> str:
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


def _environment_text(env: dict, threads_stated: bool) -> str:
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
            + f"; load average (1/5/15 min) at the start {_loads(env)}.")


def _loads(env: dict) -> str:
    loads = env.get("load_average_1_5_15min")
    return "/".join(f"{v:.2f}" for v in loads) if loads else "n/a"


def _timing_section(timing: dict | None) -> list[str]:
    if timing is None:
        return [timing_text.no_timing_text()]
    return ["\n".join(timing_table_lines(timing, brief=True)), "",
            "![timing phase](timing.png) " + CAPTIONS["timing"]]


def timing_table_lines(timing: dict, brief: bool = False) -> list[str]:
    from reports.commands.bench import table

    return table(timing["rows"], brief)



def write(out: Path, results: list[dict], *, models: list[str], seeds: int, protocol: Protocol,
          command: str, environment: dict, elapsed: float, data: dict, timing: dict | None = None,
          sweep: dict | None = None, decisions: dict | None = None) -> Path:
    """Write every output of OUTPUTS into ``out`` and return the path of report.md.

    ``timing`` is the timing phase's record (``reports.timing``; it wrote timing.json), whose
    table and figure become timing.md and timing.png; None if it was skipped. ``sweep`` is this
    invocation's sweep record (``reports.sweep.driver.run_sweep``). ``decisions`` is the design
    decisions' record (``reports.decisions``), None if that phase was skipped."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = analysis.runs_table(results)
    summary = analysis.summary_table(runs)
    runtime = analysis.runtime_table(runs)
    stability = analysis.stability_table(runs, results)
    verdicts = analysis.verdict_table(runs)
    drift_series = analysis.drift_series(results)
    drift = analysis.drift_table(drift_series)

    for name, table in (("summary_table", summary), ("runtime", runtime),
                        ("stability", stability), ("verdicts", verdicts), ("drift", drift)):
        write_text(out / f"{name}.csv", table.to_csv(index=False))
    write_text(out / "summary_table.md", markdown_table(summary_markdown(summary)) + "\n")
    write_text(out / "runtime.md", "\n\n".join([
        markdown_table(runtime_markdown(runtime)),
        timing_text.run_times_note(runs, runtime, environment.get("cpu_count"))]) + "\n")
    for model in models:
        plots.model_curves(results, drift_series, model, out / curve_figure(model))
    plots.summary_table(summary, verdicts, out / "summary_table.png")
    plots.runtime_chart(runtime, out / "runtime.png")
    if timing is not None:
        from reports.commands.bench import plot as timing_chart

        write_text(out / "timing.md", "\n".join(
            ["# Timing phase", "", *timing_table_lines(timing), "",
             timing_text.timing_conditions(timing)]) + "\n")
        timing_chart(timing["rows"], out / "timing.png")
    if decisions is not None:
        write_text(out / decisions_text.PAGE, "\n".join(decisions_text.page(decisions)) + "\n")

    compute = float(runs["wall_time"].sum())
    per_impl = runs.groupby("implementation")["wall_time"].sum()
    payload = {
        "command": command,
        "configuration": {"models": models, "seeds": seeds, "protocol": asdict(protocol),
                          "settings": {m: SETTINGS[m] for m in models},
                          "implementations": IMPLEMENTATIONS,
                          "data": data},
        "environment": environment,
        "time": {"sum_of_run_seconds": compute, "this_invocation_seconds": elapsed,
                 "run_seconds_per_implementation": per_impl.to_dict(), "sweep": sweep},
        "timing": timing,
        "decisions": decisions,
        "thresholds": THRESHOLDS,
        "tables": {name: frame.to_dict(orient="records") for name, frame in (
            ("summary", summary), ("runtime", runtime), ("stability", stability),
            ("verdicts", verdicts), ("drift", drift),
            ("runs", runs))},
        "drift": drift_series,
        # The runs as saved, less their weight projections (runs/*.json keep those; the drift
        # series above are derived from them).
        "runs": [{**run, "history": [{key: value for key, value in record.items()
                                      if key not in RECORDS} for record in run["history"]]}
                 for run in results],
    }

    timing_rows = {row["model"]: row for row in (timing or {}).get("rows", [])}
    stable = stability.merge(drift, on=analysis.EXPERIMENT, how="left")
    found = {model: findings(model, timing_rows.get(model), runtime, summary, stable, verdicts)
             for model in models}
    said = {model: answers(model, found[model], verdicts) for model in models}
    where = runs_conditions(runs)
    same_start = ("Both sides started from identical weights in every seed." if
                  stability["same_initial_weights"].all() else
                  "WARNING: some seeds did not start both sides from identical weights "
                  "(stability.csv).")
    accuracy = accuracy_markdown(summary)
    tables = {"experiments": pd.concat(
        [accuracy, stability_markdown(stability, drift, verdicts).drop(
            columns=["model", "setting"])], axis=1)}
    # The paragraphs rendered from the records (protocol, timing, decisions, machine), as
    # printed, so that every number of report.md is in results.json as it reads there.
    text = {"summary": (f"{len(results)} runs, {compute / 60:.1f} min of compute (NumPy "
                        f"{per_impl.get('numpy', 0) / 60:.1f}, TensorFlow "
                        f"{per_impl.get('tensorflow', 0) / 60:.1f}); this invocation "
                        f"{elapsed / 60:.1f} min"),
            "protocol": _protocol_text(protocol, data, seeds),
            "timing": _timing_section(timing),
            "decisions": decisions_text.section(decisions),
            "rules": rules_text(),
            "machine": _environment_text(environment, timing is not None)}
    write_json_atomic(out / "results.json", {
        **payload, "report": {"findings": found, "runs": where,
                              "load_average_at_start": _loads(environment),
                              "tables": {name: frame.to_dict(orient="records")
                                         for name, frame in tables.items()},
                              "text": text}})

    def per_model(index: int) -> list[str]:
        return [f"- **{model}**: {said[model][index]}" for model in models]

    lines = [
        "# NumPy from scratch vs TensorFlow on MNIST: training report", "",
        f"Produced by `{command}`: {text['summary']} (saved runs reused). Every number is "
        "in `results.json`.",
        "",
        f"**Protocol.** {text['protocol']}", "",
        "## 1. Runtime: how fast is the NumPy version?", "", *per_model(0), "",
        *text["timing"], "",
        "![runtime](runtime.png) " + CAPTIONS["runtime"].format(**where), "",
        "## 2. Performance and stability", "", *per_model(1), "",
        *[f"![{model}]({curve_figure(model)})" for model in models],
        CAPTIONS["curves" if seeds > 1 else "curves_one_seed"], "",
        "## 3. Final accuracy", "", *per_model(2), "",
        "## Experiment table", "",
        f"{same_start} Stability, distances and the verdict rules: "
        f"[{EXPERIMENTS_PAGE}]({EXPERIMENTS_PAGE}).", "",
        markdown_table(tables["experiments"][[column for column in BRIEF_COLUMNS
                                              if column in tables["experiments"]]]), "",
        *text["decisions"],
        f"**Machine and software.** {text['machine']}", "",
    ]
    write_text(out / EXPERIMENTS_PAGE, "\n".join([
        "# Experiment table", "",
        f"Test accuracy: {'mean ± std over seeds' if seeds > 1 else 'one seed'}; fluctuation: "
        "std of the last "
        f"{diagnosis.FLUCTUATION_WINDOW} test accuracies; gaps: largest |NumPy - TF| at one "
        "evaluation; weights: ||P(w_a - w_b)|| / ||P w_b||, P a fixed random projection "
        f"(docs/report.md); max over seeds (seed-seed: min). {same_start}", "",
        markdown_table(tables["experiments"]), "", text["rules"]]) + "\n")
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path
