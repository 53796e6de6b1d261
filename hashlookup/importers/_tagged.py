"""Format "bsd": one tagged digest per line, as BSD/macOS md5, coreutils
--tag, shasum --tag and openssl dgst write them.

    MD5 (photos/a.jpg) = d41d8cd98f00b204e9800998ecf8427e     md5sum --tag, md5
    SHA256 (a.jpg) = e3b0c442...                             sha256sum --tag
    MD5(photos/a.jpg)= d41d8cd98f00b204e9800998ecf8427e      openssl dgst -md5
    SHA2-256(a.jpg)= e3b0c442...                             openssl 3 dgst -sha256

The algorithm name (MD5, SHA1, SHA-1, SHA256, SHA-256, SHA2-256; any
case) says which digest the line holds, so one file may mix algorithms;
each line is one record with that digest (no size, no labels; the file
name is not stored).  The file name is everything between the first '('
and the last ')' before '=', so names holding parentheses work.  A leading
backslash (coreutils' mark of an escaped file name) is ignored.  Other
algorithms (SHA512, BLAKE2b...) are not stored: such a line is an invalid
record, named in the error (skipped and counted with skip_invalid).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hashlookup.importers._lines import Parsed, read_lines
from hashlookup.importers._records import RecordBatch, _Options

# name (may be empty: old openssl wrote "(stdin)= hex"), optional blank,
# "(" path ")", optional blank, "=", blanks, the digest, trailing blanks.
LINE = re.compile(rb"^\\?([A-Za-z0-9][A-Za-z0-9_/-]*|) ?\((.*)\) ?= *([^ \t]*)[ \t]*$")

#: algorithm name, upper case without '-' and '_' -> stored algorithm
NAMES = {
    b"MD5": "md5",
    b"SHA1": "sha1",
    b"SHA256": "sha256",
    b"SHA2256": "sha256",  # openssl 3: SHA2-256
}
_BY_HEX_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}


def parse_line(line: bytes) -> Parsed:
    """One line -> (algorithm, digest text, None), None or a message."""
    stripped = line.strip()
    if not stripped or stripped.startswith(b"#"):
        return None
    m = LINE.match(stripped)
    if m is None:
        shown = stripped[:80].decode("utf-8", "backslashreplace")
        return f"not a tagged digest line like 'MD5 (name) = <hex>': {shown!r}"
    name, digest = m.group(1), m.group(3)
    if not name:  # "(stdin)= hex": the length says which
        algo = _BY_HEX_LENGTH.get(len(digest))
        if algo is None:
            return f"no algorithm name and a digest of {len(digest)} characters"
        return algo, digest, None
    algo = NAMES.get(name.upper().replace(b"-", b"").replace(b"_", b""))
    if algo is None:
        shown = name[:40].decode("ascii", "replace")
        return f"{shown} digests are not stored (only md5, sha1 and sha256)"
    return algo, digest, None


def looks_like(line: str) -> bool:
    """Is the first line with content a tagged digest line (any algorithm
    name, a hex digest of 32 characters or more)?"""
    m = LINE.match(line.strip().encode("utf-8", "replace"))
    if m is None:
        return False
    digest = m.group(3)
    return len(digest) >= 32 and all(c in b"0123456789abcdefABCDEF" for c in digest)


def read(opts: _Options) -> Iterator[RecordBatch]:
    """The records of a tagged digest list (see the module docstring)."""
    return read_lines(opts, parse_line, sized=False)
