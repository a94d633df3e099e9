"""``tfparity train MODEL``: train one model with one of Keras's optimizers in NumPy or
TensorFlow and save its weights, so ``tfparity diff --weights`` can compare exactly the weights
where trouble was seen."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from scratch import optim
from scratch.models import MODELS

TEMPLATES_TRAIN, TEMPLATES_TEST = 2000, 500

# --optimizer NAME -> (scratch optimizer class, settings that differ from its Keras defaults).
# Plain SGD keeps the course's rate 0.1 (Keras's default is 0.01).
OPTIMIZERS = {
    "sgd": (optim.SGD, {"learning_rate": 0.1}),
    "momentum": (optim.SGD, {"momentum": 0.9}),
    "nesterov": (optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "rmsprop": (optim.RMSprop, {}),
    "adam": (optim.Adam, {}),
    "adamw": (optim.AdamW, {}),
}
# Hyper-parameter options: (flag, setting, type or None for an on/off flag).
SETTINGS = [("--lr", "learning_rate", float), ("--momentum", "momentum", float),
            ("--rho", "rho", float), ("--beta-1", "beta_1", float), ("--beta-2", "beta_2", float),
            ("--epsilon", "epsilon", float), ("--weight-decay", "weight_decay", float),
            ("--centered", "centered", None), ("--amsgrad", "amsgrad", None)]


def _defaults(name: str) -> dict:
    """Every setting of ``--optimizer name`` when no option overrides it."""
    cls, preset = OPTIMIZERS[name]
    return cls(**preset).get_config()


def _settings_help(setting: str) -> str:
    defaults = {name: _defaults(name).get(setting) for name in OPTIMIZERS}
    shown = ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                      for name, value in defaults.items() if setting in _defaults(name))
    return f"default: {shown}"


def make_optimizer(args: argparse.Namespace) -> optim.Optimizer:
    """The optimizer of ``--optimizer`` with the given hyper-parameter options (ValueError for
    an option that optimizer does not take, naming it)."""
    cls, preset = OPTIMIZERS[args.optimizer]
    accepted = inspect.signature(cls).parameters
    settings = dict(preset)
    for flag, setting, _ in SETTINGS:
        value = getattr(args, setting)
        if value is None:
            continue
        if setting not in accepted:
            raise ValueError(f"{flag} does not apply to --optimizer {args.optimizer} (its "
                             f"settings: {', '.join(accepted)}).")
        settings[setting] = value
    return cls(**settings)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one model (NumPy or TensorFlow) and save its weights as .npz",
        description="Train with the scratch engine (scratch.optim) or the Keras twin (the "
                    "keras.optimizers optimizer of the same settings) from the same initial "
                    "weights and batches; prints the loss and accuracy and saves the parameters "
                    "(keyed like the scratch params, usable by both implementations).")
    parser.add_argument("model", choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=1)
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
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and shuffles")
    parser.add_argument("--impl", choices=["numpy", "tensorflow"], default="numpy")
    parser.add_argument("--data", choices=["mnist", "templates"], default="mnist",
                        help=f"mnist (default) or templates: {TEMPLATES_TRAIN} training and "
                             f"{TEMPLATES_TEST} test images of ten noisy class templates "
                             "(learnable, offline; scratch.data.synthetic)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--weights", type=Path, default=None, help="start from this .npz")
    parser.add_argument("--save", type=Path, default=None, help="write the trained weights here")
    parser.set_defaults(func=run)


def _data(source: str, dtype: str):
    if source == "templates":
        from scratch.data.synthetic import templates

        return templates(TEMPLATES_TRAIN, 1, dtype), templates(TEMPLATES_TEST, 2, dtype)
    from scratch.data import load_mnist

    splits = load_mnist(dtype=dtype)
    return splits.train, splits.test


def run(args: argparse.Namespace) -> int:
    from reports.weights import load_weights, save_weights
    from scratch.models import build
    from scratch.train import ScratchTrainer, run as train

    try:
        weights = None
        if args.weights is not None:
            weights = load_weights(args.weights, build(args.model, dtype=args.dtype).params,
                                   model=args.model)
        model = build(args.model, seed=args.seed, dtype=args.dtype)
        if weights is not None:
            model.set_params(weights)
        (x, y), test = _data(args.data, args.dtype)
        x, y = x[:args.train_size], y[:args.train_size]
        optimizer = make_optimizer(args)
        if args.impl == "numpy":
            trainer = ScratchTrainer(model, optimizer)
        else:
            from reference_tf.training import KerasTrainer
            from reference_tf.twin import twin

            keras_model = twin(model)
            trainer = KerasTrainer(keras_model, optimizer)
        history = train(trainer, x, y, epochs=args.epochs, batch_size=args.batch_size,
                        seed=args.seed, eval_every=len(x), eval_sets={"test": test})
    except ValueError as error:
        print(f"tfparity train: {error}", file=sys.stderr)
        return 2
    for record in history.records:  # the first record precedes any step: no training loss yet
        train_loss = "-" if record["samples_seen"] == 0 else f"{record['train_loss']:.4f}"
        print(f"epoch {record['epoch']:.2f}  train loss {train_loss}  test loss "
              f"{record['test_loss']:.4f}  test accuracy {record['test_accuracy']:.4f}")
    if history.diverged:
        print("tfparity train: the loss became non-finite; training stopped", file=sys.stderr)
    if args.save is not None:
        if args.impl == "tensorflow":
            from reference_tf.twin import copy_weights

            copy_weights(keras_model, model)
        path = save_weights(args.save, model.params, args.model, implementation=args.impl,
                            epochs=args.epochs, lr=optimizer.learning_rate,
                            optimizer={"name": args.optimizer, **optimizer.get_config()},
                            seed=args.seed, data=args.data,
                            samples_seen=history.records[-1]["samples_seen"])
        print(f"weights: {path}")
    return 1 if history.diverged else 0
