"""Scanning file trees against a dataset.

``scan(dataset, paths)`` walks files and directories, reads every regular
file once on a thread pool (hashlib releases the GIL) and reports the files
whose digests are in the dataset.  Nothing is logged: digests and paths only
reach the caller, through the returned :class:`ScanReport` and the
callbacks.  docs/SCAN.md has the reasons behind the rules below.

Walking
    Iterative ``os.scandir`` (no recursion limit).  A path given is
    followed when it is a symbolic link (as hashdeep, clamscan and
    ``find -H`` do: the caller named it); links found inside directories
    are not followed unless ``follow_symlinks=True``.  When they are
    followed, a directory reached twice (a link cycle) is walked once.
    ``one_file_system=True`` does not enter (or read) anything whose
    ``st_dev`` differs from that of the path given it was found under.
    ``exclude`` patterns (``fnmatch`` globs) are matched against the whole
    path and against the base name; an excluded directory is not entered
    and counts once in ``skipped_excluded``.

Digests
    Every file is hashed with the cheapest set of the dataset's algorithms
    that covers every record (measured once per process: with SHA-NI, sha1
    or sha256 beats md5).  When all records have, say, a sha1, a file whose
    sha1 is in no record cannot be a hit.  A file whose digest is found (a
    candidate) gets every other algorithm of the dataset computed too (from
    the buffer already read for small files, by a second read for large
    ones) and every digest is looked up, as if all had been computed for
    every file; a record whose other digests disagree with the file's is
    still a hit, flagged in ``ScanHit.mismatch`` (a collision or a bad list).

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
    directories, files that change while they are read (size or mtime
    differ after the read: no hit is reported for them), dangling symbolic
    links (when following them) and the like are reported as
    ``on_error(path, reason)`` and counted in ``errors``; they never stop
    the scan.  Exceptions raised by the callbacks do.

Hits
    ``only_labels``/``exclude_labels`` filter the records as in
    ``Dataset.lookup`` (a record with none of ``only_labels``, or with one
    of ``exclude_labels``, is no hit).  One :class:`ScanHit` per (file,
    record): if several digests of a file find the same record, the first
    in md5, sha1, sha256 order is reported.
    ``on_hit(hit)`` is called in the calling thread as soon as the file is
    hashed.

Misses
    With ``on_miss``, ``on_miss(path)`` is called (in the calling thread)
    for each file that is *not* in the dataset, as ``hashdeep -x`` lists
    them: a file read whose digests find no record (or only records the
    label filters drop), and a file not read because no record has its
    size.  Files outside ``[min_size, max_size]``, excluded or special
    files and files that could not be read are not misses (they were not
    examined; errors go to ``on_error``).  Not with ``resume`` (the state
    file records hits only).

Images (datasets with PDQ hashes)
    Each file read that starts like an image (JPEG, PNG, GIF, BMP, WebP,
    TIFF: by content, never by name) is decoded on a pool of its own and
    its PDQ hash searched within ``max_distance``: near hits
    (``algorithm="pdq"``, ``distance``, ``quality``) for the records it did
    not find by digest.  A file that fails to decode is an error of the
    file; an image that matches nothing is a miss (hashlookup/scan/images.py).

Resuming
    With ``resume=STATE``, each finished unit of work (the files directly in
    one directory) is appended to the state file with its hits, errors and
    counters (see hashlookup/scan/state.py).  A later call with the same
    parameters replays those (``on_error`` and ``on_hit`` are called for
    them first) and hashes only what was not finished, so its report equals
    that of one uninterrupted scan.  A state file of a scan that finished
    has nothing left to resume: it is started over (a new scan, not the old
    result; ``ScanReport.restarted`` says so).

Interrupts
    A KeyboardInterrupt while files are hashed is raised again as
    :class:`ScanInterrupted` (a KeyboardInterrupt) carrying the report of
    what was done so far; the state file keeps every finished unit.
"""

from __future__ import annotations

import collections
import fnmatch
import functools
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator

from hashlookup.near._defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_QUALITY
from hashlookup.scan import _near_options, _pool
from hashlookup.scan.reader import (
    Hasher,
    ReadError,
    cheapest_cover,
    error_reason,
    known_sizes,
    size_test,
)
from hashlookup.scan.report import ScanHit, ScanInterrupted, ScanReport, is_interrupt
from hashlookup.scan.state import (
    STATS,
    ScanState,
    Unit,
    hit_from,
    hit_record,
    scan_params,
)
from hashlookup.store.dataset import ALGORITHMS, Dataset, open_dataset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hashlookup.scan import images as _images

_GROUP_FILES = 256  # small files handed to a worker at once
_GROUP_BYTES = 16 << 20  # ... up to about this many bytes
_UNKNOWN_SIZE = 64 << 10  # what a file not stat'ed counts towards a group
_PROGRESS_SECONDS = 0.2
__all__ = ["scan"]
# The per-unit counters of state.STATS, by position.
_SEEN, _READ, _SIZE, _EXCL, _SPECIAL, _BYTES, _IMG, _IMG_LOW, _IMG_BIG = range(
    len(STATS)
)


class _Scanner:
    def __init__(
        self,
        ds: Dataset,
        *,
        follow_symlinks: bool,
        one_file_system: bool,
        exclude: tuple[str, ...],
        min_size: int | None,
        max_size: int | None,
        jobs: int,
        skip_unknown_sizes: bool,
        chunk_size: int,
        on_hit: Callable[[ScanHit], Any] | None,
        on_error: Callable[[str, str], Any] | None,
        state: ScanState | None,
        on_miss: Callable[[str], Any] | None = None,
        labels: tuple[tuple[str, ...] | None, tuple[str, ...] | None],
        near: _images.NearOptions | None = None,
    ) -> None:
        self.ds = ds
        self.follow = follow_symlinks
        self.one_fs = one_file_system
        self.exclude = exclude
        self.min_size = min_size
        self.max_size = max_size
        self.jobs = jobs
        self.on_hit = on_hit
        self.on_error = on_error
        self.on_miss = on_miss
        self.state = state
        self.only, self.exclude_labels = labels
        # Roots given as symbolic links to files: read through the link's
        # target (the reader does not follow links), reported as given.
        self.alias: dict[str, str] = {}
        # The generation current at the start (a reload during the scan
        # does not mix generations).
        self.generation = ds.current()
        self.algorithms = self.generation.algorithms
        self.skip_unknown_sizes = skip_unknown_sizes
        cover = cheapest_cover(ds)
        self.tables = {a: self.generation.tables[a] for a in self.algorithms}
        self.hasher = Hasher(ds, cover, chunk_size, follow_symlinks)
        self.report = ScanReport(algorithms=self.algorithms, hashed=cover)
        self.report.restarted = state is not None and state.restarted
        # Datasets with PDQ hashes: the near options and the image stage
        # (scan/images.py); None keeps every path as it was.
        self.images: _images.ImageStage | None = None
        self.near = near
        if near is not None:
            # Imported here: only a scan that hashes images needs the stage
            # (PDQ needs pdqhash and Pillow, imported when it is decided).
            from hashlookup.scan import images as _images

            reader = _images.ImageReader(
                self.hasher.flags, self.hasher.nofollow, dihedral=near.dihedral
            )
            self.images = _images.ImageStage(self.hasher.many, reader, near.jobs)
            self.report.pdq = True

    @functools.cached_property
    def known(self) -> Callable[[int], bool] | None:
        """size -> is it a record's size; None when sizes do not filter.
        Read first at the first directory entry: the records' sizes need
        numpy, which a scan of an empty directory never imports."""
        if not self.skip_unknown_sizes:
            return None
        sizes = known_sizes(self.generation)
        return size_test(sizes) if sizes is not None else None

    # -- accounting ----------------------------------------------------------

    def count(self, unit: Unit, what: int, n: int = 1) -> None:
        unit.stats[what] += n
        r = self.report
        name = STATS[what]
        setattr(r, name, getattr(r, name) + n)

    def error(self, unit: Unit, path: str, reason: str) -> None:
        if unit.done:
            return  # replayed from the state file already
        unit.errors.append((path, reason))
        self.report.errors += 1
        if self.on_error is not None:
            self.on_error(path, reason)

    def hit(self, unit: Unit, hit: ScanHit) -> None:
        unit.hits.append(hit)
        self.report.hits.append(hit)
        if self.on_hit is not None:
            self.on_hit(hit)

    def miss(self, path: str) -> None:
        """A file examined and not in the dataset (on_miss is set)."""
        assert self.on_miss is not None
        self.report.misses += 1
        self.on_miss(self.alias.get(path, path) if self.alias else path)

    def listed(self, unit: Unit) -> None:
        unit.listed = True
        self.maybe_finished(unit)

    def maybe_finished(self, unit: Unit) -> None:
        if unit.listed and unit.pending == 0 and not unit.done:
            unit.done = True
            if self.state is not None:
                self.state.add(
                    unit.root,
                    unit.dir,
                    unit.stats,
                    unit.errors,
                    [hit_record(h) for h in unit.hits],
                )

    def replay(self) -> None:
        """Report what earlier runs finished, in the order they finished it."""
        assert self.state is not None
        r = self.report
        for rec in self.state.units.values():
            r.resumed_units += 1
            for name, n in zip(STATS, rec["s"], strict=False):
                setattr(r, name, getattr(r, name) + int(n))
            r.resumed_bytes += int(rec["s"][_BYTES])
            for path, reason in rec["e"]:
                r.errors += 1
                if self.on_error is not None:
                    self.on_error(path, reason)
            for h in rec["h"]:
                hit = hit_from(h)
                r.hits.append(hit)
                if self.on_hit is not None:
                    self.on_hit(hit)

    def unit(self, root: int, directory: str | None) -> Unit:
        done = self.state is not None and (root, directory) in self.state.units
        return Unit(root, directory, done)

    # -- walking -------------------------------------------------------------

    def excluded(self, path: str) -> bool:
        if not self.exclude:
            return False
        base = os.path.basename(path.rstrip(os.sep)) or path
        return any(
            fnmatch.fnmatch(path, p) or fnmatch.fnmatch(base, p) for p in self.exclude
        )

    def files(
        self, roots: list[str]
    ) -> Iterator[tuple[str, os.stat_result | None, Unit]]:
        """Regular files to read, with their stat and unit; counts the rest."""
        for i, root in enumerate(roots):
            unit = self.unit(i, None)
            if unit.done:
                # Finished earlier; if it is a directory, its subdirectories
                # are units of their own, maybe not finished.
                try:
                    st = os.stat(root)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode) and not self.excluded(root):
                    yield from self.walk(i, root, st)
                continue
            if self.excluded(root):
                self.count(unit, _EXCL)
            else:
                try:
                    st = os.stat(root)  # a path given is followed
                except FileNotFoundError:
                    if os.path.islink(root):
                        self.error(unit, root, "dangling symbolic link")
                    else:
                        self.error(unit, root, "vanished or does not exist")
                except OSError as e:
                    self.error(unit, root, error_reason(e))
                else:
                    if stat.S_ISDIR(st.st_mode):
                        yield from self.walk(i, root, st)
                    else:
                        yield from self.leaf(unit, self.through_link(root), st)
            self.listed(unit)

    def through_link(self, root: str) -> str:
        """The path to open for a root file: its target if it is a symbolic
        link and links are not followed (the reader opens with O_NOFOLLOW)."""
        if self.follow or not os.path.islink(root):
            return root
        target = os.path.realpath(root)
        self.alias[target] = root
        return target

    def leaf(
        self, unit: Unit, path: str, st: os.stat_result
    ) -> Iterator[tuple[str, os.stat_result, Unit]]:
        if unit.done:
            return
        if not stat.S_ISREG(st.st_mode):
            self.count(unit, _SPECIAL)
            return
        self.count(unit, _SEEN)
        size = st.st_size
        if (self.min_size is not None and size < self.min_size) or (
            self.max_size is not None and size > self.max_size
        ):
            self.count(unit, _SIZE)
            return
        if self.known is not None and not self.known(size):
            self.count(unit, _SIZE)
            if self.on_miss is not None:
                self.miss(path)  # no record has this size
            return
        unit.pending += 1
        yield path, st, unit

    def walk(
        self, root: int, top: str, top_st: os.stat_result
    ) -> Iterator[tuple[str, os.stat_result | None, Unit]]:
        # Without size filters, st_dev checks or links to follow, the entry
        # types from readdir suffice: no stat per file in this (the one
        # walking) thread; the worker's fstat checks the file is regular.
        # None: decided at the first entry, by self.known (see there).
        need_stat: bool | None = (
            self.one_fs
            or self.follow
            or self.min_size is not None
            or self.max_size is not None
        ) or None
        dev = top_st.st_dev
        r = self.report
        exclude = self.exclude
        seen: set[tuple[int, int]] = {(top_st.st_dev, top_st.st_ino)}
        stack = [top]
        while stack:
            d = stack.pop()
            unit = self.unit(root, d)
            subdirs: list[str] = []
            try:
                it = os.scandir(d)
            except OSError as e:
                self.error(unit, d, error_reason(e))
                self.listed(unit)
                continue
            with it:
                while True:
                    try:
                        entry = next(it)
                    except StopIteration:
                        break
                    except OSError as e:  # error while reading the directory
                        self.error(unit, d, error_reason(e))
                        break
                    path = entry.path
                    if exclude and self.excluded(path):
                        if not unit.done:
                            self.count(unit, _EXCL)
                        continue
                    if need_stat is None:
                        need_stat = self.known is not None
                    if not need_stat:
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                subdirs.append(path)
                            elif unit.done:
                                pass
                            elif entry.is_file(follow_symlinks=False):
                                unit.stats[_SEEN] += 1
                                r.files_seen += 1
                                unit.pending += 1
                                yield path, None, unit
                            else:
                                self.count(unit, _SPECIAL)
                        except OSError as e:  # DT_UNKNOWN and lstat failed
                            self.error(unit, path, error_reason(e))
                        continue
                    try:
                        st = entry.stat(follow_symlinks=self.follow)
                    except FileNotFoundError:
                        if self.follow and entry.is_symlink():
                            self.error(unit, path, "dangling symbolic link")
                        else:
                            self.error(unit, path, "vanished or does not exist")
                        continue
                    except OSError as e:
                        self.error(unit, path, error_reason(e))
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
                        yield from self.leaf(unit, path, st)
            self.listed(unit)
            # Sorted, reversed onto the stack: directories in name order.
            stack.extend(sorted(subdirs, reverse=True))

    # -- results -------------------------------------------------------------

    def add(
        self,
        path: str,
        unit: Unit,
        result: int | tuple[int, dict[str, bytes]] | ReadError | _near_options.Sniffed,
    ) -> None:
        unit.pending -= 1
        read = path
        if self.alias:
            path = self.alias.get(path, path)
        sniffed = None
        if isinstance(result, _near_options.Sniffed):
            sniffed, result = result, result.result
        found = False
        hits = len(unit.hits)
        if isinstance(result, ReadError):
            self.error(unit, path, result.reason)
            self.maybe_finished(unit)
            return
        if isinstance(result, int):
            n = result
            self.count(unit, _READ)
            self.count(unit, _BYTES, result)
        else:
            n, digests = result
            self.count(unit, _READ)
            self.count(unit, _BYTES, n)
            found = self.lookup(unit, path, digests)
        if sniffed is not None and self.images is not None:
            # An image: its near hits (and whether it is a miss) come when
            # it is decoded; the unit waits for it.
            exact = {h.record_id for h in unit.hits[hits:]}
            miss = self.on_miss is not None and not found
            unit.pending += 1
            self.images.submit(read, n, sniffed.stat, (path, unit, exact, miss))
            self.decoded(False)
        elif not found and self.on_miss is not None:
            self.miss(path)
        self.maybe_finished(unit)

    def decoded(self, block: bool) -> None:
        """The near hits of the images decoded so far (all, with `block`)."""
        assert self.images is not None and self.near is not None
        from hashlookup.scan import images as _images  # loaded by __init__

        labels = (self.only, self.exclude_labels)
        for res, (path, unit, exact, miss) in self.images.ready(block):
            unit.pending -= 1
            if isinstance(res, ReadError):
                self.error(unit, path, res.reason)
            elif isinstance(res, _images.TooLarge):
                self.count(unit, _IMG_BIG)
            else:
                self.count(unit, _IMG)
                if res.quality < self.near.min_quality:
                    self.count(unit, _IMG_LOW)
                for hit in _images.near_hits(
                    self.generation, path, res, exact, self.near, labels
                ):
                    self.hit(unit, hit)
                    miss = False
            if miss and not isinstance(res, ReadError):
                self.miss(path)
            self.maybe_finished(unit)

    def lookup(self, unit: Unit, path: str, digests: dict[str, bytes]) -> bool:
        """Every digest of a candidate file, in md5, sha1, sha256 order;
        whether any hit was reported."""
        found = False
        records: set[int] = set()
        # One digest finds one record: no record id needed to drop repeats
        # (reading it maps the rowmap with numpy, ~70 ms to import).
        several = len(digests) > 1
        for a in ALGORITHMS:
            digest = digests.get(a)
            if digest is None:
                continue
            table = self.tables[a]
            row = table.find(digest)
            if row < 0:
                continue
            if several:
                # The record id first: the full Match is built once per record.
                rid = self.generation.record_id(a, row)
                if rid in records:
                    continue
                records.add(rid)
            m = self.generation.match(a, row, self.only, self.exclude_labels)
            if m is None:
                continue  # dropped by a label filter
            mismatch = tuple(
                b
                for b in ALGORITHMS
                if b in digests
                and getattr(m, b) is not None
                and getattr(m, b) != digests[b].hex()
            )
            self.hit(
                unit, ScanHit(path, a, digest.hex(), m.record_id, m.labels, mismatch)
            )
            found = True
        return found

    def run(
        self, roots: list[str], progress: Callable[[ScanReport], Any] | None
    ) -> ScanReport:
        t0 = time.perf_counter()
        if self.state is not None:
            self.replay()
        halt_ticker = None
        if progress is not None:

            def tick() -> None:
                self.report.seconds = time.perf_counter() - t0
                progress(self.report)

            halt_ticker = _pool.start_ticker(tick, _PROGRESS_SECONDS)
        # Small files go to the workers in groups (fewer tasks, less
        # main-thread overhead); a group is also closed at GROUP_BYTES.
        Group = list[tuple[str, os.stat_result | None, Unit]]
        inflight: collections.deque[tuple[Group, _pool.Task]] = collections.deque()
        limit = self.jobs * 4
        on_miss = self.on_miss
        group_bytes = max(self.hasher.chunk_size, _GROUP_BYTES)
        # Threads start at the first submit: none for an empty tree.
        pool = _pool.Pool(self.jobs)
        images = self.images
        work = self.hasher.many if images is None else images.many

        def collect(block: bool) -> None:
            # In submission order: units finish in walk order.
            while inflight and (
                block or len(inflight) >= limit or inflight[0][1].done()
            ):
                group, fut = inflight.popleft()
                r = self.report
                for (p, _, unit), res in zip(group, fut.result(), strict=True):
                    if res.__class__ is int and on_miss is None:  # common, inline
                        unit.pending -= 1
                        stats = unit.stats
                        stats[_READ] += 1
                        stats[_BYTES] += res
                        r.files_read += 1
                        r.bytes_read += res
                        if unit.pending == 0 and unit.listed:
                            self.maybe_finished(unit)
                    else:
                        self.add(p, unit, res)
                block = False
            if images is not None and images.inflight:
                self.decoded(False)

        try:
            group: Group = []
            size = 0
            for item in self.files(roots):
                group.append(item)
                st = item[1]
                size += st.st_size if st is not None else _UNKNOWN_SIZE
                if len(group) >= _GROUP_FILES or size >= group_bytes:
                    inflight.append((group, pool.submit(work, group)))
                    group, size = [], 0
                    collect(False)
            if group:
                inflight.append((group, pool.submit(work, group)))
            while inflight:
                collect(True)
            while images is not None and images.inflight:
                self.decoded(True)
            if self.state is not None:
                self.state.finish()
        except (KeyboardInterrupt, RuntimeError) as exc:
            if isinstance(exc, ScanInterrupted) or not is_interrupt(exc):
                raise
            raise ScanInterrupted(self.report) from None
        finally:
            self.hasher.stop[0] = 1  # no-op after a complete scan; else stop reading
            for _, fut in inflight:
                fut.cancel()
            pool.shutdown()
            if images is not None:
                images.close()
            if halt_ticker is not None:
                halt_ticker()
            self.report.seconds = time.perf_counter() - t0
        return self.report


def _labels(
    labels: str | Iterable[str] | None,
) -> tuple[str, ...] | None:
    if labels is None:
        return None
    out = (labels,) if isinstance(labels, str) else tuple(labels)
    return out or None


def scan(
    dataset: Dataset | str | os.PathLike[str],
    paths: Iterable[str | os.PathLike[str]],
    *,
    follow_symlinks: bool = False,
    one_file_system: bool = False,
    exclude: Iterable[str] = (),
    min_size: int | None = None,
    max_size: int | None = None,
    jobs: int | None = None,
    skip_unknown_sizes: bool = True,
    chunk_size: int = 1 << 20,
    resume: str | os.PathLike[str] | None = None,
    only_labels: str | Iterable[str] | None = None,
    exclude_labels: str | Iterable[str] | None = None,
    on_hit: Callable[[ScanHit], Any] | None = None,
    on_error: Callable[[str, str], Any] | None = None,
    progress: Callable[[ScanReport], Any] | None = None,
    on_miss: Callable[[str], Any] | None = None,
    pdq: bool | None = None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    min_quality: int = DEFAULT_MIN_QUALITY,
    image_jobs: int | None = None,
    dihedral: bool = False,
) -> ScanReport:
    """Hash every regular file under `paths` and look it up in `dataset`.

    `dataset` is an open :class:`Dataset` (left open) or a path (opened and
    closed here).  `paths` are files and directories (a single str or path
    is taken as one path).  See the module docstring for the walking,
    digest, size pre-filter, error, hit and resume rules.

    Parameters
    ----------
    jobs
        Threads reading and hashing files (default ``os.cpu_count()``).
    chunk_size
        Files up to this size are read with one call; larger ones are
        streamed in chunks of this many bytes.
    resume
        A state file: created if missing; otherwise what it says is finished
        is replayed and not hashed again.  Refused (HashLookupError) if it
        was made with other parameters (dataset generation, paths, options);
        started over if it records a finished scan.
    only_labels, exclude_labels
        Label filters of the hits, as ``only``/``exclude`` of
        ``Dataset.lookup`` (the dataset's suppressed labels always apply).
    on_hit, on_error
        ``on_hit(ScanHit)`` and ``on_error(path, reason)``, called in the
        calling thread as hits and errors are found.
    progress
        ``progress(report)`` called about 5 times a second from another
        thread while the scan runs (read the report, do not change it).
    on_miss
        ``on_miss(path)`` for each file not in the dataset (the inverse of
        the hits, as ``hashdeep -x``; see Misses in the module docstring),
        called in the calling thread.  Not with `resume`.
    pdq
        Image files (by content) get their PDQ hash computed and searched
        within `max_distance` (near hits, ``ScanHit.distance``): None (the
        default) when the dataset has PDQ hashes and the ``images`` extra
        is installed (else ``ScanReport.pdq_unavailable`` says why not);
        True requires both (ValueError, ImportError); False never.
    max_distance, min_quality
        As for ``Dataset.near``; `min_quality` also applies to the image's
        own hash (a lower one is not searched).
    image_jobs
        Threads decoding images (default: `jobs`).
    dihedral
        Also search each image turned by 90, 180 and 270 degrees and
        mirrored (eight PDQ hashes; PDQ alone is not invariant to them): a
        near hit's distance is the least of the eight.
    """
    if isinstance(exclude, str):
        exclude = (exclude,)
    if isinstance(paths, (str, os.PathLike)):
        paths = (paths,)
    roots = [os.fspath(p) for p in paths]
    exclude = tuple(exclude)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for name, v in (("min_size", min_size), ("max_size", max_size)):
        if v is not None and v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    _near_options.check_options(max_distance, min_quality)
    if image_jobs is not None and image_jobs < 1:
        raise ValueError(f"image_jobs must be >= 1, got {image_jobs}")
    if on_miss is not None and resume is not None:
        raise ValueError(
            "on_miss cannot be combined with resume (the state file records hits only)"
        )
    labels = (_labels(only_labels), _labels(exclude_labels))
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    own = ds is not dataset
    state = None
    try:
        on, unavailable = _near_options.decide(ds.has_pdq, pdq, ds.path)
        near = None
        extra: dict[str, Any] = {}
        if on:
            from hashlookup.scan.images import NearOptions

            near = NearOptions(max_distance, min_quality, image_jobs or jobs, dihedral)
            # In the state header only when images are hashed (a state file
            # of a scan without them stays valid), dihedral only when on.
            extra["pdq"] = [max_distance, min_quality]
            if dihedral:
                extra["pdq_dihedral"] = True
        if resume is not None:
            state = ScanState(
                resume,
                scan_params(
                    ds,
                    roots,
                    follow_symlinks=follow_symlinks,
                    one_file_system=one_file_system,
                    exclude=list(exclude),
                    min_size=min_size,
                    max_size=max_size,
                    skip_unknown_sizes=skip_unknown_sizes,
                    labels=labels,
                    **extra,
                ),
            )
        scanner = _Scanner(
            ds,
            follow_symlinks=follow_symlinks,
            one_file_system=one_file_system,
            exclude=exclude,
            min_size=min_size,
            max_size=max_size,
            jobs=jobs,
            skip_unknown_sizes=skip_unknown_sizes,
            chunk_size=chunk_size,
            on_hit=on_hit,
            on_error=on_error,
            state=state,
            labels=labels,
            on_miss=on_miss,
            near=near,
        )
        scanner.report.pdq_unavailable = unavailable
        return scanner.run(roots, progress)
    finally:
        if state is not None:
            state.close()
        if own:
            ds.close()
