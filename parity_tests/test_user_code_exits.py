"""User code that tries to end the process (``sys.exit``, ``os._exit``, a ``KeyboardInterrupt``
of its own) is a named fault, never a success: exit 1 with the layer for a layer, exit 2 with
the file for a factory or a module that cannot be loaded; a real Ctrl-C still exits 130.

``os._exit`` runs in a subprocess (unguarded, it would end pytest).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reports.cli import main

from own_network_helpers import EXAMPLES

# The example's MLP with one user function replaced; {where} is "forward" or "backward" and
# {statement} what the replaced function does first.
FACTORY = """\
import os
import signal
import sys
import types

import cs231n_style as c

{at_import}


def relu_{where}(*args):
    {statement}
    return c.relu_{where}(*args)


def build():
    {in_factory}
    return c.build("mlp2", types.SimpleNamespace(**dict(vars(c), relu_{where}=relu_{where})))
"""


def _factory(tmp_path: Path, where="backward", statement="pass", at_import="",
             in_factory="pass") -> str:
    tmp_path.mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "cs231n_style.py", tmp_path)
    path = tmp_path / "exits_net.py"
    path.write_text(FACTORY.format(where=where, statement=statement, at_import=at_import,
                                   in_factory=in_factory))
    return f"{path}:build"


def _check(spec: str) -> list[str]:
    return ["check", "--model", spec, "--dtype", "float64", "--batch-size", "4"]


@pytest.mark.parametrize("where, statement, said", [
    ("backward", "sys.exit(0)", "layer 'relu2' (relu_backward) called sys.exit(0)"),
    ("backward", "raise KeyboardInterrupt",
     "layer 'relu2' (relu_backward) raised KeyboardInterrupt itself (not a Ctrl-C)"),
    ("forward", "sys.exit(7)", "layer 'relu1' (relu_forward) called sys.exit(7)"),
    ("backward", "raise SystemExit('bye')", "layer 'relu2' (relu_backward) called sys.exit('bye')"),
])
def test_layer_exit_is_a_fault_of_the_layer(where, statement, said, tmp_path, capsys):
    assert main(_check(_factory(tmp_path, where, statement))) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {tmp_path}" in out and said in out, out
    assert f"(at exits_net.py:12 in relu_{where}: {statement})" in out, out


@pytest.mark.parametrize("at_import, in_factory, said", [
    ("sys.exit(0)", "pass", "importing '{tmp}/exits_net.py' called sys.exit(0) "
                            "(at exits_net.py:8 in <module>: sys.exit(0))"),
    ("", "sys.exit(3)", "build() called sys.exit(3) (at exits_net.py:17 in build: sys.exit(3))"),
])
def test_factory_exit_is_bad_input_naming_the_file(at_import, in_factory, said, tmp_path,
                                                  capsys):
    spec = _factory(tmp_path, at_import=at_import, in_factory=in_factory)
    assert main(_check(spec)) == 2
    _, err = capsys.readouterr()
    assert "argument --model: " + said.format(tmp=tmp_path) in err, err


def test_real_ctrl_c_in_user_code_still_interrupts(tmp_path, capsys):
    spec = _factory(tmp_path, statement="os.kill(os.getpid(), signal.SIGINT)")
    assert main(_check(spec)) == 130
    assert "interrupted" in capsys.readouterr().err


def test_os_exit_is_a_fault_in_a_real_process(tmp_path):
    """One process (one TensorFlow import) checks an os._exit in a layer, then in a factory."""
    specs = [_factory(tmp_path / "layer", statement="os._exit(0)"),
             _factory(tmp_path / "factory", in_factory="os._exit(0)")]
    both = ("import json, sys\nfrom reports.cli import main\n"
            "for argv in json.loads(sys.argv[1]):\n    print('exit code', main(argv), flush=True)")
    done = subprocess.run([sys.executable, "-c", both, json.dumps([_check(s) for s in specs])],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.count("exit code") == 2, done.stdout + done.stderr  # both ran to the end
    layer, factory = done.stdout.split("exit code 1\n")
    assert "layer 'relu2' (relu_backward) called os._exit(0) (at exits_net.py:12" in layer, layer
    assert factory == "exit code 2\n", done.stdout
    assert "argument --model: build() called os._exit(0) (at exits_net.py:17" in done.stderr


def test_exit_outside_every_guard_is_never_passed_on(monkeypatch, capsys):
    from reports.commands import check

    monkeypatch.setattr(check, "run", lambda args: sys.exit(0))
    assert main(["check"]) == 3
    assert "internal error: SystemExit: 0" in capsys.readouterr().err


def test_overlapping_guards_restore_os_exit():
    """Guards in two threads, the first ending while the second runs: os._exit stays replaced
    until the second ends, and the real one is back once both have."""
    from reference_tf.user_exits import guard

    real = os._exit
    first_in, second_in, first_out = (threading.Event() for _ in range(3))
    replaced = []

    def first():
        with guard():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with guard():
            second_in.set()
            first_out.wait(10)
            replaced.append(os._exit is not real)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert replaced == [True] and os._exit is real
