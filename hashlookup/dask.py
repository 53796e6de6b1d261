"""Distributed matching on a Dask cluster (docs/DASK.md); the work is done
in hashlookup.match.dask."""

from hashlookup.match.dask import OUTPUT_COLUMNS, match, open_cached

__all__ = ["OUTPUT_COLUMNS", "match", "open_cached"]
