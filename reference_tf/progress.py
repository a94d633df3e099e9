"""Progress of a comparison: the phase, layer and pass it is on, for a command to show.

``check``, ``diff`` and ``third_opinion`` take ``progress``, a function of one message (e.g.
"trace path, yours: conv2 backward"); the command line prints it on stderr
(``reports.progress``). ``announcing`` makes every layer of a model say when its forward or
backward pass starts. NumPy only.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable

from reference_tf.guarding import instance_patch

Progress = Callable[[str], None]
PASSES = {"call": "forward", "call_backward": "backward", "backward_params": "backward"}


def silent(message: str) -> None:
    """The progress of nobody watching."""


@contextmanager
def announcing(layers, progress: Progress | None, phase: str):
    """Within the block, each layer's forward and backward pass first calls
    ``progress(f"{phase}: {layer} {pass}")``; nothing when ``progress`` is None."""
    with ExitStack() as stack:
        if progress is not None:
            for layer in layers:
                for method, direction in PASSES.items():
                    original = getattr(layer, method, None)
                    if callable(original):
                        stack.enter_context(instance_patch(
                            layer, method, _announced(original, progress,
                                                      f"{phase}: {layer.name} {direction}")))
        yield


def _announced(method, progress: Progress, message: str):
    def run(*args, **kwargs):
        progress(message)
        return method(*args, **kwargs)
    return run
