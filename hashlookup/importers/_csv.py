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
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import BinaryIO

import numpy as np

from hashlookup.errors import InputError
from hashlookup.importers import _fast
from hashlookup.importers import pdq as _pdq
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
AUTO_NAMES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "size": "size",
    "filesize": "size",
}

CHUNK_SIZE = 8 << 20
MAX_RECORD = 64 << 20  # longest run of text without a line end outside quotes
MAX_HEADER = 1 << 20  # longest header line (column names, not data)

# Cells up to 16 MiB (the csv module's default limit is 128 KiB).
FIELD_LIMIT = 16 << 20
csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))


def read(opts: _Options) -> Iterator[RecordBatch]:
    with opts.open() as raw:
        encoding, bom = sniff_encoding(raw.read(4))
        raw.seek(bom)
        if encoding == "utf-8":
            yield from _read_bytes(opts, raw)
            return
        f = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        header, header_line = _header_line(opts, f)
        if header is None:
            return  # an empty file: no records
        layout = _Layout(opts, header, header_line)
        reader = csv.reader(
            _bounded_lines(opts, f, header_line + 1), delimiter=layout.delimiter
        )
        while True:
            first = header_line + reader.line_num + 1  # line of the first row
            try:
                rows = list(itertools.islice(reader, opts.batch_size))
            except csv.Error as e:
                raise InputError(
                    f"{opts.name}:{header_line + reader.line_num}: {e}"
                ) from None
            if not rows:
                return
            exact = header_line + reader.line_num - first + 1 == len(rows)
            batch = _rows_batch(opts, layout, rows, first, exact)
            if batch is not None:
                yield batch


class _Layout:
    """Delimiter and the columns to read, from the header line."""

    def __init__(self, opts: _Options, header: str, line: int):
        self.delimiter, self.fields = _delimiter(opts, header, line)
        self.ncols = len(self.fields)
        self.columns = _columns(opts, self.fields, line)
        self.labels = {
            prefix: _find(opts, self.fields, col, f"label {prefix!r}", line)
            for prefix, col in (opts.label_columns or {}).items()
        }
        self.pdq = _pdq.find_columns(self.fields)
        folded = {f.lower() for f in self.fields}
        self.attributes = {
            attr: _find(opts, self.fields, col, f"attribute {attr!r}", line)
            for attr, col in (opts.attributes or {}).items()
            if not opts.attributes_optional or col.lower() in folded
        }
        report = opts.report
        report.columns = {k: self.fields[j] for k, j in self.columns.items()}
        if self.pdq is not None:
            report.columns["pdq"] = self.fields[self.pdq[0]]
            if self.pdq[1] is not None:
                report.columns["pdq_quality"] = self.fields[self.pdq[1]]
        report.columns.update(
            {f"label:{k}": self.fields[j] for k, j in self.labels.items()}
        )


def _read_bytes(opts: _Options, raw: BinaryIO) -> Iterator[RecordBatch]:
    """UTF-8 input: chunks cut at line ends outside quotes, read vectorised
    (_fast) where regular, else by the csv module."""
    buf = b""
    eof = False
    line = 1
    # The header: the first non-blank line.
    while True:
        nl = buf.find(b"\n")
        if (nl if nl >= 0 else len(buf)) > MAX_HEADER:
            raise InputError(_long_header(opts, line))
        if nl < 0 and not eof:
            more = raw.read(CHUNK_SIZE)
            eof = not more
            buf += more
            continue
        head = buf if nl < 0 else buf[:nl]
        buf = b"" if nl < 0 else buf[nl + 1 :]
        if head.strip():
            break
        if nl < 0:
            return  # blank lines only: no records
        line += 1
    layout = _Layout(opts, head.decode("utf-8", "replace").rstrip("\r\n"), line)
    line += 1
    while True:
        if not eof and len(buf) < CHUNK_SIZE:
            more = raw.read(CHUNK_SIZE)
            eof = not more
            buf += more
            continue
        if eof and not buf:
            return
        t = _fast.Text(buf, quotes=True)
        if eof:
            nlines, cut = len(t.starts), len(buf)
        elif t.complete:
            # Up to the last line end outside quotes; the rest waits for more.
            nlines = t.complete
            cut = int(t.line_ends[-1]) + 1 - _fast.PAD
        else:  # no line end outside quotes yet
            if len(buf) > MAX_RECORD:
                raise InputError(
                    f"{opts.name}:{line}: a quoted field runs on for "
                    f"more than {MAX_RECORD >> 20} MiB (an unbalanced "
                    f"quote?)"
                )
            more = raw.read(CHUNK_SIZE)
            eof = not more
            buf += more
            continue
        yield from _chunk(opts, layout, t, nlines, line)
        line += int(np.searchsorted(t.newlines, cut + _fast.PAD))
        buf = buf[cut:]


def _chunk(
    opts: _Options, layout: _Layout, t: _fast.Text, nlines: int, first: int
) -> Iterator[RecordBatch]:
    """The records of the first nlines lines of t (line `first` first)."""
    bs = opts.batch_size
    if t.bare_cr():
        keep = None
        starts = t.starts[:nlines]
    else:
        keep = np.flatnonzero(t.ends[:nlines] > t.starts[:nlines])  # not blank
        starts = t.starts[keep]
    n = len(starts)
    for b in range(0, n, bs):
        s0 = int(starts[b])
        last = min(b + bs, n) - 1
        if keep is not None:
            idx = keep[b : b + bs]
            s, e = t.starts[idx], t.ends[idx]
            batch = None
            if int((e - s).max()) <= FIELD_LIMIT:
                batch = _fast_batch(t, layout, s, e)
            if batch is not None:
                yield batch
                continue
            stop = int(t.ends[idx[-1]])
        else:
            stop = int(t.ends[last])
        # The csv module on the same lines (exact messages, odd quoting).
        text = t.data[s0 - _fast.PAD : stop - _fast.PAD].decode("utf-8", "replace")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
        line = t.line_number(first, s0)
        try:
            rows = list(reader)
        except csv.Error as e:
            raise InputError(f"{opts.name}:{line + reader.line_num - 1}: {e}") from None
        batch = _rows_batch(opts, layout, rows, line, reader.line_num == len(rows))
        if batch is not None:
            yield batch


def _fast_batch(
    t: _fast.Text, layout: _Layout, s: np.ndarray, e: np.ndarray
) -> RecordBatch | None:
    if layout.pdq is not None:
        return None  # PDQ columns are read by the csv module path
    fields = _fast.split_fields(t, s, e, ord(layout.delimiter), layout.ncols, None)
    if fields is None:
        return None
    batch = RecordBatch.empty(len(s))
    for key, j in layout.columns.items():
        fs, fe = _fast.unquote(t, *fields[j])
        if key == "size":
            got = _fast.size_column(t, fs, fe)
            if got is None:
                return None
            batch.size = got
        else:
            got2 = _fast.hex_column(t, fs, fe, ALGORITHMS[key])
            if got2 is None:
                return None
            setattr(batch, key, got2[0])
            setattr(batch, "has_" + key, got2[1])
    if not (batch.has_md5 | batch.has_sha1 | batch.has_sha256).all():
        return None
    for prefix, j in layout.labels.items():
        labels = _fast.label_column(t, *_fast.unquote(t, *fields[j]), prefix)
        if labels is None:
            return None
        batch.labels.update(labels)
    for name, j in layout.attributes.items():
        values = _fast.text_column(t, *_fast.unquote(t, *fields[j]))
        if values is None:
            return None
        batch.attributes[name] = values
    return batch


def _header_line(opts: _Options, f: io.TextIOWrapper) -> tuple[str | None, int]:
    """The first non-blank line and its number."""
    number = 0
    while True:
        line = f.readline(MAX_HEADER + 1)
        if not line:
            return None, number
        number += 1
        if len(line) > MAX_HEADER:
            raise InputError(_long_header(opts, number))
        if line.strip():
            return line.rstrip("\r\n"), number


def _long_header(opts: _Options, line: int) -> str:
    return (
        f"{opts.name}:{line}: the CSV header line is longer than "
        f"{MAX_HEADER >> 20} MiB (is this a CSV file?)"
    )


def _bounded_lines(opts: _Options, f: io.TextIOWrapper, first: int) -> Iterator[str]:
    """The lines of f (line `first` first), none longer than MAX_RECORD
    characters: a longer one is an InputError, not a line held whole."""
    number = first
    while True:
        line = f.readline(MAX_RECORD + 1)
        if not line:
            return
        if len(line) > MAX_RECORD:
            raise InputError(
                f"{opts.name}:{number}: a line longer than "
                f"{MAX_RECORD >> 20} Mi characters"
            )
        number += 1
        yield line


def _delimiter(opts: _Options, header: str, line: int) -> tuple[str, list[str]]:
    wanted = list((opts.columns or {}).values()) + list(
        (opts.label_columns or {}).values()
    )
    try:
        split_header(header, ",")
    except csv.Error as e:
        raise InputError(
            f"{opts.name}:{line}: unreadable CSV header {quote(header)}: {e}"
        ) from None
    delimiter = csv_header_delimiter(header, wanted or None)
    if delimiter is None and wanted:
        # Say which column is missing, with the most plausible split.
        delimiter = csv_header_delimiter(header) or max(
            ",\t;", key=lambda d: len(split_header(header, d))
        )
    if delimiter is None:
        raise InputError(
            f"{opts.name}:{line}: no md5, sha1 or sha256 column in the CSV header "
            f"{quote(header)}; name the columns with columns={{'md5': ...}}"
        )
    return delimiter, [c.strip() for c in split_header(header, delimiter)]


def _find(opts: _Options, fields: list[str], name: str, what: str, line: int) -> int:
    if name in fields:
        return fields.index(name)
    folded = [f.lower() for f in fields]
    if folded.count(name.lower()) == 1:
        return folded.index(name.lower())
    raise InputError(
        f"{opts.name}:{line}: column {name!r} ({what}) is not in the "
        f"CSV header {fields}"
    )


def _columns(opts: _Options, fields: list[str], line: int) -> dict[str, int]:
    """field ("md5", "sha1", "sha256", "size") -> column index."""
    found: dict[str, int] = {}
    if opts.columns:
        for key, name in opts.columns.items():
            found[key] = _find(opts, fields, name, key, line)
    for j, name in enumerate(fields):
        auto = AUTO_NAMES.get(normalise_name(name))
        if (
            auto is None
            or (opts.columns and auto != "size")
            or (opts.columns and "size" in opts.columns)
        ):
            continue
        if auto in found:
            if auto == "size":
                continue  # the first size-like column wins
            raise InputError(
                f"{opts.name}:{line}: columns {fields[found[auto]]!r} "
                f"and {name!r} both look like the {auto} column; "
                f"choose one with columns={{{auto!r}: ...}}"
            )
        found[auto] = j
    if not any(k in ALGORITHMS for k in found):
        raise InputError(
            f"{opts.name}:{line}: no column named md5, sha1 or sha256 (or SHA-1, "
            f"SHA-256; any case) in the CSV header {fields}; name the columns "
            f"with columns={{'md5': ...}}"
        )
    return found


def _rows_batch(
    opts: _Options,
    layout: _Layout,
    rows: list[list[str]],
    first: int,
    lines_exact: bool,
) -> RecordBatch | None:
    """The records of csv rows (the first on line `first`), None if there
    are none (blank lines only)."""
    ncols = layout.ncols
    bad: dict[int, str] = {}
    if set(map(len, rows)) == {ncols}:
        records = rows
        positions = None
    else:
        records, positions = [], []
        for i, r in enumerate(rows):
            if not r:
                continue  # a blank line
            if len(r) != ncols:
                bad[len(records)] = (
                    f"expected {ncols} fields as in the header, got {len(r)}"
                )
                r = [""] * ncols
            positions.append(i)
            records.append(r)
        if not records:
            return None
    where = _where_factory(rows, first, positions, lines_exact)
    fields = layout.fields
    hexcols = {
        k: (list(map(itemgetter(j), records)), f"column {fields[j]}")
        for k, j in layout.columns.items()
        if k in ALGORITHMS
    }
    sizes = None
    if "size" in layout.columns:
        j = layout.columns["size"]
        sizes = (list(map(itemgetter(j), records)), f"column {fields[j]}")
    label_map: dict[str, list[int]] = {}
    for prefix, j in layout.labels.items():
        label_map.update(
            label_rows(
                list(map(itemgetter(j), records)), prefix, f"column {fields[j]}", bad
            )
        )
    pdq = None
    if layout.pdq is not None:
        jp, jq = layout.pdq
        pdq = _pdq.decode(
            list(map(itemgetter(jp), records)),
            None if jq is None else list(map(itemgetter(jq), records)),
            (f"column {fields[jp]}", f"column {fields[jq if jq is not None else jp]}"),
            bad,
        )
    attributes = {
        name: [v or None for v in map(itemgetter(j), records)]
        for name, j in layout.attributes.items()
    }
    return assemble(
        opts,
        len(records),
        hexcols,
        sizes,
        label_map,
        bad,
        where,
        pdq=pdq,
        attributes=attributes,
    )


def _where_factory(
    rows: list[list[str]], first: int, positions: list[int] | None, lines_exact: bool
) -> Callable[[int], str]:
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
                line += 1 + sum(
                    c.count("\n") + c.count("\r") - c.count("\r\n") for c in r
                )
        return f":{starts[row]}"

    return where
