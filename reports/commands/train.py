"""``tfparity train MODEL``: train one model with one of Keras's optimizers in NumPy or
TensorFlow and save its weights, so ``tfparity diff --weights`` can compare exactly the weights
where trouble was seen.

A run that diverges by the report's rule (``reports.analysis.fitting.divergence``) is a result: a
warning, exit code 1, and the weights are still saved (marked diverged) for ``diff``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Callable

from reports.commands.options import (
    MAX_IMAGES,
    add_model,
    add_no_verify,
    add_seed,
    at_most,
    positive_float,
)
from reports.errors import BadInput, reading
from reports.experiment.protocol import MAX_STEPS_PER_CALL, TEMPLATES_SIZES, TF_LOOPS
from reports.files.disk_errors import DiskError, check_room
from reports.files.outputs import WEIGHTS_SUFFIXES, check_file

TOKENS_TRAIN, TOKENS_TEST = 5000, 1000  # the tokens model's synthetic sequences
MAX_EPOCHS = 1000
MAX_EPOCHS_WHY = "a bound against typos: 1000 epochs of MNIST are 600000 steps of 100 images"

# --optimizer NAME -> (class of scratch.optim, settings that differ from its Keras defaults).
# Plain SGD keeps the course's rate 0.1 (Keras's default is 0.01).
OPTIMIZERS = {
    "sgd": ("SGD", {"learning_rate": 0.1}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
}
# Every setting of each --optimizer when no option overrides it (its get_config()), written out
# so that parsing the command line imports no NumPy; a test checks them against scratch.optim.
DEFAULTS = {
    "sgd": {"learning_rate": 0.1, "weight_decay": None, "momentum": 0.0, "nesterov": False},
    "momentum": {"learning_rate": 0.01, "weight_decay": None, "momentum": 0.9,
                 "nesterov": False},
    "nesterov": {"learning_rate": 0.01, "weight_decay": None, "momentum": 0.9, "nesterov": True},
    "rmsprop": {"learning_rate": 0.001, "weight_decay": None, "rho": 0.9, "momentum": 0.0,
                "epsilon": 1e-07, "centered": False},
    "adam": {"learning_rate": 0.001, "weight_decay": None, "beta_1": 0.9, "beta_2": 0.999,
             "epsilon": 1e-07, "amsgrad": False},
    "adamw": {"learning_rate": 0.001, "weight_decay": 0.004, "beta_1": 0.9, "beta_2": 0.999,
              "epsilon": 1e-07, "amsgrad": False},
}
# Hyper-parameter options: (flag, setting, type or None for an on/off flag).
SETTINGS = [("--lr", "learning_rate", positive_float), ("--momentum", "momentum", float),
            ("--rho", "rho", float), ("--beta-1", "beta_1", float), ("--beta-2", "beta_2", float),
            ("--epsilon", "epsilon", float), ("--weight-decay", "weight_decay", float),
            ("--centered", "centered", None), ("--amsgrad", "amsgrad", None)]


def _settings_help(setting: str) -> str:
    shown = ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                      for name, defaults in DEFAULTS.items() if setting in defaults
                      for value in [defaults[setting]])
    return f"default: {shown}"


def make_optimizer(args: argparse.Namespace):
    """The ``scratch.optim`` optimizer of ``--optimizer`` with the given hyper-parameter options.

    Raises:
        BadInput: an option that optimizer does not take, or a value it refuses, naming the
            option (each value is tried alone on the preset, so the blame is its own).
        ValueError: values that are fine alone and refused together.
    """
    from scratch import optim

    name, preset = OPTIMIZERS[args.optimizer]
    cls = getattr(optim, name)
    accepted = inspect.signature(cls).parameters
    settings = dict(preset)
    for flag, setting, _ in SETTINGS:
        value = getattr(args, setting)
        if value is None:
            continue
        if setting not in accepted:
            raise BadInput(f"{flag} does not apply to --optimizer {args.optimizer} (its "
                             f"settings: {', '.join(accepted)}).")
        try:
            cls(**{**preset, setting: value})
        except ValueError as error:
            raise BadInput(f"argument {flag}: {error}") from None
        settings[setting] = value
    return cls(**settings)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one model (NumPy or TensorFlow) and save its weights as .npz",
        description="Train with the scratch engine (scratch.optim) or the Keras twin (the "
                    "keras.optimizers optimizer of the same settings) from the same initial "
                    "weights and batches; prints the loss and accuracy after each epoch and saves "
                    "the parameters (keyed like the scratch params, usable by both "
                    "implementations). A run that diverges (a loss above "
                    "reports.analysis.fitting.DIVERGENCE_LOSS_FACTOR x the initial test loss, or "
                    "NaN) exits with 1.")
    add_model(parser)
    parser.add_argument("--epochs", type=at_most(MAX_EPOCHS, MAX_EPOCHS_WHY), default=1,
                        help="passes over the data")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd",
                        help="sgd (plain), momentum / nesterov (SGD with momentum), rmsprop, "
                             "adam, adamw; the update rules of docs/optimizers.md (default: sgd)")
    for flag, setting, kind in SETTINGS:
        if kind is None:
            parser.add_argument(flag, dest=setting, action="store_true", default=None,
                                help=f"{setting}=True ({_settings_help(setting)})")
        else:
            parser.add_argument(flag, dest=setting, type=kind, default=None, metavar="X",
                                help=f"{setting} ({_settings_help(setting)})")
    parser.add_argument("--batch-size", type=at_most(MAX_IMAGES, "MNIST's training images"),
                        default=100,
                        help="examples per SGD step")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="the engine's dtype")
    add_seed(parser, "seeds the initial weights and the shuffles")
    parser.add_argument("--impl", choices=["numpy", "tensorflow"], default="numpy",
                        help="numpy: the scratch engine; tensorflow: its Keras twin")
    parser.add_argument("--tf-loop", choices=TF_LOOPS, default="k-step",
                        help=f"with --impl tensorflow: k-step runs up to {MAX_STEPS_PER_CALL} "
                             "steps of an epoch in one compiled call, as "
                             "fit(steps_per_execution=K); per-step one call per step (default: "
                             "k-step; the same history)")
    parser.add_argument("--data", choices=["mnist", "templates"], default="mnist",
                        help=f"mnist, or templates: {TEMPLATES_SIZES['train'][0]} training and "
                             f"{TEMPLATES_SIZES['train'][1]} test images of ten noisy class "
                             "templates (learnable, offline; scratch.data.synthetic)")
    add_no_verify(parser)
    parser.add_argument("--train-size", type=at_most(MAX_IMAGES, "MNIST's training images"),
                        default=None, metavar="N",
                        help="use only the first N training images (default: all)")
    parser.add_argument("--weights", type=Path, default=None, metavar="FILE.npz",
                        help="start from these weights (default: the seed's initial weights)")
    parser.add_argument("--save", type=Path, default=None, metavar="FILE.npz",
                        help="write the trained weights here (default: not saved)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (there is none either when stderr is not a terminal; "
                             "the line of each epoch is printed all the same)")
    parser.set_defaults(func=run)


class Stepping:
    """A trainer (``scratch.train.Trainer``) that calls ``on_step(n)`` after each call of n
    training steps (the progress bar); the wrapped trainer's ``steps_per_call`` is kept, so a
    TensorFlow k-step loop stays one compiled call per group of steps."""

    def __init__(self, trainer, on_step: Callable[[int], object]):
        self.trainer, self.on_step = trainer, on_step
        self.steps_per_call = getattr(trainer, "steps_per_call", 1)

    def train_step(self, x, y) -> float:
        loss = self.trainer.train_step(x, y)
        self.on_step(1)
        return loss

    def train_steps(self, xs, ys):
        losses = self.trainer.train_steps(xs, ys)
        self.on_step(len(losses))
        return losses

    def evaluate(self, x, y) -> tuple[float, float]:
        return self.trainer.evaluate(x, y)


def _epoch_line(record: dict) -> str:
    """The line of one evaluation; the first precedes any step: no training loss yet."""
    train_loss = "-" if record["samples_seen"] == 0 else f"{record['train_loss']:.4f}"
    return (f"epoch {record['epoch']:.2f}  train loss {train_loss}  test loss "
            f"{record['test_loss']:.4f}  test accuracy {record['test_accuracy']:.4f}")


def _show(bar, line: str) -> None:
    """``line`` on stdout at once, above the progress bar."""
    bar.write(line, file=sys.stdout)
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    if args.save is not None:
        check_file(args.save, "--save", WEIGHTS_SUFFIXES)
    with reading("--optimizer"):
        optimizer = make_optimizer(args)
    from scratch import threads

    try:
        threads.policy()  # a malformed thread variable fails here, not at the first step
    except ValueError as error:
        raise BadInput(str(error)) from error

    from tqdm.auto import tqdm

    from reports.analysis.fitting import divergence
    from reports.experiment.datasets import source_data
    from reports.experiment.trainers import make_trainer
    from reports.files.weights import load_weights, save_weights
    from scratch.models import build
    from scratch.train import run as train

    weights = None
    if args.weights is not None:
        with reading("--weights"):
            weights = load_weights(args.weights, build(args.model, dtype=args.dtype).params,
                                   model=args.model)
    if args.model == "tokens":  # padded token sequences (N, 20), whatever --data says
        from scratch.data.tokens import token_sequences

        (x, y), test = token_sequences(TOKENS_TRAIN, 1), token_sequences(TOKENS_TEST, 2)
        source = "token sequences (scratch.data.tokens)"
    else:
        (x, y), test, source = source_data(args.data, args.dtype, not args.no_verify,
                                           TEMPLATES_SIZES["train"])
    if args.train_size is not None:
        if args.train_size > len(x):
            raise BadInput(f"argument --train-size: expected at most the {len(x)} training "
                           f"images of {source}, received {args.train_size}.")
        x, y = x[:args.train_size], y[:args.train_size]
    print(f"data: {source}", flush=True)
    model = build(args.model, seed=args.seed, dtype=args.dtype)
    if weights is not None:
        model.set_params(weights)
    if args.save is not None:  # the weights, and room for the archive's headers
        check_room(args.save.parent, sum(v.nbytes for v in model.params.values()) + 2**16,
                   "--save")
    side = make_trainer(model, args.impl, optimizer, steps_per_call=(
        1 if args.tf_loop == "per-step"
        else min(-(-len(x) // args.batch_size), MAX_STEPS_PER_CALL)))
    steps = args.epochs * -(-len(x) // args.batch_size)
    with tqdm(total=steps, unit="step", disable=True if args.no_progress else None,
              dynamic_ncols=True, leave=False) as bar:  # None: on a terminal only
        history = train(Stepping(side.trainer, bar.update), x, y, epochs=args.epochs,
                        batch_size=args.batch_size, seed=args.seed, eval_every=len(x),
                        eval_sets={"test": test}, on_record=lambda r: _show(bar, _epoch_line(r)))
    diverged = divergence(history.records, history.diverged)
    if diverged is not None:
        print(f"tfparity train: warning: training diverged: {diverged} (the report's rule, "
              "reports.analysis.fitting.divergence); try a smaller --lr", file=sys.stderr)
    if args.save is not None:
        if args.impl == "tensorflow":
            from reference_tf.twin import copy_weights

            copy_weights(side.get_params(), model)
        try:
            path = save_weights(args.save, model.params, args.model, implementation=args.impl,
                                epochs=args.epochs, lr=optimizer.learning_rate,
                                optimizer={"name": args.optimizer, **optimizer.get_config()},
                                seed=args.seed, data=args.data,
                                data_source=source, diverged=diverged,
                                samples_seen=history.records[-1]["samples_seen"])
        except DiskError as error:
            raise DiskError(f"saving the trained weights (--save): {error}") from error
        print(f"weights: {path}")
    return 0 if diverged is None else 1
