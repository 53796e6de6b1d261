"""The state file of a resumable scan (``scan(..., resume=PATH)``).

A journal of text lines, each ``<crc32 of the JSON, 8 hex digits> TAB <JSON>``:

* line 1, the header: ``{"format": "hashlookup-scan-state", "version": 1,
  "params": {...}}`` with everything that decides the result of the scan
  (dataset identity and generation, roots, walking options).  A scan resumed
  with other parameters is refused: its hits would not be those of one
  uninterrupted scan.
* one line per finished unit of work, in the order they finished: ``{"r":
  root index, "d": directory path or null, "s": counters, "e": errors,
  "h": hits}``.  A unit is the files directly in one directory (its
  subdirectories are units of their own), or, with ``"d": null``, what a
  root given as a file (or missing, excluded...) produced.
* ``{"end": true, "t": unix time}`` once the whole scan finished.  A state
  file that ends so has nothing left to resume: opening it starts a new
  scan in it (``restarted``), whatever its parameters were, instead of
  replaying the old result as if it were today's.

Each line is appended with one ``write()`` as soon as its unit is finished,
so it survives the death of the process (SIGKILL included: the data is in
the kernel).  ``fsync`` runs at most once a second and when the file is
closed, so a power loss costs at most about a second of work.  On loading, a
torn last line (no newline, or a bad checksum) is what a crash in the middle
of a write leaves: it is dropped and the file truncated before appending.  A
bad line anywhere else means the file is not what we wrote: an error.

An exclusive ``flock`` keeps two scans from using one state file at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import zlib

from hashlookup.errors import HashLookupError
from hashlookup.scan.report import ScanHit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from hashlookup.store.dataset import Dataset

FORMAT = "hashlookup-scan-state"
VERSION = 1
_FSYNC_SECONDS = 1.0


def _line(obj: dict[str, Any]) -> bytes:
    text = json.dumps(obj, separators=(",", ":")).encode()
    return b"%08x\t%s\n" % (zlib.crc32(text), text)


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The JSON object of one complete line, or None if it is damaged."""
    crc, sep, text = raw.partition(b"\t")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(text):
            return None
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _differences(
    old: dict[str, Any], new: dict[str, Any], prefix: str = ""
) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} was {a!r}, now {b!r}")
    return out


_ROOTS_KEPT = 1000  # more roots (a --files-from list) are kept as a digest


def _roots_param(roots: list[str]) -> list[str] | dict[str, Any]:
    """The roots as the state file's header holds them: the list itself, or
    for long lists their count and sha256 (the header stays small)."""
    if len(roots) <= _ROOTS_KEPT:
        return roots
    import hashlib

    h = hashlib.sha256()
    for r in roots:
        h.update(os.fsencode(r) + b"\0")
    return {"count": len(roots), "sha256": h.hexdigest()}


def _label_params(
    labels: tuple[tuple[str, ...] | None, tuple[str, ...] | None],
) -> dict[str, Any]:
    """The label filters in the state header, only when given (a state file
    of a scan without them stays valid)."""
    only, exclude = labels
    out: dict[str, Any] = {}
    if only:
        out["only_labels"] = sorted(only)
    if exclude:
        out["exclude_labels"] = sorted(exclude)
    return out


def scan_params(
    ds: Dataset,
    roots: list[str],
    labels: tuple[tuple[str, ...] | None, tuple[str, ...] | None],
    **options: Any,
) -> dict[str, Any]:
    """What decides the result of a scan: a state file is only resumed by a
    scan with the same."""
    return {
        "dataset": {
            "name": ds.name,
            "generation": ds.generation,
            "built": ds.built,
            "records": len(ds),
            "algorithms": list(ds.algorithms),
            "suppress": sorted(ds.suppress),
        },
        "roots": _roots_param(roots),
        "cwd": os.getcwd() if any(not os.path.isabs(r) for r in roots) else None,
        **options,
        **_label_params(labels),
    }


# Per-unit counters, in this order in the state file.
STATS = (
    "files_seen",
    "files_read",
    "skipped_size",
    "skipped_excluded",
    "special",
    "bytes_read",
    "images_hashed",
    "images_low_quality",
    "images_too_large",
)


class Unit:
    """The files directly in one directory (or what one root produced): the
    granule of resumption.  Finished when listed and every file is hashed."""

    __slots__ = ("dir", "done", "errors", "hits", "listed", "pending", "root", "stats")

    def __init__(self, root: int, directory: str | None, done: bool) -> None:
        self.root = root
        self.dir = directory
        self.pending = 0
        self.listed = False
        self.done = done  # finished in an earlier run: nothing to do
        self.stats = [0] * len(STATS)
        self.errors: list[tuple[str, str]] = []
        self.hits: list[ScanHit] = []


def hit_record(hit: ScanHit) -> list[Any]:
    """A hit as a unit line of the state file holds it."""
    rec = [
        hit.path,
        hit.algorithm,
        hit.digest,
        hit.record_id,
        list(hit.labels),
        list(hit.mismatch),
    ]
    if hit.distance is not None:  # a near hit: exact ones are stored as before
        rec += [hit.distance, hit.quality]
    return rec


def hit_from(rec: list[Any]) -> ScanHit:
    """The hit a unit line of the state file holds."""
    path, alg, digest, rid, labels, mismatch, *near = rec
    distance, quality = (int(near[0]), int(near[1])) if near else (None, None)
    return ScanHit(
        path, alg, digest, int(rid), tuple(labels), tuple(mismatch), distance, quality
    )


class ScanState:
    """An open state file: what earlier runs finished, and the journal to
    append this run's finished units to."""

    def __init__(self, path: str | os.PathLike[str], params: dict[str, Any]) -> None:
        self.path = os.fspath(path)
        self.units: dict[tuple[int, str | None], dict[str, Any]] = {}
        self.finished = False
        self.restarted = False
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(self.path, flags, 0o666)
        try:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HashLookupError(
                    f"{self.path}: state file in use by another scan"
                ) from None
            self._load(params)
        except BaseException:
            os.close(self.fd)
            raise
        self.last_sync = time.monotonic()

    def _load(self, params: dict[str, Any]) -> None:
        # Normalise through JSON so that tuples and lists compare equal.
        params = json.loads(json.dumps(params))
        with open(self.fd, "rb", closefd=False) as f:
            data = f.read()
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" unless torn
        good_end = len(data) - len(tail)
        objs: list[dict[str, Any]] = []
        for i, raw in enumerate(lines):
            obj = _parse(raw)
            if obj is None:
                if 0 < i == len(lines) - 1:  # torn by a crash during the last write
                    good_end -= len(raw) + 1
                    break
                raise HashLookupError(
                    f"{self.path}: line {i + 1} is damaged: not a "
                    "hashlookup scan state file, or corrupted"
                )
            objs.append(obj)
        if data and not objs:
            # Never overwrite a file that is not ours (a mistyped argument).
            raise HashLookupError(
                f"{self.path}: line 1 is damaged: not a hashlookup "
                "scan state file, or corrupted"
            )
        if good_end != len(data):
            os.ftruncate(self.fd, good_end)
        if not objs:
            os.ftruncate(self.fd, 0)
            self._write(_line({"format": FORMAT, "version": VERSION, "params": params}))
            os.fsync(self.fd)
            return
        head = objs[0]
        if head.get("format") != FORMAT:
            raise HashLookupError(f"{self.path}: not a hashlookup scan state file")
        if head.get("version") != VERSION:
            raise HashLookupError(
                f"{self.path}: scan state version "
                f"{head.get('version')!r}, this build reads {VERSION}"
            )
        if any(obj.get("end") is True for obj in objs[1:]):
            # A finished scan: start over (a new header, nothing to replay).
            os.ftruncate(self.fd, 0)
            self._write(_line({"format": FORMAT, "version": VERSION, "params": params}))
            os.fsync(self.fd)
            self.restarted = True
            return
        old = head.get("params")
        if old != params:
            diff = _differences(old if isinstance(old, dict) else {}, params)
            raise HashLookupError(
                f"{self.path}: was made by a scan with other parameters "
                f"({'; '.join(diff)}); resume with the same ones, or use a new "
                "state file"
            )
        for n, obj in enumerate(objs[1:], start=2):
            try:
                key = (int(obj["r"]), obj["d"])
                obj["s"], obj["e"], obj["h"]
            except (KeyError, TypeError, ValueError):
                raise HashLookupError(
                    f"{self.path}: line {n}: not a finished unit record"
                ) from None
            self.units[key] = obj

    def _write(self, data: bytes) -> None:
        os.lseek(self.fd, 0, os.SEEK_END)
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def add(
        self,
        root: int,
        directory: str | None,
        stats: list[int],
        errors: list[tuple[str, str]],
        hits: list[list[Any]],
    ) -> None:
        """Record a finished unit (one write; fsync at most once a second)."""
        self._write(
            _line({"r": root, "d": directory, "s": stats, "e": errors, "h": hits})
        )
        now = time.monotonic()
        if now - self.last_sync >= _FSYNC_SECONDS:
            os.fsync(self.fd)
            self.last_sync = now

    def finish(self) -> None:
        self._write(_line({"end": True, "t": round(time.time())}))
        self.finished = True

    def close(self) -> None:
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        try:
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
