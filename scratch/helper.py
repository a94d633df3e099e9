"""A second process that runs the second half of a training step's fused convolution blocks.

TensorFlow runs a training step on every core; the engine's step is NumPy in one thread. Python
threads cannot share it: every NumPy call takes the GIL, and each hand-over between two threads
wakes the other core (about 65 us on a 2-core VM), so two threads on half a batch each saved 7%
of a CNN step, where a second process saves about 35% (docs/performance.md). So, unless the
helper's rule is off (``TFPARITY_STEP_HELPER``, ``scratch.threads``), ``scratch.fusion.ConvChain``
runs a batch of at least ``MIN_SPLIT`` images as two halves (``halves``) through the same
functions (``chain_forward``, ``chain_backward``), with the halves' kernel gradients added in a
fixed order: the numbers never depend on where a half ran, nor on the machine's load. While the
step phase has the helper, the second half runs here, beside the first.

The child is ``python -m scratch.helper FD``: a plain interpreter, so no user script is imported
again (as multiprocessing's spawn would). It gets commands on a socket, and the arrays through a
shared memory file that the parent unlinks as soon as both have mapped it. It ignores Ctrl-C,
runs its BLAS with the parent's thread count (a product's rounding can depend on it), and ends
when the socket closes. A helper that fails (exits, cannot start, raises) is stopped and not
started again in this process; the step then computes the second half itself, the same numbers
(``fault`` says why).
"""

from __future__ import annotations

import atexit
import math
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratch import ops
from scratch.ops.phase_split import split_geometry

# Batches of fewer images run in one piece: halves that small would not pay for the hand-over.
MIN_SPLIT = 32
# Seconds between checks that a child which has not answered yet is still alive.
_POLL_SECONDS = 1.0
# Seconds each side polls for the other's next message before it sleeps: waking a sleeping
# process on the other core costs tens of microseconds on a VM, several times per step.
_SPIN_SECONDS = {"parent": 0.002, "child": 0.005}
_ALIGN = 64


class Block(NamedTuple):
    """One fused Conv2D -> ReLU -> MaxPool2D block's arguments (``ops.conv_relu_pool_forward``)."""

    kernel: np.ndarray
    bias: np.ndarray
    padding: str
    pool_size: tuple


class HelperFault(RuntimeError):
    """The helper process failed: it exited, could not start, or raised."""


class HelperWarning(RuntimeWarning):
    """Warned once per process when its helper fails (the steps go on without it)."""


def halves(n: int) -> list[slice]:
    """How a batch of n images is run: two halves from ``MIN_SPLIT`` images on, else whole."""
    if n < MIN_SPLIT:
        return [slice(0, n)]
    return [slice(0, n // 2), slice(n // 2, n)]


def chain_forward(blocks: list[Block], x: np.ndarray) -> tuple[np.ndarray, list]:
    """x (n, H, W, C) NHWC through the blocks: (y (c_out, Hq, Wq, n), the blocks' caches)."""
    h, caches = x.transpose(3, 1, 2, 0), []  # a view: the first block's split copies from it
    for block in blocks:
        h, cache = ops.conv_relu_pool_forward(h, *block)
        caches.append(cache)
    return h, caches


def chain_backward(dy: np.ndarray, caches: list, need_input_grad: bool
                   ) -> tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]]]:
    """dy (n, Hq, Wq, c_out) NHWC back through the blocks of ``caches``: (dx (C, H, W, n) or
    None without ``need_input_grad``, [(dkernel, dbias) per block])."""
    d, grads = np.ascontiguousarray(dy.transpose(3, 1, 2, 0)), []
    for index in range(len(caches) - 1, -1, -1):
        d, dkernel, dbias = ops.conv_relu_pool_backward(d, caches[index],
                                                         need_input_grad or index > 0)
        grads.append((dkernel, dbias))
    return d, grads[::-1]


def chain_output_shape(blocks: list[Block], x_shape: tuple) -> tuple:
    """The (c_out, Hq, Wq, n) shape ``chain_forward`` returns for an input of x_shape (NHWC)."""
    n, h, w, c = x_shape
    shape = (c, h, w, n)
    for block in blocks:
        g = split_geometry(shape, block.kernel.shape[:2], block.padding, block.pool_size)
        shape = (block.kernel.shape[3], *g.pooled, n)
    return shape


class _Spec(NamedTuple):
    """Where an array lies in the shared memory."""

    offset: int
    shape: tuple
    dtype: str


class _Memory(NamedTuple):
    """A shared memory file, mapped; ``unlink`` once both processes have mapped it."""

    path: str
    size: int
    map: mmap.mmap

    @classmethod
    def create(cls, size: int) -> _Memory:
        directory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
        fd, path = tempfile.mkstemp(prefix="tfparity-helper-", dir=directory)
        try:
            os.ftruncate(fd, size)
            return cls(path, size, mmap.mmap(fd, size))
        finally:
            os.close(fd)

    @classmethod
    def attach(cls, path: str, size: int) -> _Memory:
        with open(path, "r+b") as f:
            return cls(path, size, mmap.mmap(f.fileno(), size))

    def unlink(self) -> None:
        Path(self.path).unlink(missing_ok=True)

    def array(self, spec: _Spec) -> np.ndarray:
        return np.ndarray(spec.shape, spec.dtype, self.map, spec.offset)


def _layout(arrays: list[tuple[tuple, np.dtype]]) -> tuple[list[_Spec], int]:
    """Specs of consecutive, aligned arrays of the given shapes and dtypes, and their total size."""
    specs, offset = [], 0
    for shape, dtype in arrays:
        dtype = np.dtype(dtype)
        specs.append(_Spec(offset, tuple(shape), dtype.str))
        offset += -(-math.prod(shape) * dtype.itemsize // _ALIGN) * _ALIGN
    return specs, offset


def _spin_until_readable(connection: Connection, seconds: float) -> bool:
    """Whether a message arrives within ``seconds``, polling without sleeping."""
    deadline = time.perf_counter() + seconds
    while not connection.poll(0):
        if time.perf_counter() > deadline:
            return False
    return True


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


class StepHelper:
    """The parent's side of one helper process: ``submit_forward`` then ``forward_result``,
    ``submit_backward`` then ``backward_result``, for the second half of a batch.

    Raises:
        HelperFault: from the ``*_result`` calls, when the helper failed; it is then stopped.
    """

    def __init__(self):
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (
            _package_root(), os.environ.get("PYTHONPATH"))))}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scratch.helper", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        self.connection = Connection(ours.detach())
        self.sent = 0  # commands sent; each reply names the command it answers
        self.ready = False
        self.memory: _Memory | None = None
        self._outputs: list[_Spec] = []

    def poll_ready(self, wait: float = 0.0) -> bool:
        """Whether the child has started and said so, waiting up to ``wait`` seconds."""
        if not self.ready and self.connection.poll(wait):
            self.ready = self._receive()[0] == "ready"
        return self.ready

    def _reply(self) -> tuple:
        """The reply to the last command sent; a reply to another one is a fault (a pass was
        interrupted between a command and its reply)."""
        message = self._receive()
        if message[1] != self.sent:
            raise HelperFault(f"the helper answered command {message[1]} where {self.sent} was "
                              f"due")
        return message

    def _receive(self) -> tuple:
        try:
            while not _spin_until_readable(self.connection, _SPIN_SECONDS["parent"]) and \
                    not self.connection.poll(_POLL_SECONDS):
                if self.process.poll() is not None:
                    raise HelperFault(f"the helper exited with code {self.process.returncode}")
            message = self.connection.recv()
        except (EOFError, OSError) as error:
            raise HelperFault(f"the helper's connection broke ({error!r})") from None
        if message[0] == "error":
            raise HelperFault(f"the helper raised {message[1]}")
        return message

    def _send(self, message: tuple) -> None:
        self.sent += 1
        try:
            self.connection.send((self.sent, *message))
        except OSError as error:
            raise HelperFault(f"the helper's connection broke ({error!r})") from None

    def _place(self, inputs: list[np.ndarray], outputs: list[tuple[tuple, np.dtype]]
               ) -> tuple[list[_Spec], list[_Spec]]:
        specs, size = _layout([(a.shape, a.dtype) for a in inputs] + outputs)
        if self.memory is None or self.memory.size < size:
            memory = _Memory.create(max(2 * size, 1 << 20))
            try:
                self._send(("map", memory.path, memory.size))
                self._reply()
            finally:
                memory.unlink()
            self.memory = memory
        for array, spec in zip(inputs, specs):
            np.copyto(self.memory.array(spec), array)
        return specs[:len(inputs)], specs[len(inputs):]

    def submit_forward(self, blocks: list[Block], x: np.ndarray, blas_threads: int) -> int:
        """Start ``chain_forward(blocks, x)`` in the child; x is the half batch, NHWC.
        ``blas_threads``: this process's BLAS thread count, which the child takes for the pass
        (a product's rounding can depend on it). Returns the command's number, which names the
        half for ``submit_backward``."""
        params = [a for block in blocks for a in (block.kernel, block.bias)]
        out_shape = chain_output_shape(blocks, x.shape)
        inputs, self._outputs = self._place([x, *params], [(out_shape, x.dtype)])
        geometry = [(block.padding, tuple(block.pool_size)) for block in blocks]
        self._send(("forward", inputs, geometry, self._outputs[0], blas_threads))
        return self.sent

    def forward_result(self) -> np.ndarray:
        """``chain_forward``'s y of the submitted half (a copy)."""
        self._reply()
        return self.memory.array(self._outputs[0]).copy()

    def submit_backward(self, forward: int, dy: np.ndarray, dx_shape: tuple | None,
                        grad_shapes: list[tuple], blas_threads: int) -> int:
        """Start ``chain_backward`` of the half that the command numbered ``forward`` ran
        forward, for dy (n, Hq, Wq, c_out); ``dx_shape`` (C, H, W, n), or None for no input
        gradient; ``blas_threads`` as in ``submit_forward``. Returns the command's number."""
        outputs = [(shape, dy.dtype) for shape in grad_shapes]
        if dx_shape is not None:
            outputs.append((dx_shape, dy.dtype))
        (dy_spec,), self._outputs = self._place([dy], outputs)
        self._send(("backward", forward, dy_spec, dx_shape is not None, self._outputs,
                    blas_threads))
        return self.sent

    def backward_result(self) -> tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]]]:
        """``chain_backward``'s (dx or None, [(dkernel, dbias)]) of the submitted half (copies)."""
        self._reply()
        arrays = [self.memory.array(spec).copy() for spec in self._outputs]
        blocks = len(arrays) // 2
        grads = [(arrays[2 * i], arrays[2 * i + 1]) for i in range(blocks)]
        return (arrays[-1] if len(arrays) % 2 else None), grads

    def close(self) -> None:
        """Stop the child (it also ends by itself when this process ends)."""
        try:
            self.connection.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_HELPER: StepHelper | None = None
fault: str | None = None  # why this process's helper failed, if it did


def ready_helper(wait: float = 0.0) -> StepHelper | None:
    """The process's helper once it has started (started here on the first call; ``wait``
    seconds at most for it to be ready), else None; None for good after a fault."""
    global _HELPER, fault
    if fault is not None:
        return None
    try:
        if _HELPER is None:
            _HELPER = StepHelper()
        return _HELPER if _HELPER.poll_ready(wait) else None
    except (OSError, ValueError, HelperFault) as error:  # ValueError: no pass_fds (Windows)
        retire(f"the helper could not start ({error})")
        return None


def running_pids() -> list[int]:
    """The process id of this process's helper while it runs, else none."""
    return [] if _HELPER is None or _HELPER.process.poll() is not None else [_HELPER.process.pid]


def retire(reason: str | None) -> None:
    """Stop the process's helper; with a reason, record it as ``fault``, warn once
    (``HelperWarning``) and start no other."""
    global _HELPER, fault
    if reason is not None and fault is None:
        fault = reason
        warnings.warn(f"tfparity's step helper process stopped: {reason}. Training goes on in "
                      f"this process alone, with the same numbers.", HelperWarning, stacklevel=2)
    if _HELPER is not None:
        helper, _HELPER = _HELPER, None
        helper.close()


def _forget_in_forked_child() -> None:
    # A forked process shares the parent's socket and memory with its helper: it must not talk
    # to it, and starts its own if it needs one.
    global _HELPER
    _HELPER = None


atexit.register(retire, None)
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_forget_in_forked_child)


class _Child:
    """The helper's side: the shared memory, the caches of the halves it ran forward (by the
    number of their forward command, the last ``KEPT`` of them) and its BLAS thread count."""

    KEPT = 4

    def __init__(self):
        from threadpoolctl import ThreadpoolController

        self.blas = ThreadpoolController().select(user_api="blas")
        self.blas_threads: int | None = None
        self.memory: _Memory | None = None
        self.caches: dict[int, list] = {}

    def run(self, number: int, kind: str, *args) -> None:
        if kind == "map":
            self.memory = _Memory.attach(*args)
        elif kind == "forward":
            self.forward(number, *args)
        elif kind == "backward":
            self.backward(*args)
        else:
            raise ValueError(f"unknown command {kind!r}")

    def use_blas_threads(self, count: int) -> None:
        if count != self.blas_threads:
            for library in self.blas.lib_controllers:
                library.set_num_threads(count)
            self.blas_threads = count

    def forward(self, number: int, inputs: list, geometry: list, out: _Spec,
                blas_threads: int) -> None:
        self.use_blas_threads(blas_threads)
        x, *params = (self.memory.array(spec).copy() for spec in inputs)
        blocks = [Block(params[2 * i], params[2 * i + 1], padding, pool)
                  for i, (padding, pool) in enumerate(geometry)]
        while len(self.caches) >= self.KEPT:
            del self.caches[next(iter(self.caches))]
        y, self.caches[number] = chain_forward(blocks, x)
        np.copyto(self.memory.array(out), y)

    def backward(self, forward_number: int, dy: _Spec, need_input_grad: bool, outs: list,
                 blas_threads: int) -> None:
        if forward_number not in self.caches:
            raise KeyError(f"no half run forward by command {forward_number}")
        self.use_blas_threads(blas_threads)
        dx, grads = chain_backward(self.memory.array(dy), self.caches.pop(forward_number),
                                   need_input_grad)
        arrays = [a for pair in grads for a in pair] + ([dx] if need_input_grad else [])
        if len(arrays) != len(outs):
            raise ValueError(f"expected {len(outs)} outputs, computed {len(arrays)}")
        for spec, array in zip(outs, arrays):
            np.copyto(self.memory.array(spec), array)


def _serve(connection: Connection) -> None:
    """The child's loop: one reply per command, until the connection closes."""
    child = _Child()
    connection.send(("ready", os.getpid()))
    while True:
        try:
            _spin_until_readable(connection, _SPIN_SECONDS["child"])
            number, *message = connection.recv()
        except (EOFError, OSError):
            return
        try:
            child.run(number, *message)
        except Exception as error:  # reported to the parent, which computes the half itself
            connection.send(("error", f"{type(error).__name__}: {error}", number))
        else:
            connection.send(("ok", number))


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from scratch.memory import retain_freed_memory

    retain_freed_memory()
    _serve(Connection(int(argv[1])))


if __name__ == "__main__":
    main(sys.argv)
