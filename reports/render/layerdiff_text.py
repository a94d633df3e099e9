"""``tfparity diff`` as text: the forward and backward tables and the first-divergence sentence,
both naming the cause where the convention catalog (``reference_tf.causes``) finds one. The
cells and sentences are ``reference_tf.display``'s, which a notebook shows as HTML."""

from __future__ import annotations

from reference_tf.display import (
    HEADER,
    PASS_TITLES,
    diff_head,
    diff_rows,
    first_divergence_sentence,
)


def _table(rows: list[list[str]]) -> str:
    rows = [HEADER] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def tables(result) -> str:
    """The forward table (network order) and the backward table (reverse order) of a
    ``ModelDiff``, and the faults of the code under test."""
    rows = {"forward": [], "backward": []}
    for _, q, cells in diff_rows(result):
        rows[q.direction].append(cells)
    text = "\n\n".join(f"{PASS_TITLES[direction]}:\n{_table(rows[direction])}"
                       for direction in ("forward", "backward"))
    if result.faults:
        text += "\n\nFaults of the code under test:\n" + "\n".join(
            f"- {fault.direction} pass: {fault.sentence}" for fault in result.faults)
    return text


def render(result) -> str:
    """The whole text report of ``tfparity diff``, with the first divergence's path through
    time for a recurrent layer."""
    parts = [diff_head(result), tables(result), first_divergence_sentence(result)]
    first = result.first_divergence
    if first is not None and first.time is not None:
        parts.append(first.time.paragraph())
    return "\n\n".join(parts)
