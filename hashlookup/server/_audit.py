"""Audit log of hits: one JSON line per digest found (time, key, digest,
record).  Misses are never written anywhere: a miss is a private file.

Lines are buffered and written with one os.write on an O_APPEND descriptor
per flush (at most every second, or when the buffer fills), so the lines
of several workers appending to one file never interleave within a line.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import time
from typing import TYPE_CHECKING

from hashlookup.server._render import append_audit_line

if TYPE_CHECKING:
    from hashlookup.server._keys import ApiKey


#: The buffer is written out when it holds this much (and every second).
FLUSH_BYTES = 1 << 16
#: Lines kept while the log cannot be written (then the oldest are dropped).
MAX_PENDING = 64 << 20


@functools.lru_cache(maxsize=16)
def generation_part(generation: int) -> bytes:
    """The part of a line between the digest and the record."""
    return b'","generation":%d,"record":' % generation


class AuditLog:
    """Append hit lines to `path` ("-" for stderr).

    Lines go to `buffer` (GET /lookup's hits are appended to it by
    _render.HitRenderer, with `who(key)`; batch hits by hit()); the owner
    calls flush() every second and when it holds FLUSH_BYTES."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self._fd = sys.stderr.fileno()
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.buffer = bytearray()
        #: key -> its part of a line (who(key)); keys hash by identity, and a
        #: reloaded keys file makes new key objects
        self.whos: dict[ApiKey | None, bytes] = {}
        #: why the last write failed (None: it did not); see flush()
        self.problem: str | None = None
        #: lines dropped, unwritten, to keep the buffer within MAX_PENDING
        self.dropped = 0
        self._retry_at = 0.0

    def who(self, key: ApiKey | None) -> bytes:
        """The part of a line that names the key, from after the time to the
        digest's opening quote (cached in `whos`)."""
        who = self.whos.get(key)
        if who is None:
            # key ids and names are [A-Za-z0-9._@+-] (checked when the keys
            # file is read): no JSON escaping needed
            if len(self.whos) > 1024:
                self.whos.clear()
            key_id, name = (key.id, key.name) if key is not None else (None, None)
            who = self.whos[key] = (
                f'"key":{_q(key_id)},"name":{_q(name)},"digest":"'
            ).encode()
        return who

    def hits(self, key: ApiKey | None, entries: list[tuple[str, int, bytes]]) -> None:
        """Log the hits of one request: (digest, generation, record as JSON
        bytes) each; see hit()."""
        for digest, generation, record in entries:
            self.hit(key, digest, generation, record)

    def hit(
        self, key: ApiKey | None, digest: str, generation: int, record: bytes
    ) -> None:
        """Log one hit: the API key that asked (None without keys), the
        digest as asked (written in lowercase), the generation that answered
        and its record (the JSON already made for the answer)."""
        append_audit_line(
            self.buffer, self.who(key), digest, generation_part(generation), record
        )
        if len(self.buffer) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the buffer out.  A write that fails (disk full, a vanished
        mount) does not raise: lookups go on, the lines not written stay in
        the buffer for the next try (a second later; at most MAX_PENDING
        bytes, older whole lines beyond that are dropped and counted in
        `dropped`), and `problem` says what is wrong until a write
        succeeds."""
        buf = self.buffer
        if not buf:
            return
        if self.problem is not None and time.monotonic() < self._retry_at:
            self._bound()
            return
        written = 0
        try:
            # the buffer itself, not a copy of it (a copy cost a hit about
            # as much as writing its line); the view is released before
            # the buffer is cut below
            with memoryview(buf) as data:
                while written < len(data):
                    written += os.write(self._fd, data[written:])
        except OSError as exc:
            self.problem = f"cannot write to {self.path}: {exc.strerror or exc}"
            self._retry_at = time.monotonic() + 1.0
        else:
            self.problem = None
        del buf[:written]
        self._bound()

    def _bound(self) -> None:
        """Drop the oldest whole lines beyond MAX_PENDING bytes."""
        buf = self.buffer
        excess = len(buf) - MAX_PENDING
        if excess <= 0:
            return
        cut = buf.find(b"\n", excess - 1) + 1 or len(buf)
        self.dropped += buf.count(b"\n", 0, cut)
        del buf[:cut]

    def close(self) -> None:
        self._retry_at = 0.0  # a last try, now
        self.flush()
        if self.path != "-":
            os.close(self._fd)


def mode_warning(path: str | None) -> str | None:
    """A warning when the audit log file exists and others may read it (its
    mode has group or other bits), or None.  The log holds the digests of
    hits and their records; the server creates a new file with mode 0600
    but keeps the mode of an existing one (the operator may have reasons)."""
    if path is None or path == "-":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None  # created 0600 at start, or its error is reported then
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o077:
        return None
    mode = stat.S_IMODE(st.st_mode)
    return (
        f"audit log {path} has mode {mode:04o}: users other than its owner may "
        f"read the digests it logs; consider 'chmod 600 {path}'"
    )


def _q(text: str | None) -> str:
    return "null" if text is None else f'"{text}"'
