"""Audit log of hits: one JSON line per digest found (time, key, digest,
record).  Misses are never written anywhere: a miss is a private file.

Lines are buffered and written with one os.write on an O_APPEND descriptor
per flush (at most every second, or when the buffer fills), so the lines
of several workers appending to one file never interleave within a line.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Any

import orjson

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

    def hit(self, key_id: str | None, key_name: str | None, digest: str,
            record: dict[str, Any], generation: int) -> None:
        line = orjson.dumps({
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "key": key_id, "name": key_name, "digest": digest,
            "generation": generation, "record": record}) + b"\n"
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
