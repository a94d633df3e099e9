"""CS231n assignment 3's ``rnn_layers.py``, written from scratch: the reference functions of
``cs231n_rnn.py``.

The names and signatures are the course's: sequences are batch-major (N, T, D), weights
(in, out) (``Wx`` (D, GH), ``Wh`` (H, GH)), one bias (GH,), the recurrent functions start from a
given ``h0`` (N, H) and return every step's hidden state (N, T, H); the LSTM's gate blocks are
i, f, o, g. Every forward returns ``(out, cache)``, every backward takes ``(dout, cache)``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    """A numerically stable sigmoid: exp of a non-positive number only."""
    positive = x >= 0
    z = np.exp(-np.abs(x))
    return np.where(positive, 1 / (1 + z), z / (1 + z))


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """next_h = tanh(x Wx + prev_h Wh + b): x (N, D), prev_h (N, H) -> next_h (N, H)."""
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Returns (dx, dprev_h, dWx, dWh, db) of one step."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """A vanilla RNN over x (N, T, D) from h0 (N, H): returns (h (N, T, H), cache)."""
    n, steps, _ = x.shape
    h = np.zeros((n, steps, h0.shape[1]), dtype=x.dtype)
    prev, caches = h0, []
    for t in range(steps):
        prev, cache = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(cache)
    return h, caches


def rnn_backward(dh, cache):
    """dh (N, T, H) upstream gradients of every hidden state; returns (dx, dh0, dWx, dWh, db)."""
    x0, _, Wx, Wh, _ = cache[0]
    n, steps, _ = dh.shape
    dx = np.zeros((n, steps, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wx.shape[1], dtype=dh.dtype)
    dprev = np.zeros_like(dh[:, 0])
    for t in reversed(range(steps)):
        dx[:, t], dprev, dwx, dwh, dbt = rnn_step_backward(dh[:, t] + dprev, cache[t])
        dWx, dWh, db = dWx + dwx, dWh + dwh, db + dbt
    return dx, dprev, dWx, dWh, db


def word_embedding_forward(x, W):
    """Integer words x (N, T) looked up in W (V, D): returns (out (N, T, D), cache)."""
    return W[x], (x, W)


def word_embedding_backward(dout, cache):
    """dW (V, D): every position adds its gradient to its word's row (repeated words add)."""
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step, gate blocks i, f, o, g: returns (next_h, next_c, cache), (N, H) each."""
    a = x @ Wx + prev_h @ Wh + b
    i, f, o, g = np.split(a, 4, axis=1)
    i, f, o, g = sigmoid(i), sigmoid(f), sigmoid(o), np.tanh(g)
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Returns (dx, dprev_h, dprev_c, dWx, dWh, db) of one step."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                         dnext_h * tanh_c * o * (1 - o), dc * i * (1 - g ** 2)], axis=1)
    return (da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0))


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM over x (N, T, D) from h0 (N, H) and a zero cell state: returns (h (N, T, H),
    cache)."""
    n, steps, _ = x.shape
    h = np.zeros((n, steps, h0.shape[1]), dtype=x.dtype)
    prev_h, prev_c, caches = h0, np.zeros_like(h0), []
    for t in range(steps):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    """dh (N, T, H); returns (dx, dh0, dWx, dWh, db)."""
    x0, _, _, Wx, Wh = cache[0][:5]
    n, steps, _ = dh.shape
    dx = np.zeros((n, steps, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wx.shape[1], dtype=dh.dtype)
    dprev_h, dprev_c = np.zeros_like(dh[:, 0]), np.zeros_like(dh[:, 0])
    for t in reversed(range(steps)):
        dx[:, t], dprev_h, dprev_c, dwx, dwh, dbt = lstm_step_backward(dh[:, t] + dprev_h,
                                                                       dprev_c, cache[t])
        dWx, dWh, db = dWx + dwx, dWh + dwh, db + dbt
    return dx, dprev_h, dWx, dWh, db


def temporal_affine_forward(x, w, b):
    """x (N, T, D) @ w (D, M) + b (M,) at every step: returns (out (N, T, M), cache)."""
    return x @ w + b, (x, w, b)


def temporal_affine_backward(dout, cache):
    """Returns (dx, dw, db) of shapes (N, T, D), (D, M), (M,)."""
    x, w, _ = cache
    d = x.shape[2]
    return dout @ w.T, x.reshape(-1, d).T @ dout.reshape(-1, w.shape[1]), dout.sum(axis=(0, 1))


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy of scores x (N, T, V) for words y (N, T) where mask (N, T) is
    True, summed over the steps and averaged over the N sequences. Returns (loss, dx)."""
    n, steps, v = x.shape
    flat = x.reshape(n * steps, v)
    shifted = flat - flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows, words, keep = np.arange(n * steps), y.reshape(-1), mask.reshape(-1)
    loss = -np.sum(keep * log_probs[rows, words]) / n
    dx = np.exp(log_probs)
    dx[rows, words] -= 1
    dx *= keep[:, None] / n
    if verbose:
        print("dx:", dx.shape)
    return loss, dx.reshape(n, steps, v)
