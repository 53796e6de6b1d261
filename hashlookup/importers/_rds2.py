"""Format "nsrl-rds2": an NSRL RDS 2.x set, as NIST publishes it: a
directory or a .zip holding NSRLFile.txt with NSRLMfg.txt, NSRLOS.txt,
NSRLProd.txt and version.txt beside it, read as one source.

    "SHA-1","MD5","CRC32","FileName","FileSize","ProductCode",...
    "000000206738748EDD92C4E3D2E823896700F849","392126E7565...",...

NSRLFile.txt may also be zipped on its own (NSRLFile.txt.zip, as on the
RDS ISO images).  Its rows are read by the CSV reader (SHA-1, MD5 and
FileSize columns; streamed from the archive, never extracted); the first
line of version.txt goes to ImportReport.version.  The product, OS and
manufacturer tables go to ImportReport.tables (code tables keyed by
ProductCode, OpSystemCode and MfgCode: what the service expands a record's
codes into).  Records carry digests, sizes and the attributes of
ATTRIBUTES (the dataset builder adds the source label).  Names are
matched case-insensitively; the set may sit at the top of the archive or
directory or in one folder below it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

from hashlookup.errors import InputError
from hashlookup.importers import _csv
from hashlookup.importers._records import RecordBatch, _Options

FILE = "nsrlfile.txt"
ZIPPED_FILE = "nsrlfile.txt.zip"
COMPANIONS = ("nsrlmfg.txt", "nsrlos.txt", "nsrlprod.txt", "version.txt")
COLUMNS = {"sha1": "SHA-1", "md5": "MD5", "size": "FileSize"}
#: the record attributes an RDS 2.x set keeps (named as NIST's columns and
#: CIRCL's answers): attribute name -> NSRLFile.txt column, where it has it
ATTRIBUTES = {
    name: name
    for name in ("FileName", "CRC32", "ProductCode", "OpSystemCode", "SpecialCode")
}
#: companion file -> the key column of its code table
TABLES = {
    "nsrlprod.txt": "ProductCode",
    "nsrlos.txt": "OpSystemCode",
    "nsrlmfg.txt": "MfgCode",
}
#: rows of one companion table at most (NIST's are far smaller)
MAX_TABLE_ROWS = 10_000_000
_VERSION_BYTES = 4096
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    EOFError,
)


@dataclasses.dataclass
class RdsSet:
    """Where the parts of one RDS 2.x set are."""

    container: str  # the directory or .zip given
    is_zip: bool
    file: str  # NSRLFile.txt (or NSRLFile.txt.zip): path or member name
    zipped: bool  # file is NSRLFile.txt.zip
    companions: dict[str, str]  # lower-case name -> path or member name


def find_set(path: str) -> RdsSet | None:
    """The RDS 2.x set in the directory or zip archive at path, or None if
    it holds no NSRLFile.txt (InputError if it holds several).  Any other
    file is taken for NSRLFile.txt itself."""
    if os.path.isdir(path):
        names = []
        for top, dirs, files in os.walk(path):
            depth = os.path.relpath(top, path).count(os.sep) + (top != path)
            if depth >= 1:
                dirs[:] = []  # the set's folder and one below: no deep walk
            names += [os.path.relpath(os.path.join(top, f), path) for f in files]
        return _locate(path, False, names)
    if not zipfile.is_zipfile(path):
        return RdsSet(path, False, "", False, {})
    with zipfile.ZipFile(path) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    return _locate(path, True, names)


def _locate(path: str, is_zip: bool, names: list[str]) -> RdsSet | None:
    sep = "/" if is_zip else os.sep
    found = [n for n in names if n.rsplit(sep, 1)[-1].lower() == FILE]
    zipped = not found
    if zipped:
        found = [n for n in names if n.rsplit(sep, 1)[-1].lower() == ZIPPED_FILE]
    if not found:
        return None
    if len(found) > 1:
        shown = ", ".join(sorted(found)[:5])
        raise InputError(
            f"{path}: holds {len(found)} NSRLFile.txt files ({shown}); give one "
            f"set at a time"
        )
    folder = found[0].rpartition(sep)[0]
    companions = {}
    for n in names:
        d, _, base = n.rpartition(sep)
        if d == folder and base.lower() in COMPANIONS:
            companions[base.lower()] = n
    return RdsSet(path, is_zip, found[0], zipped, companions)


def read(opts: _Options) -> Iterator[RecordBatch]:
    """The records of an RDS 2.x set (see the module docstring)."""
    report = opts.report
    try:
        rds = find_set(opts.path)
        if rds is None:
            raise InputError(
                f"{opts.name}: not an NSRL RDS 2.x set (no NSRLFile.txt in it)"
            )
        with contextlib.ExitStack() as stack:
            stream, shown = _open_file(rds, opts.name, stack)
            version = rds.companions.get("version.txt")
            if version is not None:
                report.version = _version(rds, version)
            for member, key in TABLES.items():
                if member in rds.companions:
                    report.tables[key] = _table(rds, opts.name, member, key)
            csv_opts = dataclasses.replace(
                opts,
                name=shown,
                columns=dict(COLUMNS),
                label_columns=None,
                attributes=dict(ATTRIBUTES),
                attributes_optional=True,
            )
            yield from _read_csv(csv_opts, stream)
    except _ZIP_ERRORS as e:
        # zipfile reports damage (a bad CRC at a member's end, bad deflate
        # data) and what it cannot read (encryption, other compression
        # methods) with these; they are faults of the input.
        raise InputError(
            f"{opts.name}: damaged or unsupported zip archive: {type(e).__name__}: {e}"
        ) from None


def _open_file(
    rds: RdsSet, name: str, stack: contextlib.ExitStack
) -> tuple[IO[bytes], str]:
    """A binary stream of NSRLFile.txt and how messages name it."""
    sep = "/" if rds.is_zip else os.sep
    if rds.is_zip:
        zf = stack.enter_context(zipfile.ZipFile(rds.container))
        outer: IO[bytes] = stack.enter_context(zf.open(rds.file))
    elif rds.file:
        path = os.path.join(rds.container, rds.file)
        outer = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (stack closes)
    else:  # NSRLFile.txt given alone
        outer = stack.enter_context(open(rds.container, "rb"))  # noqa: SIM115
        return outer, name
    shown = f"{name}{sep}{rds.file}" if rds.is_zip else os.path.join(name, rds.file)
    if not rds.zipped:
        return outer, shown
    try:
        inner_zip = stack.enter_context(zipfile.ZipFile(outer))
    except zipfile.BadZipFile as e:
        raise InputError(f"{shown}: not a readable zip archive: {e}") from None
    inner = [
        i.filename for i in inner_zip.infolist() if i.filename.lower().endswith(FILE)
    ]
    if len(inner) != 1:
        raise InputError(
            f"{shown}: expected one NSRLFile.txt inside, found {len(inner)}"
        )
    return stack.enter_context(inner_zip.open(inner[0])), f"{shown}/{inner[0]}"


def _read_csv(opts: _Options, stream: IO[bytes]) -> Iterator[RecordBatch]:
    # Both kinds of stream here (files, zip members) can peek.
    head = bytes(stream.peek(4)[:4])  # type: ignore[attr-defined]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            f"{opts.name}: UTF-16 text; NIST writes NSRLFile.txt in ASCII "
            f"(convert it to UTF-8)"
        )
    if head.startswith(b"\xef\xbb\xbf"):
        stream.read(3)
    return _csv._read_bytes(opts, stream)  # type: ignore[arg-type]


def _version(rds: RdsSet, member: str) -> str:
    """The first line with content of version.txt (at most 200 characters)."""
    if rds.is_zip:
        with zipfile.ZipFile(rds.container) as zf, zf.open(member) as f:
            raw = f.read(_VERSION_BYTES)
    else:
        with open(os.path.join(rds.container, member), "rb") as f:
            raw = f.read(_VERSION_BYTES)
    for line in raw.decode("utf-8", "replace").splitlines():
        line = line.strip().strip('"').strip()
        if line:
            return line[:200]
    return ""


def _table(
    rds: RdsSet, name: str, member: str, key: str
) -> tuple[list[str], dict[str, dict[str, str]]]:
    """A companion table as (columns, code -> row): the first line names
    the columns (the key column, matched case-insensitively, is renamed
    `key`); rows with an empty code are skipped; of rows with one code the
    last wins (as CIRCL's import keeps it); missing cells are empty and
    extra cells ignored."""
    import csv
    import io

    from hashlookup.store.attributes import check_names

    sep = "/" if rds.is_zip else os.sep
    part = rds.companions[member]
    shown = f"{name}{sep}{part}" if rds.is_zip else os.path.join(name, part)
    with contextlib.ExitStack() as stack:
        if rds.is_zip:
            zf = stack.enter_context(zipfile.ZipFile(rds.container))
            raw: IO[bytes] = stack.enter_context(zf.open(part))
        else:
            raw = stack.enter_context(open(os.path.join(rds.container, part), "rb"))
        text = io.TextIOWrapper(raw, "utf-8-sig", "replace", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader, [])
            columns = [c.strip() for c in header]
            folded = [c.lower() for c in columns]
            if key.lower() not in folded:
                raise InputError(
                    f"{shown}:1: no {key} column (header: {', '.join(columns)[:200]})"
                )
            at = folded.index(key.lower())
            columns[at] = key
            keep = [i for i, c in enumerate(columns) if c]
            try:
                check_names([columns[i] for i in keep])
            except ValueError as e:
                raise InputError(f"{shown}:1: column names: {e}") from None
            rows: dict[str, dict[str, str]] = {}
            for fields in reader:
                code = fields[at].strip() if at < len(fields) else ""
                if not code:
                    continue
                rows[code] = {
                    columns[i]: fields[i] for i in keep if i < len(fields) and fields[i]
                }
                rows[code][key] = code
                if len(rows) > MAX_TABLE_ROWS:
                    raise InputError(
                        f"{shown}: more than {MAX_TABLE_ROWS} codes; not an NSRL table"
                    )
        except csv.Error as e:
            raise InputError(f"{shown}:{reader.line_num}: {e}") from None
    return [key] + [columns[i] for i in keep if i != at], rows
