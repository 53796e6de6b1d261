"""The PDQ near-search methods of Dataset (a mixin: Dataset's own module
holds its lookups and facts; this one hands near queries to hashlookup.near
over the current generation)."""

from __future__ import annotations

from hashlookup.near._defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_QUALITY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from hashlookup.near import query as _near
    from hashlookup.store.generation import Generation


class NearSearch:
    """Near search over :meth:`current`'s PDQ hashes (mixed into Dataset)."""

    if TYPE_CHECKING:

        def current(self) -> Generation: ...

        def _live(self) -> Generation: ...

    @property
    def has_pdq(self) -> bool:
        """Whether the current generation holds PDQ hashes (near search)."""
        return self._live().pdq is not None

    def near(
        self,
        query: Any,
        max_distance: int = DEFAULT_MAX_DISTANCE,
        *,
        min_quality: int = DEFAULT_MIN_QUALITY,
        only: Any = None,
        exclude: Any = None,
    ) -> list[_near.NearMatch]:
        """The records whose PDQ hash is within `max_distance` bits of `query`.

        Exact: the same records as comparing the query with every hash
        (docs/NEAR.md has the search and its speed).

        Parameters
        ----------
        query : str or bytes-like
            A PDQ hash: 64 hex characters or 32 raw bytes.
        max_distance : int, default 31
            Largest Hamming distance matched, >= 0 (PDQ's usual threshold is
            31; 256 or more matches every hash).
        min_quality : int, default 50
            Hashes of the dataset with a lower quality (0..100) are not
            matched; 0 matches all.
        only, exclude : str or iterable of str, optional
            Label filters, as for :meth:`lookup` (`suppress` always applies).

        Returns
        -------
        list of NearMatch
            Nearest first, then by record id: ``record_id``, ``distance``,
            ``pdq``, ``quality`` and the record's digests, size and labels.

        Raises
        ------
        TypeError
            `query` is not a str or bytes-like, or a parameter not an int.
        ValueError
            A malformed query, a parameter out of range, a dataset without
            PDQ hashes, or a closed dataset.
        IndexFormatError
            The PDQ index is damaged.
        """
        from hashlookup.near import query as _near  # on first use (start-up)

        return _near.near(
            self.current(), query, max_distance, min_quality, only, exclude
        )

    def near_many(
        self,
        queries: Any,
        max_distance: int = DEFAULT_MAX_DISTANCE,
        *,
        min_quality: int = DEFAULT_MIN_QUALITY,
        threads: int | None = None,
        only: Any = None,
        exclude: Any = None,
    ) -> _near.NearHits:
        """Near matches of many PDQ hashes, as flat arrays in query order.

        Parameters
        ----------
        queries : numpy.ndarray or iterable
            A ``(n, 32)`` uint8 array, or an iterable of PDQ hashes (64 hex
            characters or 32 raw bytes each).
        max_distance, min_quality, only, exclude
            As for :meth:`near`.
        threads : int, optional
            Threads to search on (default: one per core); the GIL is
            released while they run.

        Returns
        -------
        NearHits
            ``query`` (position of the query), ``record_id`` and
            ``distance``, int64 arrays: per query nearest first, then by
            record id.

        Raises
        ------
        TypeError, ValueError, IndexFormatError
            As for :meth:`near` (a bad item is named by its position).
        """
        from hashlookup.near import query as _near

        return _near.near_many(
            self.current(), queries, max_distance, min_quality, threads, only, exclude
        )
