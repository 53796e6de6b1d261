"""Reading digest lists: text streams parsed in C, sequences packed in C.

Text input is read in large chunks cut at the last newline (the tail is
carried into the next chunk), and each chunk is parsed by hl_parse_lines in
one call without the GIL, so no Python object is created per digest.  The
same reader serves the builder and the `match` job.

Accepted lines (see docs/API.md): one hex digest, any case, surrounding
blanks ignored; md5sum/sha1sum/sha256sum output; blank lines and lines
starting with '#' are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from hashlookup import _core, algorithms
from hashlookup.errors import InputError
from hashlookup.store import format as _format

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    import numpy as np
else:
    from hashlookup._lazy import numpy as np

CHUNK_SIZE = 16 << 20
MAX_LINE = 1 << 20  # a "line" longer than this is not a digest list
#: a UTF-8 byte-order mark: skipped at the start of every text input
UTF8_BOM = b"\xef\xbb\xbf"


class ParsedChunk:
    """The digests parsed from one chunk of a digest list, with where each
    came from."""

    # A plain class, as the dataclass it was (init, repr, eq): making a
    # dataclass costs a match of a short list more start-up than parsing it.
    __slots__ = ("data", "first_line", "invalid", "keys", "line_numbers",
                 "line_offsets", "lines")  # fmt: skip
    _FIELDS = ("keys", "line_numbers", "line_offsets", "data", "first_line",
               "lines", "invalid")  # fmt: skip

    def __init__(
        self,
        keys: np.ndarray,  # (n, width) uint8
        line_numbers: np.ndarray | None,  # int64, 1-based line of each key
        line_offsets: np.ndarray | None,  # int64, offset of each key's line in data
        data: bytes,  # the chunk's text (complete lines)
        first_line: int,  # 1-based number of the chunk's first line
        lines: int,  # lines in the chunk
        invalid: int,  # bad lines skipped
    ) -> None:
        self.keys = keys
        self.line_numbers = line_numbers
        self.line_offsets = line_offsets
        self.data = data
        self.first_line = first_line
        self.lines = lines
        self.invalid = invalid

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in self._FIELDS)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ParsedChunk)
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # as a dataclass with eq


class LineTooLong(InputError):
    """A line exceeds MAX_LINE (the reader does not know its number;
    iter_parsed re-raises with it)."""


def quote_token(token: bytes) -> str:
    """A bad input token as error messages show it.

    Parameters
    ----------
    token : bytes
        The offending text (undecodable bytes are shown as escapes).

    Returns
    -------
    str
        Its first 80 characters quoted with ``repr``, with "..." when
        longer.

    Examples
    --------
    >>> quote_token(b"xyz")
    "'xyz'"
    """
    text = token[:80].decode("utf-8", "backslashreplace")
    return repr(text + ("..." if len(token) > 80 else ""))


def invalid_message(token: bytes, width: int, algorithm: str) -> str:
    """Why `token` is not a digest of `width` bytes, as error messages say it.

    Parameters
    ----------
    token : bytes
        The line's text that is not a digest.
    width : int
        The expected digest width in bytes.
    algorithm : str
        The expected algorithm's name ("md5", ... or "raw").

    Returns
    -------
    str
        "expected 32 hex characters (md5), got ...", naming a digest of
        another algorithm ("mixed digest lengths") or non-hex text.

    Examples
    --------
    >>> invalid_message(b"xyz", 16, "md5")
    "expected 32 hex characters (md5), got 'xyz'"
    """
    want = 2 * width
    label = f"{want} hex characters ({algorithm})"
    stripped = token.lstrip(b"\\")
    if len(stripped) != want:
        other = algorithms.HEX_WIDTH.get(len(stripped))
        if other and is_hex(stripped):
            name = _format.ALGORITHM_BY_WIDTH[other]
            return (
                f"mixed digest lengths: expected {label} like the first "
                f"digest, got {len(stripped)} ({name}) {quote_token(token)}"
            )
        return f"expected {label}, got {quote_token(token)}"
    return f"expected {label}, got non-hex text {quote_token(token)}"


def is_hex(b: bytes) -> bool:
    """Whether `b` is hex text of whole bytes (any case, even length).

    Parameters
    ----------
    b : bytes
        The text to test.

    Returns
    -------
    bool
        True for ASCII hex digits of an even count.
    """
    try:
        bytes.fromhex(b.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return len(b) % 2 == 0


def parse_chunk(
    data: bytes,
    width: int,
    *,
    algorithm: str = "raw",
    skip_invalid: bool = False,
    first_line: int = 1,
    name: str = "<input>",
    want_lines: bool = False,
) -> ParsedChunk:
    """Parse complete lines of digest text.

    Raises InputError "name:line: message" at the first bad line unless
    skip_invalid, in which case bad lines are counted.
    """
    # Every key takes 2*width characters and a line end, except the last.
    cap = len(data) // (2 * width + 1) + 1
    out = np.empty((cap, width), dtype=np.uint8)
    idx = np.empty(cap, dtype=np.int64) if want_lines else None
    offs = np.empty(cap, dtype=np.int64) if want_lines else None
    (status, n, lines, invalid, err_line, err_off, err_len, _err_status) = (
        _core.parse_lines(
            data, width, MAX_LINE, out.reshape(-1), idx, offs, skip_invalid
        )
    )
    if status == _core.ETOOLONG:
        raise InputError(f"{name}:{first_line + err_line}: {too_long_message()}")
    if status != _core.OK:
        token = data[err_off : err_off + err_len]
        raise InputError(
            f"{name}:{first_line + err_line}: "
            f"{invalid_message(token, width, algorithm)}"
        )
    if idx is not None:
        idx = idx[:n] + first_line
    return ParsedChunk(
        out[:n],
        idx,
        offs[:n] if offs is not None else None,
        data,
        first_line,
        lines,
        invalid,
    )


def too_long_message() -> str:
    """The error message for a line longer than MAX_LINE.

    Returns
    -------
    str
        "line longer than 1048576 bytes (not a digest list)".
    """
    return f"line longer than {MAX_LINE} bytes (not a digest list)"


class _DroppedLine:
    """Yielded by iter_line_chunks in place of an over-long line it dropped."""


DROPPED_LINE = _DroppedLine()


def iter_line_chunks(
    f: BinaryIO, name: str, chunk_size: int = CHUNK_SIZE, *, skip_long: bool = False
) -> Iterator[bytes | _DroppedLine]:
    """Yield the stream's content in pieces that end at line boundaries.

    A line longer than MAX_LINE is never held in memory whole: it raises
    LineTooLong, or with skip_long it is read past and DROPPED_LINE is
    yielded in its place.  (The C parser applies the same limit to lines
    inside a chunk, so the outcome does not depend on the chunk size.)
    """
    tail = b""
    dropping = False
    first = True
    while True:
        block = f.read(chunk_size)
        if not isinstance(block, (bytes, bytearray)):
            raise TypeError(
                f"{name}: expected a binary stream, read {type(block).__name__}"
            )
        if first:
            first = False
            if block.startswith(UTF8_BOM):  # as every reader does
                block = block[len(UTF8_BOM) :]
        if not block:
            if dropping:
                yield DROPPED_LINE
            elif tail:
                yield tail
            return
        if dropping:
            nl = block.find(b"\n")
            if nl < 0:
                continue
            dropping = False
            yield DROPPED_LINE
            block = block[nl + 1 :]
        # One copy per chunk: the tail and the block's complete lines joined.
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            tail = tail + block
        else:
            if tail:
                data = b"".join((tail, memoryview(block)[:cut]))
            else:
                data = bytes(block) if cut == len(block) else bytes(block[:cut])
            tail = bytes(block[cut:])
            yield data
        if len(tail) > MAX_LINE:
            if not skip_long:
                raise LineTooLong(f"{name}: {too_long_message()}")
            tail = b""
            dropping = True


def checked_line_chunks(
    f: BinaryIO,
    name: str,
    chunk_size: int,
    skip_long: bool,
    line: Callable[[], int],
    message: str | None = None,
) -> Iterator[bytes | _DroppedLine]:
    """iter_line_chunks, a line longer than MAX_LINE raised as InputError
    "name:N: message" (N = line(), the caller's current line number;
    message defaults to "line longer than MAX_LINE bytes")."""
    chunks = iter_line_chunks(f, name, chunk_size, skip_long=skip_long)
    while True:
        try:
            data = next(chunks)
        except StopIteration:
            return
        except LineTooLong:
            what = message or f"line longer than {MAX_LINE} bytes"
            raise InputError(f"{name}:{line()}: {what}") from None
        yield data


def detect_width(
    data: bytes, name: str, first_line: int, skip_invalid: bool
) -> int | None:
    """Width of the first digest in data (16, 20 or 32), or None if data
    holds no digest line.  A first data line that is no digest is an error
    unless skip_invalid."""
    line_no = first_line
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        raw, pos = data[pos:end], end + 1
        if len(raw) > MAX_LINE:  # the parser says the same of this line
            if not skip_invalid:
                raise InputError(f"{name}:{line_no}: {too_long_message()}")
            line_no += 1
            continue
        token = raw.strip(b" \t\r\v\f")
        if token and not token.startswith(b"#"):
            token = token.split()[0]
            if token.startswith(b"\\"):
                token = token[1:]
            width = algorithms.HEX_WIDTH.get(len(token))
            if width and is_hex(token):
                return width
            if not skip_invalid:
                raise InputError(
                    f"{name}:{line_no}: expected a hex md5, sha1 or sha256 digest "
                    f"(32, 40 or 64 hex characters), got {quote_token(token)}"
                )
        line_no += 1
    return None


def iter_parsed(
    f: BinaryIO,
    width: int | None,
    *,
    algorithm: str | None = None,
    name: str = "<input>",
    skip_invalid: bool = False,
    want_lines: bool = False,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[ParsedChunk]:
    """Parse a text stream chunk by chunk.  With width None the width is
    detected from the first digest line."""
    line = 1
    for data in checked_line_chunks(
        f,
        name,
        chunk_size,
        skip_invalid,
        lambda: line,  # noqa: B023 (the line when raised)
        too_long_message(),
    ):
        if isinstance(data, _DroppedLine):
            yield ParsedChunk(
                np.empty((0, width or 0), np.uint8), None, None, b"", line, 1, 1
            )
            line += 1
            continue
        if width is None:
            width = detect_width(data, name, line, skip_invalid)
            if width is None:  # only blank/comment/invalid lines so far
                chunk_lines = data.count(b"\n") + (not data.endswith(b"\n"))
                invalid = _count_data_lines(data)
                yield ParsedChunk(
                    np.empty((0, 0), np.uint8),
                    None,
                    None,
                    data,
                    line,
                    chunk_lines,
                    invalid,
                )
                line += chunk_lines
                continue
            algorithm = algorithm or _format.ALGORITHM_BY_WIDTH[width]
        chunk = parse_chunk(
            data,
            width,
            algorithm=algorithm or "raw",
            skip_invalid=skip_invalid,
            first_line=line,
            name=name,
            want_lines=want_lines,
        )
        line += chunk.lines
        yield chunk


def _count_data_lines(data: bytes) -> int:
    """Lines that are neither blank nor comments (here: all invalid)."""
    count = 0
    for raw in data.split(b"\n"):
        token = raw.strip(b" \t\r\v\f")
        if token and not token.startswith(b"#"):
            count += 1
    return count


def pack_sequence(
    items: list[object],
    width: int,
    what: str,
    *,
    name: str,
    first_index: int,
    skip_invalid: bool,
) -> tuple[np.ndarray, int]:
    """Pack raw bytes / hex str items into an (n, width) array.

    Returns (keys, invalid).  Errors name the 0-based item index.
    """
    try:
        packed = _core.pack_keys(items, width, what)
        return np.frombuffer(packed, dtype=np.uint8).reshape(-1, width), 0
    except (TypeError, ValueError) as e:
        if not skip_invalid:
            raise InputError(
                f"{name}: {_renumber(str(e), items, first_index)}"
            ) from None
    good = []
    invalid = 0
    for item in items:
        try:
            good.append(_core.pack_keys([item], width, what))
        except (TypeError, ValueError):
            invalid += 1
    data = b"".join(good)
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, width), invalid


def _renumber(msg: str, items: list[object], first_index: int) -> str:
    """Turn "... (item i)" from pack_keys into "item N: ...: 'text'" where N
    counts from the start of the whole sequence, not of the batch."""
    m = re.search(r" \(item (\d+)\)$", msg)
    if not m:
        return msg
    i = int(m.group(1))
    item = items[i]
    shown = ""
    if isinstance(item, str):
        shown = f": {quote_token(item.encode('utf-8', 'backslashreplace'))}"
    elif isinstance(item, (bytes, bytearray)):
        shown = f": {bytes(item[:40])!r}"
    return f"item {i + first_index}: {msg[: m.start()]}{shown}"
