"""Reading and hashing the files of a scan (runs in worker threads): the
cheapest set of algorithms that covers every record, and a reader that
computes them for one file or, in C with the GIL released, for a batch."""

from __future__ import annotations

import _thread
import array
import errno
import itertools
import os
import stat
from collections.abc import Callable

from hashlookup import _core, algorithms
from hashlookup.store import format as _format
from hashlookup.store.dataset import ALGORITHMS, Dataset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    import numpy as np

    from hashlookup.store.generation import Generation

# hashlib's constructors by name, filled by _load_hashlib: only the Python
# reading path hashes with them (importing hashlib loads OpenSSL, ~11 M
# instructions, which a scan hashing in C, or of an empty tree, never needs).
_NEW: dict[str, Callable[..., Any]] = {}
# The algorithm bits and result-tuple slots of _core.hash_files.
_BITS = {name: 1 << i for i, name in enumerate(algorithms.NAMES)}
_SLOT = {name: i + 1 for i, name in enumerate(algorithms.NAMES)}
# Reasons for the negative outcomes of _core.hash_files (see hl_filehash.h).
_NATIVE_REASONS = {
    -1: "no longer a regular file",
    -2: "replaced while scanned",
    -3: "file changed size while read",
    -4: "file changed while read",
    -5: "digest computation failed",
    -6: "scan stopped",
}
# Batches of files hashed in C with the GIL released, when libcrypto loads
# (tests set this to None to exercise the Python path).  Whether it loads
# is found out when the first files are hashed (_native_checked): loading
# libcrypto and OpenSSL's configuration costs 9 M instructions, which a
# scan of an empty tree need not pay.  libcrypto is a system library, read
# by a process that dropped privileges as any other (docs/SCAN.md).
_native: Callable[..., list[Any]] | None = _core.hash_files
_native_checked = False


def _load_hashlib() -> dict[str, Callable[..., Any]]:
    if not _NEW:
        import hashlib

        _NEW.update(md5=hashlib.md5, sha1=hashlib.sha1, sha256=hashlib.sha256)
    return _NEW


def _check_native() -> Callable[..., list[Any]] | None:
    """_native, once it is known whether libcrypto loads (thread-safe: the C
    side loads it once; racing callers set the same values)."""
    global _native, _native_checked
    if not _native_checked:
        if _native is _core.hash_files and not _core.filehash_available():
            _native = None
            _load_hashlib()  # the Python path hashes with hashlib
        _native_checked = True
    return _native


class ReadError:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def opened_problem(
    before: os.stat_result, expect: os.stat_result | None
) -> ReadError | None:
    """Why an opened file (its fstat `before`) is not the one the walk saw
    (`expect`, None: not checked), or None when it is."""
    if not stat.S_ISREG(before.st_mode):
        return ReadError("no longer a regular file")
    if expect is not None and (before.st_dev, before.st_ino) != (
        expect.st_dev,
        expect.st_ino,
    ):
        return ReadError("replaced while scanned")
    return None


def error_reason(e: OSError, nofollow: bool = False) -> str:
    if isinstance(e, FileNotFoundError):
        return "vanished or does not exist"
    if isinstance(e, PermissionError):
        return "permission denied"
    if e.errno == errno.ELOOP:
        # open(O_NOFOLLOW) of a file replaced by a link after the walk, or a
        # link pointing (through others) at itself when following links.
        return "symbolic link (not followed)" if nofollow else "symbolic link loop"
    return e.strerror or type(e).__name__


def _cpu_has_sha_ni() -> bool:
    """x86 SHA extensions (sha1/sha256 in hardware), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", "rb") as f:  # bytes: no codec lookup
            for line in f:
                if line.startswith(b"flags"):
                    return b"sha_ni" in line.split()
    except OSError:
        pass
    return False


def _hash_costs() -> dict[str, float]:
    """Relative CPU cost per byte of each algorithm.  A fixed table chosen by
    a CPU feature rather than a timing, so that the algorithms a scan
    computes (and so its hits, in the one corner SCAN.md describes) never
    depend on how busy the machine was when the scan started.  Figures:
    OpenSSL on x86-64 with and without SHA-NI (docs/SCAN.md)."""
    if _cpu_has_sha_ni():
        return {"sha1": 1.0, "sha256": 1.3, "md5": 2.5}
    return {"md5": 1.0, "sha1": 1.4, "sha256": 2.8}


def cheapest_cover(ds: Dataset) -> tuple[str, ...]:
    """The cheapest set of the dataset's algorithms such that every record
    has a digest of one of them (for a plain index: its one table)."""
    st = ds.current()
    algs = ds.algorithms
    if len(algs) == 1 or st.records is None:  # records: a numpy import
        return algs
    import numpy as np  # here: a single-table index never needs it (start-up)

    present = np.zeros(len(st.records), dtype=np.uint8)
    for bit, a in enumerate(algs):
        present |= (st.records[f"{a}_row"] != _format.NO_ROW).astype(np.uint8) << bit
    kinds = [k for k, n in enumerate(np.bincount(present, minlength=8).tolist()) if n]
    costs = _hash_costs()
    best: tuple[float, tuple[str, ...]] = (float("inf"), algs)
    for n in range(1, len(algs) + 1):
        for subset in itertools.combinations(range(len(algs)), n):
            mask = sum(1 << i for i in subset)
            if all(k & mask for k in kinds):
                cost = sum(costs[algs[i]] for i in subset)
                best = min(best, (cost, tuple(algs[i] for i in subset)))
    return best[1]


def known_sizes(st: Generation) -> np.ndarray | None:
    """Sorted unique sizes of the records of a generation if every record
    has one, else None."""
    records = st.records
    if records is None:  # single-table index: no sizes
        return None
    sizes = records["size"]
    if len(sizes) and int(sizes.min()) < 0:
        return None
    import numpy as np  # here: a scan without records never imports it

    # sort + drop repeats: np.unique's hash path is slower on this input
    s = np.sort(sizes)
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if len(s) else s


_SIZE_SET_LIMIT = 2_000_000  # distinct sizes kept in a Python set (~100 MB at most)


def size_test(known: np.ndarray) -> Callable[[int], bool]:
    """size -> is it the size of a record: a set lookup (0.05 us) when the
    sizes are few enough, else a binary search (a numpy call, ~2 us)."""
    if len(known) <= _SIZE_SET_LIMIT:
        return frozenset(known.tolist()).__contains__

    import numpy as np

    def search(size: int) -> bool:
        i = int(np.searchsorted(known, size))
        return i < len(known) and int(known[i]) == size

    return search


def _identity(st: os.stat_result | None) -> tuple[int, int] | None:
    """(device, inode) the walk saw, which the reader must find again."""
    return None if st is None else (st.st_dev, st.st_ino)


class Hasher:
    """Reads one file and computes its digests (runs in worker threads).

    Returns an ReadError, the size (the file is no candidate: none of its cover
    digests is in the dataset), or (size, {algorithm: digest}) with every
    algorithm of the dataset for a candidate."""

    def __init__(
        self,
        ds: Dataset,
        cover: tuple[str, ...],
        chunk_size: int,
        follow_symlinks: bool,
    ) -> None:
        self.cover = cover
        self.rest = tuple(a for a in ds.algorithms if a not in cover)
        self.tables = [(a, ds.table(a)) for a in cover]
        # (hashlib's constructor of the one algorithm, its table), made by
        # the first file read in Python (see _NEW).
        self.fast: tuple[Callable[..., Any], Any] | None = None
        self.bits = sum(_BITS[a] for a in cover)
        self.rest_bits = sum(_BITS[a] for a in self.rest)
        by_alg = dict(self.tables)
        self.probe = tuple(by_alg.get(a) for a in ALGORITHMS)
        self.chunk_size = chunk_size
        # md5 only: the C reader hashes eight files at a time, one per AVX2
        # lane (csrc/hl_md5x8.h), each lane with a part of the buffer: files
        # below chunk_size are read whole into their part, larger ones
        # streamed through it in chunk_size pieces.
        self.native_buf = chunk_size * (8 if cover == ("md5",) else 1)
        self.flags = (
            os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        )
        self.nofollow = not follow_symlinks
        if not follow_symlinks:
            self.flags |= getattr(os, "O_NOFOLLOW", 0)
        self.local = _thread._local()  # threading.local, without threading
        # Set when the scan is stopped: workers abandon the file they read.
        self.stop = array.array("i", [0])

    def many(
        self, files: list[tuple[str, os.stat_result | None, Any]]
    ) -> list[int | tuple[int, dict[str, bytes]] | ReadError]:
        # files: (path, stat from the walk or None, the caller's unit)
        native = _native
        if native is not None and not _native_checked:
            native = _check_native()
        if native is None:
            return [self(path, st) for path, st, _ in files]
        buf = getattr(self.local, "native_buf", None)
        if buf is None or len(buf) != self.native_buf:
            buf = self.local.native_buf = bytearray(self.native_buf)
        fsencode = os.fsencode
        raw = native(
            [fsencode(p) for p, _, _ in files],
            [_identity(st) for _, st, _ in files],
            self.bits,
            self.flags,
            buf,
            self.stop,
            self.probe,
            self.rest_bits,
        )
        out: list[int | tuple[int, dict[str, bytes]] | ReadError] = []
        append = out.append
        every = self.cover + self.rest
        again = []
        for i, res in enumerate(raw):
            if res.__class__ is int:
                append(self.native_error(res))
            elif not res[4]:
                append(res[0])
            elif res[4] == 2:  # a candidate with every digest (it fitted in buf)
                append((res[0], {a: res[_SLOT[a]] for a in every}))
            else:
                again.append(i)
                append(res[0])  # replaced below
        if again:
            # Large candidates (rare): every digest by a second read, which
            # must find the same content.
            bits = self.bits | self.rest_bits
            redo = native(
                [fsencode(files[i][0]) for i in again],
                [_identity(files[i][1]) for i in again],
                bits,
                self.flags,
                buf,
                self.stop,
            )
            for i, res in zip(again, redo, strict=True):
                if res.__class__ is int:
                    out[i] = self.native_error(res)
                elif any(res[_SLOT[a]] != raw[i][_SLOT[a]] for a in self.cover):
                    out[i] = ReadError("file changed while read")
                else:
                    out[i] = (res[0], {a: res[_SLOT[a]] for a in every})
        return out

    def native_error(self, code: int) -> ReadError:
        if code > 0:
            return ReadError(
                error_reason(OSError(code, os.strerror(code)), self.nofollow)
            )
        return ReadError(_NATIVE_REASONS.get(code, f"error {code}"))

    def __call__(
        self, path: str, expect: os.stat_result | None
    ) -> int | tuple[int, dict[str, bytes]] | ReadError:
        try:
            # O_NONBLOCK: opening a FIFO (swapped in after the walk) must not
            # wait for a writer; fstat then says it is not a regular file.
            fd = os.open(path, self.flags)
        except OSError as e:
            return ReadError(error_reason(e, self.nofollow))
        try:
            before = os.fstat(fd)
            fast = self.fast
            if fast is None and len(self.cover) == 1:
                fast = self.fast = (_load_hashlib()[self.cover[0]], self.tables[0][1])
            # The common case inline (a small unchanged regular file, one
            # algorithm, not in the dataset): per-file Python time holds the
            # GIL, so it bounds the scan rate of trees of small files.
            if (
                fast is not None
                and before.st_size <= self.chunk_size
                and stat.S_ISREG(before.st_mode)
                and (
                    expect is None
                    or (
                        before.st_ino == expect.st_ino
                        and before.st_dev == expect.st_dev
                    )
                )
            ):
                size = before.st_size
                data = os.read(fd, size + 1)
                if len(data) == size and fast[0](data).digest() not in fast[1]:
                    after = os.fstat(fd)
                    if (
                        after.st_size == size
                        and after.st_mtime_ns == before.st_mtime_ns
                    ):
                        return size
                os.lseek(fd, 0, os.SEEK_SET)
            return self._read(fd, expect, before)
        except OSError as e:
            return ReadError(error_reason(e, self.nofollow))
        finally:
            os.close(fd)

    def _candidate(self, digests: dict[str, bytes]) -> bool:
        return any(digests[a] in t for a, t in self.tables)

    def _read(
        self, fd: int, expect: os.stat_result | None, before: os.stat_result
    ) -> int | tuple[int, dict[str, bytes]] | ReadError:
        problem = opened_problem(before, expect)
        if problem is not None:
            return problem
        size = before.st_size
        if size <= self.chunk_size:
            # Small file: read whole (+1 byte to see growth), hash from memory.
            data = os.read(fd, size + 1)
            while 0 < len(data) < size:  # a short read (network file systems)
                more = os.read(fd, size + 1 - len(data))
                if not more:
                    break
                data += more
            if len(data) != size:
                return ReadError("file changed size while read")
            new = _load_hashlib()
            digests = {a: new[a](data).digest() for a in self.cover}
            candidate = self._candidate(digests)
            if candidate:
                for a in self.rest:
                    digests[a] = new[a](data).digest()
        else:
            got = self._stream(fd, size, self.cover)
            if isinstance(got, ReadError):
                return got
            digests = got
            candidate = self._candidate(digests)
            if candidate and self.rest:
                # A rare large candidate: read it again for every digest.
                again = self._stream(fd, size, self.cover + self.rest)
                if isinstance(again, ReadError):
                    return again
                if any(again[a] != digests[a] for a in self.cover):
                    return ReadError("file changed while read")
                digests = again
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return ReadError("file changed while read")
        return (size, digests) if candidate else size

    def _stream(
        self, fd: int, size: int, algorithms: tuple[str, ...]
    ) -> dict[str, bytes] | ReadError:
        buf = getattr(self.local, "buf", None)
        if buf is None or len(buf) != self.chunk_size:
            buf = self.local.buf = bytearray(self.chunk_size)
        new = _load_hashlib()
        hashers = [new[a]() for a in algorithms]
        updates = [h.update for h in hashers]
        total = 0
        os.lseek(fd, 0, os.SEEK_SET)
        with memoryview(buf) as view, open(fd, "rb", buffering=0, closefd=False) as f:
            readinto = f.readinto
            while True:
                if self.stop[0]:
                    return ReadError("scan stopped")
                n = readinto(view)
                if not n:
                    break
                total += n
                if total > size:
                    break
                if n == len(view):
                    for u in updates:
                        u(view)
                else:
                    with view[:n] as chunk:
                        for u in updates:
                            u(chunk)
        if total != size:
            return ReadError("file changed size while read")
        return {a: h.digest() for a, h in zip(algorithms, hashers, strict=True)}
