"""A full disk, a file-size limit, a read-only file system or an exhausted quota is bad
environment (exit 2, naming the file), not a tfparity bug: claims are released, finished runs
kept, and ``train --save`` tries the disk before it trains."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reports.cli import main
from reports.experiment import runner
from reports.files.disk_errors import DiskError, writing

from helpers import FakeTrainer

TRAIN = ["train", "mlp1", "--data", "templates", "--train-size", "200"]


@pytest.mark.parametrize("number", ["ENOSPC", "EFBIG", "EROFS", "EDQUOT"])
def test_disk_errors_name_the_file(number, tmp_path):
    code = getattr(errno, number)
    with pytest.raises(DiskError, match=rf"cannot write {tmp_path}/f\.json: .* \({number}\)"):
        with writing(tmp_path / "f.json"):
            raise OSError(code, os.strerror(code))


def test_report_disk_full_is_exit_2_and_keeps_the_saved_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train_one", FakeTrainer())
    real_fsync, saves = os.fsync, []

    def fsync(fd):  # the third run file finds the disk full
        if "/runs/." in os.readlink(f"/proc/self/fd/{fd}"):
            saves.append(fd)
            if len(saves) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert main(["report", "--quick", "--data", "templates", "--models", "linear", "--out",
                 str(tmp_path), "--no-timing", "--no-decisions", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "saving the run linear #2 (epochs=1, lr=0.005) seed 0 numpy: cannot write " \
           f"{tmp_path}/runs/linear-s2-seed0-numpy-" in err and "(ENOSPC)" in err, err
    assert f"2/6 runs are saved in {tmp_path}/runs" in err, err
    assert sorted(p.suffix for p in (tmp_path / "runs").iterdir()) == [".json", ".json"]
    assert all(json.loads(p.read_text())["key"] for p in (tmp_path / "runs").iterdir())


def test_train_save_over_a_file_size_limit_is_refused_before_training(tmp_path):
    limited = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
               "from reports.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", limited, *TRAIN, "--save",
                           str(tmp_path / "w.npz")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "argument --save: expected room for 167336 bytes in" in done.stderr, done.stderr
    assert "File too large (EFBIG)" in done.stderr and "epoch" not in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_train_save_disk_full_at_the_end_is_exit_2(tmp_path, monkeypatch, capsys):
    def savez(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez)
    assert main([*TRAIN, "--save", str(tmp_path / "w.npz")]) == 2
    out, err = capsys.readouterr()
    assert "epoch 1.00" in out, out
    assert f"saving the trained weights (--save): cannot write {tmp_path}/w.npz: " in err, err
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_claims_released_when_a_save_fails(tmp_path, monkeypatch):
    from reports.experiment.protocol import plan
    from reports.experiment.sweep import driver
    from reports.experiment.sweep.options import Executor

    from helpers import TINY, tiny_splits

    specs = plan(["linear"], 1, TINY)
    store = runner.RunStore(tmp_path)
    monkeypatch.setattr(runner, "train_one", FakeTrainer())

    def full(spec, result):
        raise DiskError(f"cannot write {store.path(spec)}: No space left on device (ENOSPC)")

    monkeypatch.setattr(store, "save", full)
    with pytest.raises(DiskError):
        driver.run_sweep(specs, store, tiny_splits, Executor(), progress=False)
    assert list(Path(store.dir).glob("*.claim")) == []
