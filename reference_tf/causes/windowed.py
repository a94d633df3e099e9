"""Conventions of the layers that slide a window or hold a kernel: padding, flips, layouts, ties."""

from __future__ import annotations

from itertools import permutations, product

import numpy as np

from reference_tf.causes import numeric
from reference_tf.causes.registry import Case, Variant, convention

TF_KERNEL = "HWIO"
TIE_WORDS = {"all": "sends the window's gradient to every tied maximum",
             "split": "shares the window's gradient equally among its tied maxima",
             "last": "sends the window's gradient to the last tied maximum"}


def _tf_geometry(case: Case):
    s = case.settings
    return numeric.geometry(case.x.shape[1:3], s["window"], s["strides"], s["padding"])


def windowed_value(case: Case, pads: tuple, kernel: np.ndarray | None = None,
                   pad_value: float = -np.inf, ties: str = "first") -> np.ndarray | None:
    """The case's quantity as TensorFlow computes it with these pads, kernel (conv) and pool
    rules; None for a quantity it does not cover."""
    s, x, dy = case.settings, case.x, case.dy
    out_hw, _ = _tf_geometry(case)
    kernel = case.params.get("kernel") if kernel is None else kernel
    if case.kind == "conv":
        if case.key == "output":
            return numeric.conv2d(x, kernel, s["strides"], pads, out_hw) + case.bias
        if case.key == "input_grad":
            return numeric.conv2d_input_grad(dy, kernel, x.shape, s["strides"], pads)
        if case.key == "grads/kernel":
            return numeric.conv2d_kernel_grad(x, dy, s["window"], s["strides"], pads)
        return None
    if case.key == "output":
        return numeric.max_pool(x, s["window"], s["strides"], pads, out_hw, pad_value)
    if case.key == "input_grad":
        return numeric.max_pool_grad(x, dy, s["window"], s["strides"], pads, pad_value, ties)
    return None


def _axis_splits(size: int, window: int, stride: int) -> list[list[tuple[int, int]]]:
    """The (before, after) paddings of one axis that give TensorFlow's SAME output length,
    grouped by the windows they produce (padding after the last window is never read):
    TensorFlow's group first, then the usual hand-written choices, the symmetric (p, p) with
    p = (k-1)//2, k//2 or ceil(total/2) and the extra pixel before."""
    out, before, after = numeric.same_padding(size, window, stride)
    total = before + after
    splits = [(p, p) for p in ((window - 1) // 2, window // 2, -(-total // 2))]
    splits.append((after, before))
    groups: dict[tuple, list] = {}
    for split in [(before, after), *splits]:
        if numeric.output_size(size, window, stride, *split) == out:
            read = (split[0], max(0, (out - 1) * stride + window - size - split[0]))
            if split not in groups.setdefault(read, []):
                groups[read].append(split)
    return list(groups.values())


def _split_words(tf_split: tuple, group: list) -> str:
    """"(1, 1) instead of TensorFlow's (0, 1): symmetric padding", naming the other splits
    with the same windows."""
    ordered = sorted(group, key=lambda split: split[0] != split[1])
    first = ordered[0]
    words = ("symmetric padding" if first[0] == first[1] else
             "the extra pixel top/left" if first == tf_split[::-1] else "another split")
    same = "" if len(ordered) == 1 else (
        f" (the same windows as {' and '.join(map(str, ordered[1:]))})")
    return f"{first} instead of TensorFlow's {tf_split}: {words}{same}", first


@convention("same_padding_split", kinds=("conv", "pool"),
            keys=("output", "input_grad", "grads/kernel"),
            variant="SAME padding split symmetrically, (p, p) with p = (k-1)//2, k//2 or "
                    "ceil(total/2), or with the odd pixel top/left instead of TensorFlow's "
                    "bottom/right",
            detection="the quantity recomputed with each split that gives TensorFlow's output "
                      "size (splits that read the same windows count as one)")
def same_padding_split(case: Case):
    s = case.settings
    if s["padding"] != "same":
        return
    axes = [_axis_splits(n, k, st) for n, k, st in zip(case.x.shape[1:3], s["window"],
                                                       s["strides"])]
    tf_rows, tf_cols = axes[0][0][0], axes[1][0][0]
    for row_group, col_group in product(*axes):
        if row_group is axes[0][0] and col_group is axes[1][0]:
            continue
        (row_words, rows), (col_words, cols) = (_split_words(tf_rows, row_group),
                                                _split_words(tf_cols, col_group))
        if row_group == col_group and tf_rows == tf_cols:
            what = row_words
        else:
            what = f"rows {row_words}; columns {col_words}"
        value = windowed_value(case, (*rows, *cols))
        if value is not None:
            yield Variant(f"SAME padding is split {what}", value)


def _side_words(axis: str, split: tuple, declared: tuple) -> str:
    """"rows (2, 0) instead of the declared (1, 1): 1 more on top, 1 fewer at the bottom"."""
    sides = {"rows": ("on top", "at the bottom"), "columns": ("on the left", "on the right")}
    moved = split[0] - declared[0]
    more, fewer = sides[axis] if moved > 0 else sides[axis][::-1]
    return (f"{axis} {split} instead of the declared {declared}: {abs(moved)} more {more}, "
            f"{abs(moved)} fewer {fewer}")


@convention("padding_sides", kinds=("conv", "pool"),
            keys=("output", "input_grad", "grads/kernel"),
            variant="padding with the declared total per axis but on other sides (e.g. (2, 0) "
                    "instead of (1, 1): explicit asymmetric padding)",
            detection="the quantity recomputed with every (before, after) split of each axis's "
                      "declared total padding")
def padding_sides(case: Case):
    _, (top, bottom, left, right) = _tf_geometry(case)
    explicit = not isinstance(case.settings["padding"], str)
    rows = [(b, top + bottom - b) for b in range(top + bottom + 1)]
    cols = [(b, left + right - b) for b in range(left + right + 1)]
    for row, col in product(rows, cols):
        if (row, col) == ((top, bottom), (left, right)):
            continue
        words = [_side_words(axis, split, declared)
                 for axis, split, declared in (("rows", row, (top, bottom)),
                                               ("columns", col, (left, right)))
                 if split != declared]
        value = windowed_value(case, (*row, *col), pad_value=0.0 if explicit else -np.inf)
        if value is not None:
            yield Variant(f"the layer pads {'; '.join(words)}", value)


@convention("pool_padding_value", kinds=("pool",), keys=("output", "input_grad"),
            variant="max-pool SAME padding filled with 0 instead of -inf",
            detection="the pool recomputed on an input padded with zeros (a padded zero can "
                      "be a window's maximum and take its gradient)")
def pool_padding_value(case: Case):
    _, pads = _tf_geometry(case)
    if any(pads):
        yield Variant("the max-pool's SAME padding holds 0 instead of TensorFlow's -inf",
                      windowed_value(case, pads, pad_value=0.0))


@convention("kernel_flip", kinds=("conv",), keys=("output", "input_grad", "grads/kernel"),
            variant="convolution instead of correlation in the forward pass, dL/dx "
                    "correlated with the kernel without its 180-degree flip, or dL/dkernel of a "
                    "true convolution",
            detection="the quantity recomputed with the kernel flipped in both spatial axes; "
                      "for dL/dkernel, TensorFlow's gradient flipped")
def kernel_flip(case: Case):
    _, pads = _tf_geometry(case)
    if case.key == "grads/kernel":
        yield Variant("dL/dkernel is that of a true convolution (flipped by 180 degrees) instead "
                      "of TensorFlow's cross-correlation", np.asarray(case.reference)[::-1, ::-1])
        return
    flipped = case.params["kernel"][::-1, ::-1]
    if case.key == "output":
        detail = ("the forward pass convolves (kernel flipped by 180 degrees) instead of "
                  "TensorFlow's correlation")
    else:
        detail = ("dL/dx correlates dy with the kernel as it is instead of flipped by 180 "
                  "degrees")
    yield Variant(detail, windowed_value(case, pads, kernel=flipped))


def _conv_kernel_readings(kernel: np.ndarray):
    """(words, kernel the code computes with, gradient map) for every way of reading an HWIO
    buffer in another layout: transposed as if it were that layout (same shape only), or its
    memory reshaped as that layout and then transposed (what ``reshape`` instead of
    ``transpose`` does). The map turns TensorFlow's kernel gradient into the one such code
    returns for the buffer."""
    shape = kernel.shape
    for layout in map("".join, permutations(TF_KERNEL)):
        if layout == TF_KERNEL:
            continue
        to_tf = [layout.index(c) for c in TF_KERNEL]
        back = list(np.argsort(to_tf))
        if tuple(shape[a] for a in to_tf) == shape:
            yield (f"the {TF_KERNEL} kernel is indexed as {layout} (axes transposed)",
                   kernel.transpose(to_tf), lambda g, back=back: g.transpose(back))
        dims = tuple(shape[TF_KERNEL.index(c)] for c in layout)
        yield (f"the kernel's memory is read as {layout} instead of TensorFlow's {TF_KERNEL} "
               "(a reshape where a transpose was needed)",
               kernel.reshape(dims).transpose(to_tf),
               lambda g, back=back: g.transpose(back).reshape(shape))


def _dense_kernel_readings(kernel: np.ndarray):
    """As ``_conv_kernel_readings`` for a dense kernel (in, out) read as (out, in)."""
    n_in, n_out = kernel.shape
    if n_in == n_out:
        yield ("the (in, out) kernel is used as (out, in) (transposed)", kernel.T,
               lambda g: g.T)
    yield ("the kernel's memory is read as (out, in) instead of TensorFlow's (in, out) "
           "(a reshape where a transpose was needed)", kernel.reshape(n_out, n_in).T,
           lambda g: g.T.reshape(n_in, n_out))


@convention("kernel_layout", kinds=("conv", "dense"),
            keys=("output", "input_grad", "grads/kernel"),
            variant="kernel in another layout: HWIO indexed or reshaped as OIHW, HWOI, ... "
                    "(conv), (out, in) instead of (in, out) (dense)",
            detection="the quantity recomputed with each reading of the kernel buffer; for "
                      "dL/dkernel, TensorFlow's gradient mapped back onto the buffer")
def kernel_layout(case: Case):
    kernel = case.params["kernel"]
    if case.kind == "conv":
        _, pads = _tf_geometry(case)
        seen = {np.ascontiguousarray(kernel).tobytes()}  # a reading that changes nothing
        for words, used, grad_map in _conv_kernel_readings(kernel):
            if np.ascontiguousarray(used).tobytes() in seen:
                continue
            seen.add(np.ascontiguousarray(used).tobytes())
            value = (grad_map(case.reference) if case.key == "grads/kernel"
                     else windowed_value(case, pads, kernel=used))
            yield Variant(words, value)
        return
    order = case.settings.get("flatten", "HWC")
    x = numeric.flatten(case.x, order)
    for words, used, grad_map in _dense_kernel_readings(kernel):
        if case.key == "output":
            value = x @ used + case.bias
        elif case.key == "input_grad":
            value = numeric.unflatten(case.dy @ used.T, case.x.shape, order)
        else:
            value = grad_map(case.reference)
        yield Variant(words, value)


@convention("pool_tie_routing", kinds=("pool",), keys=("input_grad",),
            variant="max-pool gradient to every tied maximum, split equally among them, or to "
                    "the last maximum instead of TensorFlow's first (row-major)",
            detection="dL/dx recomputed with each tie rule on TensorFlow's input (ties are "
                      "exact there)")
def pool_tie_routing(case: Case):
    _, pads = _tf_geometry(case)
    for ties, words in TIE_WORDS.items():
        yield Variant(f"the max-pool {words} instead of TensorFlow's first maximum (row-major)",
                      windowed_value(case, pads, ties=ties))
