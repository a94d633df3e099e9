"""The exit-code contract of every ``tfparity`` command (``reports.errors``): 0 success, 1 parity
failure / divergence / diverged training, 2 bad arguments or input, 3 internal error, 130
interrupted; never a Python traceback on stderr.

One table walks every command through its successes, failures and the inputs that could
crash it (damaged weight files, MNIST absent, unwritable outputs, ...). Cases run in-process
(``reports.cli.main``), with MNIST's places pointed at empty folders so nothing is fetched. A run
file holding ``null`` is resumed over in ``test_report_pipeline.py`` (it needs a finished report).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reports.cli import main
from reports.files.weights import META_KEY, save_weights
from scratch import ops
from scratch.data import mnist
from scratch.models import build

from helpers import read_only_dir, zero_mnist

TRACEBACK = "Traceback (most recent call last)"


def _save_raw(path: Path, arrays: dict, meta) -> None:
    """A weight file written by hand: ``arrays`` and ``meta`` (any JSON) as ``__meta__``."""
    np.savez(path, **arrays, **{META_KEY: np.array(json.dumps(meta))})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every input the table needs, written once."""
    root = tmp_path_factory.mktemp("exit-codes")
    params = {k: v.copy() for k, v in build("mlp1").params.items()}
    good = save_weights(root / "good.npz", params, "mlp1")
    data = good.read_bytes()
    paths = {"good": good, "read_only": read_only_dir(root), "file": root / "plain.txt"}
    paths["file"].write_text("a file, not a directory\n")
    for name, content in [("truncated", data[:len(data) // 2]), ("empty", b""),
                          ("text", b"hello, not an archive\n")]:
        (root / f"{name}.npz").write_bytes(content)
        paths[name] = root / f"{name}.npz"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10  # inside an array's data: the zip's CRC-32 catches it
    (root / "flipped.npz").write_bytes(bytes(flipped))
    paths["flipped"] = root / "flipped.npz"
    meta = {"format": 1, "model": "mlp1", "dtype": "float32"}
    _save_raw(root / "meta-list.npz", params, [meta])
    _save_raw(root / "float16.npz", {k: v.astype(np.float16) for k, v in params.items()},
              dict(meta, dtype="float16"))
    nan = dict(params, **{"hidden1/kernel": params["hidden1/kernel"].copy()})
    nan["hidden1/kernel"][3, 5] = np.nan
    _save_raw(root / "nan.npz", nan, meta)
    _save_raw(root / "big-endian.npz", {k: v.astype(">f4") for k, v in params.items()}, meta)
    _save_raw(root / "format-999.npz", params, dict(meta, format=999))
    for name in ("meta-list", "float16", "nan", "big-endian", "format-999"):
        paths[name] = root / f"{name}.npz"
    paths["zeros_mnist"] = zero_mnist(root / "zeros-mnist")
    return paths


@pytest.fixture(autouse=True)
def no_mnist(tmp_path, monkeypatch):
    """MNIST absent everywhere: empty cache and Keras home, no $TFPARITY_MNIST_DIR, no npm."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(mnist.ENV_DIR, raising=False)
    (tmp_path / "no-npm").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm"))


def _plant_dense_bias_bug(monkeypatch) -> None:
    """The dense bias gradient doubled: a parity failure in every model."""
    real = ops.dense_backward

    def doubled(dy, cache, *args, **kwargs):
        dx, dkernel, dbias = real(dy, cache, *args, **kwargs)
        return dx, dkernel, 2 * dbias

    monkeypatch.setattr(ops, "dense_backward", doubled)


RO = "{read_only}"
# (case id, argv with {name} standing for files[name] and {tmp} for the test's tmp_path,
#  exit code, a fragment stderr must hold, whether stdout must stay empty: nothing ran).
CASES = [
    ("no-command", [], 2, "expected a command", True),
    ("help", ["--help"], 0, "", False),
    ("unknown-command", ["nosuch"], 2, "invalid choice: 'nosuch'", True),
    ("data-unverified-ok", ["data", "--dir", "{zeros_mnist}", "--no-verify"], 0, "", False),
    ("data-checksum", ["data", "--dir", "{zeros_mnist}"], 2,
     "expected the published MNIST file", True),
    ("data-dir-typo", ["data", "--dir", "{tmp}/typo"], 2, "received a path that is absent", True),
    ("data-absent", ["data", "--no-fetch"], 2, "MNIST was not found", True),
    ("report-out-is-a-file", ["report", "--quick", "--out", "{file}"], 2,
     "argument --out: expected a directory, received", True),
    ("report-out-read-only", ["report", "--quick", "--out", RO + "/run"], 2,
     "argument --out: expected a writable directory", True),
    ("report-seeds-0", ["report", "--seeds", "0"], 2, "argument --seeds: expected a positive",
     True),
    ("report-seeds-huge", ["report", "--seeds", "1000000"], 2,
     "argument --seeds: expected at most 100 (each seed adds 24 runs", True),
    ("report-jobs-huge", ["report", "--executor", "processes", "--jobs", "99999"], 2,
     "argument --jobs: expected at most 1024", True),
    ("bench-repeat-huge", ["bench", "--repeat", "10000000000"], 2,
     "argument --repeat: expected at most 10000", True),
    ("bench-out-read-only", ["bench", "--out", RO + "/bench"], 2, "argument --out", True),
    ("bench-json-read-only", ["bench", "--out", "{tmp}", "--json", RO + "/b.json"], 2,
     "argument --json", True),
    ("bench-plot-suffix", ["bench", "--out", "{tmp}", "--plot", "{tmp}/b.txt"], 2,
     "argument --plot: expected a file name ending in .png or .svg or .pdf", True),
    ("bench-repeat-0", ["bench", "--repeat", "0"], 2, "argument --repeat", True),
    ("check-pass", ["check", "--models", "linear", "--dtype", "float64"], 0, "", False),
    ("check-fail", ["check", "--models", "linear", "--dtype", "float64", "@bug"], 1, "", False),
    ("check-batch-size-0", ["check", "--batch-size", "0"], 2,
     "argument --batch-size: expected a positive integer, received '0'", True),
    ("check-seed-negative", ["check", "--seed", "-1"], 2,
     "argument --seed: expected a non-negative integer, received '-1'", True),
    ("check-mnist-absent", ["check", "--models", "linear", "--dtype", "float64", "--data", "mnist"],
     2, "MNIST was not found", True),
    ("check-models-with-model", ["check", "--models", "linear", "--model", "{tmp}/f.py:build"],
     2, "argument --models: not with --model", True),
    ("diff-pass", ["diff", "linear"], 0, "", False),
    ("diff-fail", ["diff", "linear", "--no-fd", "@bug"], 1, "", False),
    ("diff-json-swallows-no-model", ["diff", "--json", "mlp1"], 2,
     "expected one built-in model (linear, mlp1, mlp2, cnn, cnn_bn, rnn, lstm, gru, tokens) or "
     "--model", True),
    ("diff-json-suffix", ["diff", "mlp1", "--json", "{tmp}/d.txt"], 2,
     "argument --json: expected a file name ending in .json", True),
    ("diff-json-read-only", ["diff", "mlp1", "--json", RO + "/d.json"], 2,
     "argument --json: expected a writable directory", True),
    ("diff-plot-below-a-file", ["diff", "mlp1", "--plot", "{file}/h.png"], 2,
     "argument --plot: expected a directory that exists or can be created", True),
    ("diff-weights-truncated", ["diff", "mlp1", "--weights", "{truncated}"], 2,
     "expected a .npz archive", True),
    ("diff-weights-empty", ["diff", "mlp1", "--weights", "{empty}"], 2,
     "received 0 bytes", True),
    ("diff-weights-bit-flip", ["diff", "mlp1", "--weights", "{flipped}"], 2,
     "expected a readable .npz archive, received a damaged one", True),
    ("diff-weights-text", ["diff", "mlp1", "--weights", "{text}"], 2,
     "expected a .npz archive (a zip file", True),
    ("diff-weights-meta-list", ["diff", "mlp1", "--weights", "{meta-list}"], 2,
     "expected '__meta__' to hold a JSON object", True),
    ("diff-weights-float16", ["diff", "mlp1", "--weights", "{float16}"], 2,
     "expected '__meta__' dtype 'float32' or 'float64', received dtype='float16'", True),
    ("diff-weights-nan", ["diff", "mlp1", "--weights", "{nan}"], 2,
     "expected finite values in 'hidden1/kernel', received 1 NaN/inf value(s), the first at "
     "index (3, 5)", True),
    ("diff-weights-format-999", ["diff", "mlp1", "--weights", "{format-999}"], 2,
     "expected '__meta__' format 1 (the one this tfparity reads), received format=999", True),
    ("diff-weights-big-endian", ["diff", "mlp1", "--weights", "{big-endian}", "--no-fd"], 0, "",
     False),
    ("diff-mnist-absent", ["diff", "mlp1", "--data", "mnist"], 2, "MNIST was not found", True),
    ("train-pass", ["train", "mlp1", "--data", "templates", "--train-size", "300", "--save",
                    "{tmp}/w.npz"], 0, "", False),
    ("train-diverged", ["train", "mlp1", "--data", "templates", "--lr", "1000"], 1,
     "training diverged: train_loss reached", False),
    ("train-mnist-absent", ["train", "mlp1"], 2, "MNIST was not found", True),
    ("train-size-negative", ["train", "mlp1", "--train-size", "-5"], 2,
     "argument --train-size: expected a positive integer, received '-5'", True),
    ("train-size-0", ["train", "mlp1", "--train-size", "0"], 2, "argument --train-size", True),
    ("train-size-too-large", ["train", "mlp1", "--data", "templates", "--train-size", "5000"], 2,
     "argument --train-size: expected at most the 2000 training images", True),
    ("train-save-read-only", ["train", "mlp1", "--data", "templates", "--save", RO + "/w.npz"], 2,
     "argument --save: expected a writable directory", True),
    ("train-save-suffix", ["train", "mlp1", "--data", "templates", "--save", "{tmp}/w.txt"], 2,
     "argument --save: expected a file name ending in .npz", True),
    ("train-weights-bit-flip", ["train", "mlp1", "--data", "templates", "--weights", "{flipped}"],
     2, "argument --weights", True),
    ("train-lr-0", ["train", "mlp1", "--lr", "0"], 2, "argument --lr: expected a positive", True),
    ("train-lr-nan", ["train", "mlp1", "--lr", "nan"], 2, "argument --lr", True),
    ("train-epochs-0", ["train", "mlp1", "--epochs", "0"], 2, "argument --epochs", True),
    ("train-epochs-huge", ["train", "mlp1", "--epochs", "10000000000000"], 2,
     "argument --epochs: expected at most", True),
    ("train-batch-size-huge", ["train", "mlp1", "--batch-size", "10000000000"], 2,
     "argument --batch-size: expected at most", True),
    ("train-momentum-2", ["train", "mlp1", "--optimizer", "momentum", "--momentum", "2"], 2,
     "argument --momentum: ", True),
    ("train-beta-1-minus", ["train", "mlp1", "--optimizer", "adam", "--beta-1", "-0.5"], 2,
     "argument --beta-1: ", True),
    ("train-rho-nan", ["train", "mlp1", "--optimizer", "rmsprop", "--rho", "nan"], 2,
     "argument --rho: ", True),
]


@pytest.mark.parametrize("argv, code, fragment, silent", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_cli_exit_code_table(argv, code, fragment, silent, files, tmp_path, monkeypatch, capsys):
    names = {key: str(value) for key, value in files.items()}
    names["tmp"] = str(tmp_path)
    if "@bug" in argv:
        _plant_dense_bias_bug(monkeypatch)
    argv = [arg.format(**names) for arg in argv if arg != "@bug"]
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert TRACEBACK not in err and TRACEBACK not in out, err
    assert fragment in err, err
    if silent:  # a bad input is answered before any work
        assert out == "", out


def test_cli_internal_error_is_one_line_with_the_traceback_in_a_log(monkeypatch, capsys):
    from reports.analysis import fitting

    def broken(history, diverged_flag=False):
        raise ZeroDivisionError("planted for the test")

    monkeypatch.setattr(fitting, "divergence", broken)
    assert main(["train", "linear", "--data", "templates", "--train-size", "200"]) == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "tfparity train: internal error: ZeroDivisionError: planted for the test (traceback in ")
    log = Path(lines[0].rsplit("traceback in ", 1)[1].rstrip(")"))
    text = log.read_text()
    log.unlink()
    assert "command: tfparity train linear --data templates --train-size 200" in text
    assert TRACEBACK in text and "in broken" in text


def test_cli_keyboard_interrupt_exits_130(monkeypatch, capsys):
    from reports.analysis import fitting

    def interrupted(history, diverged_flag=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(fitting, "divergence", interrupted)
    assert main(["train", "linear", "--data", "templates", "--train-size", "200"]) == 130
    assert capsys.readouterr().err.strip() == "tfparity train: interrupted"


def test_cli_ctrl_c_turned_into_another_error_still_exits_130(monkeypatch, capsys):
    """An import interrupted halfway may raise ImportError instead (Keras's does, when optree's
    import is cut short): the interrupt still decides."""
    from reports.analysis import fitting

    def import_cut_short(history, diverged_flag=False):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the signal's KeyboardInterrupt arrives here
        except KeyboardInterrupt:
            pass
        raise ImportError("To use Keras, you need to have `optree` installed.")

    monkeypatch.setattr(fitting, "divergence", import_cut_short)
    # Python's own Ctrl-C handling, also when the suite runs with SIGINT ignored (a command
    # started with `&` from a script, as a background job, inherits that).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["train", "linear", "--data", "templates", "--train-size", "200"]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err.strip() == "tfparity train: interrupted"


def _default_ctrl_c() -> None:
    """In a child before it starts: SIGINT's default action, even if this suite runs with it
    ignored (which a child would inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_ctrl_c_while_tensorflow_imports_exits_130_without_traceback(tmp_path):
    """SIGINT a second after the command starts: TensorFlow (several seconds to import) is
    loading then."""
    script = ("import sys, reports.cli\n"
              "print('ready', flush=True)\n"
              "sys.exit(reports.cli.main(['check', '--models', 'linear']))\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env,
                             preexec_fn=_default_ctrl_c)
    assert child.stdout.readline() == "ready\n"
    try:
        child.wait(1.0)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert TRACEBACK not in err and err.strip().endswith("tfparity check: interrupted"), err
    assert "PASS" not in out


def test_cli_no_verify_is_recorded_in_every_output(files, tmp_path, monkeypatch, capsys):
    """MNIST of $TFPARITY_MNIST_DIR that is not the published one: refused (2) by every command,
    used with --no-verify and then recorded in what each command writes."""
    from reports.experiment import datasets
    from reports.experiment.protocol import QUICK
    from reports.files.weights import read_weights

    monkeypatch.setenv(mnist.ENV_DIR, str(files["zeros_mnist"]))
    runs = {"train": ["train", "linear", "--train-size", "200", "--save", str(tmp_path / "w.npz")],
            "check": ["check", "--models", "linear", "--dtype", "float64", "--data", "mnist"],
            "diff": ["diff", "linear", "--data", "mnist", "--no-fd", "--json",
                     str(tmp_path / "d.json"), "--plot", str(tmp_path / "d.png")]}
    for argv in runs.values():
        assert main(argv) == 2
        assert "expected the published MNIST file" in capsys.readouterr().err
    for name, argv in runs.items():
        assert main([*argv, "--no-verify"]) in (0, 1), name
    out = capsys.readouterr().out
    assert "data: MNIST from $TFPARITY_MNIST_DIR, SHA-256 not checked (--no-verify)" in out
    assert "of MNIST (SHA-256 not checked, --no-verify) data" in out  # the diff's header
    assert mnist.NOT_VERIFIED in read_weights(tmp_path / "w.npz").meta["data_source"]
    assert json.loads((tmp_path / "d.json").read_text())["data_unverified"] is True
    assert mnist.NOT_VERIFIED in datasets.load(QUICK, verify=False).source


@pytest.mark.parametrize("variable, expected", [
    ("TFPARITY_STEP_HELPER", "expected one of auto, on, off, received 'bogus'"),
    ("TFPARITY_BLAS_THREADS", "expected a positive number of threads or 'auto', received 'bogus'"),
])
def test_cli_train_malformed_thread_variable_is_bad_input(variable, expected):
    # A fresh process: the thread policy is decided once per process, from its environment.
    child = subprocess.run(
        [sys.executable, "-m", "reports.cli", "train", "linear", "--data", "templates",
         "--train-size", "200"], capture_output=True, text=True, timeout=300,
        env={**os.environ, variable: "bogus"})
    assert child.returncode == 2, child.stderr
    assert child.stderr.strip().endswith(f"tfparity train: {variable}: {expected}.")
    assert TRACEBACK not in child.stderr and "epoch" not in child.stdout
