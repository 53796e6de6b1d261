"""Mistakes the types must catch: each line marked ``# E: <mypy code>`` must
get that error from mypy --strict (and some error from pyright), and no
other line may get one (tests/test_typing.py)."""

from __future__ import annotations

import hashlookup
import hashlookup.dask


def main() -> None:
    with hashlookup.open_dataset("known.hlds") as ds:
        m = ds.lookup("d41d8cd98f00b204e9800998ecf8427e")
        print(m.record_id)  # E: union-attr
        if m is not None:
            print(m.recrd_id)  # E: attr-defined
            size: int = m.size  # E: assignment
            print(size)
        ds.lookup(12345)  # E: arg-type
        ds.lookup("d41d8cd98f00b204e9800998ecf8427e", only=7)  # E: arg-type
        for item in ds.lookup_many(["00" * 16]):
            print(item.reason)  # E: union-attr
        n: str = len(ds.records_with("a:b"))  # E: assignment
        print(n)
    hashlookup.open_dataset("known.hlds", require_signature=3.5)  # E: arg-type
    hashlookup.dask.match(["a.csv"], "k.hlds", require_signature=1.5)  # E: arg-type
    hashlookup.update_dataset("k.hlds", skip_invalidd=True)  # E: call-arg
    hashlookup.update_dataset("k.hlds", bloom_hashes="7")  # E: arg-type
