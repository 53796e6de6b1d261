"""Format "hashdeep": hashdeep / md5deep CSV output.

    %%%% HASHDEEP-1.0
    %%%% size,md5,sha256,filename
    ## Invoked from: /home/user
    ## $ hashdeep -c md5,sha256 -r .
    ##
    1024,d41d8...,e3b0c...,./a,b.jpg

The second header line declares the columns (any subset and order of size,
md5, sha1, sha256, tiger, whirlpool, filename).  Data lines are split on
',' with a maximum number of splits, so a file name (the last column, or
any column: the fields after it are split off from the right) may contain
commas.  tiger, whirlpool and unknown columns are ignored; the file name
is not stored.  A new "%%%% HASHDEEP-1.0" header (concatenated outputs)
starts a new column layout.

Data lines are read by the C parser (hashlookup._core.hashdeep_parse,
csrc/hl_hashdeep.c) straight into the record columns; it stops at any line
it is not certain of, which the per-line reader below then judges (and
names in its error), so the records and errors are the Python reader's.
USE_C = False reads with the Python readers alone (the tests' reference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from hashlookup.errors import InputError
from hashlookup.importers import _fast
from hashlookup.importers import digests as _parse
from hashlookup.importers._common import assemble, quote
from hashlookup.importers._records import ALGORITHMS, RecordBatch, _Options

CHUNK_SIZE = 8 << 20
MAGIC = b"%%%% HASHDEEP-"
_SPECIAL = b"#% \t\r\v\f"  # first bytes of lines that need a closer look
_BLANKS = np.frombuffer(b" \t\r\v\f", np.uint8)
# Irregular lines of one chunk read one at a time by the per-line reader,
# between runs of the C parser; past this many, the rest of the chunk goes
# to the per-line reader whole (a file of odd lines stays fast).
_MAX_ODD = 64
# The C parser (hashlookup._core.hashdeep_parse) reads the data lines; False:
# the numpy and per-line readers alone (the reference the tests compare with).
USE_C = True


class _Layout:
    """The columns declared by a '%%%% size,md5,...' line."""

    def __init__(self, line: bytes, where: str):
        text = line[4:].decode("utf-8", "replace").strip()
        self.names = [c.strip().lower() for c in text.split(",")]
        self.text = ",".join(self.names)
        if len(set(self.names)) != len(self.names) or "" in self.names:
            raise InputError(
                f"{where}: bad hashdeep column line {quote(line)} "
                f"(empty or repeated column names)"
            )
        self.ncols = len(self.names)
        self.algos = {a: self.names.index(a) for a in ALGORITHMS if a in self.names}
        if not self.algos:
            raise InputError(
                f"{where}: hashdeep column line {quote(line)} declares "
                f"no md5, sha1 or sha256 column"
            )
        self.size = self.names.index("size") if "size" in self.names else None
        self.fname = self.names.index("filename") if "filename" in self.names else None
        # (columns, file name, md5, sha1, sha256, size) for the C parser
        self.c_layout = (
            self.ncols,
            -1 if self.fname is None else self.fname,
            *(self.algos.get(a, -1) for a in ALGORITHMS),
            -1 if self.size is None else self.size,
        )

    def split(self, lines: list[bytes], bad: dict[int, str]) -> list[list[bytes]]:
        """Fields of each line; lines with the wrong count go to bad and get
        empty fields."""
        n = self.ncols
        if self.fname is None:
            rows = [line.split(b",") for line in lines]
        elif self.fname == n - 1:
            rows = [line.split(b",", n - 1) for line in lines]
        else:
            rows = [self._split_middle(line) for line in lines]
        counts = set(map(len, rows))
        if counts != {n}:
            for i, r in enumerate(rows):
                if len(r) != n:
                    bad.setdefault(
                        i,
                        f"expected {n} fields ({self.text}), got "
                        f"{len(r)}: {quote(lines[i])}",
                    )
                    rows[i] = [b""] * n
        return rows

    def _split_middle(self, line: bytes) -> list[bytes]:
        fname = self.fname
        assert fname is not None  # split() calls this only with a file name column
        left = line.split(b",", fname)
        if len(left) <= fname:
            return left
        right = left.pop().rsplit(b",", self.ncols - 1 - fname)
        return left + right


def read(opts: _Options) -> Iterator[RecordBatch]:
    reader = _Reader(opts)
    # (A UTF-8 byte-order mark is skipped by the line reader, as everywhere.)
    with opts.open() as f:
        for data in _parse.checked_line_chunks(
            f, opts.name, CHUNK_SIZE, opts.skip_invalid, lambda: reader.line
        ):
            if isinstance(data, bytes):
                yield from reader.chunk(data)
            else:  # an over-long line skipped (skip_invalid)
                reader.dropped_line()
    reader.finish()


class _Reader:
    def __init__(self, opts: _Options):
        self.opts = opts
        self.line = 1  # number of the next line
        self.state = "start"  # -> "columns" -> "data"
        self.layout: _Layout | None = None
        self.header_line = 0

    def _where(self, line: int) -> str:
        return f"{self.opts.name}:{line}"

    def dropped_line(self) -> None:
        if self.state != "data":
            raise InputError(
                f"{self._where(self.line)}: line longer than "
                f"{_parse.MAX_LINE} bytes in the hashdeep header"
            )
        self.opts.report._skip(
            1, [f"{self._where(self.line)}: line longer than {_parse.MAX_LINE} bytes"]
        )
        self.line += 1

    def finish(self) -> None:
        if self.state == "columns":
            raise InputError(
                f"{self._where(self.header_line)}: truncated hashdeep "
                f"header: no '%%%% <columns>' line after "
                f"'%%%% HASHDEEP-1.0'"
            )

    def chunk(self, data: bytes) -> Iterator[RecordBatch]:
        if USE_C:
            yield from self._chunk_c(data)
            return
        first = self.line
        self.line += data.count(b"\n") + (not data.endswith(b"\n"))
        if self.state == "data":
            t = _fast.Text(data)
            keep = self._plain_lines(t)
            if keep is not None:
                yield from self._read_fast(t, keep, first)
                return
        yield from self._slow(data, first)

    @staticmethod
    def _plain_lines(t: _fast.Text) -> np.ndarray | None:
        """Indices of the data lines of a chunk, if every other line is blank
        or a comment; None if a line needs the line-by-line reader (a header
        line, or blanks before the text)."""
        starts, ends = t.starts, t.ends
        nonempty = ends > starts
        first = t.arr[starts]
        if (nonempty & (first == ord("%"))).any():
            return None
        keep = nonempty & (first != ord("#"))
        # Lines with blanks first: classified like the line-by-line reader.
        for i in np.flatnonzero(nonempty & np.isin(first, _BLANKS)).tolist():
            line = t.data[starts[i] - _fast.PAD : ends[i] - _fast.PAD].strip()
            if line.startswith(b"%"):
                return None
            if not line or line.startswith(b"#"):
                keep[i] = False
        return np.flatnonzero(keep)

    def _read_fast(
        self, t: _fast.Text, keep: np.ndarray, first: int
    ) -> Iterator[RecordBatch]:
        layout = self.layout
        assert layout is not None
        bs = self.opts.batch_size
        for b in range(0, len(keep), bs):
            idx = keep[b : b + bs]
            s, e = t.starts[idx], t.ends[idx]
            batch = None
            if len(s) and int((e - s).max()) <= _parse.MAX_LINE:
                batch = self._fast_batch(t, s, e, layout)
            if batch is None:  # something irregular: the exact reader
                lines = [
                    t.data[i - _fast.PAD : j - _fast.PAD]
                    for i, j in zip(s.tolist(), e.tolist(), strict=True)
                ]
                yield from self._rows(lines, first, idx)
            else:
                yield batch

    @staticmethod
    def _fast_batch(
        t: _fast.Text, s: np.ndarray, e: np.ndarray, layout: _Layout
    ) -> RecordBatch | None:
        fields = _fast.split_fields(t, s, e, ord(","), layout.ncols, layout.fname)
        if fields is None:
            return None
        batch = RecordBatch.empty(len(s))
        for algo, j in layout.algos.items():
            got = _fast.hex_column(t, *fields[j], ALGORITHMS[algo])
            if got is None:
                return None
            setattr(batch, algo, got[0])
            setattr(batch, "has_" + algo, got[1])
        if not (batch.has_md5 | batch.has_sha1 | batch.has_sha256).all():
            return None
        if layout.size is not None:
            size = _fast.size_column(t, *fields[layout.size])
            if size is None:
                return None
            batch.size = size
        return batch

    def _slow(self, data: bytes, first: int) -> Iterator[RecordBatch]:
        """Line by line: header lines, and data runs between them."""
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        lines = data.split(b"\n")
        if data.endswith(b"\n"):
            lines.pop()
        special = [i for i, ln in enumerate(lines) if not ln or ln[0] in _SPECIAL]
        # Walk the special lines; data lines between them are handled in runs.
        run: list[int] = []
        prev = 0
        for s in special + [len(lines)]:
            if self.state == "data":
                run.extend(range(prev, s))
            elif s > prev:  # a data line before the header is complete
                self._header_error(first + prev, lines[prev])
            if s == len(lines):
                break
            prev = s + 1
            ln = lines[s]
            stripped = ln.strip()
            if not stripped or stripped.startswith(b"#"):
                continue
            if not stripped.startswith(b"%%%%"):  # a data line with blanks first
                if self.state != "data":
                    self._header_error(first + s, ln)
                run.append(s)
                continue
            # A header line: finish the run read with the previous layout.
            if run:
                yield from self._rows(
                    [lines[i] for i in run], first, np.array(run, np.int64)
                )
                run = []
            self._header(stripped, first + s)
            if self.state == "data" and not run:
                # The rest of the chunk without header lines: vectorised.
                offset = sum(map(len, lines[: s + 1])) + s + 1
                rest = data[offset:]
                if not rest.startswith(b"%") and b"\n%" not in rest:
                    yield from self.chunk_rest(rest, first + s + 1)
                    return
        if run:
            yield from self._rows(
                [lines[i] for i in run], first, np.array(run, np.int64)
            )

    def _chunk_c(self, data: bytes) -> Iterator[RecordBatch]:
        """The C parser over the data lines; every other line (headers,
        anything irregular) through the per-line reader, one at a time, and
        past _MAX_ODD of those the rest of the chunk."""
        from hashlookup import _core  # (not at the top: the module stays light)

        n = len(data)
        pos, odd = 0, 0
        while pos < n:
            if self.state == "data":
                batch, lines, pos, stop = self._c_batch(_core.hashdeep_parse, data, pos)
                self.line += lines
                if batch is not None:
                    yield batch
                if stop != _core.HASHDEEP_IRREGULAR:
                    continue
            first = self.line
            if odd == _MAX_ODD:
                rest = data[pos:]
                self.line += rest.count(b"\n") + (not rest.endswith(b"\n"))
                yield from self._slow(rest, first)
                return
            odd += 1
            end = data.find(b"\n", pos)
            end = n if end < 0 else end + 1
            self.line += 1
            yield from self._slow(data[pos:end], first)
            pos = end

    def _c_batch(
        self, parse: Callable[..., tuple[int, int, int, int]], data: bytes, pos: int
    ) -> tuple[RecordBatch | None, int, int, int]:
        """(records or None, lines read, end, stop) of the C parser from pos."""
        layout = self.layout
        assert layout is not None
        # A data line holds a digest (32 hex characters at least) and a newline.
        cap = max(1, min(self.opts.batch_size, (len(data) - pos) // 33 + 1))
        b = RecordBatch(
            md5=np.empty((cap, 16), np.uint8),
            sha1=np.empty((cap, 20), np.uint8),
            sha256=np.empty((cap, 32), np.uint8),
            has_md5=np.empty(cap, bool),
            has_sha1=np.empty(cap, bool),
            has_sha256=np.empty(cap, bool),
            size=np.empty(cap, np.int64),
            labels={},
        )
        k, lines, end, stop = parse(
            data,
            pos,
            layout.c_layout,
            _parse.MAX_LINE,
            b.md5,
            b.sha1,
            b.sha256,
            b.has_md5.view(np.uint8),
            b.has_sha1.view(np.uint8),
            b.has_sha256.view(np.uint8),
            b.size,
        )
        if k == 0:
            return None, lines, end, stop
        if k < cap:  # the builder keeps these columns: not the unused rows
            b.md5, b.sha1, b.sha256 = b.md5[:k], b.sha1[:k], b.sha256[:k]
            b.has_md5, b.has_sha1 = b.has_md5[:k].copy(), b.has_sha1[:k].copy()
            b.has_sha256, b.size = b.has_sha256[:k].copy(), b.size[:k].copy()
        return b, lines, end, stop

    def chunk_rest(self, data: bytes, first: int) -> Iterator[RecordBatch]:
        t = _fast.Text(data)
        keep = self._plain_lines(t)
        if keep is not None:
            yield from self._read_fast(t, keep, first)
        else:
            yield from self._slow(data, first)

    def _header(self, line: bytes, line_no: int) -> None:
        if line.startswith(MAGIC):
            self.state = "columns"
            self.header_line = line_no
        elif self.state == "columns":
            self.layout = _Layout(line, self._where(line_no))
            self.opts.report.columns = {
                k: k for k in self.layout.names if k in ALGORITHMS or k == "size"
            }
            self.state = "data"
        elif self.state == "start":
            self._header_error(line_no, line)
        else:
            raise InputError(
                f"{self._where(line_no)}: unexpected hashdeep header "
                f"line {quote(line)} (expected '%%%% HASHDEEP-1.0' to "
                f"start a new header)"
            )

    def _header_error(self, line_no: int, line: bytes) -> None:
        if self.state == "start":
            raise InputError(
                f"{self._where(line_no)}: expected the hashdeep header "
                f"'%%%% HASHDEEP-1.0', got {quote(line)}"
            )
        raise InputError(
            f"{self._where(self.header_line)}: truncated hashdeep "
            f"header: no '%%%% <columns>' line after "
            f"'%%%% HASHDEEP-1.0' (line {line_no} is {quote(line)})"
        )

    def _rows(
        self, lines: list[bytes], first: int, idx: np.ndarray | None
    ) -> Iterator[RecordBatch]:
        """Records of data lines (idx: their positions in the chunk, None if
        lines is the whole chunk); first: the chunk's first line number."""
        layout = self.layout
        assert layout is not None
        bs = self.opts.batch_size
        for start in range(0, len(lines), bs):
            part = lines[start : start + bs]
            bad: dict[int, str] = {}
            for i, line in enumerate(part):
                if len(line) > _parse.MAX_LINE:  # as if it crossed a chunk end
                    bad[i] = f"line longer than {_parse.MAX_LINE} bytes"
            rows = layout.split(part, bad)
            cols = list(zip(*rows, strict=False))
            hexcols = {a: (cols[j], f"column {a}") for a, j in layout.algos.items()}
            sizes = (
                (cols[layout.size], "column size") if layout.size is not None else None
            )
            base = first + start
            where: Callable[[int], str]
            if idx is None:

                def where(i: int, base: int = base) -> str:
                    return f":{base + i}"
            else:

                def where(i: int, pos: np.ndarray = idx[start : start + bs]) -> str:
                    return f":{first + int(pos[i])}"

            yield assemble(self.opts, len(part), hexcols, sizes, None, bad, where)
