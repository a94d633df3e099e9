"""``reports.files.atomic``: whole files or none, with the usual file mode."""

from __future__ import annotations

import json
import os
import stat

import pytest

from reports.files.atomic import atomic_write, write_json, write_text


def test_atomic_write_replaces_the_file_with_mode_from_the_umask(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    old = os.umask(0o022)
    try:
        write_text(target, "one")
        write_text(target, "two")
    finally:
        os.umask(old)
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_write_interrupted_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as handle:
            handle.write('{"a": ')
            raise KeyboardInterrupt
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_json_rejects_nan_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"a": float("nan")})
    assert list(tmp_path.iterdir()) == []
