"""What a scan reports: one ScanHit per (file, record), and the counters of
a ScanReport."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScanHit:
    """A scanned file whose digest is in the dataset."""

    path: str
    algorithm: str  # algorithm of the digest that found the record
    digest: str  # lowercase hex
    record_id: int
    labels: tuple[str, ...]
    # Algorithms for which the record holds a digest that differs from the
    # file's (normally empty: a collision, or a list pairing digests wrongly).
    mismatch: tuple[str, ...] = ()


@dataclass
class ScanReport:
    """What scan() did (with resume: earlier runs' finished work included)."""

    files_seen: int = 0  # regular files found (not excluded)
    files_read: int = 0  # regular files read and hashed completely
    skipped_size: int = 0  # not read: outside min/max, or no record has the size
    skipped_excluded: int = 0  # files and directories matching an exclude pattern
    special: int = (
        0  # non-regular, non-directory entries (symlinks not followed, FIFOs...)
    )
    errors: int = 0  # reported through on_error
    bytes_read: int = 0
    hits: list[ScanHit] = field(default_factory=list)
    seconds: float = 0.0  # this run only
    algorithms: tuple[str, ...] = ()  # the dataset's: all checked for candidates
    hashed: tuple[str, ...] = ()  # computed for every file read
    resumed_units: int = 0  # directories (units) replayed from the state file
    resumed_bytes: int = 0  # ... and the bytes they had read (in bytes_read)

    @property
    def throughput(self) -> float:
        """Bytes read per second by this run, in MB/s (10**6 bytes)."""
        n = self.bytes_read - self.resumed_bytes
        return n / self.seconds / 1e6 if self.seconds > 0 else 0.0
