"""Progress bars that suit where they are shown: a terminal, or a Jupyter kernel.

``tqdm.auto`` in a kernel without ipywidgets warns "IProgress not found" and draws nothing
useful. Here a kernel with ipywidgets gets the notebook widget, a kernel without it a plain text
bar on its standard output (no warning), and a terminal tqdm's text bar on standard error.
"""

from __future__ import annotations

import sys


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (IPython with a kernel attached)."""
    shell = sys.modules.get("IPython")
    ipython = getattr(shell, "get_ipython", lambda: None)() if shell is not None else None
    return getattr(ipython, "kernel", None) is not None


def has_widgets() -> bool:
    """Whether ipywidgets can be imported."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def progress_bar(total: int, *, enabled: bool = True, **options):
    """A tqdm bar counting to ``total``; ``options`` go to tqdm (``unit``, ``desc``, ...).

    ``enabled=False`` gives a bar that shows nothing (every ``progress=False`` ends here).
    """
    from tqdm.std import tqdm as text_bar

    if not enabled:
        return text_bar(total=total, disable=True)
    if not in_kernel():
        return text_bar(total=total, **options)
    if has_widgets():
        from tqdm.notebook import tqdm as widget_bar

        return widget_bar(total=total, **options)
    return text_bar(total=total, file=sys.stdout, **options)
