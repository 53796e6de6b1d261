"""Vectorised reading of delimited text (hashdeep lines, unquoted or simply
quoted CSV): whole chunks are split into lines and fields with numpy, and
columns are decoded without a Python object per record.

The fast path accepts only input whose meaning is certain; whenever a chunk
or batch has anything irregular (a bad digest, a wrong field count, blanks
around a value, a quote inside a field, a bare CR) the callers re-read that
batch with their exact per-line code, which also names the bad line.  The
fast path therefore never reports errors itself and its results equal the
slow path's.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hashlookup.importers._common import bad_label

PAD = 32  # zero bytes around the data, so windows never run off
_POW10 = 10 ** np.arange(17, -1, -1, dtype=np.int64)
_MAX_SIZE_DIGITS = 18
NL, CR, QUOTE = 10, 13, 34


class Text:
    """Complete lines of text as a padded byte array."""

    def __init__(self, data: bytes, quotes: bool = False):
        self.data = data
        self.arr = np.frombuffer(b"\0" * PAD + data + b"\0" * PAD, np.uint8)
        self.end = PAD + len(data)
        arr = self.arr
        self.delim = 0
        self.qpos = None  # positions of quote characters
        if quotes and QUOTE in data:  # (int in bytes: a byte search)
            self.qpos = np.flatnonzero(arr == QUOTE)
        self.newlines = np.flatnonzero(arr == NL)  # every newline
        pos = self.outside(self.newlines)  # the line ends
        self.complete = len(pos)  # lines ended by a newline (outside quotes)
        self.line_ends = pos
        starts = np.concatenate(([PAD], pos + 1))
        ends = np.concatenate((pos, [self.end]))
        if starts[-1] == self.end:  # text ends with a newline
            starts, ends = starts[:-1], ends[:-1]
        if CR in data:
            cr = (ends > starts) & (arr[ends - 1] == CR)
            ends = ends - cr
        self.starts = starts  # line i is arr[starts[i]:ends[i]]
        self.ends = ends

    def outside(self, pos: np.ndarray) -> np.ndarray:
        """The positions in pos that are outside quotes."""
        if self.qpos is None:
            return pos
        inside: np.ndarray = pos[(np.searchsorted(self.qpos, pos) & 1) == 0]
        return inside

    def bare_cr(self) -> bool:
        """Is there a CR that does not end a line (csv would split there)?"""
        if CR not in self.data:
            return False
        arr = self.arr
        pos = np.flatnonzero(arr[: self.end] == CR)
        return bool((arr[pos + 1] != NL).any())

    def line_number(self, first_line: int, pos: int) -> int:
        """Line number of array position pos, the first line being first_line."""
        return first_line + self.data.count(b"\n", 0, pos - PAD)


Bounds = tuple[np.ndarray, np.ndarray]


def split_fields(
    t: Text,
    starts: np.ndarray,
    ends: np.ndarray,
    delim: int,
    ncols: int,
    free: int | None,
) -> list[Bounds] | None:
    """(start, end) arrays of every field of the given lines, or None if a
    line has the wrong number of fields.  `free` is the column (a file name)
    that takes up extra delimiters; the fields after it are found from the
    end of the line."""
    t.delim = delim
    dpos = t.outside(np.flatnonzero(t.arr == delim))
    lo = np.searchsorted(dpos, starts)
    hi = np.searchsorted(dpos, ends)
    count = hi - lo
    need = ncols - 1
    if free is None:
        if not (count == need).all():
            return None
    elif not (count >= need).all():
        return None
    if need and len(dpos) == 0:
        return None
    seps = []
    for j in range(need):
        k = lo + j if free is None or j < free else hi - (need - j)
        seps.append(dpos[k])
    out = []
    for j in range(ncols):
        s = starts if j == 0 else seps[j - 1] + 1
        e = ends if j == need else seps[j]
        out.append((s, e))
    if t.qpos is not None and not _simple_quotes(t, int(starts[0]), int(ends[-1])):
        return None
    return out


def _simple_quotes(t: Text, lo: int, hi: int) -> bool:
    """Does every quote in arr[lo:hi] (whole lines) open a field (after a
    delimiter or a line start) or close one (before a delimiter or a line
    end), in pairs?  Then every field holds no quote or is exactly '"..."'
    with none inside, and the csv module reads the same fields."""
    q = t.qpos
    assert q is not None  # called only for text with quotes
    q = q[np.searchsorted(q, lo) : np.searchsorted(q, hi)]
    if len(q) % 2:
        return False
    arr = t.arr
    before = arr[q[0::2] - 1]
    after = arr[q[1::2] + 1]
    opens = (before == t.delim) | (before == NL) | (before == 0)
    closes = (after == t.delim) | (after == NL) | (after == CR) | (after == 0)
    return bool(opens.all() and closes.all())


def unquote(t: Text, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Field bounds without surrounding quotes."""
    if t.qpos is None:
        return s, e
    arr = t.arr
    quoted = (e - s >= 2) & (arr[s] == QUOTE) & (arr[e - 1] == QUOTE)
    return s + quoted, e - quoted


def hex_column(
    t: Text, s: np.ndarray, e: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(digests, present) of hex fields (empty = absent), or None if a field
    is not exactly 2*width hex characters or empty."""
    length = e - s
    present = length == 2 * width
    k = int(np.count_nonzero(present))
    n = len(s)
    if k + int(np.count_nonzero(length == 0)) != n:
        return None
    if k == 0:
        return np.zeros((n, width), np.uint8), present
    mat = sliding_window_view(t.arr, 2 * width)[s if k == n else s[present]]
    try:
        raw = bytearray.fromhex(mat.tobytes().decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if len(raw) != k * width:
        return None
    arr = np.frombuffer(raw, np.uint8).reshape(k, width)
    if k == n:
        return arr, present
    out = np.zeros((n, width), np.uint8)
    out[present] = arr
    return out, present


def size_column(t: Text, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Sizes from decimal fields (empty = -1), or None if a field is not
    1-18 ASCII digits or empty."""
    length = e - s
    if len(s) == 0:
        return np.empty(0, np.int64)
    if int(length.max()) > _MAX_SIZE_DIGITS:
        return None
    w = _MAX_SIZE_DIGITS
    mat = sliding_window_view(t.arr, w)[e - w]  # the w bytes before e
    mask = np.arange(w) >= (w - length)[:, None]
    digits = mat - np.uint8(48)
    if ((digits > 9) & mask).any():
        return None
    digits = np.where(mask, digits, 0).astype(np.int64)
    out = digits @ _POW10
    out[length == 0] = -1
    return out


def text_column(t: Text, s: np.ndarray, e: np.ndarray) -> list[str | None] | None:
    """The text of fields (record attributes; empty = None, as the csv
    module's path gives them), or None if a field holds a quote (a doubled
    quote inside quotes: the csv module's path unescapes it)."""
    if t.qpos is not None and len(s):
        inside = np.searchsorted(t.qpos, e) - np.searchsorted(t.qpos, s)
        if inside.any():
            return None
    data = t.data
    # one slice and decode per field: no separator is safe to join on
    return [
        data[a:b].decode("utf-8", "replace") or None
        for a, b in zip((s - PAD).tolist(), (e - PAD).tolist(), strict=True)
    ]


def label_column(
    t: Text, s: np.ndarray, e: np.ndarray, prefix: str
) -> dict[str, np.ndarray] | None:
    """{"prefix:value": rows} of a label column (values stripped; empty = no
    label), or None if a value holds a quote or is long (> 64 bytes)."""
    n = len(s)
    if n == 0:
        return {}
    length = e - s
    w = int(length.max())
    if w == 0:
        return {}
    if w > 64:
        return None
    mat = sliding_window_view(t.arr, w)[s].copy()
    mat[np.arange(w) >= length[:, None]] = 0
    if (mat == QUOTE).any():
        return None
    uniq, inverse = np.unique(mat.view(f"S{w}").ravel(), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1]
    groups: dict[str, list[np.ndarray]] = {}
    for u, rows in zip(uniq.tolist(), np.split(order, bounds), strict=True):
        v = u.decode("utf-8", "replace").strip()
        if v:
            label = f"{prefix}:{v}"
            if bad_label(label):
                return None  # the exact reader names the row
            groups.setdefault(label, []).append(rows)
    return {
        k: (v[0] if len(v) == 1 else np.sort(np.concatenate(v))).astype(np.int64)
        for k, v in groups.items()
    }
