"""What a scan reports: one ScanHit per (file, record), the counters of a
ScanReport, and ScanInterrupted (a stopped scan's report so far)."""

from __future__ import annotations

from hashlookup._plain import dataclass_like

# ScanHit and ScanReport are the dataclasses they were (fields, repr, eq,
# frozen, dataclasses.asdict/replace), written out: making them with
# dataclasses cost a scan of an empty tree ~7 M instructions
# (hashlookup/_plain.py).


@dataclass_like(frozen=True)
class ScanHit:
    """A scanned file found in the dataset: one per (file, record).

    Found by one of its digests (an exact hit), or, for an image file in a
    dataset with PDQ hashes, by its PDQ hash within the scan's radius (a
    near hit: `algorithm` is ``"pdq"`` and `distance` is set).

    Attributes
    ----------
    path : str
        The file.
    algorithm : str
        Algorithm of the digest that found the record (``"pdq"``: a near
        hit).
    digest : str
        The file's digest of that algorithm (its PDQ hash for a near hit),
        lowercase hex.
    record_id : int
        The record found.
    labels : tuple of str
        The record's labels, sorted.
    mismatch : tuple of str
        Algorithms for which the record holds a digest that differs from
        the file's: normally empty (else a collision, or a list pairing
        digests wrongly).
    distance : int or None
        Near hits: Hamming distance (bits) between the file's PDQ hash and
        the record's; None for an exact hit.
    quality : int or None
        Near hits: the PDQ quality of the file's image, 0..100; None for an
        exact hit.
    """

    path: str
    algorithm: str
    digest: str
    record_id: int
    labels: tuple[str, ...]
    mismatch: tuple[str, ...]
    distance: int | None
    quality: int | None

    def __init__(
        self,
        path: str,
        algorithm: str,
        digest: str,
        record_id: int,
        labels: tuple[str, ...],
        mismatch: tuple[str, ...] = (),
        distance: int | None = None,
        quality: int | None = None,
    ) -> None:
        # frozen: set as dataclass's __init__ does
        setattr_ = object.__setattr__
        setattr_(self, "path", path)
        setattr_(self, "algorithm", algorithm)
        setattr_(self, "digest", digest)
        setattr_(self, "record_id", record_id)
        setattr_(self, "labels", labels)
        setattr_(self, "mismatch", mismatch)
        setattr_(self, "distance", distance)
        setattr_(self, "quality", quality)


@dataclass_like(factories={"hits": list})
class ScanReport:
    """What scan() did (with resume: earlier runs' finished work included).

    Attributes
    ----------
    files_seen : int
        Regular files found (not excluded).
    files_read : int
        Regular files read and hashed completely.
    skipped_size : int
        Files not read: outside min/max size, or no record has their size.
    skipped_excluded : int
        Files and directories matching an exclude pattern.
    special : int
        Non-regular, non-directory entries (symlinks not followed,
        FIFOs...).
    errors : int
        Problems reported through ``on_error``.
    bytes_read : int
        Bytes read (``resumed_bytes`` included).
    hits : list of ScanHit
        One per (file, record), in the order they were reported.
    seconds : float
        Wall-clock time of this run only.
    algorithms : tuple of str
        The dataset's algorithms: all are looked up for the files found.
    hashed : tuple of str
        Algorithms computed for every file read: the cheapest set that
        covers all records.
    resumed_units : int
        Directories (units) replayed from the state file.
    resumed_bytes : int
        The bytes those had read (included in ``bytes_read``).
    restarted : bool
        The state file recorded a scan that had finished: it was started
        over, and this report is of a new scan.
    misses : int
        Files reported to ``on_miss`` (not in the dataset); 0 without it.
    pdq : bool
        Whether the PDQ hashes of image files were computed and searched.
    pdq_unavailable : str or None
        Why not, when the dataset has PDQ hashes but the ``images`` extra
        is not installed (the scan then matched exact digests only).
    images_hashed : int
        Image files whose PDQ hash was computed.
    images_low_quality : int
        Of those, images whose quality is below the scan's `min_quality`
        (not searched).
    images_too_large : int
        Image files not decoded: more pixels than the scan's limit.
    """

    files_seen: int
    files_read: int
    skipped_size: int
    skipped_excluded: int
    special: int
    errors: int
    bytes_read: int
    hits: list[ScanHit]
    seconds: float
    algorithms: tuple[str, ...]
    hashed: tuple[str, ...]
    resumed_units: int
    resumed_bytes: int
    restarted: bool
    misses: int
    pdq: bool
    pdq_unavailable: str | None
    images_hashed: int
    images_low_quality: int
    images_too_large: int

    def __init__(
        self,
        files_seen: int = 0,
        files_read: int = 0,
        skipped_size: int = 0,
        skipped_excluded: int = 0,
        special: int = 0,
        errors: int = 0,
        bytes_read: int = 0,
        hits: list[ScanHit] | None = None,
        seconds: float = 0.0,
        algorithms: tuple[str, ...] = (),
        hashed: tuple[str, ...] = (),
        resumed_units: int = 0,
        resumed_bytes: int = 0,
        restarted: bool = False,
        misses: int = 0,
        pdq: bool = False,
        pdq_unavailable: str | None = None,
        images_hashed: int = 0,
        images_low_quality: int = 0,
        images_too_large: int = 0,
    ) -> None:
        self.files_seen = files_seen
        self.files_read = files_read
        self.skipped_size = skipped_size
        self.skipped_excluded = skipped_excluded
        self.special = special
        self.errors = errors
        self.bytes_read = bytes_read
        self.hits = [] if hits is None else hits
        self.seconds = seconds
        self.algorithms = algorithms
        self.hashed = hashed
        self.resumed_units = resumed_units
        self.resumed_bytes = resumed_bytes
        self.restarted = restarted
        self.misses = misses
        self.pdq = pdq
        self.pdq_unavailable = pdq_unavailable
        self.images_hashed = images_hashed
        self.images_low_quality = images_low_quality
        self.images_too_large = images_too_large

    @property
    def throughput(self) -> float:
        """Bytes read per second by this run, in MB/s (10**6 bytes)."""
        n = self.bytes_read - self.resumed_bytes
        return n / self.seconds / 1e6 if self.seconds > 0 else 0.0


class ScanInterrupted(KeyboardInterrupt):
    """A scan stopped by Ctrl-C (or a KeyboardInterrupt raised by a signal
    handler) while it read files.

    Parameters
    ----------
    report : ScanReport
        What the scan had done when it stopped (files read, hits...).

    Attributes
    ----------
    report : ScanReport
        As given.
    """

    def __init__(self, report: ScanReport) -> None:
        super().__init__()
        self.report = report


def is_interrupt(exc: BaseException) -> bool:
    """Whether exc is Ctrl-C (or SIGTERM's KeyboardInterrupt), also when it
    landed while a future's result was awaited: Condition.wait then fails to
    re-acquire its lock, and the ``with`` block's exit replaces the
    KeyboardInterrupt with "RuntimeError: cannot release un-acquired lock"
    (the interrupt stays its __context__)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    return isinstance(exc, RuntimeError) and isinstance(
        exc.__context__, KeyboardInterrupt
    )
