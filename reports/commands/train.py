"""``tfparity train MODEL``: train one model with plain SGD in NumPy or TensorFlow and save its
weights, so ``tfparity diff --weights`` can compare exactly the weights where trouble was seen."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scratch.models import MODELS

TEMPLATES_TRAIN, TEMPLATES_TEST = 2000, 500


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train one model (NumPy or TensorFlow) and save its weights as .npz",
        description="Plain SGD with the scratch engine or the Keras twin from the same initial "
                    "weights and batches; prints the loss and accuracy and saves the parameters "
                    "(keyed like the scratch params, usable by both implementations).")
    parser.add_argument("model", choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
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
    from scratch.optim import SGD
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
        if args.impl == "numpy":
            trainer = ScratchTrainer(model, SGD(args.lr))
        else:
            from reference_tf.training import KerasTrainer
            from reference_tf.twin import twin

            keras_model = twin(model)
            trainer = KerasTrainer(keras_model, args.lr)
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
                            epochs=args.epochs, lr=args.lr, seed=args.seed, data=args.data,
                            samples_seen=history.records[-1]["samples_seen"])
        print(f"weights: {path}")
    return 1 if history.diverged else 0
