"""What every command shares: the program name, the exit codes (as
clamscan: 0 nothing found, 1 found, 2 error), the error type the commands
raise and the per-run context they write through."""

from __future__ import annotations

import os
import sys
from typing import Final

from hashlookup.cli._output import Output

PROG: Final = "hashlookup"
EXIT_CLEAN: Final = 0
EXIT_FOUND: Final = 1
EXIT_ERROR: Final = 2
EXIT_INTERRUPTED: Final = 130


class CLIError(Exception):
    """An expected error detected by the CLI itself (reported, exit 2)."""


class Context:
    """Per-run state shared by ``main`` and the command that runs.

    Attributes
    ----------
    out
        The byte writer over ``sys.stdout``.
    found
        Set once a queried digest is known to be in the file: lets an
        interrupted output (broken pipe) still report "found" correctly.
    """

    def __init__(self) -> None:
        self.out = Output(sys.stdout)
        self.found = False


def one_line(message: str) -> str:
    """``message`` with its line breaks turned into spaces."""
    return " ".join(message.split("\n")).replace("\r", " ").strip()


def describe(exc: BaseException) -> str:
    """The message of an error as the CLI reports it (an OSError as
    ``strerror: filename``)."""
    if isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror
        if exc.filename is not None:
            msg = f"{msg}: {os.fsdecode(exc.filename)}"
            if exc.filename2 is not None:
                msg = f"{msg} -> {os.fsdecode(exc.filename2)}"
        return msg
    return str(exc) or type(exc).__name__


def print_error(message: str) -> None:
    """``hashlookup: error: <message>`` on one line of stderr."""
    sys.stderr.write(f"{PROG}: error: {one_line(message)}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    """``hashlookup: warning: <message>`` on one line of stderr."""
    sys.stderr.write(f"{PROG}: warning: {one_line(message)}\n")


def note_stale_signature(path: str) -> None:
    """After a file was rewritten: say that its old signature no longer applies."""
    if os.path.exists(path + ".sig"):
        sys.stderr.write(
            f"{PROG}: note: {path}.sig signs the previous version of {path}; "
            f"readers with --verify-key refuse the new one until you run "
            f"`{PROG} sign {path} --key KEY`\n"
        )
