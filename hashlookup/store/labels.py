"""Labels: names mapped to roaring bitmaps of record ids (pyroaring).

On disk a dataset holds two sections: the serialized bitmaps back to back
(portable roaring format) and a JSON index {"labels": [[name, offset,
length, cardinality], ...]}.  pyroaring cannot map a bitmap without copying
it, so each bitmap is deserialized lazily, once, on first use.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pyroaring import BitMap, FrozenBitMap

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

from hashlookup._core import labels_of
from hashlookup.errors import IndexFormatError

LABEL_RE = re.compile(r"^[^\x00-\x1f]{1,200}$")


def check_label(name: str) -> str:
    """A label is 1..200 printable characters, e.g. "source:police-nl"."""
    if not isinstance(name, str) or not LABEL_RE.match(name):
        raise ValueError(
            f"invalid label {name!r}: expected 1 to 200 printable "
            "characters such as 'category:1'"
        )
    return name


def encode(labels: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(bitmaps section, index section) for label -> record ids."""
    blobs = []
    entries = []
    offset = 0
    for name in sorted(labels):
        bm = BitMap(np.asarray(labels[name], dtype=np.uint32))
        bm.run_optimize()
        blob = bm.serialize()
        entries.append([check_label(name), offset, len(blob), len(bm)])
        blobs.append(blob)
        offset += len(blob)
    index = json.dumps({"labels": entries}, separators=(",", ":")).encode()
    return b"".join(blobs), index


class LabelStore:
    """Read side: the label directory of one mapped dataset."""

    def __init__(
        self,
        buf: Any,
        bitmaps_offset: int,
        bitmaps_length: int,
        index: Any,
        records: int,
        name: str,
    ) -> None:
        self._buf = buf
        self._base = bitmaps_offset
        self._name = name
        self._records = records
        self._cache: dict[str, FrozenBitMap] = {}
        self._pairs: tuple[tuple[str, FrozenBitMap], ...] | None = None
        self._interned: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.entries: dict[str, tuple[int, int, int]] = {}
        if not isinstance(index, dict) or not isinstance(index.get("labels"), list):
            raise IndexFormatError(f"{name}: label index is not {{'labels': [...]}}")
        for i, e in enumerate(index["labels"]):
            if (
                not isinstance(e, list)
                or len(e) != 4
                or not isinstance(e[0], str)
                or not all(isinstance(x, int) and x >= 0 for x in e[1:])
            ):
                raise IndexFormatError(f"{name}: label index entry {i} is malformed")
            label, off, length, count = e
            if off + length > bitmaps_length:
                raise IndexFormatError(
                    f"{name}: label {label!r} lies outside the label bitmaps section"
                )
            if count > records:
                raise IndexFormatError(
                    f"{name}: label {label!r} has more records than the dataset"
                )
            self.entries[label] = (off, length, count)

    def names(self) -> list[str]:
        return list(self.entries)

    def count(self, label: str) -> int:
        return self.entries[label][2]

    def bitmap(self, label: str) -> FrozenBitMap:
        """Record ids carrying label (KeyError if the dataset has no such label)."""
        bm = self._cache.get(label)
        if bm is not None:
            return bm
        off, length, count = self.entries[label]
        start = self._base + off
        try:
            bm = FrozenBitMap.deserialize(bytes(self._buf[start : start + length]))
        except Exception as e:  # pyroaring raises ValueError on bad input
            raise IndexFormatError(
                f"{self._name}: label {label!r}: corrupt bitmap ({e})"
            ) from None
        if len(bm) != count or (count and bm.max() >= self._records):
            raise IndexFormatError(
                f"{self._name}: label {label!r}: bitmap does not match the label index"
            )
        self._cache[label] = bm
        return bm

    def of(self, record_id: int) -> tuple[str, ...]:
        """Labels of one record, sorted by name.

        One membership test per label (pyroaring, ~50 ns each), so a hit's
        labels cost O(labels).  A per-record table would make it O(1) but
        costs memory and open time O(records); datasets carry few labels
        (sources, categories), see docs/DATASETS.md.  The same label tuples
        come back again and again: they are interned, so that callers that
        cache something per tuple (the server's JSON) find them by identity."""
        return labels_of(record_id, self.pairs(), self._interned)

    def pairs(self) -> tuple[tuple[str, FrozenBitMap], ...]:
        """(name, bitmap) of every label, sorted by name (read once)."""
        pairs = self._pairs
        if pairs is None:
            pairs = self._pairs = tuple(
                (name, self.bitmap(name)) for name in self.entries
            )
        return pairs

    def union(self, labels: tuple[str, ...]) -> FrozenBitMap:
        """Records carrying any of labels (unknown labels match nothing)."""
        maps = [self.bitmap(x) for x in labels if x in self.entries]
        return FrozenBitMap.union(FrozenBitMap(), *maps) if maps else FrozenBitMap()
