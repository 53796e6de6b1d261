"""Format "sqlite": NSRL RDSv3 SQLite databases (table FILE).

    FILE(sha256, sha1, md5, crc32, file_name, file_size, package_id)

Digests are hex text (NSRL writes upper case).  Records keep the record
attributes of ATTRIBUTES (those of its columns the table has; the package
id is RDSv3's product code, named as CIRCL names it).  The PKG, OS and MFG
tables (or views) go to ImportReport.tables under the RDS 2.x names
(CODE_TABLES), the VERSION table's version to ImportReport.version.  The
database is opened read only (URI mode=ro) with the stdlib sqlite3 module
and the table is streamed with fetchmany(batch_size).  NSRL lists
known-good files: the importer adds no labels (the dataset builder labels
the source).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hashlookup.errors import InputError
from hashlookup.importers._common import assemble
from hashlookup.importers._records import (
    ALGORITHMS,
    SQLITE_MAGIC,
    RecordBatch,
    _Options,
)

TABLE = "FILE"
SIZE_COLUMN = "file_size"
#: record attribute name -> FILE column (docs/DATASETS.md)
ATTRIBUTES = {"FileName": "file_name", "CRC32": "crc32", "ProductCode": "package_id"}
#: the code tables read (ImportReport.tables), named and with columns
#: named as the RDS 2.x tables CIRCL's answers show: table or view ->
#: (key, {RDSv3 column: column})
CODE_TABLES = {
    "PKG": (
        "ProductCode",
        {
            "package_id": "ProductCode",
            "name": "ProductName",
            "version": "ProductVersion",
            "operating_system_id": "OpSystemCode",
            "manufacturer_id": "MfgCode",
            "language": "Language",
            "application_type": "ApplicationType",
        },
    ),
    "OS": (
        "OpSystemCode",
        {
            "operating_system_id": "OpSystemCode",
            "name": "OpSystemName",
            "version": "OpSystemVersion",
            "manufacturer_id": "MfgCode",
        },
    ),
    "MFG": ("MfgCode", {"manufacturer_id": "MfgCode", "name": "MfgName"}),
}


def read(opts: _Options) -> Iterator[RecordBatch]:
    name = opts.name
    if opts.source is not None and not opts.source.regular:
        raise InputError(
            f"{name}: an SQLite database (NSRL RDS) must be a regular file, "
            f"not a pipe or other stream (copy it to a file first)"
        )
    with open(opts.path, "rb") as f:
        if not f.read(len(SQLITE_MAGIC)).startswith(SQLITE_MAGIC):
            raise InputError(
                f"{name}: not an SQLite database (no 'SQLite format 3' header)"
            )
    uri = Path(opts.path).resolve().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise InputError(f"{name}: cannot open the SQLite database: {e}") from None
    # Text that is not UTF-8 (a damaged or foreign database) is read with
    # replacement characters, so it is reported like any other bad value
    # instead of escaping as UnicodeDecodeError.
    con.text_factory = _decode_text
    try:
        yield from _read(con, opts)
    except sqlite3.Error as e:
        raise InputError(
            f"{name}: SQLite error: {e} (a damaged or foreign database?)"
        ) from None
    except UnicodeDecodeError:
        # SQLite's own message quotes the damaged schema text.
        raise InputError(
            f"{name}: SQLite error with a message that is not UTF-8 "
            f"(a damaged or foreign database?)"
        ) from None
    finally:
        con.close()


def _read(con: sqlite3.Connection, opts: _Options) -> Iterator[RecordBatch]:
    name = opts.name
    tables = {
        n.upper(): n
        for (n,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        )
    }
    table = tables.get(TABLE)
    if table is None:
        shown = ", ".join(sorted(tables.values())[:20]) or "none"
        raise InputError(
            f"{name}: no {TABLE} table (not an NSRL RDSv3 database?); tables: {shown}"
        )
    _code_tables(con, tables, opts)
    quoted = '"' + table.replace('"', '""') + '"'
    columns = {r[1].lower(): r[1] for r in con.execute(f"PRAGMA table_info({quoted})")}
    algos = [a for a in ALGORITHMS if a in columns]
    if not algos:
        raise InputError(
            f"{name}: table {table} has no sha256, sha1 or md5 column "
            f"(columns: {', '.join(columns.values())})"
        )
    wanted = [columns[a] for a in algos]
    has_size = SIZE_COLUMN in columns
    if has_size:
        wanted.append(columns[SIZE_COLUMN])
    attrs = {a: columns[c] for a, c in ATTRIBUTES.items() if c in columns}
    wanted += attrs.values()
    opts.report.columns = {a: columns[a] for a in algos}
    if has_size:
        opts.report.columns["size"] = columns[SIZE_COLUMN]
    select = ", ".join(_q(c) for c in wanted)
    try:
        lo = con.execute(f"SELECT min(rowid) FROM {quoted}").fetchone()[0]
    except sqlite3.OperationalError:  # a WITHOUT ROWID table
        lo = None
    if lo is None and con.execute(f"SELECT 1 FROM {quoted} LIMIT 1").fetchone():
        # No usable rowid (a view: rowids are NULL): in query order.
        yield from _by_row(
            con, opts, table, quoted, select, algos, columns, has_size, attrs
        )
        return
    # Batches of rowid ranges: one aggregate query per batch returns each
    # column as one string (group_concat), decoded at once; a batch that is
    # not regular is read again row by row, for exact messages.
    aggregate = ", ".join(
        [f"group_concat({_q(columns[a])}, '|')" for a in algos]
        + ([f"group_concat({_q(columns[SIZE_COLUMN])}, ',')"] if has_size else [])
    )
    fast = f"SELECT count(*), {aggregate} FROM {quoted} WHERE rowid >= ? AND rowid < ?"
    slow = (
        f"SELECT rowid, {select} FROM {quoted} WHERE rowid >= ? AND rowid < ? "
        f"ORDER BY rowid"
    )
    next_row = f"SELECT min(rowid) FROM {quoted} WHERE rowid >= ?"
    attr_rows = (
        f"SELECT {', '.join(_q(c) for c in attrs.values())} FROM {quoted} "
        f"WHERE rowid >= ? AND rowid < ? ORDER BY rowid"
    )
    bs = opts.batch_size
    while lo is not None:
        hi = lo + bs
        got = con.execute(fast, (lo, hi)).fetchone()
        if got[0]:
            batch = _fast_batch(got, algos, has_size)
            if batch is not None and attrs:
                # the same rows in rowid order: the attribute strings as rows
                # (no separator is safe inside file names)
                values = con.execute(attr_rows, (lo, hi)).fetchall()
                batch.attributes = _attribute_columns(list(attrs), values, 0)
            if batch is None:
                rows = con.execute(slow, (lo, hi)).fetchall()
                batch = _rows_batch(
                    opts,
                    table,
                    rows,
                    algos,
                    columns,
                    has_size,
                    lambda i, rows=rows: f"rowid {rows[i][0]}",
                    attrs,
                )
            yield batch
            lo = hi
        else:  # a gap in the rowids
            lo = con.execute(next_row, (hi,)).fetchone()[0]


def _code_tables(
    con: sqlite3.Connection, tables: dict[str, str], opts: _Options
) -> None:
    """PKG, OS and MFG (tables or views) as ImportReport.tables, and the
    VERSION table's version (with its build set) as ImportReport.version.
    A table without its key column is left out; values are text."""
    report = opts.report
    for source, (key, names) in CODE_TABLES.items():
        actual = tables.get(source)
        if actual is None:
            continue
        cols = {
            r[1].lower(): r[1] for r in con.execute(f"PRAGMA table_info({_q(actual)})")
        }
        present = [(cols[c], n) for c, n in names.items() if c in cols]
        if key not in [n for _, n in present]:
            continue
        select = ", ".join(_q(c) for c, _ in present)
        rows: dict[str, dict[str, str]] = {}
        for values in con.execute(f"SELECT {select} FROM {_q(actual)}"):
            row = {
                n: str(v)
                for (_, n), v in zip(present, values, strict=True)
                if v is not None and v != ""
            }
            code = row.get(key, "").strip()
            if code:
                row[key] = code
                rows[code] = row
        report.tables[key] = ([n for _, n in present], rows)
    version = tables.get("VERSION")
    if version is not None:
        cols = {
            r[1].lower(): r[1] for r in con.execute(f"PRAGMA table_info({_q(version)})")
        }
        if "version" in cols:
            wanted = [cols["version"]] + (
                [cols["build_set"]] if "build_set" in cols else []
            )
            got = con.execute(
                f"SELECT {', '.join(map(_q, wanted))} FROM {_q(version)} LIMIT 1"
            ).fetchone()
            if got:
                report.version = " ".join(str(v) for v in got if v)[:200]


def _attribute_columns(
    names: list[str], rows: list[tuple[Any, ...]], first: int
) -> dict[str, list[str | None]]:
    """Attribute name -> values (text; NULL and empty: none) of columns
    first.. of rows."""
    cols = list(zip(*rows, strict=True))[first:] if rows else [()] * len(names)
    return {
        name: [None if v is None or v == "" else str(v) for v in col]
        for name, col in zip(names, cols, strict=True)
    }


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _fast_batch(
    got: tuple[Any, ...], algos: list[str], has_size: bool
) -> RecordBatch | None:
    """The batch from one aggregate row (count, hex|hex|..., ..., sizes), or
    None if any value is NULL, of another length, not hex or not a
    non-negative integer."""
    n = got[0]
    batch = RecordBatch.empty(n)
    for k, algo in enumerate(algos):
        text = got[1 + k]
        w = 2 * ALGORITHMS[algo]
        if not isinstance(text, str) or len(text) != n * (w + 1) - 1:
            return None
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            return None
        if n > 1:
            seps = np.frombuffer(raw, np.uint8)[w :: w + 1]
            if not (seps == ord("|")).all():
                return None
        try:
            digests = bytearray.fromhex(text.replace("|", ""))
        except ValueError:
            return None
        if len(digests) * 2 != n * w:
            return None
        setattr(batch, algo, np.frombuffer(digests, np.uint8).reshape(n, w // 2))
        setattr(batch, "has_" + algo, np.ones(n, bool))
    if has_size:
        text = got[-1]
        if not isinstance(text, str):
            return None
        parts = text.split(",")
        if len(parts) != n or not all(map(str.isdigit, parts)):
            return None
        try:
            batch.size = np.array(parts, np.int64)
        except (ValueError, OverflowError):
            return None
    return batch


def _by_row(
    con: sqlite3.Connection,
    opts: _Options,
    table: str,
    quoted: str,
    select: str,
    algos: list[str],
    columns: dict[str, str],
    has_size: bool,
    attrs: dict[str, str],
) -> Iterator[RecordBatch]:
    cur = con.execute(f"SELECT {select} FROM {quoted}")
    count = 0
    while True:
        rows = cur.fetchmany(opts.batch_size)
        if not rows:
            return
        rows = [(None, *r) for r in rows]
        yield _rows_batch(
            opts,
            table,
            rows,
            algos,
            columns,
            has_size,
            lambda i, base=count: f"row {base + i + 1}",
            attrs,
        )
        count += len(rows)


def _rows_batch(
    opts: _Options,
    table: str,
    rows: list[tuple[Any, ...]],
    algos: list[str],
    columns: dict[str, str],
    has_size: bool,
    where: Callable[..., str],
    attrs: dict[str, str],
) -> RecordBatch:
    """Records of (rowid, digests..., size, attributes...) rows."""
    cols = list(zip(*rows, strict=False))
    hexcols = {a: (cols[1 + k], f"column {columns[a]}") for k, a in enumerate(algos)}
    at = 1 + len(algos)
    sizes = (cols[at], f"column {columns[SIZE_COLUMN]}") if has_size else None
    attributes = _attribute_columns(list(attrs), rows, at + has_size)
    return assemble(
        opts,
        len(rows),
        hexcols,
        sizes,
        None,
        None,
        lambda i: f": {table} {where(i)}",
        attributes=attributes,
    )
