"""The report's design-decision section in words: a table of the decisions, each with its
measured effect and how it was measured, then one finding per decision, from the record of
``reports.decisions`` (``decisions.json``)."""

from __future__ import annotations

from reports.environment import threads_text

HEADING = "## Design decisions and their measured effects"
COLUMNS = ("decision", "what it is", "measured effect", "how measured")


def _ms(spread: dict) -> str:
    q1, median, q3 = (1e3 * spread[key] for key in ("q1", "median", "q3"))
    return f"{median:.2f} ms [IQR {q1:.2f}-{q3:.2f}]"


def _times(ratio: float, slower: str = "slower", faster: str = "faster") -> str:
    """A time ratio (other/reference) in words: "2.50x slower" or "1.25x faster"."""
    return f"{ratio:.2f}x {slower}" if ratio >= 1 else f"{1 / ratio:.2f}x {faster}"


def _pct(accuracy: float) -> str:
    return f"{100 * accuracy:.2f}%"


def _timed(chosen: dict) -> str:
    return (f"{chosen['model']}, one batch of {chosen['batch_size']} of the report's training "
            f"images, {chosen['repeat']} steps per side after {chosen['warmup']} untimed, "
            f"alternating (`reports.bench.interleaved`); medians with IQR, float32")


def _short(chosen: dict) -> str:
    return (f"a short run: {chosen['model']}, the first {chosen['train_images']} training images, "
            f"{chosen['epochs']} epoch(s), SGD lr {chosen['lr']:g}, batch {chosen['batch_size']}, "
            f"seed {chosen['seed']}; ms/step over its steps after one untimed step")


ACCURACY = "final test accuracy on the report's test set"


def fusion_row(fusion: dict, chosen: dict) -> tuple[list[str], str]:
    """The table row and the finding of the fused-block decision."""
    row = ["Fused Conv2D -> ReLU -> MaxPool2D in NumPy's training step",
           "Training runs `Sequential.loss_and_grads` over `model.units`: each run of conv "
           "blocks is one op; `tfparity diff` runs layer by layer (`Sequential.trace`, every "
           "layer's hooks)",
           f"fused {_ms(fusion['fused_step'])} vs layer by layer {_ms(fusion['layers_step'])} "
           f"per forward + backward; gradients differ by at most "
           f"{fusion['max_abs_grad_difference']:.1e}",
           f"{_timed(chosen)}; the SGD update, the same on both paths, not included"]
    finding = (f"Fusion makes NumPy's {chosen['model']} step "
               f"{_times(fusion['ratio'], 'faster', 'slower')} than the layer-by-layer pass, "
               f"with gradients equal up to {fusion['max_abs_grad_difference']:.1e} (summation "
               f"order): training and timing use it, diagnosis keeps the layer-by-layer pass.")
    return row, finding


def dtype_row(dtype: dict, chosen: dict) -> tuple[list[str], str]:
    """The table row and the finding of the float32 decision."""
    single, double = dtype["float32"], dtype["float64"]
    effect = "; ".join(
        f"{name}: {single[side]['ms_per_step']:.2f} ms/step and "
        f"{_pct(single[side]['test_accuracy'])} in float32, "
        f"{double[side]['ms_per_step']:.2f} ms/step and "
        f"{_pct(double[side]['test_accuracy'])} in float64"
        for side, name in (("numpy", "NumPy"), ("tensorflow", "TF")))
    effect += (f"; NumPy-TF weight distance {single['weight_distance']:.1e} (float32) vs "
               f"{double['weight_distance']:.1e} (float64)")
    row = ["float32 for the comparison",
           "Both sides train in float32, TensorFlow's default; float64 serves the "
           "gradient checks and tight parity tests",
           effect,
           f"{_short(chosen)}; {ACCURACY}; both sides from the same weights and batches, in "
           f"each dtype; "
           f"weight distance = ‖w_NumPy - w_TF‖ / ‖w_TF‖ at the end"]
    ratios = [double[side]["ms_per_step"] / single[side]["ms_per_step"]
              for side in ("numpy", "tensorflow")]
    accuracy = max(abs(double[side]["test_accuracy"] - single[side]["test_accuracy"])
                   for side in ("numpy", "tensorflow"))
    finding = (f"float64 makes a step {_times(ratios[0])} in NumPy and {_times(ratios[1])} in "
               f"TensorFlow and moves the final accuracy by at most {100 * accuracy:.2f} pp; it "
               f"brings the implementations from {single['weight_distance']:.1e} to "
               f"{double['weight_distance']:.1e} apart, so float32 answers the course's question "
               f"and float64 is where parity is checked to rounding level.")
    return row, finding


def compilation_row(compilation: dict, chosen: dict) -> tuple[list[str], str]:
    """The table row and the finding of the compiled-step decision."""
    row = ["TensorFlow's step compiled as a `tf.function`",
           "`KerasTrainer` traces the training step once into a graph (no XLA); eager would run "
           "it op by op from Python",
           f"compiled {_ms(compilation['compiled_step'])} vs eager "
           f"{_ms(compilation['eager_step'])} per training step",
           f"{_timed(chosen)}; eager through `tf.config.run_functions_eagerly`"]
    finding = (f"Eager execution makes TensorFlow's step {_times(compilation['ratio'])}: the "
               f"report times the compiled step, TensorFlow at its usual speed, not a "
               f"handicapped one.")
    return row, finding


def _reproducible(trial: dict) -> str:
    if trial["bitwise_equal"]:
        return "bitwise equal"
    return f"not bitwise equal (up to {trial['max_abs_difference']:.1e} apart)"


def _off_in(determinism: dict) -> str:
    if determinism["off_in"] == "the driver process":
        return ("in the driver as well, switched off for two new trainers and on again "
                "(--quick saves a separate process)")
    return ("a fresh spawned process that switched it off before any op ran (the setting is "
            "process-wide)")


def determinism_row(determinism: dict, chosen: dict) -> tuple[list[str], str]:
    """The table row and the finding of the op-determinism decision."""
    on, off = determinism["on"], determinism["off"]
    mean = {mode: sum(trial["ms_per_step"]) / len(trial["ms_per_step"])
            for mode, trial in (("on", on), ("off", off))}
    row = ["TensorFlow's op determinism on",
           "`tf.config.experimental.enable_op_determinism()` "
           "(`reference_tf.reproducible`), for the whole process",
           f"on {mean['on']:.2f} ms/step, two identical runs {_reproducible(on)}; off "
           f"{mean['off']:.2f} ms/step, two identical runs {_reproducible(off)}",
           f"two identical TensorFlow runs per mode, {_short(chosen)}; on: in the driver; off: "
           f"{_off_in(determinism)}; ms/step the mean of both runs"]
    if off["bitwise_equal"]:
        finding = (f"On this machine TensorFlow's runs were reproducible bit for bit even "
                   f"without op determinism; with it on, a step takes "
                   f"{determinism['ratio']:.2f}x the time it takes with it off, and "
                   f"reproducibility is guaranteed instead of resting on these kernels.")
    else:
        finding = (f"Without op determinism two identical TensorFlow runs end "
                   f"{off['max_abs_difference']:.1e} apart, noise that would mix with the "
                   f"implementations' differences; with it they are {_reproducible(on)}, and a "
                   f"step takes {determinism['ratio']:.2f}x the time it takes without.")
    return row, finding


def sharing_row(sharing: dict, chosen: dict) -> tuple[list[str], str]:
    """The table row and the finding of the shared-start decision."""
    cases = (("shared", "shared weights and order"),
             ("other_order", f"TF in seed {chosen['other_seed']}'s batch order"),
             ("other_weights", f"TF from seed {chosen['other_seed']}'s initial weights"))
    effect = "; ".join(f"{label}: weight distance {sharing[key]['weight_distance']:.1e}, test "
                       f"accuracy gap {100 * sharing[key]['accuracy_gap']:.2f} pp"
                       for key, label in cases)
    row = ["Shared initial weights and batch order",
           "NumPy draws the weights (`scratch.models.build(model, seed)`), Keras gets a copy; "
           "both see the same batches in the same order (`scratch.train.batch_schedule`)",
           effect,
           f"{_short(chosen)}; {ACCURACY}; float32; NumPy with seed {chosen['seed']}'s weights "
           f"and order, TensorFlow with the same or one of them from seed {chosen['other_seed']}"]
    shared = sharing["shared"]["weight_distance"]
    finding = (f"Sharing both puts the implementations {shared:.1e} apart after the short run, "
               f"against {sharing['other_order']['weight_distance']:.1e} with another batch "
               f"order and {sharing['other_weights']['weight_distance']:.1e} with other initial "
               f"weights: a difference beyond the shared run's is the implementations', not "
               f"the draw's.")
    return row, finding


ROWS = {"fusion": fusion_row, "dtype": dtype_row, "compilation": compilation_row,
        "determinism": determinism_row, "sharing": sharing_row}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def conditions_text(record: dict) -> str:
    """How and where the decisions phase measured."""
    conditions = record["conditions"]
    env = conditions["environment"]
    before, after = env.get("load_average_1_5_15min"), conditions.get("load_average_after")
    load = ("load average (1/5/15 min) " + "/".join(f"{v:.2f}" for v in before) + " before and "
            + "/".join(f"{v:.2f}" for v in after) + f" after, on {env.get('cpu_count')} logical "
            "CPUs" if before and after else "load average not available")
    return (f"Decision conditions: measured in {conditions['where']}, at "
            f"{conditions['measured_at']} ({conditions['seconds']:.0f} s; commit "
            f"{conditions.get('commit') or 'unknown'}; record `decisions.json`); {load}; "
            f"{threads_text(env)}.")


def section(record: dict | None) -> list[str]:
    """The section's Markdown lines: heading, table, findings and conditions; a one-line note if
    ``record`` is None (the phase was skipped)."""
    if record is None:
        return [HEADING, "", "The design decisions were not measured (--no-decisions).", ""]
    chosen, decisions = record["settings"], record["decisions"]
    rows, findings = [], []
    for name, render in ROWS.items():
        row, finding = render(decisions[name], chosen)
        rows.append(row)
        findings.append(f"- **{row[0]}**: {finding}")
    lines = [HEADING, "",
             "Each decision that shapes the comparison, with its effect measured in this "
             "report's decisions phase (`reports.decisions`), never typed in.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return lines + ["", *findings, "", conditions_text(record), ""]
