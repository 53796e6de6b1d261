"""Scanning file trees against a dataset.

``scan(dataset, paths)`` walks files and directories, reads every regular
file once, computes each digest the dataset has a table for (md5, sha1,
sha256: all updated from the same buffer) on a thread pool, and looks the
digests up in batches.  Nothing is logged: digests and paths only reach the
caller, through the returned :class:`ScanReport` and the callbacks.

Walking
    Iterative ``os.scandir`` (no recursion limit).  Symbolic links are not
    followed unless ``follow_symlinks=True`` (this also holds for the paths
    given: a symlink given as a path is a special file, like ``find -P``);
    when they are followed, a directory reached twice (a link cycle) is
    walked once.  ``one_file_system=True`` does not enter (or read)
    anything whose ``st_dev`` differs from that of the path given it was
    found under.  ``exclude`` patterns (``fnmatch`` globs) are matched
    against the whole path and against the base name; an excluded directory
    is not entered and counts once in ``skipped_excluded``.

Size pre-filter
    A file whose size is outside ``[min_size, max_size]`` is not read.  If
    the dataset records the size of *every* one of its records (e.g. it was
    built from hashdeep output only), a file whose size is the size of no
    record cannot match and is not read either.  If any record has an
    unknown size (plain digest lists, single-table index files), or with
    ``skip_unknown_sizes=False``, every file is read.  Both kinds of skip
    count in ``skipped_size``.  Caveat: when lists disagreed about the size
    of one file, the dataset keeps the largest size, so a file of another
    listed size is skipped; pass ``skip_unknown_sizes=False`` when that
    matters more than speed.

Errors
    Permission denied, files or directories that vanish, unreadable
    directories, files that change while they are read, dangling symbolic
    links (when following them) and the like are reported as
    ``on_error(path, reason)`` and counted in ``errors``; they never stop
    the scan.  Exceptions raised by the callbacks do.

Hits
    One :class:`ScanHit` per (file, record): if several digests of a file
    find the same record, the first in md5, sha1, sha256 order is reported.
    ``on_hit(hit)`` is called (in the calling thread) as hits are found:
    lookups are batched, so a hit is reported at most ``batch_size`` files
    or about half a second after its file was read.
"""

from __future__ import annotations

import collections
import concurrent.futures
import errno
import fnmatch
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hashlookup._dataset import ALGORITHMS, Dataset, open_dataset

_WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32}
_FLUSH_SECONDS = 0.5
_GROUP_FILES = 64          # small files handed to a worker at once
_GROUP_BYTES = 8 << 20     # ... up to about this many bytes
_UNKNOWN_SIZE = 64 << 10   # what a file not stat'ed counts towards a group

__all__ = ["ScanHit", "ScanReport", "scan"]


@dataclass(frozen=True)
class ScanHit:
    """A scanned file whose digest is in the dataset."""

    path: str
    algorithm: str            # algorithm of the digest that found the record
    digest: str               # lowercase hex
    record_id: int
    labels: tuple[str, ...]


@dataclass
class ScanReport:
    """What scan() did."""

    files_seen: int = 0        # regular files found (not excluded)
    files_read: int = 0        # regular files read and hashed completely
    skipped_size: int = 0      # not read: outside min/max, or no record has the size
    skipped_excluded: int = 0  # files and directories matching an exclude pattern
    special: int = 0           # non-regular, non-directory entries (symlinks not followed, FIFOs...)
    errors: int = 0            # reported through on_error
    bytes_read: int = 0
    hits: list[ScanHit] = field(default_factory=list)
    seconds: float = 0.0
    algorithms: tuple[str, ...] = ()

    @property
    def throughput(self) -> float:
        """Bytes read per second of the whole scan, in MB/s (10**6 bytes)."""
        return self.bytes_read / self.seconds / 1e6 if self.seconds > 0 else 0.0


class _Error:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _reason(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "vanished or does not exist"
    if isinstance(e, PermissionError):
        return "permission denied"
    if e.errno == errno.ELOOP:
        return "symbolic link (not followed)"
    return e.strerror or type(e).__name__


def _known_sizes(ds: Dataset) -> np.ndarray | None:
    """Sorted unique sizes of the records if every record has one, else None."""
    st = ds._current()
    records = st.records
    if records is None:          # single-table index: no sizes
        return None
    sizes = records["size"]
    if len(sizes) and int(sizes.min()) < 0:
        return None
    return np.unique(sizes)


def _size_known(known: np.ndarray, size: int) -> bool:
    i = int(np.searchsorted(known, size))
    return i < len(known) and int(known[i]) == size


class _Hasher:
    """Reads one file and computes its digests (runs in worker threads)."""

    def __init__(self, algorithms: tuple[str, ...], chunk_size: int,
                 follow_symlinks: bool) -> None:
        self.algorithms = algorithms
        self.chunk_size = chunk_size
        self.flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        if not follow_symlinks:
            self.flags |= getattr(os, "O_NOFOLLOW", 0)
        self.local = threading.local()

    def many(self, files: list[tuple[str, os.stat_result | None]]
             ) -> list[tuple[int, list[bytes]] | _Error]:
        return [self(path, st) for path, st in files]

    def __call__(self, path: str, expect: os.stat_result | None
                 ) -> tuple[int, list[bytes]] | _Error:
        try:
            fd = os.open(path, self.flags)
        except OSError as e:
            return _Error(_reason(e))
        try:
            return self._read(fd, expect)
        except OSError as e:
            return _Error(_reason(e))
        finally:
            os.close(fd)

    def _read(self, fd: int, expect: os.stat_result | None
              ) -> tuple[int, list[bytes]] | _Error:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return _Error("no longer a regular file")
        if expect is not None and (before.st_dev, before.st_ino) != (expect.st_dev,
                                                                     expect.st_ino):
            return _Error("replaced while scanned")
        size = before.st_size
        hashers = [hashlib.new(a) for a in self.algorithms]
        if size <= self.chunk_size:
            # Small file: read whole (+1 byte to see growth).
            data = os.read(fd, size + 1)
            while 0 < len(data) < size:  # a short read (network file systems)
                more = os.read(fd, size + 1 - len(data))
                if not more:
                    break
                data += more
            total = len(data)
            if total == size:
                for h in hashers:
                    h.update(data)
            else:
                return _Error("file changed size while read")
        else:
            buf = getattr(self.local, "buf", None)
            if buf is None or len(buf) != self.chunk_size:
                buf = self.local.buf = bytearray(self.chunk_size)
            view = memoryview(buf)
            total = 0
            with open(fd, "rb", buffering=0, closefd=False) as f:
                while True:
                    n = f.readinto(view)
                    if not n:
                        break
                    total += n
                    if total > size:
                        break
                    chunk = view[:n]
                    for h in hashers:
                        h.update(chunk)
            view.release()
            if total != size:
                return _Error("file changed size while read")
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return _Error("file changed while read")
        return total, [h.digest() for h in hashers]


class _Scanner:
    def __init__(self, ds: Dataset, *, follow_symlinks: bool, one_file_system: bool,
                 exclude: tuple[str, ...], min_size: int | None, max_size: int | None,
                 jobs: int, skip_unknown_sizes: bool, chunk_size: int,
                 batch_size: int, on_hit: Callable[[ScanHit], Any] | None,
                 on_error: Callable[[str, str], Any] | None) -> None:
        self.ds = ds
        self.follow = follow_symlinks
        self.one_fs = one_file_system
        self.exclude = exclude
        self.min_size = min_size
        self.max_size = max_size
        self.jobs = jobs
        self.batch_size = batch_size
        self.on_hit = on_hit
        self.on_error = on_error
        self.algorithms = tuple(a for a in ALGORITHMS if a in ds.algorithms)
        self.known = _known_sizes(ds) if skip_unknown_sizes else None
        self.hasher = _Hasher(self.algorithms, chunk_size, follow_symlinks)
        self.report = ScanReport(algorithms=self.algorithms)
        self.batch_paths: list[str] = []
        self.batch_digests: dict[str, bytearray] = {a: bytearray() for a in self.algorithms}
        self.last_flush = time.monotonic()

    # -- walking -------------------------------------------------------------

    def error(self, path: str, reason: str) -> None:
        self.report.errors += 1
        if self.on_error is not None:
            self.on_error(path, reason)

    def excluded(self, path: str) -> bool:
        if not self.exclude:
            return False
        base = os.path.basename(path.rstrip(os.sep)) or path
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(base, p)
                   for p in self.exclude)

    def files(self, roots: Iterable[str | os.PathLike[str]]
              ) -> Iterator[tuple[str, os.stat_result | None]]:
        """Regular files to read, with their stat; counts everything else."""
        r = self.report
        for root in roots:
            root = os.fspath(root)
            if self.excluded(root):
                r.skipped_excluded += 1
                continue
            try:
                st = os.stat(root, follow_symlinks=self.follow)
            except FileNotFoundError:
                if self.follow and os.path.islink(root):
                    self.error(root, "dangling symbolic link")
                else:
                    self.error(root, "vanished or does not exist")
                continue
            except OSError as e:
                self.error(root, _reason(e))
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self.walk(root, st)
            else:
                yield from self.leaf(root, st)

    def leaf(self, path: str, st: os.stat_result) -> Iterator[tuple[str, os.stat_result]]:
        r = self.report
        if not stat.S_ISREG(st.st_mode):
            r.special += 1
            return
        r.files_seen += 1
        size = st.st_size
        if ((self.min_size is not None and size < self.min_size)
                or (self.max_size is not None and size > self.max_size)
                or (self.known is not None and not _size_known(self.known, size))):
            r.skipped_size += 1
            return
        yield path, st

    def walk(self, top: str, top_st: os.stat_result
             ) -> Iterator[tuple[str, os.stat_result | None]]:
        r = self.report
        # Without size filters, st_dev checks or links to follow, the entry
        # types from readdir suffice: no stat per file in this (the one
        # walking) thread; the worker's fstat checks the file is regular.
        need_stat = (self.one_fs or self.follow or self.known is not None
                     or self.min_size is not None or self.max_size is not None)
        dev = top_st.st_dev
        seen: set[tuple[int, int]] = {(top_st.st_dev, top_st.st_ino)}
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except OSError as e:
                self.error(d, _reason(e))
                continue
            subdirs: list[str] = []
            with it:
                while True:
                    try:
                        entry = next(it)
                    except StopIteration:
                        break
                    except OSError as e:  # error while reading the directory
                        self.error(d, _reason(e))
                        break
                    path = entry.path
                    if self.excluded(path):
                        r.skipped_excluded += 1
                        continue
                    if not need_stat:
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                subdirs.append(path)
                            elif entry.is_file(follow_symlinks=False):
                                r.files_seen += 1
                                yield path, None
                            else:
                                r.special += 1
                        except OSError as e:  # DT_UNKNOWN and lstat failed
                            self.error(path, _reason(e))
                        continue
                    try:
                        st = entry.stat(follow_symlinks=self.follow)
                    except FileNotFoundError:
                        if self.follow and entry.is_symlink():
                            self.error(path, "dangling symbolic link")
                        else:
                            self.error(path, "vanished or does not exist")
                        continue
                    except OSError as e:
                        self.error(path, _reason(e))
                        continue
                    if self.one_fs and st.st_dev != dev:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue  # a symlink cycle, or a directory linked twice
                        seen.add(key)
                        subdirs.append(path)
                    else:
                        yield from self.leaf(path, st)
            # Sorted, reversed onto the stack: directories in name order.
            stack.extend(sorted(subdirs, reverse=True))

    # -- hashing and lookups -------------------------------------------------

    def add(self, path: str, result: tuple[int, list[bytes]] | _Error) -> None:
        if isinstance(result, _Error):
            self.error(path, result.reason)
            return
        n, digests = result
        self.report.files_read += 1
        self.report.bytes_read += n
        self.batch_paths.append(path)
        for a, d in zip(self.algorithms, digests):
            self.batch_digests[a] += d
        if (len(self.batch_paths) >= self.batch_size
                or time.monotonic() - self.last_flush > _FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        paths = self.batch_paths
        if not paths:
            return
        n = len(paths)
        found: dict[int, list[tuple[str, bytes]]] = {}
        for a in self.algorithms:
            w = _WIDTHS[a]
            keys = np.frombuffer(bytes(self.batch_digests[a]), dtype=np.uint8).reshape(n, w)
            for i in np.flatnonzero(self.ds.table(a).contains_many(keys)).tolist():
                found.setdefault(i, []).append((a, keys[i].tobytes()))
        self.batch_paths = []
        self.batch_digests = {a: bytearray() for a in self.algorithms}
        for i in sorted(found):
            records: set[int] = set()
            for a, digest in found[i]:
                m = self.ds.lookup(digest)
                if m is None or m.record_id in records:
                    continue  # dropped by a label filter, or same record again
                records.add(m.record_id)
                hit = ScanHit(paths[i], a, digest.hex(), m.record_id, m.labels)
                self.report.hits.append(hit)
                if self.on_hit is not None:
                    self.on_hit(hit)

    def run(self, roots: Iterable[str | os.PathLike[str]]) -> ScanReport:
        t0 = time.perf_counter()
        # Small files go to the workers in groups (fewer futures, less
        # main-thread overhead); a group is also closed at GROUP_BYTES.
        inflight: collections.deque[tuple[list[str], concurrent.futures.Future[Any]]] = \
            collections.deque()
        limit = self.jobs * 4
        group_bytes = max(self.hasher.chunk_size, _GROUP_BYTES)
        pool = concurrent.futures.ThreadPoolExecutor(self.jobs,
                                                     thread_name_prefix="hashlookup-scan")

        def collect(block: bool) -> None:
            while inflight and (block or len(inflight) >= limit or inflight[0][1].done()):
                paths, fut = inflight.popleft()
                for p, res in zip(paths, fut.result()):
                    self.add(p, res)
                block = False

        try:
            group: list[tuple[str, os.stat_result | None]] = []
            size = 0
            for path, st in self.files(roots):
                group.append((path, st))
                size += st.st_size if st is not None else _UNKNOWN_SIZE
                if len(group) >= _GROUP_FILES or size >= group_bytes:
                    inflight.append(([p for p, _ in group],
                                     pool.submit(self.hasher.many, group)))
                    group, size = [], 0
                    collect(False)
            if group:
                inflight.append(([p for p, _ in group], pool.submit(self.hasher.many, group)))
            while inflight:
                collect(True)
            self.flush()
        finally:
            for _, fut in inflight:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            self.report.seconds = time.perf_counter() - t0
        return self.report


def scan(dataset: Dataset | str | os.PathLike[str],
         paths: Iterable[str | os.PathLike[str]], *,
         follow_symlinks: bool = False, one_file_system: bool = False,
         exclude: Iterable[str] = (), min_size: int | None = None,
         max_size: int | None = None, jobs: int | None = None,
         skip_unknown_sizes: bool = True, chunk_size: int = 1 << 20,
         batch_size: int = 1024,
         on_hit: Callable[[ScanHit], Any] | None = None,
         on_error: Callable[[str, str], Any] | None = None) -> ScanReport:
    """Hash every regular file under `paths` and look it up in `dataset`.

    `dataset` is an open :class:`Dataset` (left open) or a path (opened and
    closed here).  `paths` are files and directories (a single str or path
    is taken as one path).  See the module docstring for the walking, size
    pre-filter, error and hit rules.

    Parameters
    ----------
    jobs
        Threads reading and hashing files (default ``os.cpu_count()``).
    chunk_size
        Files smaller than this are read with one call; larger ones are
        streamed in chunks of this many bytes.
    batch_size
        Files whose digests are looked up together.
    on_hit, on_error
        ``on_hit(ScanHit)`` and ``on_error(path, reason)``, called in the
        calling thread as hits and errors are found.
    """
    if isinstance(exclude, str):
        exclude = (exclude,)
    if isinstance(paths, (str, os.PathLike)):
        paths = (paths,)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for name, v in (("min_size", min_size), ("max_size", max_size)):
        if v is not None and v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    own = not isinstance(dataset, Dataset)
    ds = open_dataset(dataset) if own else dataset
    assert isinstance(ds, Dataset)
    try:
        scanner = _Scanner(ds, follow_symlinks=follow_symlinks,
                           one_file_system=one_file_system, exclude=tuple(exclude),
                           min_size=min_size, max_size=max_size, jobs=jobs,
                           skip_unknown_sizes=skip_unknown_sizes, chunk_size=chunk_size,
                           batch_size=batch_size, on_hit=on_hit, on_error=on_error)
        return scanner.run(paths)
    finally:
        if own:
            ds.close()
