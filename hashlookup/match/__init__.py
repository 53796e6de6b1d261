"""Batch matching: inventories (text, CSV/TSV, Parquet) cut into pieces and
looked up in parallel; the same on a Dask cluster (hashlookup.dask)."""
