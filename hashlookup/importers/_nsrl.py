"""Format "sqlite": NSRL RDSv3 SQLite databases (table FILE).

    FILE(sha256, sha1, md5, crc32, file_name, file_size, package_id)

Digests are hex text (NSRL writes upper case).  The database is opened read
only (URI mode=ro) with the stdlib sqlite3 module and the table is streamed
with fetchmany(batch_size).  NSRL lists known-good files: the importer adds
no labels (the dataset builder labels the source).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

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


def read(opts: _Options) -> Iterator[RecordBatch]:
    name = opts.name
    with open(opts.path, "rb") as f:
        if not f.read(len(SQLITE_MAGIC)).startswith(SQLITE_MAGIC):
            raise InputError(f"{name}: not an SQLite database (no 'SQLite format 3' "
                             f"header)")
    uri = Path(opts.path).resolve().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise InputError(f"{name}: cannot open the SQLite database: {e}") from None
    try:
        yield from _read(con, opts)
    except sqlite3.Error as e:
        raise InputError(f"{name}: SQLite error: {e} (a damaged or foreign "
                         f"database?)") from None
    finally:
        con.close()


def _read(con: sqlite3.Connection, opts: _Options) -> Iterator[RecordBatch]:
    name = opts.name
    tables = {n.upper(): n for (n,) in con.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    table = tables.get(TABLE)
    if table is None:
        shown = ", ".join(sorted(tables.values())[:20]) or "none"
        raise InputError(f"{name}: no {TABLE} table (not an NSRL RDSv3 database?); "
                         f"tables: {shown}")
    quoted = '"' + table.replace('"', '""') + '"'
    columns = {r[1].lower(): r[1] for r in con.execute(f"PRAGMA table_info({quoted})")}
    algos = [a for a in ALGORITHMS if a in columns]
    if not algos:
        raise InputError(f"{name}: table {table} has no sha256, sha1 or md5 column "
                         f"(columns: {', '.join(columns.values())})")
    wanted = [columns[a] for a in algos]
    has_size = SIZE_COLUMN in columns
    if has_size:
        wanted.append(columns[SIZE_COLUMN])
    opts.report.columns = {a: columns[a] for a in algos}
    if has_size:
        opts.report.columns["size"] = columns[SIZE_COLUMN]
    select = ", ".join('"' + c.replace('"', '""') + '"' for c in wanted)
    try:
        cur = con.execute(f"SELECT rowid, {select} FROM {quoted}")
        rowid_what = "rowid"
    except sqlite3.OperationalError:   # a view or a WITHOUT ROWID table
        cur = con.execute(f"SELECT NULL, {select} FROM {quoted}")
        rowid_what = "row"
    count = 0
    while True:
        rows = cur.fetchmany(opts.batch_size)
        if not rows:
            return
        cols = list(zip(*rows))
        ids = cols[0]
        base = count

        def where(i: int, ids=ids, base=base) -> str:
            if rowid_what == "rowid":
                return f": {table} rowid {ids[i]}"
            return f": {table} row {base + i + 1}"

        hexcols = {a: (cols[1 + k], f"column {columns[a]}")
                   for k, a in enumerate(algos)}
        sizes = ((cols[-1], f"column {columns[SIZE_COLUMN]}") if has_size
                 else None)
        count += len(rows)
        yield assemble(opts, len(rows), hexcols, sizes, None, None, where)
