"""Command-line interface: ``hashlookup`` / ``python -m hashlookup``.

Exit status (as clamscan): 0 nothing found, 1 at least one digest found, 2 error.
Every expected error is reported as one line ``hashlookup: error: <message>`` on
stderr.  See docs/CLI.md.

One module per command (``hashlookup.cli.<name>``): its ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args, ctx) -> int``.  :data:`COMMANDS`
lists them with their one-line help; a command's module is imported only when
it runs (or shows its help), so start-up costs what that command needs.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

# numpy's OpenBLAS starts one spinning thread per core when numpy is imported;
# no command does linear algebra, and on a busy machine those threads take CPU
# from the matching and scanning threads (about 5 % of a `hashlookup match`).
# Only the command line sets this (before numpy is first imported), and only
# when the user did not choose.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hashlookup.cli._common import (
    COMMANDS,
    EXIT_ERROR,
    EXIT_FOUND,
    EXIT_INTERRUPTED,
    CLIError,
    Context,
    describe,
    print_error,
)
from hashlookup.cli._fast import quick_args
from hashlookup.cli._script import note_foreign_scripts
from hashlookup.errors import HashLookupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    import argparse

__all__ = ["COMMANDS", "CLIError", "build_parser", "main"]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser of ``hashlookup``, with the options of ``command``.

    Parameters
    ----------
    command
        A name of :data:`COMMANDS`, or None.  With None every command is
        listed (for ``--help`` and the error of an unknown command);
        otherwise the parser knows only ``command``, and only the module of
        ``command`` is imported, to register its options (and its ``run``
        as ``args.run``).

    Returns
    -------
    argparse.ArgumentParser
        The parser; its usage errors exit with status 2.
    """
    from hashlookup.cli import _parser  # here: argparse only when needed

    return _parser.build_parser(command)


def _command_of(argv: Sequence[object]) -> str | None:
    """The command named on the command line: its first positional argument
    (the top-level options, --help and --version, take no value)."""
    for arg in argv:
        if isinstance(arg, str) and not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run a command line.

    Parameters
    ----------
    argv
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 nothing found, 1 found, 2 error (one line on
        stderr), 130 interrupted.
    """
    if argv is None:
        argv = sys.argv[1:]
        # A run from a shell: is `hashlookup` this program? (terminal only)
        note_foreign_scripts()
    command = _command_of(argv)
    args: Any = None
    if command is not None and argv[0] == command:
        # Positionals only (a hook's `check DATASET DIGEST`): read without
        # argparse when that gives the same (hashlookup.cli._fast).
        # (__import__: importing importlib, with warnings, costs start-up)
        name = f"{__name__}.{COMMANDS[command][0]}"
        __import__(name)
        module = sys.modules[name]
        args = quick_args(command, module, argv[1:])
    if args is None:
        try:
            args = build_parser(command).parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors
            code = exc.code
            return (
                code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)
            )

    ctx = Context()
    try:
        code = int(args.run(args, ctx))
        ctx.out.flush()
        return code
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.  Exit 1 if a hit
        # was already known, otherwise the result is unknown: 2.
        _silence_stdout()
        return EXIT_FOUND if ctx.found else EXIT_ERROR
    except (CLIError, HashLookupError, OSError, ValueError) as exc:
        _flush_quietly(ctx)
        print_error(describe(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _flush_quietly(ctx)
        print_error("interrupted")
        return EXIT_INTERRUPTED


def _flush_quietly(ctx: Context) -> None:
    try:
        ctx.out.flush()
    except (OSError, ValueError):
        _silence_stdout()


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
