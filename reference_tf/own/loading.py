"""``FILE.py:FACTORY`` and ``package.module:FACTORY``: the model a command line names.

FACTORY() is called without arguments, or with the literal arguments the spec gives,
``FILE.py:FACTORY(model="lstm", units=8)``, and returns the model: a ``reference_tf.own.Model`` or
``Function``, or a ``scratch.models.Sequential``. A file is imported with its own directory first
on ``sys.path`` (as ``python FILE.py`` would), so it can import the modules beside it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from reference_tf.own.model import Function, Model
from reference_tf.user_code import last_frame
from reference_tf.user_exits import guard, what_happened
from scratch.models import Sequential

MODEL_TYPES = (Model, Function, Sequential)


def import_target(target: str):
    """The module of a file path or a dotted name. A file is imported once per process (later
    calls return the same module object, so a test can patch it before a command runs)."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file {target!r}")
        name = f"tfparity_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        finally:
            sys.path.remove(str(path.parent))
        return module
    return importlib.import_module(target)


def factory_call(text: str) -> tuple[str, tuple, dict]:
    """(name, args, kwargs) of ``FACTORY`` or ``FACTORY(literal, key=literal, ...)``; ValueError
    for anything else (names, expressions, calls inside)."""
    try:
        call = ast.parse(text, mode="eval").body
        if isinstance(call, ast.Name):
            return call.id, (), {}
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            raise ValueError(text)
        args = tuple(ast.literal_eval(a) for a in call.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        if len(kwargs) != len(call.keywords):
            raise ValueError(text)
        return call.func.id, args, kwargs
    except (SyntaxError, ValueError):
        raise ValueError(f"expected FACTORY or FACTORY(key=value, ...) with Python literals as "
                         f"values, e.g. build(model=\"lstm\"), received {text!r}.") from None


def load_model(spec: str):
    """Import ``FILE.py:FACTORY`` or ``package.module:FACTORY`` and return FACTORY(), or
    FACTORY(*args, **kwargs) for ``...:FACTORY(literal, key=literal, ...)``.

    Raises:
        ValueError: the spec is malformed, the file or module or factory does not exist, importing
            or calling it raised or exited (with the last frame), or it returned no model.
    """
    head, paren, tail = spec.partition("(")
    target, sep, factory = head.rpartition(":")
    if not sep or not target or not factory.isidentifier():
        raise ValueError(f"expected FILE.py:FACTORY or package.module:FACTORY, received "
                         f"{spec!r}.")
    factory, args, kwargs = factory_call(factory + paren + tail)
    try:
        with guard():
            module = import_target(target)
    except Exception as error:  # a missing file or module, or the user's module failed or exited
        raise ValueError(f"importing {target!r} {what_happened(error)} "
                         f"(at {last_frame(error)}).") from None
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise ValueError(f"{target!r} has no function {factory!r}.")
    try:
        with guard():
            model = fn(*args, **kwargs)
    except Exception as error:
        raise ValueError(f"{factory}() {what_happened(error)} "
                         f"(at {last_frame(error)}).") from None
    if not isinstance(model, MODEL_TYPES):
        raise ValueError(f"{factory}() returned {type(model).__name__}; expected a "
                         "reference_tf.own.Model or Function, or a scratch.models.Sequential.")
    return model
