"""Perceptual near matches: PDQ hashes in datasets, searched exactly.

A dataset may hold a 256-bit PDQ hash (and its quality) per record;
``Dataset.near`` and ``Dataset.near_many`` find the records within a
Hamming radius of a query, identical to a brute-force scan, through a
multi-index stored in the file (csrc/near/, docs/NEAR.md).
``hashlookup.pdq_hash`` hashes images (extra ``hashlookup[images]``).

This package sits below the store: it knows the search structure and the
query forms, and takes a dataset generation as given.
"""

from hashlookup.near._defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_QUALITY

TYPE_CHECKING = False

if TYPE_CHECKING:
    from hashlookup.near.image import pdq_hash
    from hashlookup.near.index import NearIndex
    from hashlookup.near.query import NearHits, NearMatch

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "DEFAULT_MIN_QUALITY",
    "NearHits",
    "NearIndex",
    "NearMatch",
    "pdq_hash",
]


def __getattr__(name: str) -> object:
    # Imported on first use: the search extension and numpy are not needed
    # to open a dataset or look up a digest (start-up of one-shot commands),
    # and the image hashing imports pdqhash/Pillow.
    if name == "NearIndex":
        from hashlookup.near.index import NearIndex

        return NearIndex
    if name in ("NearHits", "NearMatch"):
        from hashlookup.near import query

        return getattr(query, name)
    if name == "pdq_hash":
        from hashlookup.near.image import pdq_hash

        return pdq_hash
    raise AttributeError(f"module 'hashlookup.near' has no attribute {name!r}")
