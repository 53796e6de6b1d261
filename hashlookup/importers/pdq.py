"""PDQ columns of CSV inputs (docs/NEAR.md): a column named ``pdq`` holds
a record's 256-bit PDQ hash in hex, and ``quality`` or ``pdq_quality`` its
quality (0..100; 100 when there is no such column or the cell is empty).

A PDQ hash rides along with a file's digests: a row needs a digest as
always.  64 hex characters are also a SHA-256, so a column is read as PDQ
only by its name, never guessed from its values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

from hashlookup.importers._common import decode_hex, normalise_name, quote

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
