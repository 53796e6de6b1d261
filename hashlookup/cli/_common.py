"""What every command shares: the program name, the exit codes (as
clamscan: 0 nothing found, 1 found, 2 error), the table of commands, the
error type the commands raise and the per-run context they write
through."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable

from hashlookup.cli._output import Output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

PROG: Final = "hashlookup"
EXIT_CLEAN: Final = 0
EXIT_FOUND: Final = 1
EXIT_ERROR: Final = 2
EXIT_INTERRUPTED: Final = 130

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


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` names (links followed; ``-`` is
    standard input), or None when it does not exist."""
    try:
        st = os.fstat(0) if path == "-" else os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def refuse_same_file(output: str, option: str, inputs: Iterable[str]) -> None:
    """Raise CLIError when ``output`` is the same file as one of ``inputs``.

    The files are compared by device and inode, so hard links, symbolic
    links, ``-`` (standard input) and ``/dev/stdin`` are all caught; this
    runs before anything is read or written, so nothing is lost.

    Parameters
    ----------
    output
        The file the command would write (as given).
    option
        How the command line names it (``-o``, ``--report``...), for the
        message.
    inputs
        The files the command reads (as given; ``-`` is standard input).
    """
    target = _identity(output)
    if target is None:
        return
    for text in inputs:
        if _identity(text) == target:
            if text == "-":
                what = "is the file on standard input (input '-')"
            elif text == output:
                what = "is also an input"
            else:
                what = f"is the same file as the input {text}"
            raise CLIError(
                f"{option} {output} {what}: refusing to "
                "overwrite an input (nothing written); choose another output file"
            )


def refuse_writing_directory(output: str, option: str) -> None:
    """Raise CLIError when ``output`` exists and is not a regular file.

    Outputs are written as a temporary file in the same directory and then
    renamed over ``output``: a directory would give an error naming that
    internal file, and a device, pipe or ``/dev/stdin`` would be replaced by
    a regular file (in ``/dev``, for root).
    """
    if os.path.isdir(output):
        raise CLIError(
            f"{option} {output}: is a directory; {option} names the file to "
            "write (for example DIR/known.hlds)"
        )
    try:
        st = os.stat(output)
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(st.st_mode):
        raise CLIError(
            f"{option} {output}: not a regular file (a device, a pipe or a "
            "standard stream); the output is written as a new file that "
            "replaces it: name a file"
        )


def note_stale_signature(path: str) -> None:
    """After a file was rewritten: say that its old signature no longer applies."""
    if os.path.exists(path + ".sig"):
        sys.stderr.write(
            f"{PROG}: note: {path}.sig signs the previous version of {path}; "
            f"readers with --verify-key refuse the new one until you run "
            f"`{PROG} sign {path} --key KEY`\n"
        )
