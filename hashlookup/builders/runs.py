"""Sorting more rows than fit in memory: sorted runs spilled to files, merged
back from disk.

Rows are fixed-width byte strings (a digest, or a digest followed by a
4-byte big-endian row number).  A RunSorter collects them in a buffer of a
bounded size; a full buffer is sorted by the C radix sort (hl_sort.c) and
written as one run file.  Its chunks() then streams every row in memcmp
order: from the buffer alone when nothing was spilled, else by the C k-way
merge (hl_merge.c) over one read buffer per run.  The run files live in a
SpillDir, a private directory that is removed whatever happens (an
exception, Ctrl-C), beside the output unless the caller names another.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, BinaryIO, TextIO, TypeVar

import numpy as np

from hashlookup import _core, _threads

# Target peak RSS of a build unless the caller gives another: the builders
# size their buffers as fractions of it (docs/API.md, "Builds larger than memory").
DEFAULT_MEMORY = 2_000_000_000
MIN_MEMORY = 1 << 20
# A run's rows are read back in blocks of this many bytes at most (and at
# least 64 KiB), so that the merge's read buffers stay a small part of the
# budget whatever the number of runs.
_READ_BLOCK = 8 << 20
_MAX_RUNS = 1000  # the C merge takes at most 1024 inputs
# A full buffer of at least this many rows is sorted as two runs in parallel.
_SPLIT_ROWS = 1 << 18


def check_memory(memory: int) -> int:
    """The memory budget, checked (at least 1 MiB)."""
    if isinstance(memory, bool) or not isinstance(memory, int):
        raise TypeError(f"memory must be an int (bytes), got {type(memory).__name__}")
    if memory < MIN_MEMORY:
        raise ValueError(f"memory must be at least {MIN_MEMORY} bytes, got {memory}")
    return memory


class SpillDir:
    """A private temporary directory for the run files of one build.

    Created lazily (a build that fits in memory never touches the disk) in
    `tmp_dir`, or beside `output`; removed with everything in it on exit,
    also when the build fails or is interrupted.
    """

    def __init__(self, output: str, tmp_dir: str | os.PathLike[str] | None) -> None:
        self.parent = (
            os.fspath(tmp_dir)
            if tmp_dir is not None
            else os.path.dirname(os.path.abspath(output))
        )
        self.path: str | None = None
        self._count = 0
        self._files: list[BinaryIO] = []

    def new_file(self, stem: str) -> str:
        """A path for a new file in the directory (created on first use)."""
        if self.path is None:
            if not os.path.isdir(self.parent):
                if os.path.exists(self.parent):
                    raise NotADirectoryError(
                        20, "temporary directory is not a directory", self.parent
                    )
                raise FileNotFoundError(
                    2, "temporary directory does not exist", self.parent
                )
            self.path = tempfile.mkdtemp(prefix=".hashlookup-build.", dir=self.parent)
        self._count += 1
        return os.path.join(self.path, f"{stem}.{self._count}")

    def open_file(self, stem: str) -> BinaryIO:
        """A new scratch file open for writing and reading back, closed by
        cleanup() at the latest."""
        f = open(self.new_file(stem), "w+b")  # noqa: SIM115 - closed in cleanup
        self._files.append(f)
        return f

    def cleanup(self) -> None:
        """Close the scratch files and remove the directory."""
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        self._files = []
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None

    def __enter__(self) -> SpillDir:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class Progress:
    """A one-line progress display on a terminal, redrawn at most twice a
    second; silent when disabled (not a terminal, or --quiet)."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self._last = 0.0
        self._t0 = time.monotonic()
        self._shown = False

    def update(
        self, stage: str, done: int, total: int = 0, force: bool = False
    ) -> None:
        """Show `stage` with `done` of `total` rows (total 0: a count only)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        part = f"{done / total:6.1%}" if total else f"{done / 1e6:,.1f} M"
        line = f"\rbuild: {stage} {part}  {now - self._t0:6.1f} s"
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(line.ljust(60))
            self.stream.flush()
            self._shown = True

    def close(self) -> None:
        """End the line (if anything was shown)."""
        if self._shown:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\r" + " " * 60 + "\r")
                self.stream.flush()
            self._shown = False


_T = TypeVar("_T")
_DONE = object()


def prefetch(items: Iterable[_T], depth: int = 2) -> Iterator[_T]:
    """The items of `items`, produced by a second thread up to `depth` items
    ahead of the consumer.

    A build reads its input (the parsers release the GIL) while it sorts
    and spills what it read (so does the radix sort), and merges runs while
    it writes the merged keys: on two cores each pair overlaps.  The
    iterable is iterated and closed in the thread; its exceptions are
    raised here.  Leaving early (an exception, Ctrl-C, close()) stops the
    thread and waits for it.
    """
    import queue
    import threading

    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for x in it:
                if not put((0, x)):
                    return
            put((0, _DONE))
        except BaseException as e:  # (re-raised by the consumer)
            put((1, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    t = threading.Thread(target=produce, name="hashlookup-prefetch", daemon=True)
    t.start()
    try:
        while True:
            failed, x = q.get()
            if failed:
                raise x
            if x is _DONE:
                return
            yield x
    finally:
        stop.set()
        t.join()


class RunSorter:
    """Rows of `width` bytes sorted with bounded memory.

    add() copies rows into a buffer of `buffer_bytes`; when it is full the
    rows are sorted (duplicates dropped: whole rows) and written as a run
    file in `spill`.  The sort needs a scratch buffer of the same size, so
    the peak is about twice `buffer_bytes`.
    """

    def __init__(
        self,
        width: int,
        buffer_bytes: int,
        spill: SpillDir,
        scratch: SortScratch | None = None,
    ) -> None:
        self.width = width
        self.cap = max(1024, buffer_bytes // width)
        self.spill = spill
        self.scratch = scratch
        self.buf: np.ndarray | None = None
        self.fill = 0
        self.runs: list[tuple[str, int]] = []  # (path, rows)
        self.rows_in = 0

    @property
    def spilled(self) -> bool:
        return bool(self.runs)

    def add(self, rows: np.ndarray) -> None:
        """Append rows (an (m, width) uint8 array)."""
        m = len(rows)
        self.rows_in += m
        start = 0
        while start < m:
            if self.buf is None:
                # Pages are only touched as rows arrive: a small build costs
                # what it holds, not the whole buffer.
                self.buf = np.empty((self.cap, self.width), np.uint8)
            take = min(m - start, len(self.buf) - self.fill)
            self.buf[self.fill : self.fill + take] = rows[start : start + take]
            self.fill += take
            start += take
            if self.fill == self.cap:
                self.flush()

    def add_digests(self, digests: np.ndarray, present: np.ndarray, base: int) -> None:
        """Append a row of each present digest (an (m, width - 4) uint8
        array) followed by its row number plus base (4 bytes, big-endian),
        packed in C straight into the buffer."""
        m = len(digests)
        if m == 0:
            return
        if base + m > 1 << 32:
            raise ValueError(f"more than {1 << 32} input rows")
        dig = np.ascontiguousarray(digests, np.uint8)
        has = np.ascontiguousarray(present, bool).view(np.uint8)
        todo = int(np.count_nonzero(has))
        self.rows_in += todo
        start = 0
        while todo:
            if self.buf is None:
                self.buf = np.empty((self.cap, self.width), np.uint8)
            room = len(self.buf) - self.fill
            stop = m
            if todo > room:  # the input row after the room-th present one
                stop = start + int(np.flatnonzero(has[start:])[room - 1]) + 1
            k = _core.pack_rows(
                dig[start:stop], has[start:stop], base + start, self.buf, self.fill
            )
            self.fill += k
            todo -= k
            start = stop
            if self.fill == self.cap:
                self.flush()

    def sorted_in_memory(self) -> np.ndarray:
        """The buffered rows sorted in place, duplicates dropped (a view of
        the buffer: for a build that never spilled)."""
        if self.buf is None or self.fill == 0:
            return np.empty((0, self.width), np.uint8)
        flat = self.buf.reshape(-1)[: self.fill * self.width]
        u = _core.sort_unique(flat, self.width) if self.fill > 1 else self.fill
        return self.buf[:u]

    def flush(self) -> None:
        """Sort the buffered rows and write them as a run file."""
        if len(self.runs) >= _MAX_RUNS:
            raise MemoryError(
                f"more than {_MAX_RUNS} sorted runs: give the build more memory"
            )
        buf = self.buf
        if (
            buf is not None
            and self.fill >= _SPLIT_ROWS
            and len(self.runs) + 2 <= _MAX_RUNS
        ):
            # Two halves sorted at once, on two cores (the sort releases the
            # GIL), as two runs: the two scratch buffers together are the
            # size of one for the whole buffer.
            half = self.fill // 2
            parts = [buf[:half], buf[half : self.fill]]
            tmp: list[np.ndarray | None] = [None, None]
            if self.scratch is not None:
                room = self.scratch.get(self.fill * self.width)
                tmp = [room[: half * self.width], room[half * self.width :]]
            fut = _threads.thread_pool().submit(_sort_rows, parts[1], tmp[1])
            parts[0] = _sort_rows(parts[0], tmp[0])
            parts[1] = fut.result()
        elif self.scratch is not None and buf is not None and self.fill > 1:
            room = self.scratch.get(self.fill * self.width)
            parts = [_sort_rows(buf[: self.fill], room)]
        else:
            parts = [self.sorted_in_memory()]
        for rows in parts:
            path = self.spill.new_file("run")
            with open(path, "wb") as f:
                f.write(memoryview(rows.reshape(-1)))
            self.runs.append((path, len(rows)))
        self.fill = 0

    def chunks(
        self, chunk_rows: int, unique: bool = True, ahead: bool = False
    ) -> Iterator[np.ndarray]:
        """Every row added, in memcmp order (without duplicate rows when
        `unique`), as (m, width) arrays of at most `chunk_rows` rows.  The
        arrays are reused: consume each before asking for the next.  With
        `ahead`, runs on disk are merged in a second thread a chunk ahead of
        the consumer."""
        chunk_rows = max(1, chunk_rows)
        if not self.runs:
            rows = self.sorted_in_memory()
            for i in range(0, len(rows), chunk_rows):
                yield rows[i : i + chunk_rows]
            self.buf = None
            return
        if self.fill:
            self.flush()
        self.buf = None  # the merge's buffers replace the sort buffer
        if ahead:
            # One chunk queued, one being merged, one with the consumer.
            merged = _merge_runs(self.runs, self.width, chunk_rows, unique, 3)
            yield from prefetch(merged, depth=1)
        else:
            yield from _merge_runs(self.runs, self.width, chunk_rows, unique)

    def discard(self) -> None:
        """Drop the buffer and the run files (they are in the SpillDir too)."""
        self.buf = None
        for path, _ in self.runs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.runs = []


def _sort_rows(rows: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """Rows (a C-contiguous (m, width) array) sorted in place, duplicates
    dropped: the leading rows of the same array.  scratch: room for the
    sort (m * width bytes at least), else one is allocated."""
    m, width = rows.shape
    if m < 2:
        return rows
    if scratch is None:
        u = _core.sort_unique(rows.reshape(-1), width)
    else:
        u = _core.sort_unique_with(rows.reshape(-1), width, scratch)
    return rows[:u]


class SortScratch:
    """One scratch buffer for the radix sorts of several RunSorters that
    flush one after another (a dataset build's three tables): allocated
    once at the largest size asked, instead of a fresh zeroed buffer per
    sort.  The peak memory is the same (a sort needs it anyway); release()
    frees it once no sort is due."""

    def __init__(self) -> None:
        self.buf: np.ndarray | None = None

    def get(self, nbytes: int) -> np.ndarray:
        """At least nbytes of scratch (contents undefined)."""
        if self.buf is None or len(self.buf) < nbytes:
            self.buf = None  # the old one is freed before the new one is made
            self.buf = np.empty(nbytes, np.uint8)
        return self.buf

    def release(self) -> None:
        """Free the buffer (a later get() makes a new one)."""
        self.buf = None


def _merge_runs(
    runs: list[tuple[str, int]],
    width: int,
    chunk_rows: int,
    unique: bool,
    out_buffers: int = 1,
) -> Iterator[np.ndarray]:
    k = len(runs)
    per_run = max(1 << 16, min(_READ_BLOCK, (64 << 20) // k))
    block_rows = max(1, per_run // width)
    files = [open(path, "rb") for path, _ in runs]  # noqa: SIM115 - closed below
    try:
        left = np.array([n for _, n in runs], dtype=np.uint64)
        bufs = [np.empty(block_rows * width, np.uint8) for _ in range(k)]
        counts = np.zeros(k, np.uint64)
        pos = np.zeros(k, np.uint64)
        more = np.ones(k, np.uint8)

        def refill(i: int) -> None:
            take = int(min(left[i], block_rows))
            view = memoryview(bufs[i])[: take * width]
            got = files[i].readinto(view)
            if got != take * width:
                raise OSError(f"{runs[i][0]}: run file is shorter than written")
            left[i] -= take
            counts[i] = take
            pos[i] = 0
            more[i] = 1 if left[i] else 0

        for i in range(k):
            refill(i)
        outs = [np.empty(chunk_rows * width, np.uint8) for _ in range(out_buffers)]
        turn = 0
        last = np.zeros(width, np.uint8)
        have_last = False
        while True:
            out = outs[turn]
            n, have_last = _core.merge_rows(
                bufs, counts, pos, more, width, out, unique, last, have_last
            )
            if n:
                turn = (turn + 1) % out_buffers
                yield out[: n * width].reshape(n, width)
            dry = np.flatnonzero((pos == counts) & (more != 0))
            for j in dry:
                refill(int(j))
            if n == 0 and len(dry) == 0:
                return
    finally:
        for f in files:
            f.close()
