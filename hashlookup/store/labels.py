"""Labels: names mapped to roaring bitmaps of record ids (pyroaring).

On disk a dataset holds two sections: the serialized bitmaps back to back
(portable roaring format) and a JSON index {"labels": [[name, offset,
length, cardinality], ...]}.  pyroaring cannot map a bitmap without copying
it, so each bitmap is deserialized lazily, once, on first use.
"""

from __future__ import annotations

from hashlookup._lookup import LabelSet
from hashlookup.errors import IndexFormatError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import numpy as np
else:
    from hashlookup._lazy import numpy as np

# (a pattern for re, imported by the builders that check labels: opening a
# dataset does not need re, nor json)
LABEL_PATTERN = r"^[^\x00-\x1f]{1,200}$"


def check_label(name: str) -> str:
    """A label is 1..200 printable characters, e.g. "source:police-nl"."""
    import re  # (cached compiled pattern after the first call)

    if not isinstance(name, str) or not re.match(LABEL_PATTERN, name):
        raise ValueError(
            f"invalid label {name!r}: expected 1 to 200 printable "
            "characters such as 'category:1'"
        )
    return name


def encode(labels: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(bitmaps section, index section) for label -> record ids."""
    # Here, not at the top: opening a dataset and a lookup that reads no
    # label (a miss) need no pyroaring (_lookup.LabelSet imports it too).
    import json

    from pyroaring import BitMap

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


class LabelStore(LabelSet):
    """Read side: the label directory of one mapped dataset.

    The bitmaps themselves (read on first use, membership of a record) are
    hashlookup._lookup.LabelSet's, so that a lookup reads a hit's labels
    without leaving C.

    Parameters
    ----------
    buf
        The mapping the sections are in.
    bitmaps_offset, bitmaps_length
        Where the label bitmaps section is in `buf`.
    index
        The parsed JSON label index ``{"labels": [[name, offset, length,
        cardinality], ...]}``.
    records
        The dataset's record count (every record id is below it).
    name
        The file, for error messages.
    """

    def __init__(
        self,
        buf: Any,
        bitmaps_offset: int,
        bitmaps_length: int,
        index: Any,
        records: int,
        name: str,
    ) -> None:
        entries: dict[str, tuple[int, int, int]] = {}
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
            entries[label] = (off, length, count)
        self._set_entries(buf, bitmaps_offset, records, name, entries)

    def names(self) -> list[str]:
        """Every label's name, sorted."""
        return list(self.entries)

    def count(self, label: str) -> int:
        """Number of records carrying `label` (KeyError if there is none)."""
        return self.entries[label][2]
