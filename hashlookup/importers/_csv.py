"""Format "csv": delimited text with a header line naming the columns.

The delimiter (',', tab or ';') is chosen from the header line; rows are
read by the stdlib csv module (quoted cells, embedded delimiters and
newlines work) in batches of batch_size rows, and each batch's columns are
decoded at once.  Encoding: UTF-8 (a BOM is skipped) or UTF-16 with a BOM;
undecodable bytes become U+FFFD.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from operator import itemgetter

from hashlookup.errors import InputError
from hashlookup.importers._common import (
    assemble,
    csv_header_delimiter,
    label_rows,
    normalise_name,
    quote,
    sniff_encoding,
    split_header,
)
from hashlookup.importers._records import ALGORITHMS, RecordBatch, _Options

#: normalised header name -> field, for auto-detection
AUTO_NAMES = {"md5": "md5", "sha1": "sha1", "sha256": "sha256",
              "size": "size", "filesize": "size"}

# Cells up to 16 MiB (the csv module's default limit is 128 KiB).
csv.field_size_limit(max(csv.field_size_limit(), 16 << 20))


def read(opts: _Options) -> Iterator[RecordBatch]:
    with open(opts.path, "rb") as raw:
        encoding, bom = sniff_encoding(raw.read(4))
        raw.seek(bom)
        f = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        header, header_line = _header_line(f)
        if header is None:
            return   # an empty file: no records
        delimiter, fields = _delimiter(opts, header, header_line)
        columns = _columns(opts, fields, header_line)
        labels = {}
        for prefix, col in (opts.label_columns or {}).items():
            labels[prefix] = _find(opts, fields, col, f"label {prefix!r}", header_line)
        report = opts.report
        report.columns = {k: fields[j] for k, j in columns.items()}
        report.columns.update({f"label:{k}": fields[j] for k, j in labels.items()})
        reader = csv.reader(f, delimiter=delimiter)
        yield from _batches(opts, reader, len(fields), fields, columns, labels,
                            header_line)


def _header_line(f: io.TextIOWrapper) -> tuple[str | None, int]:
    """The first non-blank line and its number."""
    number = 0
    for line in f:
        number += 1
        if line.strip():
            return line.rstrip("\r\n"), number
    return None, number


def _delimiter(opts: _Options, header: str, line: int) -> tuple[str, list[str]]:
    wanted = list((opts.columns or {}).values()) + \
        list((opts.label_columns or {}).values())
    delimiter = csv_header_delimiter(header, wanted or None)
    if delimiter is None and wanted:
        # Say which column is missing, with the most plausible split.
        delimiter = csv_header_delimiter(header) or max(
            ",\t;", key=lambda d: len(split_header(header, d)))
    if delimiter is None:
        raise InputError(
            f"{opts.name}:{line}: no md5, sha1 or sha256 column in the CSV header "
            f"{quote(header)}; name the columns with columns={{'md5': ...}}")
    return delimiter, [c.strip() for c in split_header(header, delimiter)]


def _find(opts: _Options, fields: list[str], name: str, what: str,
          line: int) -> int:
    if name in fields:
        return fields.index(name)
    folded = [f.lower() for f in fields]
    if folded.count(name.lower()) == 1:
        return folded.index(name.lower())
    raise InputError(f"{opts.name}:{line}: column {name!r} ({what}) is not in the "
                     f"CSV header {fields}")


def _columns(opts: _Options, fields: list[str], line: int) -> dict[str, int]:
    """field ("md5", "sha1", "sha256", "size") -> column index."""
    found: dict[str, int] = {}
    if opts.columns:
        for key, name in opts.columns.items():
            found[key] = _find(opts, fields, name, key, line)
    for j, name in enumerate(fields):
        key = AUTO_NAMES.get(normalise_name(name))
        if key is None or (opts.columns and key != "size") or \
                (opts.columns and "size" in opts.columns):
            continue
        if key in found:
            if key == "size":
                continue   # the first size-like column wins
            raise InputError(f"{opts.name}:{line}: columns {fields[found[key]]!r} "
                             f"and {name!r} both look like the {key} column; "
                             f"choose one with columns={{{key!r}: ...}}")
        found[key] = j
    if not any(k in ALGORITHMS for k in found):
        raise InputError(
            f"{opts.name}:{line}: no column named md5, sha1 or sha256 (or SHA-1, "
            f"SHA-256; any case) in the CSV header {fields}; name the columns "
            f"with columns={{'md5': ...}}")
    return found


def _batches(opts: _Options, reader, ncols: int, fields: list[str],
             columns: dict[str, int], labels: dict[str, int],
             header_line: int) -> Iterator[RecordBatch]:
    bs = opts.batch_size
    while True:
        first = header_line + reader.line_num + 1   # line of the first row
        rows = list(itertools.islice(reader, bs))
        if not rows:
            return
        bad: dict[int, str] = {}
        counts = set(map(len, rows))
        if counts == {ncols}:
            records = rows
            positions = None
        else:
            records, positions = [], []
            for i, r in enumerate(rows):
                if not r:
                    continue   # a blank line
                if len(r) != ncols:
                    bad[len(records)] = (f"expected {ncols} fields as in the "
                                         f"header, got {len(r)}")
                    r = [""] * ncols
                positions.append(i)
                records.append(r)
            if not records:
                continue
        lines_exact = reader.line_num - (first - header_line - 1) == len(rows)
        where = _where_factory(rows, first, positions, lines_exact)
        hexcols = {k: (list(map(itemgetter(j), records)), f"column {fields[j]}")
                   for k, j in columns.items() if k in ALGORITHMS}
        sizes = None
        if "size" in columns:
            j = columns["size"]
            sizes = (list(map(itemgetter(j), records)), f"column {fields[j]}")
        label_map: dict[str, list[int]] = {}
        for prefix, j in labels.items():
            label_map.update(label_rows(list(map(itemgetter(j), records)), prefix))
        yield assemble(opts, len(records), hexcols, sizes, label_map, bad, where)


def _where_factory(rows: list[list[str]], first: int, positions: list[int] | None,
                   lines_exact: bool):
    """where(i) for record i: its line number (computed on demand when rows
    span several lines because of quoted newlines)."""
    starts: list[int] = []

    def where(i: int) -> str:
        row = positions[i] if positions is not None else i
        if lines_exact:
            return f":{first + row}"
        if not starts:
            line = first
            for r in rows:
                starts.append(line)
                line += 1 + sum(c.count("\n") + c.count("\r") - c.count("\r\n")
                                for c in r)
        return f":{starts[row]}"

    return where
