"""An input file opened for reading once: regular files by path, pipes and
other streams (a FIFO, ``<(...)``, a terminal, a socket) through one handle
whose first bytes are kept for format detection and then replayed.

Format detection reads the first HEAD_SIZE bytes and the reader then starts
again from the top; a regular file is simply opened again, but a stream
cannot be: a second open of a FIFO waits for a new writer (for ever), and
``/dev/fd/N`` of a pipe gives the same, already-read pipe.  So a stream is
opened once, its head kept in memory, and the reader gets a file object
that replays the head before reading on.  Seeking is allowed inside the
kept head only (the readers skip a byte-order mark that way).
"""

from __future__ import annotations

import io
import os
import stat

from hashlookup.errors import InputError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

HEAD_SIZE = 64 * 1024  # bytes detect_format looks at


class Source:
    """One input, read once however many times it is opened.

    Parameters
    ----------
    path
        The file's path.
    name
        How error messages name it.
    """

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        self._stream: BinaryIO | None = None
        self._head: bytes | None = None
        self._opened = False
        st = os.stat(path)
        self.regular = stat.S_ISREG(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", path)

    def head(self) -> bytes:
        """The first HEAD_SIZE bytes (fewer for a shorter input)."""
        if self._head is None:
            if self.regular:
                with open(self.path, "rb") as f:
                    self._head = f.read(HEAD_SIZE)
            else:
                stream = self._open_stream()
                parts: list[bytes] = []
                got = 0
                while got < HEAD_SIZE:  # a pipe returns what is there so far
                    block = stream.read(HEAD_SIZE - got)
                    if not block:
                        break
                    parts.append(block)
                    got += len(block)
                self._head = b"".join(parts)
        return self._head

    def open(self) -> BinaryIO:
        """A binary file object reading the input from its first byte.

        A regular file is opened anew on each call; a stream can be opened
        (replayed) once.
        """
        if self.regular:
            return open(self.path, "rb")
        if self._opened:
            raise InputError(
                f"{self.name}: a pipe or other stream can be read only once "
                f"(copy it to a file first)"
            )
        self._opened = True
        head = self.head()
        assert self._stream is not None
        return io.BufferedReader(_Replay(head, self._stream, self.name))

    def close(self) -> None:
        """Close the stream's handle (if one was opened)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _open_stream(self) -> BinaryIO:
        if self._stream is None:
            # closed by close(), after the reader's last read
            self._stream = open(self.path, "rb", buffering=0)  # noqa: SIM115
        return self._stream


class _Replay(io.RawIOBase):
    """``head`` then the rest of ``rest``; seekable within ``head`` until a
    byte past it has been read."""

    def __init__(self, head: bytes, rest: BinaryIO, name: str) -> None:
        super().__init__()
        self._head = head
        self._rest = rest
        self._name = name
        self._pos = 0
        self._past = False  # read beyond the head: no way back

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return not self._past

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        if self._pos < len(self._head):
            n = min(len(view), len(self._head) - self._pos)
            view[:n] = self._head[self._pos : self._pos + n]
            self._pos += n
            return n
        self._past = True
        got = self._rest.readinto(view)  # type: ignore[attr-defined]
        got = got or 0
        self._pos += got
        return int(got)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = (
            offset
            if whence == io.SEEK_SET
            else (self._pos + offset if whence == io.SEEK_CUR else -1)
        )
        if self._past or not 0 <= target <= len(self._head):
            raise io.UnsupportedOperation(
                f"{self._name}: cannot seek in a pipe or other stream "
                f"beyond its first {len(self._head)} bytes"
            )
        self._pos = target
        return target
