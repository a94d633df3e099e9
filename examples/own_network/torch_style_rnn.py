"""Sequence layers as objects in PyTorch's layout, written from scratch, and their tfparity
declarations.

``LSTM`` and ``GRU`` keep PyTorch's parameters: ``weight_ih`` (G*H, D), ``weight_hh`` (G*H, H),
``bias_ih`` and ``bias_hh`` (G*H,), gate blocks i, f, g, o (LSTM) and r, z, n (GRU, the reset
gate applied after the recurrent product), from a zero state; ``batch_first`` as PyTorch's
(False: time-major (T, N, D)). ``Embedding`` and ``Linear`` (weight (out, in), applied at every
step) complete a captioning-style network; the loss is PyTorch's ``cross_entropy`` with
``ignore_index=0``: the mean over the steps whose label is not 0.

``build(model="lstm" | "gru")`` at the end holds the only tfparity code.
"""

from __future__ import annotations

import numpy as np

VOCABULARY, WORDS, HIDDEN, STEPS = 12, 8, 6, 5


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Recurrent:
    """What LSTM and GRU share: parameters, the loop over time, the layout of x and y."""

    gates = 0

    def __init__(self, input_size, hidden_size, batch_first=True, recurrent_bias=True, seed=0):
        rng, g = np.random.default_rng(seed), self.gates * hidden_size
        bound = 1 / np.sqrt(hidden_size)
        self.params = {"weight_ih": rng.uniform(-bound, bound, (g, input_size)),
                       "weight_hh": rng.uniform(-bound, bound, (g, hidden_size)),
                       "bias_ih": np.zeros(g), "bias_hh": np.zeros(g)}
        self.grads, self.hidden = {}, hidden_size
        self.batch_first, self.recurrent_bias = batch_first, recurrent_bias

    def forward(self, x):
        """x (N, T, D) (time-major (T, N, D) unless ``batch_first``) -> every hidden state."""
        xs = x if self.batch_first else x.transpose(1, 0, 2)
        p = self.params
        b_hh = p["bias_hh"] if self.recurrent_bias else 0 * p["bias_hh"]
        h = np.zeros((xs.shape[0], self.hidden), dtype=xs.dtype)
        state, self.steps, out = self.initial(h), [], np.zeros(xs.shape[:2] + (self.hidden,),
                                                             dtype=xs.dtype)
        for t in range(xs.shape[1]):
            gi = xs[:, t] @ p["weight_ih"].T + p["bias_ih"]
            gh = h @ p["weight_hh"].T + b_hh
            h, state, saved = self.step(gi, gh, h, state)
            self.steps.append((xs[:, t], saved))
            out[:, t] = h
        return out if self.batch_first else out.transpose(1, 0, 2)

    def backward(self, dy):
        """dy like the output; fills ``grads`` and returns dx like x."""
        dys = dy if self.batch_first else dy.transpose(1, 0, 2)
        p = self.params
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        dx = np.zeros(dys.shape[:2] + (p["weight_ih"].shape[1],), dtype=dys.dtype)
        dh, dstate = np.zeros_like(dys[:, 0]), np.zeros_like(dys[:, 0])
        for t in reversed(range(dys.shape[1])):
            x_t, saved = self.steps[t]
            dgi, dgh, dh, dstate = self.step_backward(dys[:, t] + dh, dstate, saved)
            dx[:, t] = dgi @ p["weight_ih"]
            dh = dh + dgh @ p["weight_hh"]
            grads["weight_ih"] += dgi.T @ x_t
            grads["weight_hh"] += dgh.T @ saved[0]
            grads["bias_ih"] += dgi.sum(axis=0)
            grads["bias_hh"] += dgh.sum(axis=0) if self.recurrent_bias else 0
        self.grads = grads
        return dx if self.batch_first else dx.transpose(1, 0, 2)


class LSTM(Recurrent):
    """PyTorch's nn.LSTM (one layer): gates i, f, g, o; c' = f c + i g, h' = o tanh(c')."""

    gates = 4

    def initial(self, h):
        return np.zeros_like(h)  # the cell state

    def step(self, gi, gh, h, c):
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_next = f * c + i * g
        tanh_c = np.tanh(c_next)
        return o * tanh_c, c_next, (h, c, i, f, g, o, tanh_c)

    def step_backward(self, dh, dc, saved):
        _, c, i, f, g, o, tanh_c = saved
        dc = dc + dh * o * (1 - tanh_c ** 2)
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g ** 2),
                             dh * tanh_c * o * (1 - o)], axis=1)
        return da, da, np.zeros_like(dh), dc * f


class GRU(Recurrent):
    """PyTorch's nn.GRU (one layer): gates r, z, n; n = tanh(gi_n + r (gh_n)),
    h' = (1 - z) n + z h."""

    gates = 3

    def initial(self, h):
        return np.zeros_like(h)  # unused: the state is h

    def step(self, gi, gh, h, state):
        (ir, iz, i_n), (hr, hz, h_n) = np.split(gi, 3, axis=1), np.split(gh, 3, axis=1)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = np.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, state, (h, r, z, n, h_n)

    def step_backward(self, dh, dstate, saved):
        h, r, z, n, h_n = saved
        dn = dh * (1 - z) * (1 - n ** 2)
        dr, dz = dn * h_n * r * (1 - r), dh * (h - n) * z * (1 - z)
        dgi = np.concatenate([dr, dz, dn], axis=1)
        dgh = np.concatenate([dr, dz, dn * r], axis=1)
        return dgi, dgh, dh * z, dstate


class Embedding:
    """PyTorch's nn.Embedding: words (N, T) -> weight[words] (N, T, D)."""

    def __init__(self, num_embeddings, embedding_dim, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"weight": rng.standard_normal((num_embeddings, embedding_dim))}
        self.grads = {}

    def forward(self, x):
        self.x = x
        return self.params["weight"][x]

    def backward(self, dy):
        """Fills the table's gradient (repeated words add); words have no gradient."""
        self.grads["weight"] = np.zeros_like(self.params["weight"])
        np.add.at(self.grads["weight"], self.x, dy)


class Linear:
    """PyTorch's nn.Linear on (N, T, in): x weight.T + bias, weight (out, in)."""

    def __init__(self, in_features, out_features, seed=0):
        rng, bound = np.random.default_rng(seed), 1 / np.sqrt(in_features)
        self.params = {"weight": rng.uniform(-bound, bound, (out_features, in_features)),
                       "bias": np.zeros(out_features)}
        self.grads = {}

    def forward(self, x):
        self.x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, dy):
        d = self.x.shape[-1]
        self.grads = {"weight": dy.reshape(-1, dy.shape[-1]).T @ self.x.reshape(-1, d),
                      "bias": dy.sum(axis=(0, 1))}
        return dy @ self.params["weight"]


def cross_entropy(logits, labels, mask):
    """PyTorch's cross_entropy of logits (N, T, V) with ignore_index=0 (``mask`` = labels != 0):
    the mean over the unmasked steps. Returns (loss, dlogits)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    n, steps = labels.shape
    picked = log_p[np.arange(n)[:, None], np.arange(steps), labels]
    valid = max(int(mask.sum()), 1)
    dlogits = np.exp(log_p)
    dlogits[np.arange(n)[:, None], np.arange(steps), labels] -= 1
    return -(picked * mask).sum() / valid, dlogits * mask[..., None] / valid


# The tfparity declarations -----------------------------------------------------------------

TORCH = {"weight_layout": "OI", "biases": 2,
         "names": {"kernel": "weight_ih", "recurrent_kernel": "weight_hh", "bias": "bias_ih",
                   "recurrent_bias": "bias_hh"}}


def build(model: str = "lstm"):
    """Words (N, 5) -> Embedding -> LSTM or GRU -> Linear at every step, in PyTorch's layout."""
    from reference_tf import own

    if model == "lstm":
        recurrent = own.LSTM(LSTM(WORDS, HIDDEN), HIDDEN, gate_order="ifgo", **TORCH)
    elif model == "gru":
        recurrent = own.GRU(GRU(WORDS, HIDDEN), HIDDEN, gate_order="rzn", **TORCH)
    else:
        raise ValueError(f"build: expected model 'lstm' or 'gru', received {model!r}.")
    layers = [own.Embedding(Embedding(VOCABULARY, WORDS), VOCABULARY, WORDS,
                            name_of_table="weight"),
              recurrent, own.Dense(Linear(HIDDEN, VOCABULARY), VOCABULARY)]
    return own.Model(layers, (STEPS,), num_classes=VOCABULARY,
                     loss=own.SequenceLoss(cross_entropy, reduction="valid_steps"),
                     conventions=own.Conventions(dense_layout="OI",
                                                 names={"kernel": "weight", "bias": "bias"}))
