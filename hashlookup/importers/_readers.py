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
from hashlookup.importers._source import HEAD_SIZE, Source

#: every format name, in content-detection order; "pdq" (PDQ hash lists,
#: docs/NEAR.md) is never detected: 64 hex characters are also a SHA-256
FORMATS = (
    "sqlite",
    "nsrl-rds2",
    "hashdeep",
    "vics",
    "hsh",
    "bsd",
    "md5deep-size",
    "encase",
    "csv",
    "text",
    "pdq",
)

#: formats with a natural set of record attributes (NSRL's columns)
_NSRL = ("sqlite", "nsrl-rds2")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of the file (or NSRL set directory) at path, from its
    content: one of FORMATS (see docs/IMPORTERS.md for the rules).

    Raises InputError for content that is recognisably none of them (JSON
    that is not a VICS export, a file named *.db that is not SQLite, UTF-16
    text that is not CSV or JSON, binary files, zips and directories that
    are no NSRL set); OSError passes through.  This reads the start of the
    file: a pipe given here has lost it (iter_records detects the format of
    a pipe and reads it in one pass).
    """
    from hashlookup.importers import _sniff

    name = os.fspath(path)
    container = _sniff.detect_path(name)
    if container is not None:
        return container
    with open(name, "rb") as f:
        head = f.read(HEAD_SIZE)
    return _detect(name, head)


def _detect(name: str, head: bytes) -> str:
    """detect_format of the file called name whose first bytes are head."""
    from hashlookup.importers import _common, _sniff

    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if name.lower().endswith(_SQLITE_SUFFIXES):
        raise InputError(
            f"{name}: not an SQLite database (no 'SQLite format 3' "
            f"header), although named like one"
        )
    encoding, bom = _common.sniff_encoding(head)
    container = _sniff.detect_bytes(name, head, encoding != "utf-8")
    if container is not None:
        return container
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
    content = _common.first_line(text, skip_comments=True)
    if first.startswith("%%%% HASHDEEP"):
        fmt = "hashdeep"
    elif _common.is_digest_line(content):
        fmt = "text"
    elif (more := _sniff.detect_line(first, content)) is not None:
        fmt = more
        if fmt == "hsh":  # CSV: read in UTF-16 too
            return fmt
    elif not first.startswith("#") and _common.csv_header_delimiter(first) is not None:
        return "csv"
    else:
        fmt = "text"  # the text reader reports what is wrong with line 1
    if encoding != "utf-8":
        raise InputError(
            f"{name}: {encoding.upper()} text is read only for CSV and VICS "
            f"JSON (and .hsh hash sets); convert this {fmt} file to UTF-8"
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
    csv_options_only_for_csv: bool = False,
    attributes: list[str] | None = None,
) -> Iterator[RecordBatch]:
    """Stream the records of one input file as RecordBatch objects of at most
    batch_size records (never empty).

    input_format: one of FORMATS, or None to detect it from the content.
    columns: for "csv", algorithm ("md5", "sha1", "sha256", optionally
    "size") -> column name; without it the columns are found by name.
    label_columns: for "csv", label prefix -> column name; a cell value v
    becomes label "prefix:v" (empty cells give no label).
    attributes: for "csv" (and "hsh"), column names kept as record
    attributes of the same names (docs/DATASETS.md); empty cells give none;
    for "vics", field names of Media and MediaFiles (a MediaFile's own
    field, else its Media's).  Formats with a natural set of attributes
    (NSRL) keep theirs; CSV and VICS keep none unless named.
    skip_invalid: count bad records in report.invalid instead of raising
    InputError.  Errors in the file's structure (a broken JSON document, a
    missing header, a missing table) are raised either way.
    report: an ImportReport filled in while the batches are consumed.
    csv_options_only_for_csv: apply columns=, label_columns= and
    attributes= to a CSV input and ignore them for other formats (a build
    that mixes CSV and other inputs), instead of raising ValueError.

    The input is opened once: a pipe (a FIFO, ``<(...)``) is read in one
    pass, its first bytes kept for format detection and replayed.  Every
    error names the file.
    """
    name = os.fspath(path)
    if (
        not isinstance(batch_size, int)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if input_format is not None and input_format not in FORMATS:
        raise ValueError(
            f"unknown input_format {input_format!r}; expected one of "
            f"{', '.join(FORMATS)}"
        )
    # a directory is an NSRL RDS 2.x set, read by its reader (no Source)
    source = None if os.path.isdir(name) else Source(name, name)
    try:
        yield from _iter(
            name,
            source,
            input_format,
            columns,
            label_columns,
            bool(skip_invalid),
            batch_size,
            report,
            csv_options_only_for_csv,
            attributes,
        )
    except OSError as exc:
        if exc.filename is not None:
            raise
        # e.g. "File or stream is not seekable.": say which file
        raise InputError(f"{name}: {exc.strerror or exc}") from exc
    finally:
        if source is not None:
            source.close()


def _iter(
    name: str,
    source: Source | None,
    input_format: str | None,
    columns: dict[str, str] | None,
    label_columns: dict[str, str] | None,
    skip_invalid: bool,
    batch_size: int,
    report: ImportReport | None,
    csv_only: bool,
    attributes: list[str] | None = None,
) -> Iterator[RecordBatch]:
    fmt = input_format
    if fmt is None and source is None:
        from hashlookup.importers import _sniff

        fmt = _sniff.detect_path(name)
    if fmt is None:
        assert source is not None
        fmt = _detect(name, source.head())
    if fmt != "csv" and csv_only:
        columns = label_columns = None
        attributes = attributes if fmt in ("hsh", "vics") else None
    if fmt != "csv" and (columns or label_columns):
        raise ValueError(
            f"columns= and label_columns= apply to CSV input only; "
            f"{name} is read as {fmt}"
        )
    if fmt not in ("csv", "hsh", "vics") and attributes:
        raise ValueError(
            f"attributes= names CSV columns or VICS fields; {name} is read as "
            f"{fmt}"
            + (" (NSRL sets keep their own attributes)" if fmt in _NSRL else "")
        )
    attribute_columns = _attribute_columns(attributes)
    _check_mapping(columns, "columns", (*ALGORITHMS, "size"))
    _check_mapping(label_columns, "label_columns", None)
    if report is None:
        report = ImportReport()
    report.format = fmt
    report.path = name
    opts = _Options(
        name, name, columns, label_columns, skip_invalid, batch_size, report, source
    )
    opts.attributes = attribute_columns
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
    elif fmt == "sqlite":
        from hashlookup.importers._nsrl import read
    elif fmt == "nsrl-rds2":
        from hashlookup.importers._rds2 import read
    elif fmt == "hsh":
        from hashlookup.importers._hsh import read
    elif fmt == "bsd":
        from hashlookup.importers._tagged import read
    elif fmt == "encase":
        from hashlookup.importers._encase import read
    else:
        from hashlookup.importers._deepsize import read
    return read


def _attribute_columns(attributes: object) -> dict[str, str] | None:
    """attributes= as attribute name -> column name (the same), checked."""
    if attributes is None:
        return None
    names = list(attributes) if isinstance(attributes, (list, tuple)) else None
    if names is None or not all(isinstance(a, str) for a in names):
        raise TypeError(
            f"attributes must be a list of column names, got {attributes!r}"
        )
    from hashlookup.store.attributes import check_names

    check_names(names)
    return {a: a for a in names} or None


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
