"""The argparse parser of the command line: the top level and the chosen
command's options (see :func:`build_parser`).

Imported when a command line needs argparse: an option, ``--help``, a usage
error, or a command whose options the quick path of
:mod:`hashlookup.cli._fast` cannot stand in for.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from hashlookup._version import __version__
from hashlookup.cli._common import COMMANDS, PROG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["build_parser"]


class _Quick(argparse.ArgumentParser):
    """An ArgumentParser that adds options without asking the terminal.

    ``add_argument`` makes a help formatter for each option, only to check its
    metavar; a formatter's default width imports shutil (about 2 ms, with bz2
    and lzma) and queries the terminal.  That check does not use the width,
    so it gets a formatter of a fixed one.  Help and usage messages get the
    terminal's width, found as ``shutil.get_terminal_size`` finds it (the
    usage that ``parse_known_intermixed_args`` formats before parsing, for
    its errors, would import shutil for every ``scan -q``).
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
        # argparse.HelpFormatter's own default width: the columns less 2.
        # (typeshed's formatter_class takes no width; HelpFormatter does)
        formatter: argparse.HelpFormatter = self.formatter_class(
            prog=self.prog,
            width=_columns() - 2,  # type: ignore[call-arg]
        )
        return formatter


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size()`` gives it:
    $COLUMNS, else standard output's terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout = sys.__stdout__
        try:
            columns = os.get_terminal_size(stdout.fileno()).columns if stdout else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


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
            module = importlib.import_module(f"hashlookup.cli.{module_name}")
            p.description = module.DESCRIPTION
            p.epilog = getattr(module, "EXIT_STATUS", _EXIT_STATUS)
            p.intermixed = getattr(module, "INTERMIXED", False)
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser
