"""Detection of the formats md5deep/hashdeep -m also read (tagged lines,
md5deep -z, HashKeeper/iLook, NSRL RDS 2.x sets) and the refusal of what
no reader takes (binary files, archives that are no NSRL set), each saying
what the input looks like and which formats are accepted.

detect_format (_readers) calls these around its own rules; each returns a
format name, None (not this one: go on) or raises InputError.
"""

from __future__ import annotations

import os
import zipfile

from hashlookup.errors import InputError

#: what error messages list as accepted (docs/IMPORTERS.md has the table)
ACCEPTED = (
    "accepted: digest lists and md5sum/sha1sum/sha256sum output, BSD/--tag/"
    "openssl lines ('MD5 (name) = <hex>'), md5deep -z output, hashdeep files, "
    "HashKeeper and iLook .hsh CSV, CSV with md5/sha1/sha256 columns, Project "
    "VIC JSON, EnCase .hash sets, NSRL RDS 2.x sets (a directory or .zip "
    "with NSRLFile.txt), NSRL RDSv3 SQLite"
)

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: leading bytes of files that are no hash list, and what to call them
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
    (b"BZh", "bzip2-compressed data (decompress it first)"),
    (b"\xfd7zXZ\x00", "xz-compressed data (decompress it first)"),
    (b"(\xb5/\xfd", "zstd-compressed data (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive (extract it first)"),
    (b"Rar!\x1a\x07", "a RAR archive (extract it first)"),
    (b"%PDF-", "a PDF document"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"PAR1", "a Parquet file"),
    (b"\x89HLX", "a hashlookup dataset or index file"),
)


def detect_path(name: str) -> str | None:
    """ "nsrl-rds2" for a directory holding an RDS 2.x set; InputError for
    any other directory; None for a file."""
    if not os.path.isdir(name):
        return None
    from hashlookup.importers import _rds2

    if _rds2.find_set(name) is None:
        raise InputError(
            f"{name}: a directory without NSRLFile.txt, not an NSRL RDS 2.x set "
            f"(a directory is read only as one); {ACCEPTED}"
        )
    return "nsrl-rds2"


def detect_bytes(name: str, head: bytes, utf16: bool) -> str | None:
    """From the first bytes: "nsrl-rds2" for a zip holding an RDS 2.x set,
    "encase" for an EnCase hash set;
    InputError for other zips, known binary formats and control bytes (NUL)
    in the first line with content; None for text."""
    if head.startswith(_ZIP_MAGIC):
        return _zip(name)
    if head.startswith(b"HASH\r\n\xff\x00"):
        return "encase"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise InputError(f"{name}: {what}, not a known-hash list; {ACCEPTED}")
    if utf16:
        return None
    start = 0
    while start < len(head):  # the first line with content, without splitting all
        end = head.find(b"\n", start)
        end = len(head) if end < 0 else end
        line = head[start:end]
        start = end + 1
        if not line.strip(b" \t\r"):
            continue
        if b"\0" in line and _utf16_without_bom(line):
            raise InputError(
                f"{name}: UTF-16 text without a byte-order mark; convert it "
                f"to UTF-8 (iconv -f UTF-16LE -t UTF-8); {ACCEPTED}"
            )
        if line.translate(None, _NOT_CONTROL):  # a control byte is left
            raise InputError(
                f"{name}: binary data (control bytes such as NUL in its first "
                f"line), not a known-hash list; {ACCEPTED}"
            )
        break
    return None


#: every byte but the control bytes that never occur in text lists
_NOT_CONTROL = bytes(
    c for c in range(256) if (c >= 32 and c != 127) or c in (9, 11, 12, 13)
)


def _utf16_without_bom(line: bytes) -> bool:
    """Every other byte NUL: ASCII text in UTF-16 without a byte-order mark."""
    sample = line[:64]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return even.count(0) == len(even) or odd.count(0) == len(odd)


def _zip(name: str) -> str:
    from hashlookup.importers import _rds2

    try:
        if not zipfile.is_zipfile(name):
            raise zipfile.BadZipFile("no end of central directory")
        found = _rds2.find_set(name)
        if found is not None:
            return "nsrl-rds2"
        with zipfile.ZipFile(name) as zf:
            names = [i.filename for i in zf.infolist()]
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as e:
        raise InputError(
            f"{name}: a damaged zip archive ({e}), not a known-hash list"
        ) from None
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise InputError(
        f"{name}: a zip archive, but not an NSRL RDS 2.x set (no NSRLFile.txt "
        f"among its {len(names)} members: {shown or 'none'}); extract the list "
        f"it holds; {ACCEPTED}"
    )


def detect_line(first: str, first_content: str) -> str | None:
    """From the first line with content (first) and the first one that is
    not a '#' comment (first_content): "hsh", "bsd", "md5deep-size" or None."""
    from hashlookup.importers import _deepsize, _hsh, _tagged

    if not first.startswith("#") and _hsh.kind_of(first) is not None:
        return "hsh"
    if _tagged.looks_like(first_content):
        return "bsd"
    if _deepsize.looks_like(first_content):
        return "md5deep-size"
    return None
