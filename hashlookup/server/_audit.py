"""Audit log of hits: one JSON line per digest found (time, key, digest,
record).  Misses are never written anywhere: a miss is a private file.

Lines are buffered and written with one os.write on an O_APPEND descriptor
per flush (at most every second, or when the buffer fills), so the lines
of several workers appending to one file never interleave within a line.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone


_FLUSH_BYTES = 1 << 16


class AuditLog:
    """Append hit lines to `path` ("-" for stderr)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self._fd = sys.stderr.fileno()
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._buf: list[bytes] = []
        self._size = 0
        self._second = -1
        self._stamp = b""
        self._who: dict[tuple[str | None, str | None], bytes] = {}

    def _key_part(self, key_id: str | None, key_name: str | None) -> bytes:
        """The middle of a line, from the time's "Z" to the digest's quote."""
        # key ids and names are [A-Za-z0-9._@+-] (checked when the keys
        # file is read): no JSON escaping needed
        if len(self._who) > 1024:
            self._who.clear()
        who = self._who[(key_id, key_name)] = (
            f'Z","key":{_q(key_id)},"name":{_q(key_name)},"digest":"').encode()
        return who

    def _now(self) -> tuple[bytes, int]:
        """'{"time":"YYYY-MM-DDTHH:MM:SS.' (UTC) and the milliseconds; the
        date part is formatted once per second (datetime formatting costs
        more than a lookup)."""
        t = time.time()
        s = int(t)
        if s != self._second:
            self._second = s
            self._stamp = datetime.fromtimestamp(s, timezone.utc).strftime(
                '{"time":"%Y-%m-%dT%H:%M:%S.').encode()
        return self._stamp, int((t - s) * 1000)

    def hits(self, key_id: str | None, key_name: str | None,
             entries: list[tuple[str, int, bytes]]) -> None:
        """Log the hits of one request: (digest, generation, record as JSON
        bytes) each; see hit()."""
        for digest, generation, record in entries:
            self.hit(key_id, key_name, digest, generation, record)

    def hit(self, key_id: str | None, key_name: str | None, digest: str,
            generation: int, record: bytes) -> None:
        """Log one hit.  The date and time are rendered once per second, the
        key part once per key, and the record is the JSON already made for
        the answer: a line is one bytes formatting."""
        who = self._who.get((key_id, key_name))
        if who is None:
            who = self._key_part(key_id, key_name)
        stamp, ms = self._now()
        line = b'%s%03d%s%s","generation":%d,"record":%s}\n' % (
            stamp, ms, who, digest.encode("ascii", "replace"), generation, record)
        self._buf.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._size = 0
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def close(self) -> None:
        self.flush()
        if self.path != "-":
            os.close(self._fd)


def _q(text: str | None) -> str:
    return "null" if text is None else f'"{text}"'
