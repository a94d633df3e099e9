"""Writing a report directory: tables (CSV, Markdown), pictures, results.json and report.md.

Every sentence of report.md with a number in it is formatted from the tables computed from the
runs; nothing here trains or measures.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from reports import analysis, diagnosis, plots, timing_text
from reports.atomic import write_text
from reports.environment import threads_text
from reports.experiments import IMPLEMENTATIONS, SETTINGS, Protocol
from reports.runner import write_json_atomic

TIMING_OUTPUTS = ("timing.json", "timing.md", "timing.png")  # absent with --no-timing
OUTPUTS = ("report.md", "results.json", "learning_curves.png", "summary_table.png",
           "summary_table.csv",
           "summary_table.md", "runtime.png", "runtime.csv", "runtime.md", "stability.csv",
           "verdicts.csv", *TIMING_OUTPUTS)
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


def stability_markdown(stability: pd.DataFrame) -> pd.DataFrame:
    columns = {"model": stability["model"],
               "setting": [_setting(r) for r in stability.itertuples()]}
    for impl, short in (("numpy", "NumPy"), ("tensorflow", "TF")):
        columns[f"diverged {short}"] = stability[f"diverged_runs_{impl}"].astype(int)
        columns[f"seed spread {short} (pp)"] = stability[f"seed_spread_{impl}"].map(
            lambda v: _pct(v))
        columns[f"fluctuation {short} (pp)"] = stability[f"fluctuation_{impl}"].map(
            lambda v: _pct(v))
        columns[f"largest drop {short} (pp)"] = stability[f"largest_drop_{impl}"].map(
            lambda v: _pct(v))
    columns["max test-curve gap (pp)"] = stability["max_test_curve_gap"].map(lambda v: _pct(v, 3))
    columns["max train-curve gap (pp)"] = stability["max_train_curve_gap"].map(lambda v: _pct(v, 3))
    columns["same start"] = stability["same_initial_weights"].map({True: "yes", False: "NO"})
    return pd.DataFrame(columns)


def verdict_markdown(verdicts: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": verdicts["model"], "setting": [_setting(r) for r in verdicts.itertuples()],
        "implementation": verdicts["implementation"],
        "verdict (seeds agreeing)": [f"**{r.verdict}** ({r.agreeing_seeds}/{r.seeds})"
                                     for r in verdicts.itertuples()],
        "rule that fired (first such seed)": verdicts["rule"],
    })


def runtime_prose(runtime: pd.DataFrame) -> list[str]:
    """One paragraph per model on the wall times the runs recorded."""
    out = []
    for model, rows in runtime.groupby("model", sort=False):
        steps = ", ".join(f"{_setting(r)}: {r.ms_per_step_numpy:.3f} vs "
                          f"{r.ms_per_step_tensorflow:.3f} ms"
                          for r in rows.itertuples())
        step_ratio = rows["ms_per_step_numpy"].sum() / rows["ms_per_step_tensorflow"].sum()
        eval_ratio = rows["eval_time_numpy"].sum() / rows["eval_time_tensorflow"].sum()
        total_ratio = rows["wall_time_numpy"].sum() / rows["wall_time_tensorflow"].sum()
        out.append(
            f"- **{model}**: per training step (NumPy vs TensorFlow) {steps}; over its three "
            "settings "
            f"{timing_text.faster(step_ratio)} per step, the evaluations take {eval_ratio:.2f}x as "
            f"long in NumPy, and "
            f"a whole run (setup, training and evaluation: {rows['wall_time_numpy'].sum():.1f} s "
            f"vs {rows['wall_time_tensorflow'].sum():.1f} s per seed) takes {total_ratio:.2f}x as "
            "long in NumPy.")
    return out


def accuracy_prose(summary: pd.DataFrame, stability: pd.DataFrame) -> list[str]:
    """One paragraph per model on final accuracy, curve agreement and training stability."""
    out = []
    merged = summary.merge(stability, on=analysis.EXPERIMENT)
    for model, rows in merged.groupby("model", sort=False):
        finals = "; ".join(f"{_setting(r)}: {_pct(r.numpy_mean)}% vs {_pct(r.tensorflow_mean)}% "
                           f"({100 * r.difference:+.2f} pp)" for r in rows.itertuples())
        worst = rows.loc[rows["difference"].abs().idxmax()]
        spread = np.nanmax(rows[["numpy_std", "tensorflow_std"]].to_numpy())
        if rows["seeds"].min() < 2:
            versus = "(one seed: no spread over seeds to compare it with)"
        else:
            versus = (f"{'within' if abs(worst['difference']) <= spread else 'larger than'} the "
                      f"spread over seeds (largest std {_pct(spread)} pp)")
        versus += _paired_prose(rows)
        diverged = (int(rows["diverged_runs_numpy"].sum()),
                    int(rows["diverged_runs_tensorflow"].sum()))
        diverged_text = ("no run diverged" if sum(diverged) == 0 else
                         f"diverged runs: {diverged[0]} NumPy, {diverged[1]} TensorFlow")
        fluct = rows[["fluctuation_numpy", "fluctuation_tensorflow"]].mean()
        drops = rows[["largest_drop_numpy", "largest_drop_tensorflow"]].max()
        same = "both sides started from identical weights in every seed" \
            if rows["same_initial_weights"].all() \
            else "WARNING: some seeds did not start both sides from identical weights"
        out.append(
            f"- **{model}**: final test accuracy NumPy vs TensorFlow (seed means) {finals}. The "
            "largest "
            f"difference of the means is {100 * abs(worst['difference']):.2f} pp {versus}. The two "
            "implementations' accuracy curves were at most "
            f"{_pct(rows['max_test_curve_gap'].max(), 3)} pp apart on the test set and "
            f"{_pct(rows['max_train_curve_gap'].max(), 3)} pp on the training subset at any "
            "evaluation of "
            f"any seed ({same}). Stability: {diverged_text}; the test accuracy fluctuates by "
            f"{_pct(fluct.iloc[0])} / {_pct(fluct.iloc[1])} pp (std over the last "
            f"{diagnosis.FLUCTUATION_WINDOW} evaluations, NumPy / TensorFlow) and its largest drop "
            f"between two evaluations is {_pct(drops.iloc[0])} / {_pct(drops.iloc[1])} pp.")
    return out


def _paired_prose(rows: pd.DataFrame) -> str:
    """Whether the 95% interval of the paired per-seed difference contains 0, per setting."""
    paired = rows[np.isfinite(rows["paired_low"].astype(float))]
    if paired.empty:
        return ""
    apart = paired[(paired["paired_low"] > 0) | (paired["paired_high"] < 0)]
    text = (f"; paired by seed, the 95% t-interval of NumPy - TF contains 0 in "
            f"{len(paired) - len(apart)} of {len(paired)} settings")
    if len(apart):
        settings = ", ".join(f"{_setting(r)}: {_paired(r)} pp" for r in apart.itertuples())
        text += f" (not for {settings})"
    return text


def verdict_prose(verdicts: pd.DataFrame) -> list[str]:
    """One line per model listing each setting's verdict (and whether the two sides agree)."""
    out = []
    for model, rows in verdicts.groupby("model", sort=False):
        parts = []
        for setting, pair in rows.groupby("setting", sort=False):
            by_impl = dict(zip(pair["implementation"], pair["verdict"]))
            r = pair.iloc[0]
            if len(set(by_impl.values())) == 1:
                parts.append(f"#{setting} ({r.epochs} ep, lr {r.lr:g}) **{r.verdict}** (both)")
            else:
                parts.append(f"#{setting} ({r.epochs} ep, lr {r.lr:g}) NumPy "
                             f"**{by_impl.get('numpy')}**, "
                             f"TensorFlow **{by_impl.get('tensorflow')}**")
        out.append(f"- **{model}**: " + "; ".join(parts) + ".")
    return out


def rules_text() -> list[str]:
    d = diagnosis
    return [
        "Rules, applied to each run in this order (train accuracy is measured on the training "
        "subset):",
        f"1. **diverged**: a loss became NaN/inf, or any recorded loss exceeded "
        f"{d.DIVERGENCE_LOSS_FACTOR:g} x the initial test loss;",
        f"2. **over-fitting**: final train - test accuracy gap >= {100 * d.OVERFIT_MIN_GAP:g} pp, "
        "and at the "
        f"end the test loss is >= {100 * d.OVERFIT_LOSS_RISE:g}% above its minimum or the test "
        f"accuracy is >= {100 * d.OVERFIT_ACCURACY_DROP:g} pp below its best;",
        f"3. **under-fitting**: final train accuracy < {100 * d.UNDERFIT_MIN_TRAIN_ACCURACY:g}%, "
        "or more than "
        f"{100 * d.UNDERFIT_CAPACITY_GAP:g} pp below the best final train accuracy the same model "
        "reaches in "
        "this report (with another setting or seed: the model has the capacity, this run did not "
        f"use it), or it rose by more than {100 * d.UNDERFIT_LATE_GAIN:g} pp over the last "
        f"{100 * d.LATE_FRACTION:g}% of the samples processed (still rising);",
        "4. otherwise **good fit**.",
    ]


def _protocol_text(protocol: Protocol, data: dict, seeds: int) -> str:
    settings = "; ".join(f"{m}: " + ", ".join(f"({e}, {lr:g})" for e, lr in SETTINGS[m])
                         for m in SETTINGS)
    epochs = f"every setting overridden to {protocol.epochs} epoch(s) (quick run)" \
        if protocol.epochs else f"settings (epochs, lr): {settings}"
    test_set = "the whole test set" if protocol.test_size is None \
        else f"the first {protocol.test_size} test images"
    return (f"Plain SGD, batch size {protocol.batch_size}, mean softmax cross-entropy, "
            f"{protocol.dtype}, "
            f"data `{protocol.data}`: {data.get('training_images', '?')} training images "
            f"(from {data.get('source', '?')}); "
            f"evaluation every {protocol.eval_every} training samples on the first "
            f"{100 * protocol.train_eval_fraction:g}% of the training set and on "
            f"{test_set}; "
            f"{epochs}. {seeds} seed(s): seed s draws the initial weights (copied to the Keras "
            "twin) and the "
            "batch order, identical for both implementations. TensorFlow trains with a compiled "
            "`tf.function` "
            f"step (no XLA, deterministic ops). Each run records where it executed (executor, "
            f"worker, thread settings); ms/step counts training steps only (not batch gathering, "
            f"evaluation or the one-off compile and warm-up).")


def _environment_text(env: dict) -> str:
    blas = env.get("blas", {})
    threads = {k: v for k, v in env.get("thread_environment",
                                        {}).items() if v is not None} or "none set"
    return (f"{env.get('cpu_model')} x {env.get('cpu_count')} logical CPUs, {env.get('platform')}; "
            f"Python {env.get('python')}, NumPy {env.get('numpy')} with {blas.get('name')} "
            f"{blas.get('version', '')}, TensorFlow {env.get('tensorflow')}, Keras "
            f"{env.get('keras')}; {threads_text(env)}; thread environment variables: {threads}; "
            f"load average at the start {env.get('load_average_1_5_15min')}.")


def _timing_section(timing: dict | None) -> list[str]:
    if timing is None:
        return [timing_text.no_timing_text()]
    return ["From the timing phase (`timing.json`), per model:", "",
            *timing_text.timing_prose(timing), "", timing_text.timing_conditions(timing), "",
            "![timing phase](timing.png)", "", "\n".join(timing_table_lines(timing))]


def timing_table_lines(timing: dict) -> list[str]:
    from reports.commands.bench import table

    return table(timing["rows"])



def write(out: Path, results: list[dict], *, models: list[str], seeds: int, protocol: Protocol,
          command: str, environment: dict, elapsed: float, data: dict, timing: dict | None = None,
          sweep: dict | None = None) -> Path:
    """Write every output of OUTPUTS into ``out`` and return the path of report.md.

    ``timing`` is the timing phase's record (``reports.timing``; it wrote timing.json), whose
    table and figure become timing.md and timing.png; None if it was skipped. ``sweep`` is this
    invocation's sweep record (``reports.sweep.driver.run_sweep``)."""
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
                        ("stability", stability), ("verdicts", verdicts)):
        write_text(out / f"{name}.csv", table.to_csv(index=False))
    write_text(out / "summary_table.md", markdown_table(summary_markdown(summary)) + "\n")
    write_text(out / "runtime.md", markdown_table(runtime_markdown(runtime)) + "\n")
    plots.learning_curves(results, models, out / "learning_curves.png")
    plots.summary_table(summary, verdicts, out / "summary_table.png")
    plots.runtime_chart(runtime, out / "runtime.png")
    if timing is not None:
        from reports.commands.bench import plot as timing_chart

        write_text(out / "timing.md", "\n".join(timing_table_lines(timing)) + "\n")
        timing_chart(timing["rows"], out / "timing.png")

    compute = float(runs["wall_time"].sum())
    per_impl = runs.groupby("implementation")["wall_time"].sum()
    write_json_atomic(out / "results.json", {
        "command": command,
        "configuration": {"models": models, "seeds": seeds, "protocol": asdict(protocol),
                          "settings": {m: SETTINGS[m] for m in models},
                          "implementations": IMPLEMENTATIONS,
                          "data": data},
        "environment": environment,
        "time": {"sum_of_run_seconds": compute, "this_invocation_seconds": elapsed,
                 "run_seconds_per_implementation": per_impl.to_dict(), "sweep": sweep},
        "timing": timing,
        "thresholds": THRESHOLDS,
        "tables": {name: frame.to_dict(orient="records") for name, frame in (
            ("summary", summary), ("runtime", runtime), ("stability", stability),
            ("verdicts", verdicts), ("drift", drift),
            ("runs", runs))},
        "drift": drift_series,
        "runs": results,
    })

    lines = [
        "# NumPy from scratch vs TensorFlow on MNIST: training report", "",
        f"Produced by `{command}`. Training and evaluating the {len(results)} runs took "
        f"{compute / 60:.1f} min of compute in total (NumPy {per_impl.get('numpy', 0) / 60:.1f} "
        f"min, TensorFlow {per_impl.get('tensorflow', 0) / 60:.1f} min); this invocation took "
        f"{elapsed / 60:.1f} min "
        f"(runs already saved by an earlier invocation are reused). Every number below comes from "
        f"`results.json`.", "",
        "## Protocol", "", _protocol_text(protocol, data, seeds), "",
        "## Summary: final test accuracy", "",
        "![summary table](summary_table.png)", "", markdown_table(summary_markdown(summary)), "",
        "## Learning curves", "", "![learning curves](learning_curves.png)", "",
        "## 1. Runtime: how fast is the NumPy version?", "", *_timing_section(timing), "",
        "### Wall times the runs recorded", "",
        timing_text.run_times_note(runs, runtime, environment.get("cpu_count")), "",
        *runtime_prose(runtime), "",
        "![runtime](runtime.png)", "", markdown_table(runtime_markdown(runtime)), "",
        "## 2. Performance, stability and final accuracy", "", *accuracy_prose(summary, stability),
        "",
        "Stability per experiment (spread = std of the final test accuracy over seeds; fluctuation "
        "= std of "
        f"the last {diagnosis.FLUCTUATION_WINDOW} test accuracies, mean over seeds; largest drop "
        "between two "
        "consecutive evaluations, max over seeds; curve gap = largest |NumPy - TF| accuracy at the "
        "same evaluation, max over seeds):", "",
        markdown_table(stability_markdown(stability)), "",
        "## 3. Which runs under-fit or over-fit?", "", *verdict_prose(verdicts), "", *rules_text(),
        "",
        markdown_table(verdict_markdown(verdicts)), "",
        "## Machine and software", "", _environment_text(environment), "",
    ]
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path
