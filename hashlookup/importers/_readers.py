"""Format detection, the table of format readers and the iter_records entry
point.

This module sits above the format modules (_text, _hashdeep, _csv, _vics,
_nsrl), which import only what lies below them (_records, _common, _fast,
digests).  The readers are imported when a file of their format is read, so
that importing the package (the command line reads FORMATS) needs no numpy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from hashlookup.errors import InputError
from hashlookup.importers._records import (
    ALGORITHMS,
    SQLITE_MAGIC,
    ImportReport,
    RecordBatch,
    _Options,
)

#: every format name, in content-detection order; "pdq" (PDQ hash lists,
#: docs/NEAR.md) is never detected: 64 hex characters are also a SHA-256
FORMATS = ("sqlite", "hashdeep", "vics", "csv", "text", "pdq")

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")
HEAD_SIZE = 64 * 1024  # bytes detect_format looks at


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of the file at path, from its content: "sqlite", "hashdeep",
    "vics", "csv" or "text" (see docs/IMPORTERS.md for the rules).

    Raises InputError for content that is recognisably none of them (JSON
    that is not a VICS export, a file named *.db that is not SQLite, UTF-16
    text that is not CSV or JSON); OSError passes through.
    """
    from hashlookup.importers import _common

    name = os.fspath(path)
    with open(name, "rb") as f:
        head = f.read(HEAD_SIZE)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if name.lower().endswith(_SQLITE_SUFFIXES):
        raise InputError(
            f"{name}: not an SQLite database (no 'SQLite format 3' "
            f"header), although named like one"
        )
    encoding, bom = _common.sniff_encoding(head)
    text = head[bom:].decode(encoding, "replace")
    if len(head) == HEAD_SIZE:  # drop a possibly cut last line / character
        cut = text.rfind("\n")
        text = text[: cut + 1] if cut > 0 else text
    stripped = text.lstrip(" \t\r\n\ufeff")
    if stripped.startswith(("{", "[")):
        if stripped.startswith("{") and (
            '"odata.metadata"' in text or '"@odata.context"' in text
        ):
            return "vics"
        raise InputError(
            f"{name}: JSON, but not a VICS export (no "
            f'"odata.metadata" or "@odata.context" key near the '
            f"start)"
        )
    first = _common.first_line(text)
    if first.startswith("%%%% HASHDEEP"):
        fmt = "hashdeep"
    elif _common.is_digest_line(_common.first_line(text, skip_comments=True)):
        fmt = "text"
    elif not first.startswith("#") and _common.csv_header_delimiter(first) is not None:
        return "csv"
    else:
        fmt = "text"  # the text reader reports what is wrong with line 1
    if encoding != "utf-8":
        raise InputError(
            f"{name}: {encoding.upper()} text is read only for CSV "
            f"and VICS JSON; convert this {fmt} file to UTF-8"
        )
    return fmt


def iter_records(
    path: str | os.PathLike[str],
    *,
    input_format: str | None = None,
    columns: dict[str, str] | None = None,
    label_columns: dict[str, str] | None = None,
    skip_invalid: bool = False,
    batch_size: int = 100_000,
    report: ImportReport | None = None,
) -> Iterator[RecordBatch]:
    """Stream the records of one input file as RecordBatch objects of at most
    batch_size records (never empty).

    input_format: one of FORMATS, or None to detect it from the content.
    columns: for "csv", algorithm ("md5", "sha1", "sha256", optionally
    "size") -> column name; without it the columns are found by name.
    label_columns: for "csv", label prefix -> column name; a cell value v
    becomes label "prefix:v" (empty cells give no label).
    skip_invalid: count bad records in report.invalid instead of raising
    InputError.  Errors in the file's structure (a broken JSON document, a
    missing header, a missing table) are raised either way.
    report: an ImportReport filled in while the batches are consumed.
    """
    name = os.fspath(path)
    if (
        not isinstance(batch_size, int)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    fmt = detect_format(name) if input_format is None else input_format
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown input_format {fmt!r}; expected one of {', '.join(FORMATS)}"
        )
    if fmt != "csv" and (columns or label_columns):
        raise ValueError(
            f"columns= and label_columns= apply to CSV input only; "
            f"{name} is read as {fmt}"
        )
    _check_mapping(columns, "columns", (*ALGORITHMS, "size"))
    _check_mapping(label_columns, "label_columns", None)
    if report is None:
        report = ImportReport()
    report.format = fmt
    report.path = name
    opts = _Options(
        name, name, columns, label_columns, bool(skip_invalid), batch_size, report
    )
    read = _reader(fmt)
    for batch in read(opts):
        if len(batch):
            report._count(batch)
            yield batch


def _reader(fmt: str) -> Callable[[_Options], Iterator[RecordBatch]]:
    """The read function of format fmt (one of FORMATS)."""
    if fmt == "text":
        from hashlookup.importers._text import read
    elif fmt == "hashdeep":
        from hashlookup.importers._hashdeep import read
    elif fmt == "csv":
        from hashlookup.importers._csv import read
    elif fmt == "vics":
        from hashlookup.importers._vics import read
    elif fmt == "pdq":
        from hashlookup.importers.pdq import read
    else:
        from hashlookup.importers._nsrl import read
    return read


def _check_mapping(mapping: object, what: str, keys: tuple[str, ...] | None) -> None:
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise TypeError(f"{what} must be a dict, got {type(mapping).__name__}")
    for k, v in mapping.items():
        if not isinstance(k, str) or not isinstance(v, str) or not v:
            raise TypeError(
                f"{what} maps names to column names (str), got {k!r}: {v!r}"
            )
        if keys is not None and k not in keys:
            raise ValueError(f"{what}: unknown key {k!r}; expected {', '.join(keys)}")
        if keys is None and (not k or ":" in k):
            raise ValueError(
                f"{what}: a label prefix must be non-empty and without ':', got {k!r}"
            )
