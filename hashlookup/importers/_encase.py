"""Format "encase": EnCase binary hash sets (.hash), the layout md5deep -m
reads.

    offset 0x000  "HASH\\r\\n\\xff\\x00"      signature (8 bytes)
    offset 0x008  version, padding       two little-endian uint32
    offset 0x010  count                  little-endian uint32: number of hashes
    offset 0x480  entries                18 bytes each: a raw MD5 (16 bytes)
                                         and two bytes md5deep does not read

Each entry is one record with its MD5 (no size, no labels).  The entries
run to the end of the file; a file whose entry area is not a whole number
of entries, or whose count disagrees with the entries present, is damaged
(InputError: nothing after a cut can be trusted).  Read in slices of
batch_size entries, so memory is bounded whatever the file size.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import numpy as np

from hashlookup.errors import InputError
from hashlookup.importers._records import RecordBatch, _Options

MAGIC = b"HASH\r\n\xff\x00"
START = 0x480
ENTRY = 18


def read(opts: _Options) -> Iterator[RecordBatch]:
    """The records of an EnCase hash set (see the module docstring)."""
    name = opts.name
    with opts.open() as f:
        header = f.read(0x14)
        size = os.fstat(f.fileno()).st_size
        if not header.strip() and size == len(header):
            return  # an empty (or blank) file: no records, as in every format
        if not header.startswith(MAGIC) or len(header) < 0x14:
            raise InputError(
                f"{name}: not an EnCase hash set (no 'HASH\\r\\n\\xff\\x00' header)"
            )
        (count,) = struct.unpack_from("<I", header, 0x10)
        area = max(size - START, 0)
        if area % ENTRY:
            raise InputError(
                f"{name}: EnCase hash set of {size} bytes: the entries after "
                f"offset 0x480 are not a whole number of {ENTRY}-byte entries "
                f"(truncated?)"
            )
        if area // ENTRY != count:
            raise InputError(
                f"{name}: EnCase hash set header says {count} hashes, the "
                f"file holds {area // ENTRY} (truncated or damaged)"
            )
        opts.report.algorithm = "md5"
        f.seek(START)
        while True:
            raw = f.read(opts.batch_size * ENTRY)
            if not raw:
                return
            if len(raw) % ENTRY:  # the file shrank while read
                raise InputError(f"{name}: EnCase hash set truncated while read")
            entries = np.frombuffer(raw, np.uint8).reshape(-1, ENTRY)
            batch = RecordBatch.empty(len(entries))
            batch.md5 = np.ascontiguousarray(entries[:, :16])
            batch.has_md5 = np.ones(len(entries), bool)
            yield batch
