"""A CS231n-style layer library, written from scratch, and its tfparity declarations.

The functions have the names and signatures of the CS231n assignments: activations are
NCHW ``(N, C, H, W)``, conv kernels ``(F, C, HH, WW)``, affine weights ``(D, M)``, every forward
returns ``(out, cache)`` and every backward takes ``(dout, cache)``. They are vectorised over the
batch and the output positions (loops run over the kernel or pooling window only), so a check
takes seconds, and they compute exactly what the one-output-at-a-time loops would. After the
nine of the CNN come assignment 2's batch norm (with ``batchnorm_backward_alt``), spatial batch
norm, layer norm, spatial group norm, dropout and ``svm_loss``, with the parameter dicts of its
notebooks (``bn_param``, ``ln_param``, ``gn_param``, ``dropout_param``).

``build()`` at the end holds the only tfparity code: the declarations that say which Keras
layer each function pair computes and in which conventions. A student checks their own module
with the same declarations: ``build("cnn", lib=my_layers)``, or from the command line
``tfparity check --model examples/own_network/cs231n_style.py:build`` (another model:
``--model 'examples/own_network/cs231n_style.py:build(model="mlp_layernorm")'``).
"""

from __future__ import annotations

import sys

import numpy as np


def affine_forward(x, w, b):
    """Affine layer on inputs flattened in their own (here NCHW) order.

    Inputs:
    - x: (N, d_1, ..., d_k), flattened to (N, D) with D = d_1 * ... * d_k
    - w: weights (D, M)
    - b: biases (M,)

    Returns (out, cache): out (N, M), cache = (x, w, b).
    """
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Backward pass of ``affine_forward``.

    Inputs: dout (N, M) upstream gradient; cache from ``affine_forward``.
    Returns (dx, dw, db) of shapes (N, d_1, ..., d_k), (D, M), (M,).
    """
    x, w, _ = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """max(x, 0) elementwise; any shape. Returns (out, cache) with cache = x."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dout where the input was positive, 0 elsewhere (0 at exactly 0, as TensorFlow)."""
    return dout * (cache > 0)


def _windows(a, height, width, stride, out_h, out_w):
    """For each window offset (i, j): (i, j, the (N, C, out_h, out_w) slice a[..., i::s, j::s])."""
    for i in range(height):
        for j in range(width):
            yield i, j, a[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]


def conv_forward_naive(x, w, b, conv_param):
    """Convolution (cross-correlation) with symmetric zero padding.

    Inputs:
    - x: (N, C, H, W)
    - w: filters (F, C, HH, WW)
    - b: biases (F,)
    - conv_param: {"stride": s, "pad": p}, p zeros on every side of H and W

    Returns (out, cache): out (N, F, H', W') with H' = 1 + (H + 2p - HH) // s and
    W' = 1 + (W + 2p - WW) // s; cache = (x, w, b, conv_param).
    """
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, _, h, width = x.shape
    f, _, hh, ww = w.shape
    out_h, out_w = 1 + (h + 2 * pad - hh) // stride, 1 + (width + 2 * pad - ww) // stride
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, f, out_h, out_w), dtype=x.dtype)
    for i, j, window in _windows(xp, hh, ww, stride, out_h, out_w):
        out += np.einsum("nchw,fc->nfhw", window, w[:, :, i, j], optimize=True)
    out += b[None, :, None, None]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Backward pass of ``conv_forward_naive``.

    Inputs: dout (N, F, H', W'); cache from ``conv_forward_naive``.
    Returns (dx, dw, db) of shapes (N, C, H, W), (F, C, HH, WW), (F,). Every output position
    sends dout * w back to the input window it read, which is the correlation of dout with the
    flipped kernel.
    """
    x, w, _, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    h, width = x.shape[2:]
    _, _, hh, ww = w.shape
    out_h, out_w = dout.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i, j, window in _windows(xp, hh, ww, stride, out_h, out_w):
        dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, window, optimize=True)
    for i, j, dwindow in _windows(dxp, hh, ww, stride, out_h, out_w):
        dwindow += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j], optimize=True)
    db = dout.sum(axis=(0, 2, 3))
    return dxp[:, :, pad:pad + h, pad:pad + width], dw, db


def max_pool_forward_naive(x, pool_param):
    """Max pooling without padding.

    Inputs: x (N, C, H, W); pool_param {"pool_height": ph, "pool_width": pw, "stride": s}.
    Returns (out, cache): out (N, C, 1 + (H - ph) // s, 1 + (W - pw) // s), cache = (x, pool_param).
    """
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, h, w = x.shape
    out_h, out_w = 1 + (h - ph) // stride, 1 + (w - pw) // stride
    out = np.full((n, c, out_h, out_w), -np.inf, dtype=x.dtype)
    for _, _, window in _windows(x, ph, pw, stride, out_h, out_w):
        np.maximum(out, window, out=out)
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Backward pass of ``max_pool_forward_naive``: each window's gradient goes to its maximum.

    Inputs: dout (N, C, H', W'); cache from ``max_pool_forward_naive``. Returns dx (N, C, H, W).
    On ties the first maximum in row-major order takes the whole gradient (as TensorFlow does).
    """
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    out, _ = max_pool_forward_naive(x, pool_param)
    out_h, out_w = out.shape[2:]
    dx = np.zeros_like(x)
    routed = np.zeros(out.shape, dtype=bool)  # windows whose maximum was already found
    dx_windows = _windows(dx, ph, pw, stride, out_h, out_w)
    for (_, _, window), (_, _, dwindow) in zip(_windows(x, ph, pw, stride, out_h, out_w),
                                               dx_windows):
        first = (window == out) & ~routed
        routed |= first
        dwindow += dout * first
    return dx


def softmax_loss(x, y):
    """Mean softmax cross-entropy.

    Inputs: x scores (N, C); y labels (N,) with 0 <= y[i] < C.
    Returns (loss, dx): the loss (a scalar) and its gradient (N, C).
    """
    shifted = x - x.max(axis=1, keepdims=True)  # exp never overflows
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def _standardize(x, axis, eps):
    """(x - mean) / sqrt(var + eps) over ``axis`` (biased variance); returns (xhat, std) with
    std keeping the reduced axes."""
    mean = x.mean(axis=axis, keepdims=True)
    std = np.sqrt(x.var(axis=axis, keepdims=True) + eps)
    return (x - mean) / std, std


def _standardize_backward(dxhat, xhat, std, axis):
    """dL/dx of ``_standardize`` given dL/dxhat, in one expression (the "alt" derivation)."""
    return (dxhat - dxhat.mean(axis=axis, keepdims=True)
            - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True)) / std


def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization of features.

    Inputs:
    - x: (N, D); gamma, beta: (D,)
    - bn_param: {"mode": "train" | "test", "eps" (1e-5), "momentum" (0.9), "running_mean" (D,),
      "running_var" (D,)}; training updates running = momentum * running + (1 - momentum) *
      batch (biased variance) and stores them back into bn_param.

    Returns (out, cache): out (N, D).
    """
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(d, dtype=x.dtype))
    if bn_param["mode"] == "train":
        xhat, std = _standardize(x, 0, eps)
        running_mean = momentum * running_mean + (1 - momentum) * x.mean(axis=0)
        running_var = momentum * running_var + (1 - momentum) * x.var(axis=0)
    else:
        xhat, std = (x - running_mean) / np.sqrt(running_var + eps), None
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return gamma * xhat + beta, (xhat, gamma, std)


def batchnorm_backward(dout, cache):
    """Backward pass of ``batchnorm_forward`` through its graph: xhat, then the variance, then
    the mean. Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,)."""
    xhat, gamma, std = cache
    n = dout.shape[0]
    centered = xhat * std
    dxhat = dout * gamma
    dvar = -0.5 * (dxhat * centered).sum(axis=0) / std[0] ** 3
    dmean = -dxhat.sum(axis=0) / std[0] - 2 * dvar * centered.mean(axis=0)
    dx = dxhat / std + 2 * dvar * centered / n + dmean / n
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_alt(dout, cache):
    """``batchnorm_backward`` simplified on paper to one expression."""
    xhat, gamma, std = cache
    dx = _standardize_backward(dout * gamma, xhat, std, 0)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def _channels_last(x):
    """(N, C, H, W) -> (N * H * W, C)."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _channels_first(rows, shape):
    """(N * H * W, C) -> ``shape`` (N, C, H, W)."""
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization of each channel of x (N, C, H, W) over N, H and W; gamma, beta
    (C,); bn_param as ``batchnorm_forward``. Returns (out (N, C, H, W), cache)."""
    out, cache = batchnorm_forward(_channels_last(x), gamma, beta, bn_param)
    return _channels_first(out, x.shape), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta) of shapes (N, C, H, W), (C,), (C,)."""
    cache, shape = cache
    dx, dgamma, dbeta = batchnorm_backward_alt(_channels_last(dout), cache)
    return _channels_first(dx, shape), dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    """Layer normalization of each example x (N, D) over its D features; gamma, beta (D,);
    ln_param {"eps" (1e-5)}. Returns (out (N, D), cache)."""
    xhat, std = _standardize(x, 1, ln_param.get("eps", 1e-5))
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta) of shapes (N, D), (D,), (D,)."""
    xhat, gamma, std = cache
    dx = _standardize_backward(dout * gamma, xhat, std, 1)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Group normalization of x (N, C, H, W): each example's channels in G groups of C // G
    consecutive ones, each group over its channels, H and W; gamma, beta (1, C, 1, 1) as in the
    notebook; gn_param {"eps" (1e-5)}. Returns (out (N, C, H, W), cache)."""
    n, c, h, w = x.shape
    xhat, std = _standardize(x.reshape(n, G, c // G, h, w), (2, 3, 4), gn_param.get("eps", 1e-5))
    xhat = xhat.reshape(x.shape)
    return gamma * xhat + beta, (xhat, gamma, std, G)


def spatial_groupnorm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta) of shapes (N, C, H, W), (1, C, 1, 1), (1, C, 1, 1)."""
    xhat, gamma, std, groups = cache
    n, c, h, w = dout.shape
    grouped = (n, groups, c // groups, h, w)
    dx = _standardize_backward((dout * gamma).reshape(grouped), xhat.reshape(grouped), std,
                               (2, 3, 4))
    axes = (0, 2, 3)
    return (dx.reshape(dout.shape), (dout * xhat).sum(axis=axes, keepdims=True),
            dout.sum(axis=axes, keepdims=True))


def dropout_forward(x, dropout_param):
    """Inverted dropout; any shape.

    dropout_param: {"mode": "train" | "test", "p": the probability of KEEPING a unit, "seed":
    optional, the same mask on every call}. Returns (out, cache): out = x * mask / p in
    training, x in testing.
    """
    p, mode = dropout_param["p"], dropout_param["mode"]
    if mode != "train":
        return x, (dropout_param, None)
    rng = np.random.RandomState(dropout_param.get("seed"))
    mask = ((rng.rand(*x.shape) < p) / p).astype(x.dtype)
    return x * mask, (dropout_param, mask)


def dropout_backward(dout, cache):
    """dout through the kept units (scaled by 1 / p) in training, unchanged in testing."""
    dropout_param, mask = cache
    return dout * mask if dropout_param["mode"] == "train" else dout


def svm_loss(x, y):
    """Multiclass SVM (hinge) loss.

    Inputs: x scores (N, C); y labels (N,). Returns (loss, dx): the mean over the batch of
    sum over j != y of max(0, x_j - x_y + 1), and its gradient (N, C) (0 at a margin of 0).
    """
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0, x - x[rows, y][:, None] + 1)
    margins[rows, y] = 0
    dx = (margins > 0).astype(x.dtype)
    dx[rows, y] -= dx.sum(axis=1)
    return margins.sum() / n, dx / n


# The tfparity declarations -----------------------------------------------------------------

def build(model: str = "cnn", lib=None):
    """A model of ``lib``'s functions (default: this module's), declared for tfparity: images
    (N, 1, 28, 28) -> 10 scores. ``model``: "cnn", "mlp2", "mlp_batchnorm",
    "cnn_spatial_batchnorm", "mlp_dropout", "mlp_layernorm", "cnn_groupnorm" or "mlp_svm"."""
    from reference_tf import own

    lib = lib or sys.modules[__name__]
    conv = own.functions(lib.conv_forward_naive, lib.conv_backward_naive,
                         conv_param={"stride": 1, "pad": 1})
    pool = own.functions(lib.max_pool_forward_naive, lib.max_pool_backward_naive,
                         pool_param={"pool_height": 2, "pool_width": 2, "stride": 2})
    relu = own.functions(lib.relu_forward, lib.relu_backward)
    affine = own.functions(lib.affine_forward, lib.affine_backward)
    bn_param = {"mode": "train"}
    bn = own.functions(lib.batchnorm_forward, lib.batchnorm_backward, bn_param=bn_param)
    bn_alt = own.functions(lib.batchnorm_forward, lib.batchnorm_backward_alt, bn_param=bn_param)
    spatial_bn = own.functions(lib.spatial_batchnorm_forward, lib.spatial_batchnorm_backward,
                               bn_param=bn_param)
    ln = own.functions(lib.layernorm_forward, lib.layernorm_backward, ln_param={})
    gn = own.functions(lib.spatial_groupnorm_forward, lib.spatial_groupnorm_backward, 2, {})
    dropout_param = {"mode": "train", "p": 0.75, "seed": 231}
    drop = own.functions(lib.dropout_forward, lib.dropout_backward, dropout_param=dropout_param)
    fc1, relu1 = own.Dense(affine, 32, name="fc1"), own.ReLU(relu, name="relu1")
    relu2, pool1 = own.ReLU(relu, name="relu2"), own.MaxPool2D(pool, 2, name="pool1")
    conv1 = own.Conv2D(conv, 8, 3, padding=1, name="conv1")
    # A batch norm follows a ReLU: right after a bias, that bias's gradient is 0 up to rounding,
    # which no relative comparison can judge.
    layers = {
        "cnn": [conv1, relu1, pool1, own.Conv2D(conv, 8, 3, padding=1, name="conv2"), relu2,
                own.MaxPool2D(pool, 2, name="pool2"), own.Dense(affine, 32, name="fc1"),
                own.ReLU(relu, name="relu3")],
        "mlp2": [fc1, relu1, own.Dense(affine, 32, name="fc2"), relu2],
        "mlp_batchnorm": [fc1, relu1, own.BatchNormalization(bn, 0.9, name="bn1"),
                          own.Dense(affine, 32, name="fc2"), relu2,
                          own.BatchNormalization(bn_alt, 0.9, name="bn2")],
        "cnn_spatial_batchnorm": [conv1, relu1,
                                  own.BatchNormalization(spatial_bn, 0.9, name="bn1"), pool1],
        "mlp_dropout": [fc1, relu1, own.Dropout(drop, dropout_param["p"], dropout="keep")],
        "mlp_layernorm": [fc1, own.LayerNormalization(ln, name="ln1"), relu1],
        "cnn_groupnorm": [conv1, own.GroupNormalization(gn, 2, scale_shape=(1, -1, 1, 1)), relu1,
                          pool1],
        "mlp_svm": [fc1, relu1],
    }
    if model not in layers:
        raise ValueError(f"build: expected model in {sorted(layers)}, received {model!r}.")
    loss = (own.HingeLoss(lib.svm_loss) if model == "mlp_svm"
            else own.Loss(lib.softmax_loss, reduction="mean"))
    conventions = own.Conventions(layout="NCHW", kernel_layout="OIHW", flatten="NCHW",
                                  names={"kernel": "w", "bias": "b"}, epsilon=1e-5)
    return own.Model(layers[model] + [own.Dense(affine, 10, name="scores")], (1, 28, 28),
                     loss=loss, conventions=conventions)
