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

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hashlookup.importers import _fast
from hashlookup.importers._lines import Parsed, read_lines
from hashlookup.importers._records import ALGORITHMS, RecordBatch, _Options

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


def fast_lines(t: _fast.Text, s: np.ndarray, e: np.ndarray) -> RecordBatch | None:
    """The records of lines laid out as the first one (same name, same
    separator before the digest, no escape or trailing blank), or None."""
    first = t.data[int(s[0]) - _fast.PAD : int(e[0]) - _fast.PAD]
    m = LINE.match(first)
    if m is None or not m.group(1):
        return None
    algo = NAMES.get(m.group(1).upper().replace(b"-", b"").replace(b"_", b""))
    if algo is None:
        return None
    width = ALGORITHMS[algo]
    hexlen = 2 * width
    prefix = first[: first.index(b"(") + 1]
    sep = first[first.rindex(b")") : len(first) - hexlen]
    if sep not in (b") = ", b")= ") or len(first) < hexlen + len(sep):
        return None
    if int((e - s).min()) < len(prefix) + len(sep) + hexlen:
        return None
    arr = t.arr
    want = np.frombuffer(prefix, np.uint8)
    if not (sliding_window_view(arr, len(prefix))[s] == want).all():
        return None
    want = np.frombuffer(sep, np.uint8)
    if not (sliding_window_view(arr, len(sep))[e - hexlen - len(sep)] == want).all():
        return None
    got = _fast.hex_column(t, e - hexlen, e, width)
    if got is None or not got[1].all():
        return None
    batch = RecordBatch.empty(len(s))
    setattr(batch, algo, got[0])
    setattr(batch, "has_" + algo, got[1])
    return batch


def read(opts: _Options) -> Iterator[RecordBatch]:
    """The records of a tagged digest list (see the module docstring)."""
    return read_lines(opts, parse_line, sized=False, fast=fast_lines)
