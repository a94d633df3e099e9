"""The seeded batches that ``check`` and ``diff`` compare on (NumPy only, no TensorFlow)."""

from __future__ import annotations

import numpy as np

from scratch.data.mnist import IMAGE_SHAPE
from scratch.data.synthetic import strokes
from scratch.data.tokens import token_sequences

DATA_SOURCES = ("strokes", "mnist")
MNIST_SHAPE = IMAGE_SHAPE


def load_batch(data: str, batch_size: int, seed: int, dtype: str,
               verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch: images (N, 28, 28, 1) of ``dtype`` and labels (N,) int64.

    "strokes": digit-like images on exact zeros with uniform random labels
    (``scratch.data.synthetic.strokes``); their zero regions give max-pool ties and exact-zero
    pre-activations, where conventions differ. "mnist": ``batch_size`` training images drawn
    with ``seed`` (``verify``: check the files' SHA-256, see ``scratch.data.load_mnist``).
    """
    if batch_size < 1:
        raise ValueError(f"batch: expected batch_size >= 1, received {batch_size}.")
    if data == "strokes":
        return strokes(batch_size, seed, dtype)
    if data == "mnist":
        from scratch.data import load_mnist

        x, y = load_mnist(dtype=dtype, verify=verify).train
        index = np.sort(np.random.default_rng(seed).choice(len(x), size=batch_size, replace=False))
        return np.ascontiguousarray(x[index]), np.asarray(y[index], dtype=np.int64)
    raise ValueError(f"batch: expected data in {DATA_SOURCES}, received {data!r}.")


def token_batch(model, data: str, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch of padded token sequences (``scratch.data.tokens``) for a model whose
    first layer takes indices: tokens (N, T) int64 cut or padded with 0 to the model's T, and
    their labels. Drawn for --data strokes (the synthetic data of check and diff)."""
    if data != "strokes":
        raise ValueError(f"batch: the model reads token sequences; their synthetic batches come "
                         f"with --data strokes, received --data {data}.")
    if batch_size < 1:
        raise ValueError(f"batch: expected batch_size >= 1, received {batch_size}.")
    x, y = token_sequences(batch_size, seed)
    steps = model.input_shape[0]
    x = np.pad(x, ((0, 0), (0, max(steps - x.shape[1], 0))))[:, :steps]
    return np.minimum(x, model.layers[0].input_dim - 1), y % model.num_classes


def caption_batch(model, data: str, batch_size: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch of captions for a model with a per-step loss (``own.SequenceLoss``), as
    CS231n's captioning model reads them: captions (N, T + 1) of words in [1, V) after a start
    word, each ended at a random length in [1, T] and padded with 0; the input is the captions
    without their last word (N, T), the labels (N, T) without their first (0 = padding, masked
    in the loss). V is the smaller of the vocabulary and the number of classes."""
    if data != "strokes":
        raise ValueError(f"batch: the model reads captions; their synthetic batches come with "
                         f"--data strokes, received --data {data}.")
    if batch_size < 1:
        raise ValueError(f"batch: expected batch_size >= 1, received {batch_size}.")
    steps, rng = model.input_shape[0], np.random.default_rng(seed)
    words = min(model.layers[0].input_dim, model.num_classes)
    captions = rng.integers(1, max(words, 2), size=(batch_size, steps + 1))
    lengths = rng.integers(1, steps + 1, size=(batch_size, 1))
    captions[:, 1:][np.arange(steps) >= lengths] = 0
    return captions[:, :-1].astype(np.int64), captions[:, 1:].astype(np.int64)


def model_batch(model, data: str, batch_size: int, seed: int, verify: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """``load_batch`` for any model, in the model's own input layout (``model.images``, e.g.
    NCHW) and dtype, labels in [0, model.num_classes); ``verify`` as in ``load_batch``.

    MNIST needs 28x28x1 images. "strokes" also draws other image shapes (H, W, C), one stroke
    image per channel cut from a square of side max(H, W), and flat inputs (F,) as the first F
    pixels of flattened square stroke images, and sequences (T, D) as the first T rows and D
    columns of square stroke images.
    """
    dtype = model.dtype.name
    if getattr(getattr(model, "loss", None), "per_step", False):
        return caption_batch(model, data, batch_size, seed)
    if model.layers[0].takes_indices:
        return token_batch(model, data, batch_size, seed)
    shape = tuple(getattr(model, "image_shape", model.input_shape))
    if shape == MNIST_SHAPE or data == "mnist":
        if shape != MNIST_SHAPE:
            raise ValueError(f"batch: --data mnist needs per-example inputs of 28x28x1 images, "
                             f"the model takes {model.input_shape}.")
        x, y = load_batch(data, batch_size, seed, dtype, verify)
    elif data != "strokes":
        raise ValueError(f"batch: expected data in {DATA_SOURCES}, received {data!r}.")
    elif batch_size < 1:
        raise ValueError(f"batch: expected batch_size >= 1, received {batch_size}.")
    elif len(shape) == 3:
        h, w, c = shape
        images, _ = strokes(batch_size * c, seed, dtype, size=max(h, w))
        x = np.ascontiguousarray(images[:, :h, :w, 0].reshape(batch_size, c, h, w)
                                 .transpose(0, 2, 3, 1))
    elif len(shape) == 2:  # sequences (T, D): the rows of stroke images as time steps
        steps, features = shape
        images, _ = strokes(batch_size, seed, dtype, size=max(steps, features))
        x = np.ascontiguousarray(images[:, :steps, :features, 0])
    elif len(shape) == 1:
        side = int(np.ceil(np.sqrt(shape[0])))
        x = np.ascontiguousarray(strokes(batch_size, seed, dtype, size=side)[0]
                                 .reshape(batch_size, -1)[:, :shape[0]])
    else:
        raise ValueError(f"batch: expected per-example inputs of rank 1, 2 or 3, the model takes "
                         f"{model.input_shape}.")
    if model.num_classes != 10 or shape != MNIST_SHAPE:
        y = np.random.default_rng(seed).integers(0, model.num_classes, batch_size)
    images = getattr(model, "images", None)
    return (images(x) if images is not None else x), np.asarray(y, dtype=np.int64)
