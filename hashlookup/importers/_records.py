"""Record batches, import reports and the options every format reader gets.

A *record* is one file known to a list: up to three digests (md5, sha1,
sha256; at least one), a size (-1 when unknown) and labels.  Importers
stream records in columnar batches (RecordBatch) so that the dataset builder
never holds a whole multi-GB input in memory and no Python object is made
per digest on the fast paths.  See docs/IMPORTERS.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hashlookup import algorithms
from hashlookup.importers._source import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    import numpy as np
else:  # the command line reads FORMATS (via _readers) without needing numpy
    from hashlookup._lazy import numpy as np

#: digest width in bytes of each stored algorithm
ALGORITHMS = algorithms.WIDTH


@dataclass
class RecordBatch:
    """Columnar batch of records (one record = one file known to a list)."""

    md5: np.ndarray  # (n, 16) uint8, zeros where absent
    sha1: np.ndarray  # (n, 20) uint8
    sha256: np.ndarray  # (n, 32) uint8
    has_md5: np.ndarray  # (n,) bool
    has_sha1: np.ndarray  # (n,) bool
    has_sha256: np.ndarray  # (n,) bool
    size: np.ndarray  # (n,) int64, -1 = unknown
    labels: dict[str, np.ndarray]  # label name (e.g. "category:1") -> int64 row
    #                                indices within this batch (sorted, unique)
    # PDQ perceptual hashes (docs/NEAR.md), None when the input has none:
    pdq: np.ndarray | None = None  # (n, 32) uint8, zeros where absent
    has_pdq: np.ndarray | None = None  # (n,) bool
    pdq_quality: np.ndarray | None = None  # (n,) uint8, 0..100
    attributes: dict[str, list[str | None]] = field(default_factory=dict)
    #                                attribute name -> one value per row (None:
    #                                none); docs/DATASETS.md

    def __len__(self) -> int:
        return int(self.size.shape[0])

    def digests(self, algorithm: str) -> tuple[np.ndarray, np.ndarray]:
        """(digests, present) for "md5", "sha1" or "sha256"."""
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown algorithm {algorithm!r}; expected one of "
                f"{', '.join(ALGORITHMS)}"
            )
        return getattr(self, algorithm), getattr(self, "has_" + algorithm)

    @classmethod
    def empty(cls, n: int = 0) -> RecordBatch:
        """A batch of n records with no digests, unknown sizes and no labels
        (importers fill it in)."""
        return cls(
            md5=np.zeros((n, 16), np.uint8),
            sha1=np.zeros((n, 20), np.uint8),
            sha256=np.zeros((n, 32), np.uint8),
            has_md5=np.zeros(n, bool),
            has_sha1=np.zeros(n, bool),
            has_sha256=np.zeros(n, bool),
            size=np.full(n, -1, np.int64),
            labels={},
        )


#: invalid-record messages kept in ImportReport.examples
MAX_EXAMPLES = 10


@dataclass
class ImportReport:
    """What one import read.  Pass an instance to iter_records(report=...);
    it is filled in while the batches are consumed."""

    records: int = 0  # records yielded
    invalid: int = 0  # bad records skipped (skip_invalid=True)
    format: str = ""  # detected or given format
    path: str = ""
    digests: dict[str, int] = field(default_factory=dict)  # algorithm -> records
    #                           that have that digest
    sized: int = 0  # records with a known size
    no_digest: int = 0  # VICS Media / MediaFiles without any digest (not
    #                           records, not errors)
    duplicates: int = 0  # VICS MediaFiles dropped as repeats within a Media
    media: int = 0  # VICS Media objects read
    version: str = ""  # VICS data model version ("1.3", "2.0", ...)
    algorithm: str = ""  # "text": the file's one algorithm
    columns: dict[str, str] = field(default_factory=dict)  # csv, hashdeep,
    #                           sqlite: field -> column used
    examples: list[str] = field(default_factory=list)  # first MAX_EXAMPLES
    #                           messages of skipped invalid records
    tables: dict[str, tuple[list[str], dict[str, dict[str, str]]]] = field(
        default_factory=dict
    )  # code tables (NSRL products, OSes, manufacturers): name -> (columns,
    #                           code -> row); docs/IMPORTERS.md

    def _count(self, batch: RecordBatch) -> None:
        self.records += len(batch)
        for algo in ALGORITHMS:
            k = int(np.count_nonzero(getattr(batch, "has_" + algo)))
            if k:
                self.digests[algo] = self.digests.get(algo, 0) + k
        self.sized += int(np.count_nonzero(batch.size >= 0))

    def _skip(self, count: int, messages: list[str]) -> None:
        self.invalid += count
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(messages[:room])


@dataclass
class _Options:
    """What every format reader gets (see iter_records)."""

    path: str
    name: str  # how errors name the file
    columns: dict[str, str] | None
    label_columns: dict[str, str] | None
    skip_invalid: bool
    batch_size: int
    report: ImportReport
    source: Source | None = None  # the input, read once (None: open path)
    attributes: dict[str, str] | None = None  # attribute name -> column (CSV)
    attributes_optional: bool = False  # keep only those the header has

    def open(self) -> BinaryIO:
        """The input as a binary file object, from its first byte (a pipe's
        head, read for format detection, is replayed)."""
        if self.source is not None:
            return self.source.open()
        return open(self.path, "rb")


#: the first bytes of every SQLite database file
SQLITE_MAGIC = b"SQLite format 3\x00"
