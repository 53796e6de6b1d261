"""Format "md5deep-size": md5deep / sha1deep / sha256deep output with sizes
(-z): the size right-aligned in ten columns, two blanks, the digest, two
blanks, the file name.

             0  d41d8cd98f00b204e9800998ecf8427e  /data/empty
          1024  0f343b0931126a20f133d67c2b018a3b  /data/a b.txt

Each line is one record: the digest (its length says the algorithm, so
md5deep, sha1deep and sha256deep outputs may be concatenated) and the size.
The -b (bare names), -l (relative paths), -s (silent) and -k variants
change only the name part, which is not stored.  Blank lines and '#'
comments are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hashlookup.importers._lines import Parsed, read_lines
from hashlookup.importers._records import RecordBatch, _Options

_BY_HEX_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}
# As md5deep -m recognises the layout: blanks and digits, then blanks and a
# digest of a stored length followed by a blank or the line end.
_DETECT = re.compile(
    r"^ *[0-9]+[ \t]+([0-9A-Fa-f]{32}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})(\s|$)"
)


def parse_line(line: bytes) -> Parsed:
    """One line -> (algorithm, digest text, size text), None or a message."""
    parts = line.split(None, 2)
    if not parts or parts[0].startswith(b"#"):
        return None
    if len(parts) < 2:
        shown = line[:80].decode("utf-8", "backslashreplace")
        return f"expected size, digest and file name, got {shown!r}"
    size, digest = parts[0], parts[1]
    algo = _BY_HEX_LENGTH.get(len(digest))
    if algo is None:
        shown = digest[:80].decode("utf-8", "backslashreplace")
        return (
            f"expected a digest of 32, 40 or 64 hex characters after the "
            f"size, got {shown!r}"
        )
    return algo, digest, size


def looks_like(line: str) -> bool:
    """Is the first line with content an md5deep -z line?"""
    return _DETECT.match(line) is not None


def read(opts: _Options) -> Iterator[RecordBatch]:
    """The records of md5deep -z output (see the module docstring)."""
    return read_lines(opts, parse_line, sized=True)
