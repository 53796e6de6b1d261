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

import argparse
import importlib
import io
import os
import sys
from collections.abc import Sequence
from typing import Any, Final

# numpy's OpenBLAS starts one spinning thread per core when numpy is imported;
# no command does linear algebra, and on a busy machine those threads take CPU
# from the matching and scanning threads (about 5 % of a `hashlookup match`).
# Only the command line sets this (before numpy is first imported), and only
# when the user did not choose.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hashlookup._version import __version__
from hashlookup.cli._common import (
    EXIT_ERROR,
    EXIT_FOUND,
    EXIT_INTERRUPTED,
    PROG,
    CLIError,
    Context,
    describe,
    print_error,
)
from hashlookup.cli._script import note_foreign_scripts
from hashlookup.errors import HashLookupError

__all__ = ["COMMANDS", "CLIError", "build_parser", "main"]


#: Command name -> (its module in hashlookup.cli, its line in ``--help``), in
#: the order of ``--help``.  (Plain tuples: a NamedTuple class costs start-up.)
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "build": ("build", "build a dataset (or an index) from hash lists"),
    "info": ("info", "describe a dataset or index"),
    "verify": ("verify", "check a file's integrity"),
    "check": ("check", "look up digests given as arguments"),
    "match": ("match", "report the lines of a digest list found in a dataset"),
    "update": ("update", "write the next generation of a dataset"),
    "scan": ("scan", "hash every file under PATHs and report the known ones"),
    "export-bloom": ("export_bloom", "export one key table as a DCSO bloom v1 filter"),
    "keygen": ("keygen", "create an Ed25519 key pair for signing datasets"),
    "sign": ("sign", "sign a dataset or index file"),
    "demo": ("demo", "run an end-to-end demo on synthetic data"),
    "serve": ("serve", "run the lookup service (HTTP API; needs hashlookup[server])"),
    "apikey": ("apikey", "add, revoke or list API keys of the lookup service"),
}


class _Quick(argparse.ArgumentParser):
    """An ArgumentParser that adds options without asking the terminal.

    ``add_argument`` makes a help formatter for each option, only to check its
    metavar; a formatter's default width imports shutil (about 2 ms, with bz2
    and lzma) and queries the terminal.  That check does not use the width,
    so it gets a formatter of a fixed one; help and usage messages still get
    the terminal's (argparse's own ``_get_formatter``).
    """

    _adding = False

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        self._adding = True
        try:
            return super().add_argument(*args, **kwargs)
        finally:
            self._adding = False

    def _get_formatter(self) -> argparse.HelpFormatter:
        if self._adding:
            return argparse.HelpFormatter(prog=self.prog, width=80)
        return super()._get_formatter()


class _Parser(_Quick):
    """A command's parser.  With ``intermixed`` (a command whose PATHs are
    optional, ``nargs="*"``), options and positionals may come in any order:
    plain argparse would take the PATHs as empty at the first option."""

    intermixed = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: object = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self.intermixed:
            return super().parse_known_args(args, namespace)  # type: ignore[arg-type]
        # parse_known_intermixed_args calls parse_known_args twice itself.
        self.intermixed = False
        try:
            return self.parse_known_intermixed_args(args, namespace)  # type: ignore[arg-type]
        finally:
            self.intermixed = True


#: The exit status line of a command's --help unless its module has its own
#: EXIT_STATUS.
_EXIT_STATUS = "Exit status: 0 success, 2 error (one line on stderr), 130 interrupted."


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser of ``hashlookup``, with the options of ``command``.

    Parameters
    ----------
    command
        A name of :data:`COMMANDS`, or None.  With None every command is
        listed (for ``--help`` and the error of an unknown command);
        otherwise the parser knows only ``command`` (the others' entries
        are never shown then, and cost start-up).  Only the module of
        ``command`` is imported, to register its options (and its ``run``
        as ``args.run``).

    Returns
    -------
    argparse.ArgumentParser
        The parser; its usage errors exit with status 2.
    """
    parser = _Quick(
        prog=PROG,
        description="Check file digests (md5/sha1/sha256) against known-hash lists "
        "held in a memory-mapped dataset (or single-table index) file.",
        epilog="Exit status: 0 nothing found, 1 at least one digest found, 2 error.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    # prog: what argparse would compute (the usage of a parser without
    # positionals, "hashlookup"), given so that it needs no help formatter.
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        required=True,
        parser_class=_Parser,
        prog=PROG,
    )
    for name, (module_name, help_text) in COMMANDS.items():
        if command is not None and name != command:
            # Only the chosen command's parser: the others would be seen
            # only by `--help` and by an unknown command's error (command
            # None), and each costs start-up.
            continue
        p = sub.add_parser(name, help=help_text, allow_abbrev=False)
        if name == command:
            module = importlib.import_module(f"{__name__}.{module_name}")
            p.description = module.DESCRIPTION
            p.epilog = getattr(module, "EXIT_STATUS", _EXIT_STATUS)
            p.intermixed = getattr(module, "INTERMIXED", False)
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


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
    parser = build_parser(_command_of(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)

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
