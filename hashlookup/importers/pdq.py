"""PDQ hashes in inputs (docs/NEAR.md).

* CSV columns: a column named ``pdq`` holds a record's 256-bit PDQ hash in
  hex, and ``quality`` or ``pdq_quality`` its quality (0..100; 100 when
  there is no such column or the cell is empty).  A CSV row needs a digest
  as always.
* Format "pdq": a text list of PDQ hashes, 64 hex characters per line
  (comments and blank lines as in digest lists), each a record of its own
  with quality 100 and no digest.

64 hex characters are also a SHA-256, so PDQ is never guessed: a column is
read as PDQ only by its name, a list only with ``input_format="pdq"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

from hashlookup.importers._common import decode_hex, normalise_name, quote
from hashlookup.importers._records import RecordBatch, _Options

#: normalised header names of the PDQ hash and quality columns
PDQ_NAMES = ("pdq", "pdqhash")
QUALITY_NAMES = ("pdqquality", "quality")


def find_columns(fields: list[str]) -> tuple[int, int | None] | None:
    """(PDQ column, quality column or None) of a CSV header, or None
    when it has no PDQ column (the first column of each name wins)."""
    names = [normalise_name(f) for f in fields]
    pdq = next((j for j, n in enumerate(names) if n in PDQ_NAMES), None)
    if pdq is None:
        return None
    quality = None
    for want in QUALITY_NAMES:  # pdq_quality before a generic quality
        quality = next((j for j, n in enumerate(names) if n == want), None)
        if quality is not None:
            break
    return pdq, quality


def decode(
    hashes: Sequence[Any],
    quality: Sequence[Any] | None,
    what: tuple[str, str],
    bad: dict[int, str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes (n, 32) uint8, present (n,) bool, quality (n,) uint8) of
    the cells of a PDQ column and its quality column; bad cells are added
    to `bad` (row -> message), as the digest columns' are."""
    digests, present = decode_hex(hashes, "sha256", what[0], bad)
    n = len(hashes)
    q = np.full(n, 100, np.uint8)
    if quality is not None:
        for i, v in enumerate(quality):
            s = v.strip() if isinstance(v, str) else v
            if s is None or s == "":
                continue
            try:
                value = int(s)
            except (TypeError, ValueError):
                value = -1
            if not 0 <= value <= 100:
                bad.setdefault(i, f"{what[1]}: PDQ quality {quote(s)} is not 0..100")
                continue
            q[i] = value
    return digests, present, q


def read(opts: _Options) -> Iterator[RecordBatch]:
    """Format "pdq": the hashes of a text list as record batches (the
    digest-list line parser, held to 64 hex characters a line)."""
    from hashlookup.importers import digests as _parse

    report = opts.report
    with opts.open() as f:  # a pipe is read once
        if f.read(3) != b"\xef\xbb\xbf":  # a UTF-8 byte-order mark is skipped
            f.seek(0)
        for chunk in _parse.iter_parsed(
            f, 32, algorithm="pdq", name=opts.name, skip_invalid=opts.skip_invalid
        ):
            if chunk.invalid:
                report.invalid += chunk.invalid
            keys = chunk.keys
            for start in range(0, keys.shape[0], opts.batch_size):
                part = keys[start : start + opts.batch_size]
                k = part.shape[0]
                batch = RecordBatch.empty(k)
                batch.pdq = np.array(part, dtype=np.uint8)
                batch.has_pdq = np.ones(k, bool)
                batch.pdq_quality = np.full(k, 100, np.uint8)
                yield batch
