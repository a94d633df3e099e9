"""JSON records: values made strict JSON (no NaN/inf, no NumPy scalars), written atomically, and
a saved record reused when its settings match (the timing and decision phases' records)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from reports.files.atomic import write_json


def to_json_safe(value):
    """``value`` with NaN/inf floats replaced by None (strict JSON), numpy scalars as Python
    ones."""
    if isinstance(value, dict):
        return {k: to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json_atomic(path: Path, payload) -> None:
    """Write ``payload`` as strict JSON (``to_json_safe``) to ``path`` atomically."""
    write_json(path, to_json_safe(payload))


def saved_or_measured(path: Path, settings: dict, reuse: bool, measure: Callable[[], dict]) -> dict:
    """The record saved at ``path`` if ``reuse`` and its ``"settings"`` equal ``settings``
    (compared as JSON); else ``measure()``, saved there atomically."""
    wanted = json.loads(json.dumps(settings))
    if reuse:
        try:
            saved = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and saved.get("settings") == wanted:
            return saved
    record = measure()
    write_json_atomic(Path(path), record)
    return record
