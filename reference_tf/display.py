"""How ``check`` and ``diff`` results look: their words, a short plain text, HTML for a notebook,
their tables as pandas DataFrames, and the heat map of a diff as a matplotlib figure.

The command line prints the same words (``tfparity check``'s lines, ``tfparity diff``'s tables
and sentence), so a notebook and a terminal show the same cells. The HTML uses plain tags and
inline styles; what a style marks (the first divergence, a fault) is also written out, for
viewers that drop styles.

The result types are not imported here (they import this module to display themselves): a
``result`` is a ``CheckResult`` (``reference_tf.parity_check``) or a ``ModelDiff``, a ``layer`` a
``LayerDiff`` and a ``q`` a ``Quantity`` (``reference_tf.diff_result``).
"""

from __future__ import annotations

import base64
import html
import io
import math
import textwrap

import numpy as np
import pandas as pd

from reference_tf.causes import cause_clause
from reference_tf.compare import Comparison, tolerances
from reference_tf.loss import LOSS

GREEN, RED, AMBER, HIGHLIGHT = "#1a7f37", "#cf222e", "#9a6700", "#fff3b0"

# -- check -------------------------------------------------------------------------------------


KINKS_LISTED = 5  # flips listed per model and dtype; the rest are counted


def check_line(name: str, dtype: str, path) -> str:
    """One ``tfparity check`` line of a ``PathCheck``: PASS/FAIL/KINK, model, dtype, path, and
    the worst error against its tolerance, or the fault (one indented line per further fault)."""
    head = f"{path.status}  {name:<6}  {dtype}  {path.path:<8}"
    if path.fault is not None:
        return "\n".join([f"{head}  {path.fault.sentence}"]
                         + [f"      also: {f.sentence}" for f in path.faults[1:]])
    error = f"worst error {path.error:.1e} (tolerance {path.tolerance:.0e}) in {path.worst}"
    if path.kinks:
        count = f"{len(path.kinks)} rounding-decided kink{'s' if len(path.kinks) > 1 else ''}"
        if path.path == "training":  # judged against the trace path's own values
            return (f"{head}  the trace path's values (worst difference {path.error:.1e} in "
                    f"{path.worst}), with its {count}")
        return (f"{head}  {count} (ties or zeros decided differently by rounding, listed "
                f"below); with TensorFlow's branch there, {error}")
    return f"{head}  {error}"


def kink_lines(kinks) -> list[str]:
    """The rounding-decided flips of one model and dtype, the first few in full."""
    lines = [f"      {flip.sentence}" for flip in kinks[:KINKS_LISTED]]
    if len(kinks) > KINKS_LISTED:
        lines.append(f"      ... and {len(kinks) - KINKS_LISTED} more")
    return lines


def check_lines(result) -> list[str]:
    """The ``tfparity check`` lines of a ``CheckResult``: one per path, then its kinks."""
    return ([check_line(result.model, result.dtype, path) for path in result.paths.values()]
            + kink_lines(result.kinks))


def _check_title(result) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    return (f"check {result.model}: {result.dtype}, batch {shape_text(result.batch_shape)}: "
            f"{verdict} ({len(result.paths)} path{'s' * (len(result.paths) != 1)})")


def check_text(result) -> str:
    """A short plain text: a title line and the CLI's line per path."""
    return "\n".join([_check_title(result), *check_lines(result)])


def check_frame(result) -> pd.DataFrame:
    """One row per path: status (PASS, KINK, FAIL), worst quantity, its error and tolerance
    (error / tolerance above 1 fails), quantities compared and the fault's sentence, if any."""
    rows = [{"model": result.model, "dtype": result.dtype, "path": p.path,
             "status": p.status, "passed": p.passed, "worst": p.worst, "error": p.error,
             "tolerance": p.tolerance,
             "error / tolerance": p.error / p.tolerance if p.fault is None else math.inf,
             "quantities": p.quantities,
             "fault": None if p.fault is None else p.fault.sentence}
            for p in result.paths.values()]
    return pd.DataFrame(rows)


def _cell(value, style: str = "") -> str:
    text = html.escape(str(value))
    return f'<td style="{style}">{text}</td>' if style else f"<td>{text}</td>"


def _table(header: list[str], rows: list[str], size: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    font = f";font-size:{size}" if size else ""
    return (f'<table style="border-collapse:collapse{font}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _verdict_cell(status: str) -> str:
    colour = {"PASS": GREEN, "KINK": AMBER}.get(status, RED)
    return f'<td style="color:{colour};font-weight:bold"><b>{status}</b></td>'


def check_html(result) -> str:
    """A PASS/FAIL table, one row per path, with the worst error against its tolerance."""
    rows = []
    for p in result.paths.values():
        if p.fault is not None:
            cells = [_cell(p.worst), f'<td colspan="3" style="color:{RED}">'
                     f"{html.escape(p.fault.sentence)}</td>"]
        else:
            cells = [_cell(p.worst), _cell(f"{p.error:.1e}"), _cell(f"{p.tolerance:.0e}"),
                     _cell(f"{p.error / p.tolerance:.2g}")]
        rows.append(f"<tr>{_verdict_cell(p.status)}{_cell(p.path)}{''.join(cells)}"
                    f"{_cell(p.quantities)}</tr>")
    first = result.first_divergence
    note = ""
    if first is not None:
        what = (first.fault.sentence if first.fault is not None else
                f"{first.key}: error {first.error:.1e} > tolerance {first.tolerance:.0e}")
        note = (f"<p>First failure ({html.escape(first.path)} path): {html.escape(what)}. "
                "<code>reference_tf.diff</code> of the same model names the layer, the pass "
                "and the cause.</p>")
    return (f'<div class="tfparity-check"><p><b>{html.escape(_check_title(result))}</b></p>'
            + _table(["verdict", "path", "worst quantity", "error", "tolerance",
                      "error / tolerance", "quantities"], rows) + note + "</div>")


# -- diff: the words ---------------------------------------------------------------------------


def number_text(value: float | None, digits: int = 1) -> str:
    """"1.2e-07", "inf", or "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}e}"


def shape_text(shape) -> str:
    """A shape as Python writes a tuple: "(16, 28, 28, 1)", "(10,)"."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _error(c: Comparison | None, expected_shape: tuple) -> str:
    if c is None:
        return "-"
    if tuple(c.shape) != tuple(expected_shape):
        return f"shape {shape_text(c.shape)}"
    return number_text(c.rel_l2)


def status(q, faulted: bool) -> str:
    """FAULT, OWN ERROR (the isolated error fails), not run, inherited or ok."""
    if faulted:
        return "FAULT"
    if q.isolated_fails:
        return "OWN ERROR"
    if q.propagated is None:
        return "not run"
    return "inherited" if q.propagated_fails else "ok"


def _cause(q, faulted: bool, fault_cause) -> str:
    """The cause column: the catalog id, "none" (no convention matched) or "-" (not failing,
    or a fault after the first divergence); the first divergence's faulted quantity shows its
    fault's cause (``fault_cause``: a ``Cause``, or "none")."""
    if faulted:
        return "-" if fault_cause is None else getattr(fault_cause, "id", fault_cause)
    if not q.isolated_fails:
        return "-"
    return "none" if q.cause is None else q.cause.id


def cause_line(result) -> str:
    """The first divergence's cause in one line ("" without a divergence), for the heat map."""
    first = result.first_divergence
    if first is None:
        return ""
    if first.cause is None:
        return "cause: none of the catalog's conventions matches"
    return f"cause: {first.cause.id}, {first.cause.sentence}"


HEADER = ["layer", "type", "quantity", "shape", "rel L2", "max abs", "cosine", "worst index",
          "isolated", "amplif.", "status", "cause"]


def _cells(layer: str, kind: str, q, faulted: bool, fault_cause=None) -> list[str]:
    p = q.propagated
    if p is None:
        return [layer, kind, q.label, shape_text(q.shape), "-", "-", "-", "-",
                _error(q.isolated, q.shape), "-", status(q, faulted),
                _cause(q, faulted, fault_cause)]
    shape_ok = tuple(p.shape) == tuple(q.shape)
    worst = "-" if p.worst_index is None or not shape_ok else shape_text(p.worst_index)
    return [layer, kind, q.label, shape_text(q.shape), _error(p, q.shape),
            number_text(p.max_abs) if shape_ok else "-", f"{p.cosine:.9f}" if shape_ok else "-",
            worst, _error(q.isolated, q.shape), number_text(q.amplification),
            status(q, faulted), _cause(q, faulted, fault_cause)]


def is_first(result, layer, q) -> bool:
    """Whether ``q`` of ``layer`` is the quantity of the first divergence."""
    first = result.first_divergence
    return (first is not None
            and (first.layer, first.direction, first.key) == (layer.name, q.direction, q.key))


def diff_rows(result) -> list[tuple]:
    """Every quantity in scan order (forward in network order, then backward in reverse) with
    its cells under HEADER; layer and type are written on a layer's first row of each pass."""
    rows, last = [], {"forward": None, "backward": None}
    for layer, q in result.scan():
        first_of_layer = last[q.direction] != layer.name
        last[q.direction] = layer.name
        faulted = any(f.direction == q.direction and f.key == q.key for f in layer.faults)
        fault_cause = None
        if is_first(result, layer, q) and result.first_divergence.fault is not None:
            fault_cause = result.first_divergence.cause or "none"
        rows.append((layer, q, _cells(layer.name if first_of_layer else "",
                                      layer.type if first_of_layer else "", q, faulted,
                                      fault_cause)))
    return rows


PASS_TITLES = {"forward": "Forward pass, network order (y = the layer's output)",
               "backward": "Backward pass, reverse order (dL/dy received, parameter gradients, "
                           "dL/dx sent back)"}
DATA_NAMES = {"strokes": "strokes (digit-like)", "mnist": "MNIST"}


def diff_head(result) -> str:
    """The run in one sentence: model, dtype, batch, data, seed, what is measured, tolerances."""
    tol = tolerances(result.dtype, result.batch_statistics)
    data = DATA_NAMES.get(result.data, result.data)
    if result.data_unverified:
        data += " (SHA-256 not checked, --no-verify)"
    return (f"tfparity diff {result.model}: {result.dtype}, batch {shape_text(result.batch_shape)}"
            f" of {data} data, seed {result.seed}. Errors against "
            "TensorFlow: relative L2 (propagated: each side end to end; isolated: the scratch "
            "layer on TensorFlow's input "
            f"and upstream gradient); tolerance forward {tol.forward:.0e}, gradient "
            f"{tol.gradient:.0e}.")


def _describe(layer: str, q, logits: str) -> str:
    if layer == LOSS:
        return ("the loss value" if q.direction == "forward" else
                f"the loss gradient dL/dlogits (the output gradient of layer '{logits}')")
    if q.key == "loss":
        return "the loss value"
    if q.key == "output":
        return "output y"
    if q.key == "input_grad":
        return "input gradient (dL/dx)"
    if q.key.startswith("state/"):
        return f"moving statistic '{q.label}' after the training step"
    return f"gradient of parameter '{q.key.split('/', 1)[1]}' ({q.label})"


KINKS_NAMED = 3  # flips named in the sentence; the rest are counted


def kink_sentence(result) -> str:
    """Why a diff with propagated failures passes: ties or zeros decided by rounding."""
    layer, label = result.first_propagated_failure
    flips = result.kinks
    named = "; ".join(flip.sentence for flip in flips[:KINKS_NAMED])
    more = f"; and {len(flips) - KINKS_NAMED} more" if len(flips) > KINKS_NAMED else ""
    plural = "s" if len(flips) > 1 else ""
    count = f"{len(flips)} tie{plural} or zero{plural}"
    return (f"Passed with rounding-decided kinks (status KINK): no single layer exceeds the "
            f"{result.dtype} tolerances with TensorFlow's inputs, and the propagated {label} of "
            f"'{layer}' differs only because {count} were decided differently by rounding: "
            f"{named}{more}. With TensorFlow's branch at these positions your code agrees with "
            "TensorFlow everywhere.")


def time_clause(first) -> str:
    """The first divergence's time step for its sentence ("" when none is named)."""
    return "" if first.time is None else first.time.clause()


def first_divergence_sentence(result) -> str:
    """One sentence naming the culprit layer, pass and quantity, its cause and the third
    opinion."""
    tol = tolerances(result.dtype, result.batch_statistics)
    if result.first_divergence is None:
        if result.first_propagated_failure is None:
            return (f"No divergence: every output and gradient agrees with TensorFlow within the "
                    f"{result.dtype} tolerances (forward {tol.forward:.0e}, gradient "
                    f"{tol.gradient:.0e}).")
        layer, label = result.first_propagated_failure
        if result.kinks:
            return kink_sentence(result)
        return (f"No single layer exceeds the {result.dtype} tolerances with TensorFlow's inputs, "
                f"but the propagated {label} of '{layer}' does: rounding accumulated across "
                "layers.")
    first = result.first_divergence
    name = "the loss (softmax cross-entropy)" if first.layer == LOSS else \
        f"layer '{first.layer}' ({first.layer_type})"
    if first.fault is not None:
        sentence = (f"First divergence: {name}, {first.direction} pass, {first.label}: "
                    f"{first.fault.sentence}; {cause_clause(first.cause, first.causes_tried)}")
        return sentence + ("; " + result.opinion.sentence if result.opinion is not None else ".")
    q = first.quantity
    logits = result.layers[-2].name
    iso = q.isolated
    if tuple(iso.shape) != tuple(q.shape):
        error = f"shape {shape_text(iso.shape)} where TensorFlow's is {shape_text(q.shape)}"
    else:
        error = f"relative L2 error {iso.rel_l2:.2g} (max abs {iso.max_abs:.2g})"
    given = ("the logits" if first.layer == LOSS else
             "the input and weights" if result.kind == "function" else
             "the input" if first.direction == "forward" else "the input and upstream gradient")
    sentence = (f"First divergence: {name}, {first.direction} pass, "
                f"{_describe(first.layer, q, logits)}{time_clause(first)}: {error} with {given} "
                "taken from TensorFlow")
    if first.also_failing:
        sentence += f" (also failing there: {', '.join(first.also_failing)})"
    sentence += "; " + cause_clause(first.cause, first.causes_tried)
    if result.opinion is not None:
        sentence += "; " + result.opinion.sentence
    else:
        sentence += "."
    return sentence


# -- diff: text, frame, HTML -------------------------------------------------------------------


def diff_text(result) -> str:
    """A short plain text: the verdict and the first-divergence sentence."""
    verdict = "PASS" if result.passed else "FAIL"
    return (f"diff {result.model}: {result.dtype}, batch {shape_text(result.batch_shape)} of "
            f"{result.data} data, seed {result.seed}: {verdict}\n"
            + textwrap.fill(first_divergence_sentence(result), 100))


def diff_frame(result) -> pd.DataFrame:
    """Every quantity in scan order, with numbers rather than text: pass, layer, type,
    quantity, shape, propagated rel L2 / max abs / cosine / worst index, isolated rel L2,
    amplification, tolerance, status, cause and whether it is the first divergence."""
    def rel(c: Comparison | None, shape) -> float:
        if c is None:
            return math.nan
        return c.rel_l2 if tuple(c.shape) == tuple(shape) else math.inf

    rows = []
    for layer, q, cells in diff_rows(result):
        p = q.propagated
        shape_ok = p is not None and tuple(p.shape) == tuple(q.shape)
        rows.append({
            "pass": q.direction, "layer": layer.name, "type": layer.type, "quantity": q.label,
            "shape": tuple(q.shape), "rel_l2": rel(p, q.shape),
            "max_abs": p.max_abs if shape_ok else math.nan,
            "cosine": p.cosine if shape_ok else math.nan,
            "worst_index": p.worst_index if shape_ok else None,
            "isolated_rel_l2": rel(q.isolated, q.shape),
            "amplification": math.nan if q.amplification is None else q.amplification,
            "tolerance": q.tolerance, "status": cells[10], "cause": cells[11],
            "first_divergence": is_first(result, layer, q)})
    return pd.DataFrame(rows)


WHOLE = range(3, 10)  # shape, errors, cosine, worst index, amplification: never broken
NOWRAP = "white-space:nowrap"
STATUS_COLOURS = {"FAULT": RED, "OWN ERROR": RED, "inherited": AMBER, "not run": AMBER}


def _diff_table(result, direction: str) -> str:
    rows = []
    for layer, q, cells in diff_rows(result):
        if q.direction != direction:
            continue
        first = is_first(result, layer, q)
        colour = STATUS_COLOURS.get(cells[10])
        tds = [_cell(c, NOWRAP if index in WHOLE else "") for index, c in enumerate(cells[:10])]
        tds.append(_cell(cells[10] + (" (first divergence)" if first else ""),
                         f"color:{colour};font-weight:bold" if colour else ""))
        tds.append(_cell(cells[11]))
        style = f' style="background:{HIGHLIGHT};font-weight:bold"' if first else ""
        rows.append(f"<tr{style}>{''.join(tds)}</tr>")
    # 11 px: the twelve columns fit a notebook's width
    return f"<p><b>{html.escape(PASS_TITLES[direction])}</b></p>" + _table(HEADER, rows, "11px")


def figure_html(figure, dpi: int = 90) -> str:
    """A matplotlib figure as an inline PNG ``<img>``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%"/>'


def diff_html(result, heatmap: bool = True) -> str:
    """The run, the verdict and first-divergence sentence on top (its cause included), the faults
    of the code under test, the forward and backward tables (the first divergence highlighted)
    and the heat map inline."""
    verdict = "PASS" if result.passed else "FAIL"
    colour = GREEN if result.passed else RED
    parts = [f"<p>{html.escape(diff_head(result))}</p>",
             f'<p style="border-left:4px solid {colour};padding-left:8px">'
             f'<b style="color:{colour}">{verdict}</b> '
             f"{html.escape(first_divergence_sentence(result))}</p>"]
    if result.faults:
        items = "".join(f"<li>{html.escape(f.direction)} pass: {html.escape(f.sentence)}</li>"
                        for f in result.faults)
        parts.append(f"<p><b>Faults of the code under test</b> (each caught and shown here, "
                     f"the comparison goes on):</p><ul>{items}</ul>")
    parts += [_diff_table(result, "forward"), _diff_table(result, "backward")]
    if heatmap:
        parts.append(figure_html(heatmap_figure(result)))
    return '<div class="tfparity-diff">' + "".join(parts) + "</div>"


# -- diff: the heat map ------------------------------------------------------------------------

FLOOR, CEILING = -17.0, 1.0  # log10 range of the colour scale; a wrong shape is drawn at CEILING


def _label(q) -> str:
    """A quantity's heat-map column: the loss's value is its y, dL/dlogits its dL/dx."""
    return "dL/dx" if q.label == "dL/dlogits" else "y" if q.label == "loss" else q.label


def _columns(result) -> list[tuple[str, str, str]]:
    """(quantity label, attribution, header) in display order."""
    labels = []
    for layer in result.layers:
        for q in layer.quantities:
            if _label(q) not in labels:
                labels.append(_label(q))
    order = sorted(labels, key=lambda s: (s != "y", s == "dL/dx", s != "dL/dy", s))
    columns = []
    for label in order:
        columns.append((label, "propagated", label))
        if label != "dL/dy":
            columns.append((label, "isolated", f"{label}\nisolated"))
    return columns


def _value(comparison, shape) -> tuple[float, str]:
    """(colour: log10 of the error, floored and capped; cell text: the error itself)."""
    if comparison is None:
        return math.nan, ""
    if tuple(comparison.shape) != tuple(shape):
        return CEILING, "shape"
    error = comparison.smallest_passing_tolerance
    if not math.isfinite(error):
        return CEILING, "inf" if error > 0 else "nan"
    return max(math.log10(max(error, 1e-300)), FLOOR), _magnitude(error)


def _magnitude(error: float) -> str:
    """An error as a reader compares it with a tolerance: "0", "2e-16", "0.011", "1.3", "6e+15"."""
    if error == 0:
        return "0"
    return f"{error:.0e}" if error < 1e-2 or error >= 1e3 else f"{error:.2g}"


def _power_of_ten(exponent: float, _position=None) -> str:
    """Colour-bar tick text for log10 value ``exponent``: "1e-16", ..., "1", "10"."""
    return {0: "1", 1: "10"}.get(int(exponent), f"1e{int(exponent)}")


def _heatmap_title(result) -> str:
    """The run, PASS/FAIL and where the implementations first part ways."""
    data = result.data + (", SHA-256 not checked" if result.data_unverified else "")
    run = f"tfparity diff {result.model} ({result.dtype}, batch {result.batch_shape[0]}, {data})"
    first = result.first_divergence
    if first is not None:
        verdict = (f"FAIL: first divergence {first.layer} ({first.layer_type}), {first.direction} "
                   f"pass, {first.label}{time_clause(first)} (boxed)")
    elif result.first_propagated_failure is not None:
        layer, label = result.first_propagated_failure
        verdict = (f"FAIL: propagated error first at {layer} {label}, no layer's own error above "
                   "tolerance")
    else:
        verdict = "PASS: every quantity within tolerance"
    return f"{run}: {verdict}\ncell: the error; grey: not applicable; cyan: tolerances"


def heatmap_figure(result):
    """The per-layer errors of ``result``: one row per layer, one column per quantity and
    attribution, each cell the error coloured by its log10, the first divergence boxed. A
    matplotlib figure already closed in pyplot (a notebook shows it once)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter

    columns = _columns(result)
    grid = np.full((len(result.layers), len(columns)), np.nan)
    texts = np.full(grid.shape, "", dtype=object)
    tol = {}
    for row, layer in enumerate(result.layers):
        for q in layer.quantities:
            tol[q.direction] = q.tolerance
            for col, (name, attribution, _) in enumerate(columns):
                if name == _label(q):
                    grid[row, col], texts[row, col] = _value(getattr(q, attribution), q.shape)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.45 * len(result.layers) + 1.8))
    cmap = plt.get_cmap("magma_r").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=FLOOR, vmax=CEILING,
                      aspect="auto")
    for (row, col), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(col, row, texts[row, col], ha="center", va="center", fontsize=7,
                    color="white" if value > (FLOOR + CEILING) / 2 else "black")
    ax.set_xticks(range(len(columns)), [header for _, _, header in columns], fontsize=8)
    ax.set_yticks(range(len(result.layers)),
                  [f"{layer.name} ({layer.type})" for layer in result.layers], fontsize=8)
    ax.xaxis.tick_top()
    if result.first_divergence is not None:
        row = [layer.name for layer in result.layers].index(result.first_divergence.layer)
        label = result.first_divergence.label
        label = "dL/dx" if label == "dL/dlogits" else "y" if label == "loss" else label
        # the isolated column; a fault about dL/dy (which has none) or an input has fewer
        col = next((i for attribution in ("isolated", "propagated")
                    for i, c in enumerate(columns) if c[0] == label and c[1] == attribution),
                   None)
        if col is not None:
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False,
                                   edgecolor="tab:cyan", linewidth=3))
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02,
                       ticks=np.arange(FLOOR + 1, CEILING + 1, 4),
                       format=FuncFormatter(_power_of_ten))
    bar.set_label("error vs TensorFlow (log scale, floored at 1e-17)")
    for _kind, value in sorted(tol.items()):
        bar.ax.axhline(math.log10(value), color="tab:cyan", linewidth=1.5)
    causes = "".join(f"\n{line}" for line in textwrap.wrap(cause_line(result), 120))
    ax.set_title(_heatmap_title(result) + causes, fontsize=9, pad=28)
    plt.close(fig)
    return fig
