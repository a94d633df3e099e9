"""Subcommands of ``tfparity``: each module has ``register(subparsers)`` that adds its parser and
sets ``func=run`` where ``run(args) -> int`` returns the exit code."""
