"""The cause catalog (``reference_tf.causes``) names each planted convention, in both dtypes and
at the right layer, and names nothing where no convention is at work: planted bugs that are no
convention, and clean models over many seeds on strokes and MNIST."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from reference_tf import causes, own
from reference_tf.batches import model_batch
from reference_tf.causes import cases as cases_module
from reference_tf.causes.optim import update_conventions
from reference_tf.compare import tolerance_for
from reference_tf.display import cause_line
from reference_tf.finite_diff import third_opinion
from reference_tf.layerdiff import diff
from reference_tf.testing import assert_layer_parity, assert_model_parity
from reference_tf.twin import copy_state, copy_weights, twin
from reports.cli import main
from reports.render.layerdiff_text import render
from scratch.data import load_mnist
from scratch.data.synthetic import strokes
from scratch.layers import Conv2D
from scratch.models import IMAGE_MODELS, build

from helpers import DTYPES
from norm_plants import NORM_PLANTS
from own_network_helpers import (
    BUGS,
    STYLES,
    cs231n_affine_grads_mean_twice,
    cs231n_affine_reads_w_transposed,
    cs231n_conv_float32_out,
    cs231n_conv_pads_rows_2_0,
    cs231n_loss_label_smoothing,
    example,
    object_conv_reads_w_as_oihw,
    object_linear_declared_in_out,
    object_linear_grads_summed,
    object_loss_log_of_softmax_plus_eps,
    object_zero_padded_pool,
    plant,
)
from own_sequence_helpers import SEQUENCE_CAUSES
from planted import (
    odd_model,
    plant_conv_bias_grad_nchw_axes,
    plant_conv_forward_flipped,
    plant_conv_input_grad_channel_sign,
    plant_conv_kernel_grad_scaled,
    plant_conv_kernel_read_as_oihw,
    plant_conv_no_flip,
    plant_dense_bias_wrong_axis,
    plant_dense_grads_mean_twice,
    plant_dense_kernel_out_in,
    plant_flatten_nchw,
    plant_loss_label_smoothing,
    plant_loss_log_of_softmax_plus_eps,
    plant_loss_missing_mean,
    plant_loss_sum_instead_of_mean,
    plant_pool_pads_zero,
    plant_pool_split_ties,
    plant_relu_other_dtype,
    plant_relu_passes_at_zero,
    plant_relu_writes_dy,
    plant_relu_writes_x,
    plant_same_padding_all_on_top,
    plant_same_padding_extra_on_top,
    plant_same_padding_symmetric,
    pool_first_model,
)

ROOT = Path(__file__).resolve().parents[1]
CUSTOM = {"odd": odd_model, "pool_first": pool_first_model}
KINKS = ("pool_tie_routing", "relu_grad_at_zero")


class Planted:
    """A planted bug, the model it shows in, where diff must place it (layer, pass, quantity
    key), the cause id it must name (None: no convention explains it), and the dtypes where it
    diverges at all."""

    def __init__(self, plant, model, where, cause, dtypes=tuple(DTYPES)):
        self.plant, self.model, self.where, self.cause, self.dtypes = (plant, model, where,
                                                                       cause, dtypes)


CONVENTION_BUGS = {
    "same_padding_extra_on_top": Planted(plant_same_padding_extra_on_top, "odd",
                                         ("conv2d", "forward", "output"), "same_padding_split"),
    "same_padding_all_on_top": Planted(plant_same_padding_all_on_top, "cnn",
                                       ("conv1", "forward", "output"), "padding_sides"),
    "same_padding_symmetric": Planted(plant_same_padding_symmetric, "odd",
                                      ("conv2d", "forward", "output"), "same_padding_split"),
    "pool_same_padding_symmetric": Planted(plant_same_padding_symmetric, "pool_first",
                                           ("max_pool2d", "forward", "output"),
                                           "same_padding_split"),
    "pool_pads_zero": Planted(plant_pool_pads_zero, "pool_first",
                              ("max_pool2d", "forward", "output"), "pool_padding_value"),
    "conv_no_flip": Planted(plant_conv_no_flip, "cnn", ("conv2", "backward", "input_grad"),
                            "kernel_flip"),
    "conv_forward_flipped": Planted(plant_conv_forward_flipped, "cnn",
                                    ("conv1", "forward", "output"), "kernel_flip"),
    "conv_kernel_read_as_oihw": Planted(plant_conv_kernel_read_as_oihw, "cnn",
                                        ("conv1", "forward", "output"), "kernel_layout"),
    "dense_kernel_out_in": Planted(plant_dense_kernel_out_in, "mlp1",
                                   ("hidden1", "forward", "output"), "kernel_layout"),
    "flatten_nchw": Planted(plant_flatten_nchw, "cnn", ("flatten", "forward", "output"),
                            "flatten_order"),
    "pool_split_ties": Planted(plant_pool_split_ties, "cnn", ("pool2", "backward", "input_grad"),
                               "pool_tie_routing"),
    "relu_passes_at_zero": Planted(plant_relu_passes_at_zero, "cnn",
                                   ("conv2_relu", "backward", "input_grad"), "relu_grad_at_zero"),
    "loss_sum_instead_of_mean": Planted(plant_loss_sum_instead_of_mean, "mlp1",
                                        ("loss", "forward", "output"), "loss_reduction"),
    "loss_missing_mean": Planted(plant_loss_missing_mean, "mlp1",
                                 ("loss", "backward", "input_grad"), "loss_reduction"),
    "loss_label_smoothing": Planted(plant_loss_label_smoothing, "mlp1",
                                    ("loss", "forward", "output"), "loss_clipping"),
    # 1e-7 next to probabilities of about 0.1 moves the loss by about 1e-6: a float64
    # divergence only, below float32's tolerance.
    "loss_log_of_softmax_plus_eps": Planted(plant_loss_log_of_softmax_plus_eps, "mlp1",
                                            ("loss", "forward", "output"), "loss_clipping",
                                            ("float64",)),
    "conv_bias_grad_nchw_axes": Planted(plant_conv_bias_grad_nchw_axes, "cnn",
                                        ("conv2", "backward", "grads/bias"), "bias_grad_axis"),
    "dense_grads_mean_twice": Planted(plant_dense_grads_mean_twice, "mlp1",
                                      ("logits", "backward", "grads/kernel"),
                                      "batch_mean_missing"),
    "relu_other_dtype": Planted(plant_relu_other_dtype, "mlp1",
                                ("hidden1_relu", "forward", "output"), "dtype_drift"),
    "relu_writes_dy": Planted(plant_relu_writes_dy, "cnn",
                              ("hidden1_relu", "backward", "output_grad"), "in_place_mutation"),
    "relu_writes_x": Planted(plant_relu_writes_x, "cnn", ("conv1_relu", "forward", "input"),
                             "in_place_mutation"),
}

OTHER_BUGS = {
    "conv_kernel_grad_scaled": Planted(plant_conv_kernel_grad_scaled, "cnn",
                                       ("conv2", "backward", "grads/kernel"), None),
    "conv_input_grad_channel_sign": Planted(plant_conv_input_grad_channel_sign, "cnn",
                                            ("conv2", "backward", "input_grad"), None),
}


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Every array here is small: one BLAS thread is faster, and much faster on a busy machine
    (``scratch/threads.py``)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_diff(model: str, dtype: str, tmp_path, fd: bool) -> dict:
    """``tfparity diff --json`` for a built-in model, the same in process for a custom one."""
    if model in CUSTOM:
        net = CUSTOM[model](dtype)
        x, y = strokes(8, seed=1, dtype=dtype, size=15)
        result = diff(net, x, y, name=model)
        if fd:
            result.opinion = third_opinion(result)
        return result.to_dict() | {"text": render(result)}
    path = tmp_path / "diff.json"
    code = main(["diff", model, "--dtype", dtype, "--batch-size", "8", "--json", str(path),
                 *([] if fd else ["--no-fd"])])
    result = json.loads(path.read_text())
    assert code == (0 if result["passed"] else 1)
    return result


def cases(table: dict) -> list:
    return [pytest.param(name, dtype, id=f"{name}-{dtype}")
            for name, bug in sorted(table.items()) for dtype in DTYPES]


@pytest.mark.parametrize("name, dtype", cases(CONVENTION_BUGS))
def test_planted_convention_is_named(name, dtype, monkeypatch, tmp_path):
    bug = CONVENTION_BUGS[name]
    bug.plant(monkeypatch)
    kink = bug.cause in KINKS
    result = run_diff(bug.model, dtype, tmp_path, fd=kink)
    first = result["first_divergence"]
    if dtype not in bug.dtypes:
        assert first is None and result["passed"], first
        return
    assert (first["layer"], first["pass"], first["key"]) == bug.where, first
    assert first["cause"]["id"] == bug.cause, first
    assert first["cause"]["residual"] <= tolerance_for(bug.where[2], dtype), first
    named = [(layer["name"], q["key"]) for layer in result["layers"] for q in layer["quantities"]
             if q["cause"] is not None and q["cause"]["id"] != bug.cause]
    assert not named, f"other causes named: {named}"
    if kink:  # finite differences cannot referee a kink; the cause names the convention
        assert result["third_opinion"]["verdict"] == "kink", result["third_opinion"]


@pytest.mark.parametrize("name, dtype", cases(OTHER_BUGS))
def test_planted_bug_that_is_no_convention_names_no_cause(name, dtype, monkeypatch, tmp_path):
    bug = OTHER_BUGS[name]
    bug.plant(monkeypatch)
    result = run_diff(bug.model, dtype, tmp_path, fd=False)
    first = result["first_divergence"]
    assert (first["layer"], first["pass"], first["key"]) == bug.where, first
    assert first["cause"] is None and first["causes_tried"], first
    causes_named = [q["cause"] for layer in result["layers"] for q in layer["quantities"]
                    if q["cause"] is not None]
    assert not causes_named, causes_named


@pytest.mark.parametrize("dtype", DTYPES)
def test_variant_that_cancels_to_rounding_names_nothing(dtype, monkeypatch, tmp_path):
    # Summed over the units, dL/dlogits cancels to rounding (each row of softmax - onehot sums
    # to 0), which no comparison can tell from a zero gradient: the logits layer's bias gets no
    # cause, the hidden layer's (same bug, a dL/dy that does not cancel) gets bias_grad_axis.
    plant_dense_bias_wrong_axis(monkeypatch)
    result = run_diff("mlp1", dtype, tmp_path, fd=False)
    first = result["first_divergence"]
    assert (first["layer"], first["key"], first["cause"]) == ("logits", "grads/bias", None)
    hidden = next(layer for layer in result["layers"] if layer["name"] == "hidden1")
    bias = next(q for q in hidden["quantities"] if q["key"] == "grads/bias")
    assert bias["cause"]["id"] == "bias_grad_axis", bias["cause"]


# User-style layers (``reference_tf.own``, the two libraries of examples/own_network): each
# planted convention, by style, (the bug's planter or own_network_helpers.BUGS name, where diff
# must place it, the cause, the dtypes it shows in).
USER_BUGS = {
    **{(style, name): (name, BUGS[name].expected[style], cause, tuple(DTYPES))
       for style in STYLES
       for name, cause in [("relu_gradient_at_zero", "relu_grad_at_zero"),
                           ("pool_gradient_to_every_tie", "pool_tie_routing"),
                           ("backward_writes_into_dy", "in_place_mutation"),
                           ("nchw_flatten_nhwc_weights", "flatten_order"),
                           ("loss_summed_over_batch", "loss_reduction"),
                           ("symmetric_pad_declared_same_at_stride_2", "same_padding_split"),
                           ("input_gradient_without_kernel_flip", "kernel_flip")]},
    ("cs231n", "float64_from_float32_model"): (
        "float64_from_float32_model", ("conv1", "forward", "output"), "dtype_drift",
        ("float32",)),
    ("cs231n", "conv_float32_out"): (cs231n_conv_float32_out, ("conv1", "forward", "output"),
                                     "dtype_drift", ("float64",)),
    ("cs231n", "affine_reads_w_transposed"): (cs231n_affine_reads_w_transposed,
                                              ("fc1", "forward", "output"), "kernel_layout",
                                              tuple(DTYPES)),
    ("object", "conv_reads_w_as_oihw"): (object_conv_reads_w_as_oihw,
                                         ("conv1", "forward", "output"), "kernel_layout",
                                         tuple(DTYPES)),
    ("cs231n", "affine_grads_mean_twice"): (cs231n_affine_grads_mean_twice,
                                            ("scores", "backward", "grads/w"),
                                            "batch_mean_missing", tuple(DTYPES)),
    ("object", "linear_grads_summed"): (object_linear_grads_summed,
                                        ("logits", "backward", "grads/W"), "batch_mean_missing",
                                        tuple(DTYPES)),
    ("cs231n", "loss_label_smoothing"): (cs231n_loss_label_smoothing,
                                         ("loss", "forward", "output"), "loss_clipping",
                                         tuple(DTYPES)),
    ("object", "loss_log_of_softmax_plus_eps"): (object_loss_log_of_softmax_plus_eps,
                                                 ("loss", "forward", "output"), "loss_clipping",
                                                 ("float64",)),
    ("cs231n", "conv_pads_rows_2_0"): (cs231n_conv_pads_rows_2_0,
                                       ("conv1", "forward", "output"), "padding_sides",
                                       tuple(DTYPES)),
    ("object", "linear_declared_in_out"): (object_linear_declared_in_out,
                                           ("fc1", "forward", "output"), "kernel_declaration",
                                           tuple(DTYPES)),
    ("object", "zero_padded_pool"): (None, ("pool1", "forward", "output"), "pool_padding_value",
                                     tuple(DTYPES)),
}


def user_diff(style: str, name: str, dtype: str, monkeypatch) -> dict:
    """The diff of the planted example (4 strokes images in its own layout), as JSON."""
    planter = USER_BUGS[style, name][0]
    module = example(style)
    if name == "zero_padded_pool":
        model = object_zero_padded_pool(module, dtype)
    else:
        if isinstance(planter, str):
            plant(planter, style, monkeypatch)
        else:
            planter(monkeypatch, module)
        model = module.build()
        model = own.Model(model.layers, model.input_shape, loss=model.loss,
                          conventions=model.conventions, seed=model.seed, dtype=dtype)
    x, y = model_batch(model, "strokes", 4, 0)
    result = diff(model, x, y, name=f"{style} example")
    if USER_BUGS[style, name][2] in KINKS:
        result.opinion = third_opinion(result)
    return result.to_dict()


@pytest.mark.parametrize("style, name, dtype",
                         [pytest.param(style, name, dtype, id=f"{style}-{name}-{dtype}")
                          for style, name in sorted(USER_BUGS) for dtype in DTYPES])
def test_planted_convention_in_user_layers_is_named(style, name, dtype, monkeypatch):
    _, where, cause, dtypes = USER_BUGS[style, name]
    result = user_diff(style, name, dtype, monkeypatch)
    first = result["first_divergence"]
    if dtype not in dtypes:
        assert first is None and result["passed"], first
        return
    assert (first["layer"], first["pass"], first["key"]) == where, first
    assert first["cause"] is not None and first["cause"]["id"] == cause, first
    if cause in KINKS:
        assert result["third_opinion"]["verdict"] == "kink", result["third_opinion"]


def test_user_layer_exception_names_no_cause(monkeypatch):
    result = user_diff_of_bug("cs231n", "exception_in_backward", monkeypatch)
    first = result["first_divergence"]
    assert first["fault"]["fatal"] and first["cause"] is None, first


def user_diff_of_bug(style: str, bug: str, monkeypatch) -> dict:
    plant(bug, style, monkeypatch)
    model = example(style).build()
    x, y = model_batch(model, "strokes", 4, 0)
    return diff(model, x, y).to_dict()


def test_every_convention_has_a_planted_test():
    ids = set(causes.CONVENTIONS)
    # The optimizer conventions are planted in the trajectory test: test_optim_causes.py, which
    # checks that each has its planted test.
    optimizer_ids = set(update_conventions())
    # kernel_declaration runs a user layer under another declaration: user layers only; the
    # sequence conventions are planted in test_own_sequence.py (own_sequence_helpers.PLANTS),
    # the normalization and dropout ones in test_own_network_normalization.py.
    norm_ids = {plant.cause for plant in NORM_PLANTS.values() if plant.cause}
    assert ({bug.cause for bug in CONVENTION_BUGS.values()} | optimizer_ids
            | {"kernel_declaration"} | SEQUENCE_CAUSES | norm_ids) == ids
    # A user layer's bias gradient summed over other axes has another shape, which
    # reference_tf.own reports as a fatal fault before any value is compared.
    layer_ids = ids - optimizer_ids - SEQUENCE_CAUSES
    planted = {cause for _, _, cause, _ in USER_BUGS.values()} | norm_ids
    assert planted == layer_ids - {"bias_grad_axis"}


def test_cause_in_sentence_table_title_and_json(monkeypatch):
    plant_same_padding_symmetric(monkeypatch)
    x, y = strokes(4, seed=1, dtype="float64", size=15)
    result = diff(odd_model(), x, y)
    text = render(result)
    assert re.search(r"; it matches TensorFlow to \de[-+]\d\d when SAME padding is split \(2, 2\) "
                     r"instead of TensorFlow's \(1, 2\): symmetric padding \(the same windows as "
                     r"\(2, 1\)\) \(cause: same_padding_split\)", text), text
    header = next(line for line in text.splitlines() if line.startswith("layer"))
    assert header.split()[-1] == "cause"
    row = next(line for line in text.splitlines() if line.startswith("conv2d "))
    assert row.endswith("OWN ERROR  same_padding_split"), row
    assert cause_line(result).startswith("cause: same_padding_split, matches TensorFlow to ")
    cause = result.to_dict()["first_divergence"]["cause"]
    assert set(cause) == {"id", "detail", "residual"} and cause["id"] == "same_padding_split"


def test_no_cause_is_said_in_the_sentence(monkeypatch):
    plant_conv_kernel_grad_scaled(monkeypatch)
    model = build("cnn", dtype="float64")
    x, y = strokes(4, dtype="float64")
    text = render(diff(model, x, y))
    assert ("no known convention explains it (tried: same_padding_split, padding_sides, "
            "kernel_flip, kernel_layout, batch_mean_missing, in_place_mutation, dtype_drift)"
            ) in text, text


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_parity_failure_names_the_cause(dtype, monkeypatch):
    plant_same_padding_extra_on_top(monkeypatch)
    with pytest.raises(AssertionError) as info:
        assert_layer_parity(Conv2D(2, 3, strides=2, padding="same"), None, (2, 8, 8, 1), dtype)
    lines = [line for line in str(info.value).splitlines() if line.startswith("cause of ")]
    assert [line.split(":")[0] for line in lines] == [
        "cause of output", "cause of input_grad", "cause of grads/kernel"], lines
    assert all(line.endswith("(cause: same_padding_split)") for line in lines), lines


def test_layer_without_bias_gets_its_cause(monkeypatch):
    plant_conv_forward_flipped(monkeypatch)
    with pytest.raises(AssertionError, match=r"cause of output: .*\(cause: kernel_flip\)"):
        assert_layer_parity(Conv2D(2, 3, use_bias=False), None, (2, 6, 6, 2), "float64")


def test_model_parity_failure_names_the_cause(monkeypatch):
    plant_flatten_nchw(monkeypatch)
    model = build("cnn", dtype="float64")
    x, y = strokes(4, dtype="float64")
    with pytest.raises(AssertionError) as info:
        assert_model_parity(model, x, y)
    last = str(info.value).splitlines()[-1]
    assert re.match(r"first divergence: layer 'flatten' \(Flatten\), forward pass, y; it matches "
                    r"TensorFlow to \de[-+]\d\d when features are flattened in \(C, H, W\)", last)
    assert last.endswith("(cause: flatten_order)"), last


SEEDS = range(50)
DATA = ("strokes", "mnist")


@pytest.fixture(scope="module")
def mnist_train() -> tuple[np.ndarray, np.ndarray]:
    return load_mnist("float64").train


@pytest.mark.parametrize("name", sorted(IMAGE_MODELS))
def test_clean_models_name_no_cause(name, mnist_train, monkeypatch):
    # 50 seeds (weights and batch) of each clean model, seed s in dtype DTYPES[s % 2] on
    # DATA[s // 2 % 2], so every combination gets 12 or 13 seeds (the full product, 50 seeds of
    # each combination, is measured in docs/causes.md). The matcher runs only on a failing
    # quantity: on clean models it must never be called.
    def never(case):
        raise AssertionError(f"matcher called on a clean model: {case.name} {case.key}")

    monkeypatch.setattr(cases_module, "find_cause", never)
    images, labels = mnist_train
    # One model and one twin per dtype, given each seed's weights and state: a Dropout's twin
    # applies the masks of the scratch layer it was made from.
    models = {dtype: build(name, dtype=dtype) for dtype in DTYPES}
    references = {dtype: twin(model, share_masks=True) for dtype, model in models.items()}
    failures = []
    for seed in SEEDS:
        dtype, data = DTYPES[seed % 2], DATA[seed // 2 % 2]
        model, fresh = models[dtype], build(name, seed=seed, dtype=dtype)
        model.set_params(fresh.params)
        copy_state(fresh, model)
        copy_weights(model, references[dtype])
        copy_state(model, references[dtype])
        if data == "strokes":
            x, y = strokes(2, seed=seed, dtype=dtype)
        else:
            index = np.random.default_rng(seed).choice(len(images), 2, replace=False)
            x, y = images[index].astype(dtype), labels[index]
        result = diff(model, x, y, keras_model=references[dtype])
        if not result.passed:
            failures.append((seed, dtype, data, result.first_propagated_failure))
    assert not failures, failures


def test_causes_doc_lists_the_registry():
    doc = (ROOT / "docs" / "causes.md").read_text()
    table = re.search(r"<!-- catalog -->\n(.*?)<!-- /catalog -->", doc, re.S)
    assert table is not None, "docs/causes.md: the catalog markers are missing"
    assert table.group(1) == causes.catalog_markdown(), (
        "docs/causes.md is out of date; the table between the markers must read:\n"
        + causes.catalog_markdown())
