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

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hashlookup.importers import _fast
from hashlookup.importers._lines import Parsed, read_lines
from hashlookup.importers._records import ALGORITHMS, RecordBatch, _Options

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


def fast_lines(t: _fast.Text, s: np.ndarray, e: np.ndarray) -> RecordBatch | None:
    """The records of lines laid out as the first one (the digest at the
    same column, two blanks around it, blanks then digits before it), or
    None."""
    first = t.data[int(s[0]) - _fast.PAD : int(e[0]) - _fast.PAD]
    parts = first.split()
    if len(parts) < 3:
        return None
    algo = _BY_HEX_LENGTH.get(len(parts[1]))
    if algo is None:
        return None
    width = ALGORITHMS[algo]
    hexlen = 2 * width
    col = first.find(b"  " + parts[1] + b"  ") + 2  # the digest's column
    if col < 3:
        return None
    if int((e - s).min()) < col + hexlen + 3:  # a name after the digest
        return None
    arr = t.arr
    two = np.frombuffer(b"  ", np.uint8)
    win = sliding_window_view(arr, 2)
    if not ((win[s + col - 2] == two).all() and (win[s + col + hexlen] == two).all()):
        return None
    field = sliding_window_view(arr, col - 2)[s]  # blanks, then digits
    digit = (field - np.uint8(48)) <= 9
    blank = field == 32
    if not ((digit | blank).all() and digit[:, -1].all()):
        return None
    if (np.maximum.accumulate(digit, axis=1) & blank).any():
        return None  # a blank after a digit
    lead = blank.sum(axis=1)
    sizes = _fast.size_column(t, s + lead, s + col - 2)
    got = _fast.hex_column(t, s + col, s + col + hexlen, width)
    if sizes is None or got is None or not got[1].all():
        return None
    batch = RecordBatch.empty(len(s))
    setattr(batch, algo, got[0])
    setattr(batch, "has_" + algo, got[1])
    batch.size = sizes
    return batch


def read(opts: _Options) -> Iterator[RecordBatch]:
    """The records of md5deep -z output (see the module docstring)."""
    return read_lines(opts, parse_line, sized=True, fast=fast_lines)
