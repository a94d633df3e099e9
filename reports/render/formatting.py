"""Numbers as tfparity prints them, each format written once: percentages, time spreads, time
ratios, relative distances, load averages and memory."""

from __future__ import annotations

import math

import numpy as np


def percent(value: float, digits: int = 2) -> str:
    """A fraction in percent (or percentage points) without the sign: "97.25"; "n/a" if not
    finite."""
    return "n/a" if not np.isfinite(value) else f"{100 * value:.{digits}f}"


def scientific(value: float | None, digits: int = 1) -> str:
    """An error in scientific notation: "1.3e-07"; "-" for None or NaN, "inf" for infinity."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}e}"


def pair(numpy_value, tf_value, fmt=percent) -> str:
    """"NumPy / TF" of one quantity (percent by default)."""
    return f"{fmt(numpy_value)} / {fmt(tf_value)}"


def milliseconds(spread: dict) -> str:
    """A spread of timings in seconds (``reports.measure.bench.Spread`` as a dict) as a table
    cell in milliseconds: "1.234 [1.200, 1.300]" (median [first quartile, third quartile])."""
    return f"{1e3 * spread['median']:.3f} [{1e3 * spread['q1']:.3f}, {1e3 * spread['q3']:.3f}]"


def milliseconds_iqr(spread: dict) -> str:
    """A spread of timings in seconds in a sentence: "1.23 ms [IQR 1.20-1.30]"."""
    q1, median, q3 = (1e3 * spread[key] for key in ("q1", "median", "q3"))
    return f"{median:.2f} ms [IQR {q1:.2f}-{q3:.2f}]"


def times(ratio: float, slower: str = "slower", faster: str = "faster") -> str:
    """A time ratio (other/reference) in words: "2.50x slower" or "1.25x faster"; "n/a" if not
    finite."""
    if not np.isfinite(ratio):
        return "n/a"
    return f"{ratio:.2f}x {slower}" if ratio >= 1 else f"{1 / ratio:.2f}x {faster}"


def distance(value: float) -> str:
    """A relative distance: two decimals from 0.01 on, else two significant digits."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


def loads(values) -> str:
    """Load averages (1/5/15 min) as "0.52/0.61/0.70"; "n/a" for None or none."""
    return "/".join(f"{v:.2f}" for v in values) if values else "n/a"


def load_change(conditions: dict) -> str:
    """The load average before and after a measuring phase, from its record's ``conditions``
    (its ``environment`` at the start and ``load_average_after``), with the CPU count."""
    env = conditions["environment"]
    before, after = env.get("load_average_1_5_15min"), conditions.get("load_average_after")
    if not (before and after):
        return "load average not available"
    return (f"load average (1/5/15 min) {loads(before)} before and {loads(after)} after, on "
            f"{env.get('cpu_count')} logical CPUs")


def first_load(values) -> str:
    """The 1-minute load average of ``loads``' input; "n/a" for None."""
    return "n/a" if values is None else f"{values[0]:.2f}"


def mebibytes(value) -> str:
    """MiB with one decimal; "n/a" for None."""
    return "n/a" if value is None else f"{value:.1f}"
