"""Real bugs planted in the sequence layers' backward passes (and one in the LSTM's forward
pass), one function each, shared by test_tf_sequence_planted.py and test_tf_through_time.py.

The loop of ``scratch.ops.recurrent`` looks its step functions up when a pass starts and the
layers call ``scratch.ops.embedding_backward`` through the ``ops`` module, so monkeypatching
those names plants the bug; the planted code wraps the real functions.
"""

from __future__ import annotations

import numpy as np

from scratch import ops
from scratch.ops import recurrent

# The time step whose recurrent-kernel contribution the planted accumulation forgets.
FORGOTTEN_STEP = 14


def plant_lstm_forget_gate_no_sigmoid_derivative(monkeypatch):
    """The forget gate's gradient misses its sigmoid's derivative f (1 - f)."""
    real = recurrent.lstm_step_backward

    def planted(dnew, prev, new, recurrent_kernel, act, slope, extra, dxw, drec):
        _, dc_prev = real(dnew, prev, new, recurrent_kernel, act, slope, extra, dxw, drec)
        f = recurrent.gate(act, "lstm", "f")
        recurrent.gate(dxw, "lstm", "f")[...] /= f * (1 - f)
        return dxw @ recurrent_kernel.T, dc_prev

    monkeypatch.setattr(recurrent, "lstm_step_backward", planted)


def plant_lstm_output_gate_tanh(monkeypatch):
    """The forward pass: the LSTM's output gate takes tanh instead of the sigmoid."""
    real = recurrent.lstm_step_forward

    def planted(xw, prev, recurrent_kernel, recurrent_bias, pre, act, extra, new):
        real(xw, prev, recurrent_kernel, recurrent_bias, pre, act, extra, new)
        o = recurrent.gate(act, "lstm", "o")
        np.tanh(recurrent.gate(pre, "lstm", "o"), out=o)
        np.multiply(o, extra, out=new[0])

    monkeypatch.setattr(recurrent, "lstm_step_forward", planted)


def plant_gru_reset_gate_no_sigmoid_derivative(monkeypatch):
    """The GRU's reset gate gradient misses its sigmoid's derivative r (1 - r)."""
    real = recurrent.gru_step_backward

    def planted(dnew, prev, new, recurrent_kernel, act, slope, extra, dxw, drec,
                reset_after=True):
        dh_prev = real(dnew, prev, new, recurrent_kernel, act, slope, extra, dxw, drec,
                       reset_after=reset_after)
        r = recurrent.gate(act, "gru", "r")
        recurrent.gate(dxw, "gru", "r")[...] /= r * (1 - r)
        recurrent.gate(drec, "gru", "r")[...] = recurrent.gate(dxw, "gru", "r")
        return dh_prev

    monkeypatch.setattr(recurrent, "gru_step_backward", planted)


def plant_recurrent_kernel_grad_forgets_a_step(monkeypatch):
    """The recurrent kernel's gradient leaves out step ``FORGOTTEN_STEP``'s term
    h_{t-1}^T d(pre)_t (the accumulation reads a zero hidden state there; an LSTM's backward
    steps read only the cell state, so nothing else changes)."""
    real = recurrent.recurrent_backward_through_time

    def planted(dy, cache, need_input_grad=True):
        states = cache.states.copy()
        states[FORGOTTEN_STEP] = 0  # h_{t-1} of step t = FORGOTTEN_STEP
        return real(dy, cache._replace(states=states), need_input_grad)

    monkeypatch.setattr(recurrent, "recurrent_backward_through_time", planted)


def plant_embedding_repeated_index_counted_once(monkeypatch):
    """The embeddings' gradient adds with fancy indexing (``table[indices] += dy``), which
    writes a repeated index once instead of summing its rows."""

    def planted(dy, cache):
        dtable = np.zeros((cache.input_dim, dy.shape[-1]), dtype=dy.dtype)
        dtable[cache.indices.ravel()] += dy.reshape(-1, dy.shape[-1])
        return dtable

    monkeypatch.setattr(ops, "embedding_backward", planted)
