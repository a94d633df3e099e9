"""``tfparity train`` as it runs: the line of each epoch while the next one trains, a progress bar,
optimizer settings blamed on their own option."""

from __future__ import annotations

import re
import sys

import pytest

from reports.cli import main
from scratch import train as scratch_train

ARGS = ["train", "mlp1", "--data", "templates", "--train-size", "200", "--batch-size", "50"]


def test_train_prints_each_epoch_while_training(monkeypatch, capsys):
    seen = []  # per training step: the epoch lines printed before it
    real = scratch_train.ScratchTrainer.train_step

    def step(self, x, y):
        seen.append(re.findall(r"^epoch (\d\.\d\d) ", capsys.readouterr().out, re.M))
        return real(self, x, y)

    monkeypatch.setattr(scratch_train.ScratchTrainer, "train_step", step)
    assert main([*ARGS, "--epochs", "3", "--no-progress"]) == 0
    lines = [line for printed in seen for line in printed]
    # 4 steps per epoch: the first step of epoch 2 comes after the lines of epochs 0 and 1
    assert lines[:2] == ["0.00", "1.00"] and len(seen) == 12
    assert [len(printed) for printed in seen[4:8]] == [1, 0, 0, 0]


@pytest.mark.parametrize("terminal", [True, False])
def test_train_draws_a_progress_bar_on_a_terminal(terminal, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert main([*ARGS, "--epochs", "2"]) == 0
    out, err = capsys.readouterr()
    assert ("8/8" in err) == terminal and "epoch 2.00" in out and "8/8" not in out


@pytest.mark.parametrize("optimizer, flag, value", [
    ("momentum", "--momentum", "2"), ("adam", "--beta-1", "1.5"), ("adam", "--beta-2", "-1"),
    ("rmsprop", "--rho", "nan"), ("adam", "--epsilon", "-1"),
])
def test_train_bad_optimizer_setting_names_its_own_option(optimizer, flag, value, capsys):
    assert main(["train", "mlp1", "--optimizer", optimizer, flag, value]) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: " in err and "argument --optimizer" not in err, err
