"""docs/derivations.md against the code: its references exist, its math renders, its worked
convolution examples and its index formulas reproduce what ``scratch`` computes.

The worked examples are read from the document itself (every matrix and scalar of section 7),
so the numbers live in one place; the hand arithmetic shown in the document is evaluated too.
"""

from __future__ import annotations

import ast
import importlib
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from scratch.gradcheck import compare, numerical_grad
from scratch.models import build
from scratch.ops import (
    avg_pool2d_forward,
    batch_norm_backward,
    batch_norm_forward,
    conv2d_backward,
    conv2d_forward,
    softmax_cross_entropy,
    window_padding,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "derivations.md"
TEXT = DOC.read_text(encoding="utf-8")

# `scratch/ops/conv.py::conv2d_input_grad`, `parity_tests/test_x.py::test_y[case]`
REFERENCE = re.compile(r"`((?:scratch|parity_tests)/[\w/]+\.py)::([^`\s]+)`")
REFERENCES = sorted(set(REFERENCE.findall(TEXT)))
# Sections 1-6 and 8-14 each derive a result and must end with a references paragraph.
RESULT_SECTIONS = [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]


def assert_close(name: str, got, expected, rtol: float = 1e-12) -> None:
    """Fail with the quantity, max abs and relative error, worst index and both values."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{name}: shape {got.shape}, expected {expected.shape}"
    result = compare(name, got, expected)
    assert result.rel_error <= rtol, str(result)


def sections(text: str, level: str) -> dict[str, str]:
    """{heading: body} for the headings of one level ("##" or "###")."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def display_blocks(text: str) -> list[str]:
    """The contents of every ``$$ ... $$`` block (fences on their own lines)."""
    return re.findall(r"^\$\$\n(.*?)\n\$\$$", text, flags=re.M | re.S)


# Document structure and rendering -----------------------------------------------------------

def test_derivations_display_math_is_balanced():
    control = sorted({repr(ch) for ch in TEXT if ord(ch) < 32 and ch != "\n"})
    assert not control, f"control characters in {DOC.name}: {control}"
    lines = TEXT.splitlines()
    fences = [i for i, line in enumerate(lines) if "$$" in line]
    assert fences, "no display math found"
    stray = [i + 1 for i in fences if lines[i].strip() != "$$"]
    assert not stray, f"'$$' must stand alone on its line (GitHub), lines {stray}"
    assert len(fences) % 2 == 0, f"unpaired '$$': {len(fences)} fences"
    for start, end in zip(fences[::2], fences[1::2]):
        body = lines[start + 1:end]
        assert body and all(line.strip() for line in body), (
            f"display math at lines {start + 1}-{end + 1} is empty or has a blank line, "
            "which ends the block on GitHub")
        assert not any("*" in line for line in body), f"'*' in display math at line {start + 1}"


def test_derivations_inline_math_is_github_safe():
    """Inline ``$...$`` paired on each line, without ``_`` or ``*`` (kept to display math)."""
    inside = False
    for number, line in enumerate(TEXT.splitlines(), 1):
        if line.strip() == "$$":
            inside = not inside
            continue
        if inside:
            continue
        prose = re.sub(r"`[^`]*`", "", line)
        assert prose.count("$") % 2 == 0, f"line {number}: unpaired inline '$': {line!r}"
        for math_text in re.findall(r"\$([^$]+)\$", prose):
            assert "_" not in math_text and "*" not in math_text, (
                f"line {number}: inline math with '_' or '*' (use display math): ${math_text}$")


@pytest.mark.parametrize("number", RESULT_SECTIONS)
def test_derivations_section_names_code_and_both_kinds_of_test(number):
    bodies = {title.split(".")[0]: body for title, body in sections(TEXT, "##").items()}
    assert str(number) in bodies, f"section {number} is missing from {DOC.name}"
    paragraph = bodies[str(number)].split("**References.**")
    assert len(paragraph) == 2, f"section {number}: expected one '**References.**' paragraph"
    refs = REFERENCE.findall(paragraph[1])
    assert any(path.startswith("scratch/") for path, _ in refs), \
        f"section {number}: no scratch function"
    assert any("finite_differences" in name for _, name in refs), (
        f"section {number}: no finite-difference test")
    assert any(path.startswith("parity_tests/test_tf_") for path, _ in refs), (
        f"section {number}: no TensorFlow test")


def test_derivations_has_references():
    assert len(REFERENCES) >= 20, REFERENCES


@lru_cache(maxsize=None)
def defined_names(path: str) -> frozenset:
    """Every function and method of a test file, as "name" and "Class::name"."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return frozenset(names)


@pytest.mark.parametrize("path, name", REFERENCES, ids=[f"{p}::{n}" for p, n in REFERENCES])
def test_derivations_reference_exists(path, name):
    assert (ROOT / path).is_file(), f"{path} (named in {DOC.name}) does not exist"
    if path.startswith("parity_tests/"):
        test_name = name.split("[")[0]  # a parametrized case names its function
        assert test_name.split("::")[-1].startswith("test_"), f"{path}::{name} is not a test"
        assert test_name in defined_names(path), f"{path} defines no test {test_name}"
    else:
        target = importlib.import_module(path[:-3].replace("/", "."))
        for attribute in name.split("."):
            assert hasattr(target, attribute), f"{path} has no {name}"
            target = getattr(target, attribute)
        assert callable(target), f"{path}::{name} is not callable"


# The worked convolution examples -----------------------------------------------------------

_ARITHMETIC = re.compile(r"^[\d\s.+\-*()]+$")
QUANTITIES = ("x", "K", "b", "y", "L", r"\bar{y}", r"\bar{b}", r"\bar{K}", r"\hat{K}",
              r"\tilde{y}", r"\hat{y}", r"\bar{x}")


def evaluate(expression: str) -> float:
    """The value of hand arithmetic like ``1 \\cdot 2 - 3 + 0.5`` (numbers, + - *, parentheses)."""
    expression = expression.replace(r"\cdot", "*").strip()
    if not _ARITHMETIC.match(expression):
        raise ValueError(f"not plain arithmetic: {expression!r}")

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return {ast.Add: left + right, ast.Sub: left - right,
                    ast.Mult: left * right}[type(node.op)]
        raise ValueError(f"not plain arithmetic: {expression!r}")

    return value(ast.parse(expression, mode="eval").body)


def evaluate_term(term: str) -> np.ndarray:
    """A bmatrix (entries may be arithmetic) or a scalar expression, as a float64 array."""
    term = term.strip()
    matrix = re.fullmatch(r"\\begin\{bmatrix\}(.*)\\end\{bmatrix\}", term, flags=re.S)
    if matrix is None:
        return np.array(evaluate(term))
    rows = [row.split("&") for row in matrix.group(1).split(r"\\")]
    return np.array([[evaluate(entry) for entry in row] for row in rows])


def worked_quantities(body: str) -> dict[str, np.ndarray]:
    """Every ``name = value = value ...`` of the example's display math, the shown steps checked.

    Equations are separated by ``\\qquad``; a chain's values must agree (the hand arithmetic).
    """
    found = {}
    for block in display_blocks(body):
        for equation in block.split(r"\qquad"):
            lhs, *terms = [part.strip() for part in equation.strip().rstrip(",.").split("=")]
            if lhs not in QUANTITIES or not terms:
                continue
            values = [evaluate_term(term) for term in terms]
            for step, shown in enumerate(values[:-1]):
                assert_close(f"{lhs}: step {step} of the hand arithmetic", shown, values[-1])
            assert lhs not in found, f"{lhs} is given twice"
            found[lhs] = values[-1]
    return found


EXAMPLES = {title: body for title, body in sections(sections(TEXT, "##")[
    "7. Worked examples: convolution gradients"], "###").items()}


def dilate_and_pad(dy: np.ndarray, stride: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2 and 4 of section 5 for one channel: (tilde y, hat y)."""
    tilde = np.zeros(((dy.shape[0] - 1) * stride + 1, (dy.shape[1] - 1) * stride + 1))
    tilde[::stride, ::stride] = dy
    return tilde, np.pad(tilde, k - 1)


def correlate_valid(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Single-channel valid correlation by its definition."""
    kh, kw = kernel.shape
    return np.array([[np.sum(a[p:p + kh, q:q + kw] * kernel)
                      for q in range(a.shape[1] - kw + 1)] for p in range(a.shape[0] - kh + 1)])


def as_nhwc(a: np.ndarray) -> np.ndarray:
    """One single-channel image (H, W) as a batch (1, H, W, 1)."""
    return a[None, :, :, None]


@pytest.mark.parametrize("title", sorted(EXAMPLES))
def test_worked_conv_example_matches_code(title):
    setting = re.search(r"stride (\d+), (VALID|SAME)", title)
    assert setting, f"{title!r} does not state its stride and padding"
    stride, padding = int(setting.group(1)), setting.group(2).lower()
    assert padding == "valid", "the hand check below assumes VALID padding"
    q = worked_quantities(EXAMPLES[title])
    required = {"x", "K", "b", r"\bar{y}", r"\bar{b}", r"\bar{K}", r"\hat{K}", r"\hat{y}",
                r"\bar{x}"}
    assert required <= q.keys(), f"{title}: missing {sorted(required - q.keys())}"
    x, kernel, dy = q["x"], q["K"], q[r"\bar{y}"]
    k = kernel.shape[0]

    # The document's intermediate steps follow its own formulas.
    assert_close("flipped kernel", q[r"\hat{K}"], kernel[::-1, ::-1])
    tilde, hat = dilate_and_pad(dy, stride, k)
    if stride > 1:
        assert_close("dilated dy", q[r"\tilde{y}"], tilde)
    assert_close("padded dy", q[r"\hat{y}"], hat)
    used = correlate_valid(q[r"\hat{y}"], q[r"\hat{K}"])
    expected_dx = np.zeros_like(x)
    expected_dx[:used.shape[0], :used.shape[1]] = used  # unreached rows/columns stay zero
    assert_close("dx from the document's correlation", q[r"\bar{x}"], expected_dx)

    # The code reproduces the document's numbers.
    y, cache = conv2d_forward(as_nhwc(x), kernel[:, :, None, None], np.array([float(q["b"])]),
                              strides=(stride, stride), padding=padding)
    if "y" in q:
        assert_close("y", y[0, :, :, 0], q["y"])
    if "L" in q:
        assert_close("L = sum(dy * y)", np.sum(dy * y[0, :, :, 0]), q["L"])
    assert y.shape[1:3] == dy.shape, f"output {y.shape[1:3]}, the document's dy {dy.shape}"
    dx, dkernel, dbias = conv2d_backward(as_nhwc(dy), cache)
    assert_close("dx", dx[0, :, :, 0], q[r"\bar{x}"])
    assert_close("dkernel", dkernel[:, :, 0, 0], q[r"\bar{K}"])
    assert_close("dbias", dbias[0], q[r"\bar{b}"])


def test_worked_conv_examples_cover_dilation_and_unreached_rows():
    strides = [int(re.search(r"stride (\d+)", title).group(1)) for title in EXAMPLES]
    assert 1 in strides and any(s > 1 for s in strides), strides
    dilated = [worked_quantities(body) for title, body in EXAMPLES.items()
               if "stride 1," not in title]
    assert any(not q[r"\bar{x}"][-1].any() for q in dilated), "no example with an unreached row"


# The index formulas of section 5 ------------------------------------------------------------

def doc_padding(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """(output size, before, after) by the formulas of section 4."""
    if padding == "valid":
        return (size - k) // s + 1, 0, 0
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def input_grad_by_scatter(dy, kernel, x_shape, strides, pads):
    """Step 1: each output's gradient times the kernel, added at its window; then crop."""
    n, h, w, _ = x_shape
    kh, kw = kernel.shape[:2]
    (sh, sw), (top, bottom, left, right) = strides, pads
    dxp = np.zeros((n, h + top + bottom, w + left + right, kernel.shape[2]))
    for u in range(dy.shape[1]):
        for v in range(dy.shape[2]):
            dxp[:, u * sh:u * sh + kh, v * sw:v * sw + kw, :] += np.einsum(
                "no,ijco->nijc", dy[:, u, v, :], kernel)
    return dxp[:, top:top + h, left:left + w, :]


def input_grad_by_full_correlation(dy, kernel, x_shape, strides, pads):
    """Steps 2-6: dilate, pad by k-1, correlate with the flipped kernel, zero-fill, crop."""
    n, h, w, c = x_shape
    kh, kw = kernel.shape[:2]
    (sh, sw), (top, bottom, left, right) = strides, pads
    ho, wo = dy.shape[1:3]
    tilde = np.zeros((n, (ho - 1) * sh + 1, (wo - 1) * sw + 1, dy.shape[3]))
    tilde[:, ::sh, ::sw, :] = dy
    hat = np.pad(tilde, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)  # (kh, kw, O, C)
    used_h, used_w = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    dxp = np.zeros((n, h + top + bottom, w + left + right, c))
    for p in range(used_h):
        for q in range(used_w):
            dxp[:, p, q, :] = np.einsum("nijo,ijoc->nc", hat[:, p:p + kh, q:q + kw, :], flipped)
    return dxp[:, top:top + h, left:left + w, :]


# (batch, H, W, C, kh, kw, O, sh, sw, padding)
GEOMETRIES = [
    (2, 5, 4, 2, 3, 3, 3, 1, 1, "valid"),
    (1, 5, 5, 1, 3, 3, 2, 1, 1, "same"),
    (1, 4, 6, 2, 2, 2, 1, 1, 1, "same"),   # even kernel: the extra row/column bottom/right
    (1, 5, 5, 1, 2, 2, 1, 2, 2, "valid"),  # dilation; row and column 4 unreached
    (1, 5, 7, 2, 1, 1, 2, 3, 3, "same"),   # kernel smaller than the stride: rows unreached
    (2, 6, 5, 1, 3, 2, 2, 2, 3, "same"),   # asymmetric SAME padding, unequal strides
    (1, 7, 7, 3, 4, 3, 2, 3, 2, "valid"),
]


def test_conv_geometries_include_unreached_rows():
    unreached = [g for g in GEOMETRIES
                 if (doc_padding(g[1], g[4], g[7], g[9])[0] - 1) * g[7] + g[4]
                 < g[1] + sum(doc_padding(g[1], g[4], g[7], g[9])[1:])]
    assert len(unreached) >= 2, unreached


@pytest.mark.parametrize("geometry", GEOMETRIES,
                         ids=lambda g: "n{}_{}x{}x{}_k{}x{}x{}_s{}x{}_{}".format(*g))
def test_conv_input_grad_formula_matches_code(geometry):
    n, h, w, c, kh, kw, o, sh, sw, padding = geometry
    rng = np.random.default_rng(sum(geometry[:9]))
    x, kernel = rng.standard_normal((n, h, w, c)), rng.standard_normal((kh, kw, c, o))
    y, cache = conv2d_forward(x, kernel, np.zeros(o), strides=(sh, sw), padding=padding)
    (ho, top, bottom), (wo, left, right) = (doc_padding(h, kh, sh, padding),
                                            doc_padding(w, kw, sw, padding))
    assert y.shape == (n, ho, wo, o), f"output {y.shape}, section 4 gives {(n, ho, wo, o)}"
    dy = rng.standard_normal(y.shape)
    dx = conv2d_backward(dy, cache)[0]
    pads = (top, bottom, left, right)
    assert_close("dx (scatter form, step 1)", dx,
                 input_grad_by_scatter(dy, kernel, x.shape, (sh, sw), pads))
    assert_close("dx (full correlation, steps 2-6)", dx,
                 input_grad_by_full_correlation(dy, kernel, x.shape, (sh, sw), pads))


# Sections 1 and 6 by finite differences and closed forms ------------------------------------

def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("label", [0, 3])
def test_softmax_jacobian_finite_differences(label):
    z = np.random.default_rng(label).standard_normal(5)
    p = softmax(z)
    jacobian = np.diag(p) - np.outer(p, p)
    numerical = np.stack([numerical_grad(lambda v, k=k: softmax(v)[k], z.copy()) for k in range(5)])
    assert_close("softmax Jacobian", jacobian, numerical, rtol=1e-8)
    onehot = np.eye(5)[label]
    assert_close("J^T (-e_y / p_y)", jacobian.T @ (-onehot / p[label]), p - onehot)


@pytest.mark.parametrize("n, k", [(1, 3), (4, 10)])
def test_softmax_cross_entropy_gradient_finite_differences(n, k):
    rng = np.random.default_rng(n * k)
    logits, labels = 3 * rng.standard_normal((n, k)), rng.integers(0, k, n)
    _, dlogits = softmax_cross_entropy(logits, labels)
    numerical = numerical_grad(lambda z: softmax_cross_entropy(z, labels)[0], logits.copy())
    assert_close("dL/dz", dlogits, numerical, rtol=1e-8)
    assert_close("dL/dz closed form", dlogits, (softmax(logits) - np.eye(k)[labels]) / n)


def linear_model_case(n: int = 3):
    model = build("linear", seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    model.params["logits/bias"][...] = 0.1 * rng.standard_normal(10)
    return model, rng.random((n, 28, 28, 1)), rng.integers(0, 10, n)


def test_linear_model_gradients_match_closed_form():
    model, x, y = linear_model_case()
    trace = model.trace(x, y)
    kernel, bias = model.params["logits/kernel"], model.params["logits/bias"]
    flat = x.reshape(len(x), -1)
    dz = (softmax(flat @ kernel + bias) - np.eye(10)[y]) / len(x)
    assert_close("dL/dW = X^T (P - Y) / N", trace.grads["logits/kernel"], flat.T @ dz)
    assert_close("dL/db = (P - Y)^T 1 / N", trace.grads["logits/bias"], dz.sum(axis=0))
    assert_close("dL/dx = reshape((P - Y) W^T / N)", trace.input_grad,
                 (dz @ kernel.T).reshape(x.shape))


def test_linear_model_input_gradient_finite_differences():
    model, x, y = linear_model_case()
    analytic = model.trace(x, y).input_grad
    numerical = numerical_grad(lambda v: softmax_cross_entropy(model.forward(v), y)[0], x,
                               max_elements=200)
    checked = ~np.isnan(numerical)
    assert_close("dL/dx (checked entries)", analytic[checked], numerical[checked], rtol=1e-7)


# Sections 9 and 11: the Jacobian and the divisor written out -------------------------------

@pytest.mark.parametrize("m", [3, 7])
def test_batch_norm_jacobian_matches_code(m):
    # Step 3 of section 9 as an (M, M) matrix, then step 4 as its transpose times gamma * dy.
    rng = np.random.default_rng(m)
    x, dy, gamma = rng.standard_normal((m, 1)), rng.standard_normal((m, 1)), 1.7
    y, cache, mean, variance = batch_norm_forward(x, np.array([gamma]), np.array([0.2]))
    r = 1 / np.sqrt(variance[0] + 1e-3)
    x_hat = (x[:, 0] - mean[0]) * r
    jacobian = r * (np.eye(m) - 1 / m - np.outer(x_hat, x_hat) / m)
    dx, dgamma, dbeta = batch_norm_backward(dy, cache)
    assert_close("dx = J^T (gamma dy)", dx[:, 0], jacobian.T @ (gamma * dy[:, 0]))
    assert_close("dx boxed form", dx[:, 0],
                 gamma * r * (dy[:, 0] - dbeta[0] / m - x_hat * dgamma[0] / m))
    # The two sums below the boxed result.
    assert abs(np.sum(dx)) < 1e-14
    assert_close("sum dx x_hat", np.sum(dx[:, 0] * x_hat),
                 gamma * r * dgamma[0] * 1e-3 / (variance[0] + 1e-3), rtol=1e-10)


@pytest.mark.parametrize("size, window, stride, padding", [
    (3, 2, 2, "same"), (5, 3, 2, "same"), (6, 3, 1, "same"), (7, 2, 3, "same"), (6, 3, 2, "valid"),
])
def test_avg_pool_divisor_formula_matches_code(size, window, stride, padding):
    # R_u of section 11 by its formula, against the input cells each window covers by counting.
    out, top, _ = window_padding(size, window, stride, padding)
    formula = [min(u * stride - top + window, size) - max(u * stride - top, 0) for u in range(out)]
    counted = [sum(0 <= u * stride - top + i < size for i in range(window)) for u in range(out)]
    assert formula == counted and min(formula) >= 1
    ones = np.ones((1, size, size, 1))
    y, cache = avg_pool2d_forward(ones, (window, window), (stride, stride), padding)
    np.testing.assert_array_equal(cache.divisor[0, :, :, 0], np.outer(formula, formula))
    np.testing.assert_array_equal(y, 1.0)  # the mean of ones, edge windows included
