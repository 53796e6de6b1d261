"""The shared loop of the one-record-per-line formats read in Python ("bsd",
"md5deep-size"): whole lines of bounded length in chunks, line numbers,
a UTF-8 byte-order mark skipped, and batches assembled column-wise.

A format gives a function that turns one line (without its end) into

- None: nothing (a blank line or a '#' comment);
- a str: why the line is no record (reported with its line number);
- (algorithm, digest text, size text or None): one record.

Digests and sizes are collected per batch and decoded by assemble() a
column at a time, so the per-line cost is the format's own split only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from hashlookup.importers import _fast
from hashlookup.importers import digests as _parse
from hashlookup.importers._common import assemble
from hashlookup.importers._records import ALGORITHMS, RecordBatch, _Options

CHUNK_SIZE = 8 << 20

#: what a format's line function returns (see the module docstring)
Parsed = tuple[str, bytes, bytes | None] | str | None
LineParser = Callable[[bytes], Parsed]
FastParser = Callable[[_fast.Text, np.ndarray, np.ndarray], RecordBatch | None]
_TOO_LONG = f"line longer than {_parse.MAX_LINE} bytes"


def read_lines(
    opts: _Options, parse: LineParser, sized: bool, fast: FastParser | None = None
) -> Iterator[RecordBatch]:
    """Records of the file at opts.path, one per line that parse() accepts.

    sized: the format has a size field (a size column is assembled).
    fast(text, starts, ends): the records of up to batch_size lines (none
    blank) at once, or None when anything is irregular: those lines are
    then read by parse(), which names the bad ones.  Both give the same
    records (tested).
    """
    collector = _Collector(opts, sized)
    line = 1  # number of the next line
    with opts.open() as f:  # a pipe is read once; the chunks skip a BOM
        for data in _parse.checked_line_chunks(
            f,
            opts.name,
            CHUNK_SIZE,
            opts.skip_invalid,
            lambda: line,  # noqa: B023 (read when raised)
        ):
            if not isinstance(data, bytes):  # an over-long line skipped
                opts.report._skip(
                    1, [f"{opts.name}:{line}: line longer than {_parse.MAX_LINE} bytes"]
                )
                line += 1
                continue
            if fast is not None:
                t = _fast.Text(data)
                if (t.ends > t.starts).all():  # no blank line: try it whole
                    yield from _fast_chunk(opts, collector, t, fast, parse, line)
                    line += len(t.starts)
                    continue
            lines = data.split(b"\n")
            if data.endswith(b"\n"):
                lines.pop()
            for text in lines:
                if text.endswith(b"\r"):
                    text = text[:-1]
                # As if it crossed a chunk end: the same rule wherever it is.
                got = parse(text) if len(text) <= _parse.MAX_LINE else _TOO_LONG
                if got is not None:
                    collector.add(line, got)
                    if collector.full():
                        yield collector.batch()
                line += 1
    if collector.lines:
        yield collector.batch()


def _fast_chunk(
    opts: _Options,
    collector: _Collector,
    t: _fast.Text,
    fast: FastParser,
    parse: LineParser,
    first: int,
) -> Iterator[RecordBatch]:
    """A chunk without blank lines, batch_size lines at a time: fast(), or
    parse() line by line where fast() declines."""
    bs = opts.batch_size
    n = len(t.starts)
    for b in range(0, n, bs):
        s, e = t.starts[b : b + bs], t.ends[b : b + bs]
        batch = None
        if int((e - s).max()) <= _parse.MAX_LINE:
            batch = fast(t, s, e)
        if batch is not None:
            if collector.lines:  # keep file order
                yield collector.batch()
            yield batch
            continue
        for i, (x, y) in enumerate(zip(s.tolist(), e.tolist(), strict=True)):
            text = t.data[x - _fast.PAD : y - _fast.PAD]
            got = parse(text) if len(text) <= _parse.MAX_LINE else _TOO_LONG
            if got is not None:
                collector.add(first + b + i, got)
                if collector.full():
                    yield collector.batch()


class _Collector:
    """Raw fields of up to batch_size records, and their line numbers."""

    def __init__(self, opts: _Options, sized: bool):
        self.opts = opts
        self.sized = sized
        self._reset()

    def _reset(self) -> None:
        self.lines: list[int] = []
        self.algos: list[str | None] = []
        self.hexes: list[bytes | None] = []
        self.sizes: list[bytes | None] = []
        self.bad: dict[int, str] = {}

    def full(self) -> bool:
        return len(self.lines) >= self.opts.batch_size

    def add(self, line: int, got: tuple[str, bytes, bytes | None] | str) -> None:
        if isinstance(got, str):
            self.bad[len(self.lines)] = got
            self.algos.append(None)
            self.hexes.append(None)
            self.sizes.append(None)
        else:
            self.algos.append(got[0])
            self.hexes.append(got[1])
            self.sizes.append(got[2])
        self.lines.append(line)

    def batch(self) -> RecordBatch:
        n = len(self.lines)
        present = set(self.algos)
        present.discard(None)
        hexcols = {}
        for algo in ALGORITHMS:
            if algo not in present:
                continue
            if len(present) == 1 and not self.bad:
                values: list[bytes | None] = self.hexes  # one algorithm: no gaps
            else:
                values = [
                    h if a == algo else None
                    for a, h in zip(self.algos, self.hexes, strict=True)
                ]
            hexcols[algo] = (values, f"{algo} digest")
        sizes = (self.sizes, "size") if self.sized else None
        lines = self.lines
        bad = self.bad
        self._reset()
        return assemble(
            self.opts, n, hexcols, sizes, None, bad, lambda i: f":{lines[i]}"
        )
