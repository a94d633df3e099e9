"""The course's experimental protocol: models, hyper-parameter settings and the runs they imply.

One ``RunSpec`` is the unit of work: one (model, setting, seed, implementation) training run.
Its ``key`` hashes every field that changes the result, so a cached result is reused only for
the exact same configuration.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

IMPLEMENTATIONS = ("numpy", "tensorflow")
DATA_SOURCES = ("mnist", "templates")  # Protocol.data; loaded by reports.experiment.datasets
# (training, test) images of the templates data (scratch.data.synthetic.templates) a report and
# ``tfparity train`` use; here, not in datasets, so that parsing the command line loads no NumPy.
TEMPLATES_SIZES = {"report": (4000, 1000), "train": (2000, 500)}
DTYPES = ("float32", "float64")  # Protocol.dtype
# Protocol.tf_loop: TensorFlow's steps between two evaluations in one compiled call (at most
# MAX_STEPS_PER_CALL), or one call per step.
TF_LOOPS = ("k-step", "per-step")
MAX_STEPS_PER_CALL = 200
# Coordinates of the projection of all weights each evaluation records (reports.experiment.drift).
# What the runs record is part of every run's key: runs saved before it changed are trained again.
PROJECTION_DIM = 256
PROJECTION_HITS = 4  # coordinates each parameter is added to
RECORDS = {"weight_projection": {"dim": PROJECTION_DIM, "hits": PROJECTION_HITS,
                                 "kind": "sparse-jl"}}

# (epochs, learning rate) per model, in the course's order.
SETTINGS: dict[str, tuple[tuple[int, float], ...]] = {
    "linear": ((5, 0.0001), (5, 0.005), (5, 0.1)),
    "mlp1": ((15, 0.0001), (15, 0.005), (15, 0.1)),
    "mlp2": ((5, 0.003), (40, 0.003), (40, 0.05)),
    "cnn": ((5, 0.01), (10, 0.001), (20, 0.001)),
}
# The sequential-MNIST models (28 rows as 28 time steps), trained only when named with
# --models: the course's twelve experiments stay the default (docs/report.md, "Sequence
# models").
SEQUENCE_SETTINGS: dict[str, tuple[tuple[int, float], ...]] = {
    "rnn": ((1, 0.001), (1, 0.01), (3, 0.01)),
    "lstm": ((1, 0.01), (1, 0.1), (3, 0.1)),
    "gru": ((1, 0.01), (1, 0.1), (3, 0.1)),
}
ALL_SETTINGS = {**SETTINGS, **SEQUENCE_SETTINGS}


@dataclass(frozen=True)
class Protocol:
    """How every run of a report is trained and evaluated.

    ``train_size``: training images used (the first ones); ``train_eval_fraction``: the first
    fraction of those is the train-evaluation set; ``test_size``: test images evaluated (None =
    all). ``epochs`` overrides every setting's epoch count when not None (``--quick``).
    ``tf_loop``: how TensorFlow's steps are called (``TF_LOOPS``; ``steps_per_call``).
    """

    data: str = "mnist"
    dtype: str = "float32"
    batch_size: int = 100
    eval_every: int = 20000
    train_size: int | None = None
    train_eval_fraction: float = 0.2
    test_size: int | None = None
    epochs: int | None = None
    eval_batch_size: int = 1000
    tf_loop: str = "k-step"

    @property
    def k_steps(self) -> int:
        """K of the k-step loop: the steps between two evaluations, at most
        ``MAX_STEPS_PER_CALL``."""
        return max(1, min(self.eval_every // self.batch_size, MAX_STEPS_PER_CALL))

    @property
    def steps_per_call(self) -> int:
        """TensorFlow's steps per compiled call in training: ``k_steps``, or 1 per step."""
        return 1 if self.tf_loop == "per-step" else self.k_steps


FULL = Protocol()
QUICK = Protocol(train_size=2000, test_size=1000, eval_every=500, epochs=1)


@dataclass(frozen=True)
class RunSpec:
    """One training run: ``model`` with its ``setting``-th (epochs, lr), ``seed``,
    ``implementation``.

    ``seed`` fixes both the initial weights (shared by both implementations) and the batch order.
    ``stops``: epochs before ``epochs`` after which the run evaluates too, because shorter runs
    of the plan are its first epochs (``plan``, ``prefix_parents``); part of the key only when
    there are any.
    """

    model: str
    setting: int
    epochs: int
    lr: float
    seed: int
    implementation: str
    protocol: Protocol
    stops: tuple[int, ...] = ()

    @property
    def experiment(self) -> tuple[str, int]:
        return self.model, self.setting

    def label(self) -> str:
        return f"{self.model} #{self.setting + 1} (epochs={self.epochs}, lr={self.lr:g})"

    def to_dict(self) -> dict:
        """The spec as saved in its run file (``stops`` only when there are any)."""
        fields = asdict(self)
        if not self.stops:
            del fields["stops"]
        else:
            fields["stops"] = list(self.stops)
        return fields

    @property
    def trajectory(self) -> tuple:
        """What fixes the run's training apart from its length: runs with the same trajectory
        and fewer epochs are its first epochs, bit for bit."""
        return self.model, self.lr, self.seed, self.implementation, self.protocol

    @property
    def key(self) -> str:
        """A hash of the exact configuration and of what the run records (16 hex digits)."""
        blob = json.dumps({**self.to_dict(), "records": RECORDS}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def filename(self) -> str:
        return (f"{self.model}-s{self.setting + 1}-seed{self.seed}-{self.implementation}-"
                f"{self.key}.json")


def check_models(models) -> list[str]:
    """The requested model names in the course's order; ValueError names an unknown one."""
    unknown = sorted(set(models) - set(ALL_SETTINGS))
    if unknown or not models:
        raise ValueError(f"report: expected models among {list(ALL_SETTINGS)}, received "
                         f"{list(models)}.")
    return [m for m in ALL_SETTINGS if m in models]


def plan(models, seeds: int, protocol: Protocol) -> list[RunSpec]:
    """Every run of a report, seed-major (a whole seed finishes before the next starts).

    Within an experiment the NumPy run comes right before the TensorFlow run. The longest run of
    each ``RunSpec.trajectory`` stops at the epoch counts of the shorter ones (``stops``), which
    the sweep takes from it instead of training them again (``prefix_parents``).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError("report: expected seeds to be a positive integer, received "
                         f"seeds={seeds!r}.")
    specs = []
    for seed in range(seeds):
        for model in check_models(models):
            for index, (epochs, lr) in enumerate(ALL_SETTINGS[model]):
                for implementation in IMPLEMENTATIONS:
                    specs.append(RunSpec(model, index, protocol.epochs or epochs, lr, seed,
                                         implementation, protocol))
    longest = _longest_per_trajectory(specs)
    lengths: dict[tuple, set[int]] = {}
    for spec in specs:
        lengths.setdefault(spec.trajectory, set()).add(spec.epochs)
    return [replace(spec, stops=tuple(sorted(e for e in lengths[spec.trajectory]
                                             if e < spec.epochs)))
            if longest[spec.trajectory] is spec else spec for spec in specs]


def _longest_per_trajectory(specs) -> dict[tuple, RunSpec]:
    """The run with the most epochs of each trajectory (the last of equals, in plan order)."""
    longest: dict[tuple, RunSpec] = {}
    for spec in specs:
        if spec.trajectory not in longest or spec.epochs >= longest[spec.trajectory].epochs:
            longest[spec.trajectory] = spec
    return longest


def prefix_parents(specs) -> dict[str, RunSpec]:
    """For each run of ``specs`` (a ``plan``) that is the first epochs of a longer run of the
    same trajectory, or an equal run, that run (key -> parent spec): the sweep derives it from
    the parent's records (``reports.experiment.runner.derive_prefix``) instead of training it."""
    longest = _longest_per_trajectory(specs)
    parents = {}
    for spec in specs:
        parent = longest[spec.trajectory]
        if parent is not spec and (spec.epochs in parent.stops or spec.epochs == parent.epochs):
            parents[spec.key] = parent
    return parents


def steps_per_run(spec: RunSpec, train_size: int) -> int:
    """Number of SGD steps of a run on ``train_size`` training images."""
    return spec.epochs * -(-train_size // spec.protocol.batch_size)
