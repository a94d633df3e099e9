"""What several test files share: dtypes, the training path's tolerance, data with exact ties,
closeness assertions whose failures name the quantity, the errors, the worst index and both
values (``scratch.gradcheck.compare``, so scratch-only tests never import TensorFlow), the
places the command-line tests need (a read-only directory, MNIST-shaped files that are not
MNIST), a tiny report protocol and a stand-in for training a report's run."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from reports.experiment import datasets
from reports.experiment.protocol import Protocol, RunSpec
from reports.files import run_schema
from scratch.data import mnist
from scratch.gradcheck import assert_gradients_match, compare
from scratch.sequence_layers import GRU, LSTM, SimpleRNN

DTYPES = ["float32", "float64"]
# The training path (fused units) against layer-by-layer code: only BLAS's summation order differs.
TRAINING_PATH_RTOL = {"float64": 1e-13, "float32": 1e-5}


def integers(shape, seed=0, dtype="float64") -> np.ndarray:
    """Integers in [-2, 2]: exact zeros and exact ties."""
    return np.random.default_rng(seed).integers(-2, 3, size=shape).astype(dtype)


def assert_close(actual: dict, expected: dict, rtol: float) -> None:
    """Max abs error over the larger magnitude below ``rtol`` for every key of ``expected``."""
    assert_gradients_match({key: compare(key, actual[key],
                                         value) for key, value in expected.items()},
                           rtol)


def assert_fast_path_matches(fast: dict, expected: dict, dtype: str) -> None:
    """The training path's values within ``TRAINING_PATH_RTOL[dtype]`` of the layers'."""
    assert_close(fast, expected, TRAINING_PATH_RTOL[dtype])


def read_only_dir(root: Path) -> Path:
    """A directory this process cannot write in: ``root/read-only`` with mode 0500, or /sys
    when the process is root (whom permissions do not stop)."""
    folder = root / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with tempfile.TemporaryFile(dir=folder):
            return Path("/sys")
    except OSError:
        return folder


def zero_mnist(folder: Path) -> Path:
    """``folder`` with the four IDX files of MNIST's shapes, all zeros: well-formed, not MNIST."""
    folder.mkdir()
    for name, shape in mnist.ARRAYS.values():
        header = bytes([0, 0, 8, len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape)
        (folder / name).write_bytes(header + bytes(int(np.prod(shape))))
    return folder


# A report protocol small enough to train for real in a test: 300 synthetic images, 1 epoch.
TINY = Protocol(data="templates", train_size=300, test_size=200, eval_every=100, epochs=1)


def tiny_splits() -> datasets.Splits:
    return datasets.load(TINY)


def fake_run_result(spec: RunSpec) -> dict:
    """What ``reports.experiment.runner.train_one`` returns, reduced to what the run store
    (``reports.files.run_schema``) and the sweep need: one step per epoch, a record before it
    and after each of the spec's ``stops`` and its last step."""
    records = [{"step": step, "epoch": float(step), "test_loss": math.nan, "train_time": step,
                "eval_time": step, "diverged": False, **({"stop": True} if stop else {})}
               for step, stop in ((0, False), *((s, True) for s in spec.stops),
                                  (spec.epochs, False))]
    return {"key": spec.key, "spec": spec.to_dict(), "history": records,
            "diverged": False, "initial_weights_sha256": "0" * 16,
            **dict.fromkeys(run_schema.RUN_NUMBERS, 0), "planned_steps": spec.epochs}


class FakeTrainer:
    """Stands in for ``reports.experiment.runner.train_one``: counts calls, optionally interrupts
    the n-th."""

    def __init__(self, interrupt_at: int | None = None):
        self.calls, self.interrupt_at = [], interrupt_at

    def __call__(self, spec, splits, on_record=None):
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(spec)
        return fake_run_result(spec)


def sequence_mask(bits: list[bool], n: int, steps: int, padded_row: bool) -> np.ndarray:
    """A time-step mask (n, steps) from ``bits`` (n * steps of them, e.g. drawn by Hypothesis),
    its first sequence fully padded when ``padded_row``."""
    mask = np.array(bits, dtype=bool).reshape(n, steps)
    if padded_row:
        mask[0] = False
    return mask


# The recurrent layers under test: name -> factory(units, **settings).
RECURRENT_CELLS = {
    "simple_rnn": lambda units, **kw: SimpleRNN(units, **kw),
    "lstm": lambda units, **kw: LSTM(units, **kw),
    "gru": lambda units, **kw: GRU(units, **kw),
    "gru_reset_before": lambda units, **kw: GRU(units, reset_after=False, **kw),
}


@st.composite
def recurrent_cases(draw, max_steps: int = 4, max_units: int = 3):
    """(input shape (N, T, D), units, settings, mask or None) for a recurrent layer: N 1-3,
    T 1-max_steps, D 1-3, return_sequences and go_backwards drawn, half of the cases masked
    (a fully padded first sequence half of those)."""
    n, steps = draw(st.integers(1, 3)), draw(st.integers(1, max_steps))
    shape = (n, steps, draw(st.integers(1, 3)))
    settings = {"return_sequences": draw(st.booleans()), "go_backwards": draw(st.booleans())}
    mask = None
    if draw(st.booleans()):
        bits = draw(st.lists(st.booleans(), min_size=n * steps, max_size=n * steps))
        mask = sequence_mask(bits, n, steps, padded_row=draw(st.booleans()))
    return shape, draw(st.integers(1, max_units)), settings, mask


def run_in_kernel(notebook, cwd: Path, env: dict | None = None):
    """Execute every cell of ``notebook`` (an ``nbformat`` node, changed in place) in a fresh
    Python kernel of this interpreter, from the directory ``cwd``, with the environment ``env``
    (default: this process's); returns the notebook."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(**({} if env is None else {"env": env}))
    return notebook


def kernel_outputs(code: str, cwd: Path) -> list:
    """The outputs of ``code`` run as one cell in a fresh kernel."""
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    return run_in_kernel(notebook, cwd).cells[0].outputs


OWN_NETWORK_DOC = Path(__file__).resolve().parents[1] / "docs" / "own-network.md"


def doc_python_block(section: str, doc: Path = OWN_NETWORK_DOC) -> str:
    """The first ```python block after the heading ``section`` of ``doc``."""
    text = doc.read_text()
    assert section in text, f"{doc.name} has no '{section}' section"
    block = re.search(r"```python\n(.*?)```", text.split(section, 1)[1], re.S)
    assert block is not None, f"the '{section}' section has no python block"
    return block.group(1)
