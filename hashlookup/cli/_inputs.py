"""Known-hash list inputs of ``build`` and ``update``: ``NAME=PATH`` source
names, standard input, and the importer options."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence

from hashlookup.cli._common import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    import argparse


def named_input(text: str) -> tuple[str | None, str]:
    """``(source name, path)`` of an INPUT: ``NAME=PATH`` when the text before the
    first ``=`` is a plausible name (non-empty, no path separator) and the whole
    text is not an existing file; otherwise ``(None, text)``."""
    if text == "-" or "=" not in text:
        return None, text
    name, _, path = text.partition("=")
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if not name or any(sep in name for sep in seps) or os.path.exists(text):
        return None, text
    if not path:
        raise CLIError(f"input {text!r}: no path after '=' (write NAME=PATH)")
    return name, path


def dataset_inputs(
    texts: Sequence[str], stack: contextlib.ExitStack[Any]
) -> list[tuple[str, str]]:
    """``[(source name, path)]`` for build_dataset/update_dataset.  Standard
    input (``-`` or ``NAME=-``, default name ``stdin``) is copied to a temporary
    file first: the importers detect the format from the content and may read a
    file more than once."""
    items: list[tuple[str, str]] = []
    stdin_used = False
    for text in texts:
        name, path = named_input(text)
        if path == "-":
            if stdin_used:
                raise CLIError("'-' (standard input) can be given only once")
            stdin_used = True
            import shutil
            import tempfile

            tmpdir = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="hashlookup-")
            )
            path = os.path.join(tmpdir, "stdin")
            with open(path, "wb") as spool:
                shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
            stack.enter_context(_name_stdin_in_errors(path))
            name = name or "stdin"
        elif name is None:
            name = os.path.splitext(os.path.basename(path))[0] or path
        items.append((name, path))
    return items


@contextlib.contextmanager
def _name_stdin_in_errors(spool: str) -> Iterator[None]:
    """Input errors quote '<stdin>', not the temporary copy of it."""
    from hashlookup.errors import InputError

    try:
        yield
    except InputError as exc:
        raise InputError(str(exc).replace(spool, "<stdin>")) from None


#: Leading bytes of file kinds that are not text lists, and what to call them.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"(\xb5/\xfd", "zstd-compressed data"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x89HLX", "a hashlookup dataset or index file"),
    (b"\x7fELF", "an executable (ELF)"),
)


def looks_like(head: bytes) -> str | None:
    """What the first bytes of an input say it is when it is not text
    ("gzip-compressed data", "binary data"...), or None for text: a known
    magic number, or control bytes in the first line with content."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    # Only the first line with content decides: a text list with a damaged
    # line further on stays a text list (its line is reported, or skipped).
    for line in head.split(b"\n"):
        if line.strip(b" \t\r"):
            if any((c < 32 and c not in (9, 13)) or c == 127 for c in line):
                return "binary data (control bytes such as NUL in its first line)"
            break
    return None


def refuse_binary_text_input(path: str, head: bytes) -> None:
    """Raise CLIError when an input read as a text digest list is binary:
    say what it looks like instead of quoting its bytes."""
    what = looks_like(head)
    if what is None:
        return
    shown = "standard input" if path == "-" else path
    hint = ""
    if "compressed" in what:
        hint = "; decompress it first (e.g. zcat FILE | hashlookup match DATASET -)"
    elif "hashlookup" in what:
        hint = "; the dataset comes first: hashlookup match DATASET INPUT..."
    elif "Parquet" in what:
        hint = "; give the digest column with --column NAME"
    raise CLIError(f"{shown}: {what}, not a text digest list{hint}")


def _mapping(
    pairs: Sequence[tuple[str, str]] | None, option: str
) -> dict[str, str] | None:
    if not pairs:
        return None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise CLIError(f"{option} {key}=...: given twice")
        out[key] = value
    return out


def import_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of build_dataset/update_dataset from the importer
    options (``_options.add_import_options``)."""
    opts: dict[str, Any] = {"skip_invalid": args.skip_invalid}
    if args.input_format is not None:
        opts["input_format"] = args.input_format
    columns = _mapping(args.column, "--column")
    if columns is not None:
        opts["columns"] = columns
    label_columns = _mapping(args.label_column, "--label-column")
    if label_columns is not None:
        opts["label_columns"] = label_columns
    if args.attribute:
        opts["attributes"] = list(args.attribute)
    return opts
