"""Recurrent layers (SimpleRNN, LSTM, GRU) as Keras 3 computes them, with backpropagation
through time.

One step function per cell and one loop for all of them (as Keras's ``rnn()`` around a cell's
``call``): the step computes one time step of a batch; the loop owns time, the direction
(``go_backwards``) and the mask. The gate order of each cell lives in ``GATES`` and nowhere
else: a kernel's columns are the gates' blocks of ``units`` columns in that order.

Keras's layouts and names: ``kernel`` (D, G*U), ``recurrent_kernel`` (U, G*U), ``bias``
(G*U,), for GRU with ``reset_after=True`` (2, G*U) (row 0 the input bias, row 1 the recurrent
bias); G the number of gates of ``GATES[cell]``, U the units. The initial state is zero.

What makes it fast: the input projection ``x @ kernel`` of all time steps is one matrix product
before the loop, and the kernels' gradients are one product each after the backward loop, so
the loops only multiply by the recurrent kernel. Arrays inside are time-major (T, N, ...),
preallocated once per pass.

Masking as Keras on the CPU (``zero_output_for_mask=False``): at a masked step an example keeps
its state (and so its output repeats the last one; zeros before its first unmasked step).
With ``go_backwards`` the sequence (and its mask) is read from the last step to the first, and
``return_sequences`` returns the outputs in that reversed order, as Keras does.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

# The gates of each cell, in the order of the kernels' column blocks (Keras's).
GATES: dict[str, tuple[str, ...]] = {
    "simple_rnn": ("h",),                # h: the new state's pre-activation
    "lstm": ("i", "f", "c", "o"),        # input, forget, cell candidate, output
    "gru": ("z", "r", "h"),              # update, reset, candidate
}


# The gates whose activation is tanh (the candidates); the others are sigmoids.
TANH_GATES: dict[str, tuple[str, ...]] = {"simple_rnn": ("h",), "lstm": ("c",), "gru": ("h",)}


def gate(a: np.ndarray, cell: str, name: str) -> np.ndarray:
    """The view of gate ``name``'s block of ``cell`` in the last axis of ``a`` (..., G*U)."""
    index, count = GATES[cell].index(name), len(GATES[cell])
    units = a.shape[-1] // count
    return a[..., index * units:(index + 1) * units]


def _sigmoid(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = sigmoid(a) = (1 + tanh(a / 2)) / 2``, written into ``out``: one transcendental
    pass instead of exp and a division (2.4 times faster on the gates of a step); exact to a
    unit in the last place of 1/2 (absolute), which the gates need."""
    np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


class RecurrentCache(NamedTuple):
    """What the backward pass of a recurrent layer needs, time-major in processing order
    (reversed time with ``go_backwards``). G gates, U units, T steps, N examples, D features.

    ``pre[t]`` holds the gates' pre-activations of step t and ``act[t]`` their activations
    (G blocks of U in ``GATES`` order); ``states[t + 1]`` the hidden state after step t
    (``states[0]`` the zero initial state); ``cells`` the LSTM's cell state likewise (None for
    the other cells); ``extra[t]`` tanh of the new cell state (LSTM), the recurrent candidate
    term ``h @ U_h + b_h`` (GRU, reset_after) or ``r * h`` (GRU, reset before), else None.
    """

    cell: str
    x: np.ndarray                 # (T, N, D), processing order
    kernel: np.ndarray            # (D, G*U)
    recurrent_kernel: np.ndarray  # (U, G*U)
    bias: np.ndarray | None       # (G*U,) or (2, G*U) (GRU reset_after); None without bias
    mask: np.ndarray | None       # (T, N, 1) bool, processing order; None: no mask
    pre: np.ndarray               # (T, N, G*U)
    act: np.ndarray               # (T, N, G*U)
    states: np.ndarray            # (T + 1, N, U)
    cells: np.ndarray | None      # (T + 1, N, U) LSTM
    extra: np.ndarray | None      # (T, N, U)
    reset_after: bool
    go_backwards: bool
    return_sequences: bool


def activation_slopes(cell: str, act: np.ndarray) -> np.ndarray:
    """Every gate's derivative from its activation a, for all steps at once: a (1 - a) for the
    sigmoids, 1 - a^2 for the tanh gates. act (..., G*U) -> the same shape."""
    slopes = act * (1 - act)
    for name in TANH_GATES[cell]:
        a = gate(act, cell, name)
        np.multiply(a, a, out=gate(slopes, cell, name))
        np.subtract(1, gate(slopes, cell, name), out=gate(slopes, cell, name))
    return slopes


# Steps: one time step of a batch -------------------------------------------------------------
# A forward step reads xw (N, G*U) (the input projection plus the input bias) and the previous
# state(s), writes the step's pre-activations, activations and ``extra`` into its slots of the
# cache arrays and the new state(s) into ``new``. A backward step reads the gradients of the new
# state(s) (already masked), writes d(pre-activation) of the input path into ``dxw`` and of the
# recurrent path into ``drec``, and returns the gradients of the previous state(s) it causes;
# ``slope`` holds the gates' derivatives (``activation_slopes``).

def simple_rnn_step_forward(xw, prev, recurrent_kernel, recurrent_bias, pre, act, extra, new):
    """h = tanh(x W + b + h_prev U). prev, new: (h,) each (N, U)."""
    np.matmul(prev[0], recurrent_kernel, out=pre)
    pre += xw
    np.tanh(pre, out=act)
    new[0][...] = act


def simple_rnn_step_backward(dnew, prev, new, recurrent_kernel, act, slope, extra, dxw, drec):
    """d(pre) = dh (1 - h^2); dh_prev = d(pre) U^T."""
    np.multiply(dnew[0], slope, out=dxw)
    return (dxw @ recurrent_kernel.T,)


def lstm_step_forward(xw, prev, recurrent_kernel, recurrent_bias, pre, act, extra, new):
    """Keras's LSTM cell: z = x W + b + h_prev U; i, f, o = sigmoid, c~ = tanh of their blocks;
    c = f c_prev + i c~; h = o tanh(c). prev, new: (h, c) each (N, U); extra: tanh(c)."""
    (h_prev, c_prev), (h, c) = prev, new
    np.matmul(h_prev, recurrent_kernel, out=pre)
    pre += xw
    _sigmoid(pre, act)
    candidate = gate(act, "lstm", "c")
    np.tanh(gate(pre, "lstm", "c"), out=candidate)
    np.multiply(gate(act, "lstm", "f"), c_prev, out=c)
    c += gate(act, "lstm", "i") * candidate
    np.tanh(c, out=extra)
    np.multiply(gate(act, "lstm", "o"), extra, out=h)


def lstm_step_backward(dnew, prev, new, recurrent_kernel, act, slope, extra, dxw, drec):
    """BPTT through one LSTM step (docs/derivations.md, section "LSTM"). dnew = (dh, dc) of
    the new state; returns (dh_prev, dc_prev)."""
    (dh, dc_in), c_prev = dnew, prev[1]
    i, f, g, o = (gate(act, "lstm", name) for name in GATES["lstm"])
    tanh_c = extra
    dc = tanh_c * tanh_c
    np.subtract(1, dc, out=dc)
    dc *= o
    dc *= dh
    dc += dc_in
    di, df, dg, do = (gate(dxw, "lstm", name) for name in GATES["lstm"])
    np.multiply(dc, g, out=di)
    np.multiply(dc, c_prev, out=df)
    np.multiply(dc, i, out=dg)
    np.multiply(dh, tanh_c, out=do)
    dxw *= slope
    return dxw @ recurrent_kernel.T, dc * f


def gru_step_forward(xw, prev, recurrent_kernel, recurrent_bias, pre, act, extra, new,
                     reset_after=True):
    """Keras's GRU cell: z, r = sigmoid(x W_zr + b + h_prev U_zr (+ b'_zr)); with reset_after
    h~ = tanh(x W_h + b_h + r (h_prev U_h + b'_h)), else h~ = tanh(x W_h + b_h + (r h_prev) U_h);
    h = z h_prev + (1 - z) h~. prev, new: (h,) each (N, U); extra: ``h_prev U_h + b'_h``
    (reset_after) or ``r h_prev``."""
    h_prev, h = prev[0], new[0]
    units = h.shape[1]
    if reset_after:
        np.matmul(h_prev, recurrent_kernel, out=pre)
        if recurrent_bias is not None:
            pre += recurrent_bias
        extra[...] = gate(pre, "gru", "h")
    else:
        np.matmul(h_prev, recurrent_kernel[:, :2 * units], out=pre[:, :2 * units])
    pre[:, :2 * units] += xw[:, :2 * units]
    _sigmoid(pre[:, :2 * units], act[:, :2 * units])
    z, r = gate(act, "gru", "z"), gate(act, "gru", "r")
    pre_h = gate(pre, "gru", "h")
    if reset_after:
        np.multiply(r, extra, out=pre_h)
    else:
        np.multiply(r, h_prev, out=extra)
        np.matmul(extra, gate(recurrent_kernel, "gru", "h"), out=pre_h)
    pre_h += gate(xw, "gru", "h")
    candidate = gate(act, "gru", "h")
    np.tanh(pre_h, out=candidate)
    # h = z h_prev + (1 - z) h~ = h~ + z (h_prev - h~)
    np.subtract(h_prev, candidate, out=h)
    h *= z
    h += candidate


def gru_step_backward(dnew, prev, new, recurrent_kernel, act, slope, extra, dxw, drec,
                      reset_after=True):
    """BPTT through one GRU step (docs/derivations.md, section "GRU"); returns (dh_prev,)."""
    dh, h_prev = dnew[0], prev[0]
    z, r, candidate = (gate(act, "gru", name) for name in GATES["gru"])
    dz, dr, dcandidate = (gate(dxw, "gru", name) for name in GATES["gru"])
    slope_z, slope_r, slope_h = (gate(slope, "gru", name) for name in GATES["gru"])
    np.subtract(h_prev, candidate, out=dz)
    dz *= dh
    dz *= slope_z
    np.subtract(1, z, out=dcandidate)
    dcandidate *= dh
    dcandidate *= slope_h
    units = dh.shape[1]
    if reset_after:
        np.multiply(dcandidate, extra, out=dr)
        dr *= slope_r
        drec[:, :2 * units] = dxw[:, :2 * units]
        np.multiply(dcandidate, r, out=gate(drec, "gru", "h"))
        dh_prev = drec @ recurrent_kernel.T
    else:
        dreset_input = dcandidate @ gate(recurrent_kernel, "gru", "h").T  # d(r h_prev)
        np.multiply(dreset_input, h_prev, out=dr)
        dr *= slope_r
        dh_prev = dxw[:, :2 * units] @ recurrent_kernel[:, :2 * units].T
        dh_prev += dreset_input * r
    dh_prev += dh * z
    return (dh_prev,)


class Cell(NamedTuple):
    """A cell for the loop: its steps, state count and what the loop keeps per step."""

    step_forward: Callable
    step_backward: Callable
    states: int     # 1 (h) or 2 (h, c)
    extra: bool     # whether the cache keeps ``extra``


def _cell(name: str, reset_after: bool) -> Cell:
    if name == "simple_rnn":
        return Cell(simple_rnn_step_forward, simple_rnn_step_backward, 1, False)
    if name == "lstm":
        return Cell(lstm_step_forward, lstm_step_backward, 2, True)

    def forward(*args):
        gru_step_forward(*args, reset_after=reset_after)

    def backward(*args):
        return gru_step_backward(*args, reset_after=reset_after)

    return Cell(forward, backward, 1, True)


def _biases(cell: str, bias: np.ndarray | None, reset_after: bool):
    """(input bias (G*U,) or None, recurrent bias (G*U,) or None)."""
    if bias is None:
        return None, None
    if cell == "gru" and reset_after:
        return bias[0], bias[1]
    return bias, None


def recurrent_forward(cell: str, x: np.ndarray, kernel: np.ndarray,
                      recurrent_kernel: np.ndarray, bias: np.ndarray | None,
                      mask: np.ndarray | None = None, *, go_backwards: bool = False,
                      return_sequences: bool = False, reset_after: bool = True,
                      keep_steps: bool = True):
    """A recurrent layer's forward pass over a batch of sequences.

    Args:
        cell: "simple_rnn", "lstm" or "gru" (a key of ``GATES``).
        x: inputs (N, T, D).
        kernel: (D, G*U); recurrent_kernel: (U, G*U); bias: (G*U,), (2, G*U) for a GRU with
            ``reset_after``, or None.
        mask: bool (N, T), True at the steps to compute; None computes every step.
        go_backwards: read the sequence from the last step to the first.
        return_sequences: return every step's output, else the last one.
        reset_after: GRU only: Keras's ``reset_after``.
        keep_steps: False (evaluation) reuses one step's buffers for the gates instead of
            keeping every step's: the cache then holds only the last step's, and no backward
            pass can use it.

    Returns:
        (y, cache): y (N, T, U) in processing order with ``return_sequences``, else (N, U).
    """
    n, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    spec = _cell(cell, reset_after)
    xs = x.transpose(1, 0, 2)
    masks = None if mask is None else mask.T[:, :, None]
    if go_backwards:
        xs = xs[::-1]
        masks = None if masks is None else masks[::-1]
    xs = np.ascontiguousarray(xs)
    input_bias, recurrent_bias = _biases(cell, bias, reset_after)
    xw = (xs.reshape(steps * n, -1) @ kernel).reshape(steps, n, -1)
    if input_bias is not None:
        xw += input_bias
    kept = steps if keep_steps else 1
    pre, act = (np.empty((kept, *xw.shape[1:]), dtype=x.dtype) for _ in range(2))
    states = np.zeros((steps + 1, n, units), dtype=x.dtype)
    cells = np.zeros_like(states) if spec.states == 2 else None
    extra = np.empty((kept, n, units), dtype=x.dtype) if spec.extra else None
    carried = (states,) if cells is None else (states, cells)
    for t in range(steps):
        prev = tuple(s[t] for s in carried)
        new = tuple(s[t + 1] for s in carried)
        slot = t if keep_steps else 0
        spec.step_forward(xw[t], prev, recurrent_kernel, recurrent_bias, pre[slot], act[slot],
                          None if extra is None else extra[slot], new)
        if masks is not None:
            for old, fresh in zip(prev, new):
                np.copyto(fresh, old, where=~masks[t])
    cache = RecurrentCache(cell, xs, kernel, recurrent_kernel, bias, masks, pre, act, states,
                           cells, extra, reset_after, go_backwards, return_sequences)
    y = np.ascontiguousarray(states[1:].transpose(1, 0, 2)) if return_sequences else states[-1]
    return y, cache


def recurrent_backward_through_time(dy: np.ndarray, cache: RecurrentCache,
                                    need_input_grad: bool = True):
    """``recurrent_backward`` and the gradient flowing back through time.

    Returns:
        (dx, dkernel, drecurrent_kernel, dbias, dstates): as ``recurrent_backward``, and
        dstates (T, N, U), time-major in processing order: dL/dh_t, the gradient of the hidden
        state after step t (from the outputs and from the later steps).
    """
    steps, n, _ = cache.x.shape
    units = cache.recurrent_kernel.shape[0]
    spec = _cell(cache.cell, cache.reset_after)
    dxw = np.empty_like(cache.pre)
    separate = cache.cell == "gru" and cache.reset_after
    drec = np.empty_like(dxw) if separate else dxw
    dstates = np.empty((steps, n, units), dtype=dy.dtype)
    dys = dy.transpose(1, 0, 2) if cache.return_sequences else None
    carried = (cache.states,) if cache.cells is None else (cache.states, cache.cells)
    slopes = activation_slopes(cache.cell, cache.act)
    grads = tuple(np.zeros((n, units), dtype=dy.dtype) for _ in carried)
    if not cache.return_sequences:
        grads[0][...] = dy
    for t in range(steps - 1, -1, -1):
        if dys is not None:
            np.add(grads[0], dys[t], out=grads[0])
        dstates[t] = grads[0]
        prev = tuple(s[t] for s in carried)
        new = tuple(s[t + 1] for s in carried)
        dnew = grads if cache.mask is None else tuple(g * cache.mask[t] for g in grads)
        back = spec.step_backward(dnew, prev, new, cache.recurrent_kernel, cache.act[t],
                                  slopes[t], None if cache.extra is None else cache.extra[t],
                                  dxw[t], drec[t])
        if cache.mask is not None:  # a masked step passes its state's gradient on unchanged
            for g, b in zip(grads, back):
                np.copyto(b, g, where=~cache.mask[t], casting="no")
        grads = back
    flat = dxw.reshape(steps * n, -1)
    dkernel = cache.x.reshape(steps * n, -1).T @ flat
    h_prev = cache.states[:-1].reshape(steps * n, units)
    if cache.cell == "gru" and not cache.reset_after:
        drecurrent = np.empty_like(cache.recurrent_kernel)
        drecurrent[:, :2 * units] = h_prev.T @ flat[:, :2 * units]
        gate(drecurrent, "gru", "h")[...] = (cache.extra.reshape(steps * n, units).T
                                             @ gate(flat, "gru", "h"))
    else:
        drecurrent = h_prev.T @ drec.reshape(steps * n, -1)
    dbias = None
    if cache.bias is not None:
        dbias = flat.sum(axis=0)
        if separate:
            dbias = np.stack([dbias, drec.reshape(steps * n, -1).sum(axis=0)])
    dx = None
    if need_input_grad:
        dxs = (flat @ cache.kernel.T).reshape(steps, n, -1)
        if cache.go_backwards:
            dxs = dxs[::-1]
        dx = np.ascontiguousarray(dxs.transpose(1, 0, 2))
    return dx, dkernel, drecurrent, dbias, dstates


def recurrent_backward(dy: np.ndarray, cache: RecurrentCache, need_input_grad: bool = True):
    """Backpropagation through time of ``recurrent_forward``.

    Args:
        dy: dL/dy, (N, T, U) with ``return_sequences`` (processing order), else (N, U).
        cache: from ``recurrent_forward``.
        need_input_grad: False skips dx (returned as None).

    Returns:
        (dx, dkernel, drecurrent_kernel, dbias): (N, T, D), (D, G*U), (U, G*U), the bias's
        shape (None without a bias).
    """
    return recurrent_backward_through_time(dy, cache, need_input_grad)[:4]


def hidden_states(cache: RecurrentCache) -> np.ndarray:
    """The hidden state after every step, (N, T, U) in processing order (masked steps carry the
    previous state)."""
    return cache.states[1:].transpose(1, 0, 2)


def gate_pre_activations(cache: RecurrentCache) -> dict[str, np.ndarray]:
    """Every step's pre-activation of each gate: name -> (N, T, U) in processing order.

    GRU with ``reset_after``: "h" is ``x W_h + b_h + r (h_prev U_h + b'_h)``.
    """
    pre = cache.pre.transpose(1, 0, 2)
    return {name: gate(pre, cache.cell, name) for name in GATES[cache.cell]}
