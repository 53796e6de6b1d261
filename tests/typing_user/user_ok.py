"""A service developer's use of the public API: must pass mypy --strict and
pyright with no error (tests/test_typing.py)."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import numpy.typing as npt

import hashlookup
import hashlookup.dask
from hashlookup import Dataset, HashIndex, Invalid, Match


def record_id_of(ds: Dataset, digest: str) -> int | None:
    m: Match | None = ds.lookup(digest, only="source:police", exclude=["x:y"])
    if m is None:
        return None
    labels: tuple[str, ...] = m.labels
    size: int | None = m.size
    sha256: str | None = m.sha256
    assert labels is not None and (size is None or size >= 0) and sha256 != ""
    return m.record_id


def many(ds: Dataset, digests: list[str | bytes]) -> list[str]:
    out: list[str] = []
    for item in ds.lookup_many(digests):
        if isinstance(item, Invalid):
            out.append(item.reason)
        elif item is not None:
            out.append(item.algorithm)
    return out


def batch(index: HashIndex, keys: npt.NDArray[np.uint8]) -> int:
    hits: npt.NDArray[np.bool_] = index.contains_many(keys)
    rows: npt.NDArray[np.int64] = index.find_many(keys, threads=2)
    return int(hits.sum()) + int((rows >= 0).sum())


def hits(paths: list[str]) -> dd.DataFrame:
    return hashlookup.dask.match(paths, "known.hlds", column="md5", only="a:b")


def main() -> None:
    report = hashlookup.build_dataset({"police": "police.md5"}, "known.hlds")
    records: int = report.records
    update = hashlookup.update_dataset(
        "known.hlds", add=["more.md5"], skip_invalid=True, bloom_hashes=7
    )
    print(update.generation)
    with hashlookup.open_dataset("known.hlds", suppress=["source:nsrl"]) as ds:
        found = ds.find_row(b"\x00" * 16)
        if found is not None:
            table, row = found
            print(table.width, row)
        print(record_id_of(ds, "d41d8cd98f00b204e9800998ecf8427e"), records)
        wanted = ds.record_filter(ds.table("md5"), only="source:police")
        if wanted is not None:
            print(wanted(3))
        print(len(ds.records_with("source:police")))
    with hashlookup.open_index("known.hlx") as index:
        print("d41d8cd98f00b204e9800998ecf8427e" in index)
        print(batch(index, np.zeros((4, 16), np.uint8)))
