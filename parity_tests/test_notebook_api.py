"""``reference_tf.check`` and ``reference_tf.diff`` from Python: any model the command line
takes, the command line's seeded batch and results, and results that display themselves (short
text, HTML tables, DataFrames, the heat map), user exceptions shown per layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

import reference_tf
from reference_tf.own.loading import load_model
from reports.cli import main
from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from scratch.models import Sequential, build
from scratch.train import fit

CS231N = "examples/own_network/cs231n_style.py:build"


class SlipReLU(ReLU):
    """The planted bug: ReLU's derivative at exactly 0 taken as 1."""

    def call(self, x):
        return self.save_for_backward(np.maximum(x, 0), x)

    def call_backward(self, dy):
        return dy * (self.cache >= 0)


class Raising(ReLU):
    """User code that raises in its backward pass."""

    def call_backward(self, dy):
        raise ZeroDivisionError("planted")


def small_cnn(relu) -> Sequential:
    return Sequential([Conv2D(4, 3, padding="same"), relu(name="mine"), MaxPool2D(2), Flatten(),
                       Dense(10)], (28, 28, 1), dtype="float64")


def test_check_of_a_built_model_is_an_html_table_of_pass_rows():
    result = reference_tf.check(build("cnn"))
    html = result._repr_html_()
    assert result.passed and "<table" in html and html.count(">PASS<") == 2
    assert repr(result).splitlines()[1:] == [
        line for line in repr(result).splitlines() if line.startswith("PASS")]
    assert len(repr(result).splitlines()) == 3
    frame = result.to_frame()
    assert list(frame["path"]) == ["trace", "training"] and frame["passed"].all()
    assert (frame["error"] <= frame["tolerance"]).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_lines_are_the_command_lines(dtype, capsys):
    assert main(["check", "--models", "mlp1", "--dtype", dtype, "--seed", "3",
                 "--batch-size", "8"]) == 0
    printed = capsys.readouterr().out.splitlines()[:-1]
    result = reference_tf.check("mlp1", dtype=dtype, seed=3, batch_size=8)
    assert repr(result).splitlines()[1:] == printed


def test_diff_is_the_command_lines_json(capsys):
    assert main(["diff", "linear", "--seed", "2", "--batch-size", "4", "--json", "-"]) == 0
    printed = json.loads(capsys.readouterr().out)
    result = reference_tf.diff("linear", seed=2, batch_size=4)
    assert json.loads(json.dumps(result.to_dict(), default=str)) == json.loads(
        json.dumps(printed, default=str))


def test_check_and_diff_take_a_users_model_on_the_command_lines_batch(capsys):
    model = load_model(CS231N).rebuilt(seed=0, dtype="float64")
    assert main(["check", "--model", CS231N, "--dtype", "float64"]) == 0
    printed = capsys.readouterr().out.splitlines()[:-1]
    assert repr(reference_tf.check(model, name=CS231N)).splitlines()[1:] == printed
    assert reference_tf.diff(model, fd=False).passed


def test_diff_of_a_planted_bug_names_layer_pass_and_cause_in_its_html():
    result = reference_tf.diff(small_cnn(SlipReLU))
    html = result._repr_html_()
    assert not result.passed
    assert "First divergence: layer &#x27;mine&#x27; (SlipReLU), backward pass" in html
    assert "relu_grad_at_zero" in html and html.count('<img src="data:image/png') == 1
    frame = result.to_frame()
    first = frame[frame["first_divergence"]]
    assert first[["layer", "pass", "quantity", "status", "cause"]].values.tolist() == [
        ["mine", "backward", "dL/dx", "OWN ERROR", "relu_grad_at_zero"]]
    assert "relu_grad_at_zero" in repr(result) and len(repr(result).splitlines()) < 12
    figure = result.plot()
    assert figure.axes and figure.axes[0].patches  # the first divergence boxed


def test_diff_and_check_show_a_user_exception_at_its_layer():
    result = reference_tf.diff(small_cnn(Raising), fd=False)
    [fault] = result.faults
    assert (fault.layer, fault.direction, fault.fatal) == ("mine", "backward", True)
    assert "raised ZeroDivisionError: planted" in fault.sentence
    assert "raised ZeroDivisionError: planted" in result._repr_html_()
    checked = reference_tf.check(small_cnn(Raising))
    assert not checked.passed and "raised ZeroDivisionError" in repr(checked)


def test_check_in_another_dtype_keeps_the_models_weights():
    model = build("mlp1", seed=4)       # float32
    model.params["logits/bias"][...] = 0.5
    result = reference_tf.check(model, dtype="float64")
    assert result.passed and result.dtype == "float64"
    assert model.dtype == np.float32     # the model itself is left as it was


@pytest.mark.parametrize("model, x, y, error, words", [
    (3, None, None, TypeError, "expected model to be a built-in name"),
    ("resnet", None, None, ValueError, "received 'resnet'"),
    ("mlp1", np.zeros((2, 28, 28, 1)), None, ValueError, "received x alone"),
])
def test_check_and_diff_say_what_they_expected(model, x, y, error, words):
    for function in (reference_tf.check, reference_tf.diff):
        with pytest.raises(error, match=words):
            function(model, x, y)


def test_history_displays_its_curves():
    x = np.random.default_rng(0).random((60, 28, 28, 1)).astype("float32")
    y = np.arange(60) % 10
    history = fit(build("linear"), x, y, epochs=2, lr=0.1, batch_size=30, eval_every=30,
                  eval_sets={"test": (x, y)})
    assert repr(history).startswith("History(5 evaluations over 120 samples; last: train_loss")
    assert "\n" not in repr(history)
    assert history._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    loss, accuracy = history.plot().axes
    assert [line.get_label() for line in loss.lines] == ["training batches (mean)", "test"]
    assert len(accuracy.lines[0].get_xdata()) == 5


def test_cli_shows_a_user_exception_as_a_fault_not_an_internal_error(tmp_path, capsys):
    factory = tmp_path / "raising.py"
    factory.write_text("from scratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU\n"
                       "from scratch.models import Sequential\n\n\n"
                       "class Raising(ReLU):\n    def call_backward(self, dy):\n"
                       "        raise ZeroDivisionError('planted')\n\n\n"
                       "def build():\n    return Sequential([Flatten(), Dense(8), "
                       "Raising(name='mine'), Dense(10)], (28, 28, 1))\n")
    assert main(["diff", "--model", f"{factory}:build", "--no-fd"]) == 1
    out = capsys.readouterr().out
    assert "First divergence: layer 'mine' (Raising), backward pass, dL/dx: layer 'mine' " \
           "(Raising.call_backward) raised ZeroDivisionError: planted" in out
