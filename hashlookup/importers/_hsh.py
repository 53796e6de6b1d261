"""Format "hsh": the CSV hash sets of HashKeeper and iLook, read by the CSV
reader with their columns named.

    "file_id","hashset_id","file_name","directory","hash","file_size",...   HashKeeper
    V1Hash,HashType,SetDescription,FileName,FilePath,FileSize                iLook v1
    V3Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,HashSHA384,...     iLook v3
    V4Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,...,ModTime,...    iLook v4

HashKeeper's `hash` is an MD5 and `file_size` the size; iLook's V1Hash,
V3Hash and V4Hash are MD5s, HashSHA1 and HashSHA256 the other digests (an
empty cell is an absent digest) and FileSize the size.  SHA-384/512
columns, names and dates are not stored.  The kind read goes to
ImportReport.version ("hashkeeper", "ilook1", "ilook3", "ilook4").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from hashlookup.errors import InputError
from hashlookup.importers import _csv
from hashlookup.importers._common import first_line, normalise_name, sniff_encoding
from hashlookup.importers._records import RecordBatch, _Options

HEAD_SIZE = 64 * 1024  # enough for any header line

#: kind -> (what identifies its header, columns read)
KINDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "hashkeeper": (
        ("fileid", "hashsetid", "hash", "filesize"),
        {"md5": "hash", "size": "file_size"},
    ),
    "ilook1": (("v1hash", "filesize"), {"md5": "V1Hash", "size": "FileSize"}),
    "ilook3": (
        ("v3hash", "hashsha1", "hashsha256", "filesize"),
        {
            "md5": "V3Hash",
            "sha1": "HashSHA1",
            "sha256": "HashSHA256",
            "size": "FileSize",
        },
    ),
    "ilook4": (
        ("v4hash", "hashsha1", "hashsha256", "filesize"),
        {
            "md5": "V4Hash",
            "sha1": "HashSHA1",
            "sha256": "HashSHA256",
            "size": "FileSize",
        },
    ),
}


def kind_of(header: str) -> str | None:
    """The kind of hash set whose header line this is, or None."""
    for sep in (",", "\t"):
        fields = {normalise_name(f) for f in header.split(sep)}
        for kind, (marks, _) in KINDS.items():
            if all(m in fields for m in marks):
                return kind
    return None


def read(opts: _Options) -> Iterator[RecordBatch]:
    """The records of a HashKeeper or iLook .hsh file."""
    if opts.source is not None:  # read once: a pipe's head is kept there
        head = opts.source.head()
    else:
        with open(opts.path, "rb") as f:
            head = f.read(HEAD_SIZE)
    encoding, bom = sniff_encoding(head)
    header = first_line(head[bom:].decode(encoding, "replace"))
    if not header:
        return iter(())  # an empty file: no records
    kind = kind_of(header)
    if kind is None:
        raise InputError(
            f"{opts.name}: not a HashKeeper or iLook hash set (its first line "
            f"is not their CSV header)"
        )
    opts.report.version = kind
    # The CSV reader with the set's columns named (it finds them by name,
    # in any order, and validates every row as any CSV).
    csv_opts = dataclasses.replace(
        opts, columns=dict(KINDS[kind][1]), label_columns=None
    )
    return _csv.read(csv_opts)
