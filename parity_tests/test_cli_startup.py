"""The command line starts fast and explains itself: ``--help`` and argument errors import
neither NumPy nor TensorFlow, ``data`` no TensorFlow (checked in fresh interpreters), every
option's help states its default, and every model list follows ``scratch.models.MODELS``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from reports.cli import COMMANDS, main
from reports.commands import options
from scratch.models import MODELS

from helpers import zero_mnist

HEAVY = ("numpy", "tensorflow", "keras", "pandas", "matplotlib")
PROBE = f"""
import json, sys
from reports.cli import main
codes = {{name: main(argv) for name, argv in json.loads(sys.argv[1]).items()}}
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"codes": codes, "loaded": loaded}}))
"""


def _probe(calls: dict, tmp_path) -> dict:
    """Run ``main`` on each call's argv in a fresh interpreter with MNIST absent; return the exit
    codes and which of HEAVY got imported."""
    env = {k: v for k, v in os.environ.items() if k != "TFPARITY_MNIST_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), KERAS_HOME=str(tmp_path / "keras"))
    done = subprocess.run([sys.executable, "-c", PROBE,
                           json.dumps({name: argv for name, (argv, _) in calls.items()})],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == {name: code for name, (_, code) in calls.items()}, done.stderr
    return report


def test_cli_help_and_argument_errors_import_neither_numpy_nor_tensorflow(tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    calls = {
        "help": (["--help"], 0), "train-help": (["train", "--help"], 0),
        "no-command": ([], 2),
        "unknown-model": (["diff", "resnet"], 2),
        "batch-size": (["check", "--batch-size", "0"], 2),
        "seed": (["train", "mlp1", "--seed", "-1"], 2),
        "save-suffix": (["train", "mlp1", "--save", str(tmp_path / "w.txt")], 2),
        "plot-suffix": (["diff", "cnn", "--plot", str(tmp_path / "h.txt")], 2),
        "out-is-a-file": (["report", "--out", str(tmp_path / "plain.txt")], 2),
        "bench-out-is-a-file": (["bench", "--out", str(tmp_path / "plain.txt")], 2),
    }
    loaded = _probe(calls, tmp_path)["loaded"]
    assert loaded == [], f"parsing and argument errors imported {loaded}"


def test_cli_data_imports_no_tensorflow(tmp_path):
    calls = {"data": (["data", "--dir", str(zero_mnist(tmp_path / "mnist")), "--no-verify"], 0),
             "data-absent": (["data", "--no-fetch"], 2)}
    assert _probe(calls, tmp_path)["loaded"] == ["numpy"]


def _options(help_text: str) -> list[tuple[str, str]]:
    """(option and metavar, whole paragraph) of each option of an argparse help text."""
    section = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    paragraphs = re.split(r"\n(?=  -)", section)
    return [(re.split(r"\s{2,}", p.strip())[0], " ".join(p.split())) for p in paragraphs]


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_every_option_states_its_default(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "Exit codes: 0 success" in " ".join(text.split())
    options_seen = _options(text)
    assert len(options_seen) > 1
    for header, paragraph in options_seen:
        takes_value = " " in header.replace(", ", ",")  # "--seed SEED", not "--no-fd"
        assert not takes_value or "(default: " in paragraph, f"{command}: {paragraph}"


def test_cli_model_lists_follow_scratch_models():
    from reference_tf.batches import DATA_SOURCES
    from reports.experiment import datasets
    from reports.experiment.protocol import ALL_SETTINGS

    assert options.MODEL_NAMES == tuple(MODELS)
    # The report trains the course's four models and, when named, rnn, lstm and gru; not cnn_bn
    # nor tokens.
    assert tuple(ALL_SETTINGS) == tuple(name for name in MODELS if name not in ("cnn_bn",
                                                                                "tokens"))
    assert options.BATCH_DATA == DATA_SOURCES
    assert datasets.DATA_SOURCES == ("mnist", "templates")
    assert options.in_model_order(["cnn", "linear", "cnn"]) == ["linear", "cnn"]


def test_cli_train_optimizer_defaults_follow_scratch_optim():
    from reports.commands import train
    from scratch import optim

    for name, (cls, preset) in train.OPTIMIZERS.items():
        assert train.DEFAULTS[name] == getattr(optim, cls)(**preset).get_config(), name


def test_cli_check_reports_models_in_model_order(capsys):
    assert main(["check", "--models", "cnn", "linear", "--dtype", "float64"]) == 0
    lines = capsys.readouterr().out.splitlines()[:-1]  # trace and training path of each
    assert [line.split()[1] for line in lines] == ["linear", "linear", "cnn", "cnn"]
