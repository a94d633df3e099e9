"""The report's design-decision section in words: a table of the decisions, each with its
measured effect and how it was measured, then one finding per decision, from the record of
``reports.measure.decisions`` (``decisions.json``)."""

from __future__ import annotations

from reports.environment import threads_text
from reports.render.formatting import load_change, milliseconds_iqr, percent, times

HEADING = "## Design decisions and their measured effects"
COLUMNS = ("decision", "measured effect", "what follows")


def how_measured(chosen: dict, determinism: dict) -> str:
    """How the decisions were measured, once for all rows."""
    off_in = ("in a fresh spawned process that switched it off before any op ran (the setting "
              "is process-wide)" if determinism["off_in"] != "the driver process" else
              "in the driver, switched off for two new trainers and on again (--quick saves "
              "a separate process)")
    return (f"How measured: step times on one batch of {chosen['batch_size']} of the report's "
            f"training images, {chosen['repeat']} steps per side after {chosen['warmup']} "
            f"untimed, alternating (`reports.measure.bench.interleaved`), medians with IQR, "
            f"float32, on {chosen['model']} (the SGD update, the same on both NumPy paths, not "
            f"included; "
            f"eager through `tf.config.run_functions_eagerly`). Short runs: {chosen['model']}, "
            f"the first {chosen['train_images']} training images, {chosen['epochs']} epoch(s), "
            f"SGD lr {chosen['lr']:g}, batch {chosen['batch_size']}, NumPy from seed "
            f"{chosen['seed']}'s weights and batch order, TensorFlow from the same or one of them "
            f"from seed {chosen['other_seed']}; ms/step over the steps after one untimed step; "
            f"accuracy on the report's test set; weight distance ‖w_NumPy - w_TF‖ / ‖w_TF‖ at "
            f"the end; determinism off {off_in}, two identical runs per mode.")


def fusion_row(fusion: dict, chosen: dict) -> list[str]:
    """The fused-block decision: name, measured effect, what follows."""
    return ["Fused Conv2D -> ReLU -> MaxPool2D in NumPy's training step "
            "(`Sequential.loss_and_grads`) vs layer by layer (`Sequential.trace`)",
            f"fused {milliseconds_iqr(fusion['fused_step'])} vs layer by layer "
            f"{milliseconds_iqr(fusion['layers_step'])} "
            f"per forward + backward ({times(fusion['ratio'], 'faster', 'slower')}); gradients "
            f"differ by at most {fusion['max_abs_grad_difference']:.1e}",
            "training and timing use the fused step; diagnosis keeps the layer-by-layer pass"]


def dtype_row(dtype: dict, chosen: dict) -> list[str]:
    """The float32 decision: name, measured effect, what follows."""
    single, double = dtype["float32"], dtype["float64"]
    effect = "; ".join(
        f"{name} {single[side]['ms_per_step']:.2f} -> {double[side]['ms_per_step']:.2f} ms/step, "
        f"accuracy {percent(single[side]['test_accuracy'])}% -> "
        f"{percent(double[side]['test_accuracy'])}%"
        for side, name in (("numpy", "NumPy"), ("tensorflow", "TF")))
    return ["float32 for the comparison, float64 for the gradient checks (short run, float32 -> "
            "float64)",
            f"{effect}; NumPy-TF weight distance {single['weight_distance']:.1e} -> "
            f"{double['weight_distance']:.1e}",
            "float32 answers the course's question at TensorFlow's usual precision; float64 is "
            "where parity is checked to rounding level"]


def compilation_row(compilation: dict, chosen: dict) -> list[str]:
    """The compiled-step decision: name, measured effect, what follows."""
    return ["TensorFlow's step compiled as a `tf.function` (no XLA) vs eager",
            f"compiled {milliseconds_iqr(compilation['compiled_step'])} vs eager "
            f"{milliseconds_iqr(compilation['eager_step'])} per training step (eager "
            f"{times(compilation['ratio'])})",
            "the report times TensorFlow at its usual speed, not a handicapped one"]


def _reproducible(trial: dict) -> str:
    if trial["bitwise_equal"]:
        return "bitwise equal"
    return f"not bitwise equal (up to {trial['max_abs_difference']:.1e} apart)"


def determinism_row(determinism: dict, chosen: dict) -> list[str]:
    """The op-determinism decision: name, measured effect, what follows."""
    on, off = determinism["on"], determinism["off"]
    mean = {mode: sum(trial["ms_per_step"]) / len(trial["ms_per_step"])
            for mode, trial in (("on", on), ("off", off))}
    follows = ("reproducibility is guaranteed instead of resting on these kernels, which were "
               "reproducible here anyway" if off["bitwise_equal"] else
               "without it, run-to-run noise would mix with the implementations' differences")
    return ["TensorFlow's op determinism on (`reference_tf.reproducible`) vs off",
            f"on {mean['on']:.2f} ms/step, two identical runs {_reproducible(on)}; off "
            f"{mean['off']:.2f} ms/step, two identical runs {_reproducible(off)} (on takes "
            f"{determinism['ratio']:.2f}x the time of off)",
            follows]


def sharing_row(sharing: dict, chosen: dict) -> list[str]:
    """The shared-start decision: name, measured effect, what follows."""
    cases = (("shared", "shared"), ("other_order", "another batch order"),
             ("other_weights", "other initial weights"))
    return ["Both sides from the same initial weights and batch order "
            "(`scratch.train.batch_schedule`)",
            "NumPy-TF weight distance " + "; ".join(
                f"{label} {sharing[key]['weight_distance']:.1e}" for key, label in cases)
            + "; test accuracy gap " + " / ".join(
                f"{100 * sharing[key]['accuracy_gap']:.2f}" for key, _ in cases) + " pp",
            "a difference beyond the shared run's is the implementations', not the draw's"]


ROWS = {"fusion": fusion_row, "dtype": dtype_row, "compilation": compilation_row,
        "determinism": determinism_row, "sharing": sharing_row}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def conditions_text(record: dict) -> str:
    """How and where the decisions phase measured."""
    conditions = record["conditions"]
    return (f"Decision conditions: measured in {conditions['where']}, at "
            f"{conditions['measured_at']} ({conditions['seconds']:.0f} s; commit "
            f"{conditions.get('commit') or 'unknown'}; record `decisions.json`); "
            f"{load_change(conditions)}; {threads_text(conditions['environment'])}.")


PAGE = "decisions.md"  # next to report.md: the table, how it was measured, the conditions


def _table(record: dict, columns: int = len(COLUMNS)) -> list[str]:
    """The table's Markdown lines, its first ``columns`` columns."""
    chosen, decisions = record["settings"], record["decisions"]
    lines = ["| " + " | ".join(COLUMNS[:columns]) + " |", "|" + " --- |" * columns]
    return lines + ["| " + " | ".join(map(_cell, render(decisions[name], chosen)[:columns]))
                    + " |" for name, render in ROWS.items()]


def section(record: dict | None) -> list[str]:
    """The report's section as Markdown lines: heading, the decisions and their measured effects,
    and a link to ``PAGE``; a one-line note if ``record`` is None (the phase was skipped)."""
    if record is None:
        return [HEADING, "", "The design decisions were not measured (--no-decisions).", ""]
    return [HEADING, "", *_table(record, 2), "",
            f"What follows from each, how they were measured and the conditions: "
            f"[{PAGE}]({PAGE}).", ""]


def page(record: dict) -> list[str]:
    """``PAGE`` as Markdown lines: the table, how measured and the conditions."""
    return [HEADING.replace("## ", "# "), "", *_table(record), "",
            how_measured(record["settings"], record["decisions"]["determinism"]), "",
            conditions_text(record)]
