"""Entry point of the ``tfparity`` command line.

``main(argv=None) -> int`` is callable in-process and returns the exit code (``reports.errors``):
0 success, 1 parity failure / divergence / diverged training, 2 bad arguments or input, 3
internal error (traceback in a log file), 130 interrupted. Parsing imports no TensorFlow; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys

from reference_tf.reproducible import set_environment_defaults
from reports import errors

# TensorFlow's C++ logging at FATAL only, set before any command imports TensorFlow. Figures are
# files, never windows. Explicit settings win.
set_environment_defaults(log_level=3)
os.environ.setdefault("MPLBACKEND", "Agg")

# Modules of reports.commands, in the order --help lists them.
COMMANDS: tuple[str, ...] = ("data", "report", "bench", "check", "diff", "train")


class _Version(argparse.Action):
    """--version, looking the installed version up only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the installed version and exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("tfparity")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        parser.exit(message=f"tfparity {text}\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, unless the help states its default already
    or there is nothing to state (flags, and None where the help says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or any(action.default is v
                                    for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfparity", formatter_class=HelpFormatter, epilog=errors.EXIT_CODES_HELP,
        description="Prove that a from-scratch NumPy network computes what TensorFlow computes.",
    )
    parser.add_argument("--version", action=_Version)
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND",
        parser_class=functools.partial(argparse.ArgumentParser, formatter_class=HelpFormatter,
                                       epilog=errors.EXIT_CODES_HELP))
    for name in COMMANDS:
        importlib.import_module(f"reports.commands.{name}").register(subparsers)
    return parser


def _exit_status(code) -> int:
    """The int of a ``SystemExit`` code (argparse: 0 after --help, 2 on errors)."""
    if code is None:
        return errors.OK
    return code if isinstance(code, int) else errors.BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    with errors.InterruptWatch() as interrupt:
        prog = "tfparity"
        try:
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exit_:
                return _exit_status(exit_.code)
            if args.command is None:
                parser.print_usage(sys.stderr)
                print(f"tfparity: error: expected a command ({', '.join(COMMANDS)}); "
                      "`tfparity --help` describes them.", file=sys.stderr)
                return errors.BAD_INPUT
            prog = f"tfparity {args.command}"
            return args.func(args)
        except KeyboardInterrupt:
            pass
        except SystemExit as exit_:  # no command exits so: foreign code, outside every guard
            return _error_exit(prog, argv, exit_)
        except Exception as error:
            if not interrupt.seen:
                return _error_exit(prog, argv, error)
    print(f"\n{prog}: interrupted", file=sys.stderr)
    return errors.INTERRUPTED


def _error_exit(prog: str, argv: list[str], error: BaseException) -> int:
    """Report ``error``: bad input (2) in one line, or a bug (3) in one line with the traceback
    in a log file (a ``SystemExit`` too: its code is never passed on as the command's)."""
    if errors.is_input_error(error):
        print(f"{prog}: {error}", file=sys.stderr)
        return errors.BAD_INPUT
    try:
        where = f"traceback in {errors.write_crash_log(prog, argv, error)}"
    except OSError as log_error:
        where = f"no traceback log: {log_error}"
    print(f"{prog}: internal error: {errors.one_line(error)} ({where})", file=sys.stderr)
    return errors.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
