"""Writing a report directory: tables (CSV, Markdown), pictures, results.json and report.md.

``write`` computes the tables from the runs (``reports.analysis.tables.report_tables``), writes
the table and figure files, then composes report.md from its sections. Every sentence of
report.md with a number in it is formatted from those tables or the phases' records; nothing
here trains or measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from reports.analysis import fitting
from reports.analysis.tables import EXPERIMENT, ReportTables, report_tables, trained_runs
from reports.experiment.protocol import ALL_SETTINGS, IMPLEMENTATIONS, RECORDS, Protocol
from reports.files.atomic import write_text
from reports.files.records import write_json_atomic
from reports.render import decisions_text, plots, timing_text
from reports.render.experiment_text import (
    LOADS,
    QUESTIONS,
    accuracy_markdown,
    answers,
    environment_text,
    findings,
    markdown_table,
    protocol_text,
    rules_text,
    runs_conditions,
    runtime_markdown,
    stability_markdown,
    summary_markdown,
)
from reports.render.formatting import loads

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


THRESHOLDS = {name: getattr(fitting, name) for name in (
    "DIVERGENCE_LOSS_FACTOR", "UNDERFIT_MIN_TRAIN_ACCURACY", "UNDERFIT_CAPACITY_GAP",
    "UNDERFIT_LATE_GAIN",
    "LATE_FRACTION", "OVERFIT_MIN_GAP", "OVERFIT_LOSS_RISE", "OVERFIT_ACCURACY_DROP",
    "FLUCTUATION_WINDOW")}


CAPTIONS = {
    "curves": "*Each model: top, black NumPy-TF weights far below grey seed-seed; below, solid "
              "NumPy on dashed TF.*",
    "curves_one_seed": "*Each model: top, NumPy-TF gaps (log); below, solid NumPy on dashed "
                       "TF.*",
    "runtime": "*The runs' own times, by executor: {executors}; they compare only within one "
               "executor ([runtime.md](runtime.md): the table, the load).*",
}




@dataclass(frozen=True)
class Invocation:
    """What the report command ran: its ``command`` line, ``models``, ``seeds``, ``protocol``,
    the ``environment`` record (``reports.environment.describe``), its ``elapsed`` seconds, the
    ``data`` record and this invocation's ``sweep`` record (``reports.experiment.sweep.driver
    .run_sweep``)."""

    command: str
    models: list[str]
    seeds: int
    protocol: Protocol
    environment: dict
    elapsed: float
    data: dict
    sweep: dict | None = None


def write(out: Path, results: list[dict], invocation: Invocation, timing: dict | None = None,
          decisions: dict | None = None) -> Path:
    """Write every output of OUTPUTS into ``out`` and return the path of report.md.

    ``timing`` is the timing phase's record (``reports.measure.timing``; it wrote timing.json),
    whose table and figure become timing.md and timing.png; None if it was skipped.
    ``decisions`` is the design decisions' record (``reports.measure.decisions``), None if that
    phase was skipped."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = report_tables(results)
    write_tables(out, tables, results, invocation, timing)
    if decisions is not None:
        write_text(out / decisions_text.PAGE, "\n".join(decisions_text.page(decisions)) + "\n")
    said = Said.of(tables, invocation, timing, decisions, len(results))
    write_json_atomic(out / "results.json", {
        **payload(tables, results, invocation, timing, decisions),
        "report": {"findings": said.found, "runs": said.where,
                   "load_average_at_start": loads(invocation.environment.get(LOADS)),
                   "tables": {"experiments": said.experiments.to_dict(orient="records")},
                   "text": said.text}})
    write_text(out / EXPERIMENTS_PAGE, "\n".join(experiments_page(invocation.seeds, said)) + "\n")
    path = out / "report.md"
    write_text(path, "\n".join(compose(invocation, tables, said)))
    return path


def write_tables(out: Path, tables: ReportTables, results: list[dict], invocation: Invocation,
                 timing: dict | None) -> None:
    """The CSV and Markdown tables and the figures of a report; runtime.md with the note on the
    runs' times and load, timing.md with the timing phase's full table and conditions."""
    for name in ("summary", "runtime", "stability", "verdicts", "drift"):
        file = "summary_table" if name == "summary" else name
        write_text(out / f"{file}.csv", tables.frames()[name].to_csv(index=False))
    write_text(out / "summary_table.md", markdown_table(summary_markdown(tables.summary)) + "\n")
    write_text(out / "runtime.md", "\n\n".join([
        markdown_table(runtime_markdown(tables.runtime)),
        timing_text.run_times_note(tables.runs, tables.runtime,
                                   invocation.environment.get("cpu_count"))]) + "\n")
    for model in invocation.models:
        plots.model_curves(results, tables.drift_series, model, out / curve_figure(model))
    plots.summary_table(tables.summary, tables.verdicts, out / "summary_table.png")
    plots.runtime_chart(tables.runtime, out / "runtime.png")
    if timing is not None:
        write_text(out / "timing.md", "\n".join(timing_text.page(timing)) + "\n")
        plots.timing_chart(timing["rows"], out / "timing.png")


def payload(tables: ReportTables, results: list[dict], invocation: Invocation,
            timing: dict | None, decisions: dict | None) -> dict:
    """results.json less its ``report`` part: the configuration, environment, times, the phases'
    records, thresholds, tables, drift series and the runs."""
    runs = tables.runs
    protocol, models = invocation.protocol, invocation.models
    return {
        "command": invocation.command,
        "configuration": {"models": models, "seeds": invocation.seeds,
                          "protocol": asdict(protocol),
                          "settings": {m: ALL_SETTINGS[m] for m in models},
                          "implementations": IMPLEMENTATIONS,
                          "data": invocation.data},
        "environment": invocation.environment,
        "time": {"sum_of_run_seconds": float(trained_runs(runs)["wall_time"].sum()),
                 "this_invocation_seconds": invocation.elapsed,
                 "run_seconds_per_implementation":
                     trained_runs(runs).groupby("implementation")["wall_time"].sum().to_dict(),
                 "runs_from_longer_runs": int(runs["derived_from"].notna().sum()),
                 "sweep": invocation.sweep},
        "timing": timing,
        "decisions": decisions,
        "thresholds": THRESHOLDS,
        "tables": {name: frame.to_dict(orient="records")
                   for name, frame in tables.frames().items()},
        "drift": tables.drift_series,
        # The runs as saved, less their weight projections (runs/*.json keep those; the drift
        # series above are derived from them).
        "runs": [{**run, "history": [{key: value for key, value in record.items()
                                      if key not in RECORDS} for record in run["history"]]}
                 for run in results],
    }


@dataclass(frozen=True)
class Said:
    """What report.md states, as printed: per model the findings (``found``) and three answers
    (``answers``), the runs' conditions (``where``), the experiment table and the paragraphs
    rendered from the records (``text``), so that every number of report.md is in results.json
    as it reads there."""

    found: dict
    answers: dict
    where: dict
    experiments: pd.DataFrame
    same_start: str
    text: dict

    @classmethod
    def of(cls, tables: ReportTables, invocation: Invocation, timing: dict | None,
           decisions: dict | None, n_runs: int) -> "Said":
        timing_rows = {row["model"]: row for row in (timing or {}).get("rows", [])}
        stable = tables.stability.merge(tables.drift, on=EXPERIMENT, how="left")
        found = {model: findings(model, timing_rows.get(model), tables.runtime, tables.summary,
                                 stable, tables.verdicts)
                 for model in invocation.models}
        experiments = pd.concat(
            [accuracy_markdown(tables.summary),
             stability_markdown(tables.stability, tables.drift, tables.verdicts).drop(
                 columns=["model", "setting"])], axis=1)
        same_start = ("Both sides started from identical weights in every seed." if
                      tables.stability["same_initial_weights"].all() else
                      "WARNING: some seeds did not start both sides from identical weights "
                      "(stability.csv).")
        return cls(found=found,
                   answers={model: answers(model, found[model], tables.verdicts)
                            for model in invocation.models},
                   where=runs_conditions(tables.runs), experiments=experiments,
                   same_start=same_start, text=texts(tables, invocation, timing, decisions,
                                                     n_runs))


def texts(tables: ReportTables, invocation: Invocation, timing: dict | None,
          decisions: dict | None, n_runs: int) -> dict:
    """The paragraphs rendered from the records (protocol, timing, decisions, machine)."""
    compute = float(trained_runs(tables.runs)["wall_time"].sum())
    per_impl = trained_runs(tables.runs).groupby("implementation")["wall_time"].sum()
    derived = int(tables.runs["derived_from"].notna().sum())
    of_longer = f" ({derived} taken from longer runs' first epochs)" if derived else ""
    return {"summary": (f"{n_runs} runs{of_longer}, {compute / 60:.1f} min of compute (NumPy "
                        f"{per_impl.get('numpy', 0) / 60:.1f}, TensorFlow "
                        f"{per_impl.get('tensorflow', 0) / 60:.1f}); this invocation "
                        f"{invocation.elapsed / 60:.1f} min"),
            "protocol": protocol_text(invocation.protocol, invocation.data, invocation.seeds),
            "timing": timing_text.section(timing),
            "decisions": decisions_text.section(decisions),
            "rules": rules_text(),
            "machine": environment_text(invocation.environment, timing is not None)}


def compose(invocation: Invocation, tables: ReportTables, said: Said) -> list[str]:
    """The lines of report.md: title, the three answers with their figures, the experiment
    table, the design decisions, the machine."""
    models, text = invocation.models, said.text

    def per_model(index: int) -> list[str]:
        return [f"- **{model}**: {said.answers[model][index]}" for model in models]

    return [
        "# NumPy from scratch vs TensorFlow on MNIST: training report", "",
        f"Produced by `{invocation.command}`: {text['summary']} (saved runs reused). Every "
        "number is in `results.json`.",
        "",
        f"**Protocol.** {text['protocol']}", "",
        f"## {QUESTIONS[0]}", "", *per_model(0), "",
        *text["timing"], "",
        "![runtime](runtime.png) " + CAPTIONS["runtime"].format(**said.where), "",
        f"## {QUESTIONS[1]}", "", *per_model(1), "",
        *[f"![{model}]({curve_figure(model)})" for model in models],
        CAPTIONS["curves" if invocation.seeds > 1 else "curves_one_seed"], "",
        f"## {QUESTIONS[2]}", "", *per_model(2), "",
        *experiment_section(said),
        *text["decisions"],
        f"**Machine and software.** {text['machine']}", "",
    ]


def experiment_section(said: Said) -> list[str]:
    """The experiment table in brief (``BRIEF_COLUMNS``), with a link to ``EXPERIMENTS_PAGE``."""
    brief = said.experiments[[column for column in BRIEF_COLUMNS
                              if column in said.experiments]]
    return [
        "## Experiment table", "",
        f"{said.same_start} Stability, distances and the verdict rules: "
        f"[{EXPERIMENTS_PAGE}]({EXPERIMENTS_PAGE}).", "",
        markdown_table(brief), "",
    ]


def experiments_page(seeds: int, said: Said) -> list[str]:
    """``EXPERIMENTS_PAGE`` as Markdown lines: the whole experiment table with its legend and
    the verdict rules."""
    return [
        "# Experiment table", "",
        f"Test accuracy: {'mean ± std over seeds' if seeds > 1 else 'one seed'}; fluctuation: "
        "std of the last "
        f"{fitting.FLUCTUATION_WINDOW} test accuracies; gaps: largest |NumPy - TF| at one "
        "evaluation; weights: ||P(w_a - w_b)|| / ||P w_b||, P a fixed random projection "
        f"(docs/report.md); max over seeds (seed-seed: min). {said.same_start}", "",
        markdown_table(said.experiments), "", said.text["rules"],
    ]
