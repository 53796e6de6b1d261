"""GET /v1/bloom/{algorithm}: the DCSO bloom v1 export of one key table,
built once per generation and shared by the workers through a cache
directory.

The file of a generation is named after its ETag, which is derived from
the generation and the checksums of every section of the dataset file, so
a changed dataset never serves a stale filter and an unchanged one (a
restart, another worker) finds the file already built.  Building takes an
flock on a lock file so that workers asking at the same time build it
once; it runs in a thread (hashlookup.export_bloom releases the GIL in its
numpy work) so the worker keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import os
import weakref
from typing import Any

import xxhash

from hashlookup.builders.bloom import export_bloom


def etag_of(table: Any, generation: int, algorithm: str, fpr: float) -> str:
    """A strong ETag for the filter of `table` (a HashIndex of a dataset)."""
    h = xxhash.xxh3_64()
    for s in table.info()["sections"]:
        h.update(repr(sorted(s.items())).encode())
    h.update(f"{algorithm}/{fpr!r}".encode())
    return f"{generation}-{h.hexdigest()}"


class BloomCache:
    """Filter files in `directory`, one per (algorithm, ETag)."""

    def __init__(self, directory: str, fpr: float) -> None:
        self.directory = directory
        self.fpr = fpr
        # algorithm -> (weak reference to the table, its ETag)
        self._etags: dict[str, tuple[weakref.ref[Any], str]] = {}
        self._building: dict[str, asyncio.Future[str]] = {}

    def etag(self, table: Any, generation: int, algorithm: str) -> str:
        known = self._etags.get(algorithm)
        if known is not None and known[0]() is table:
            return known[1]
        tag = etag_of(table, generation, algorithm, self.fpr)
        self._etags[algorithm] = (weakref.ref(table), tag)
        return tag

    def path(self, algorithm: str, etag: str) -> str:
        return os.path.join(self.directory, f"{algorithm}-{etag}.bloom")

    async def get(
        self, table: Any, algorithm: str, etag: str, metadata: dict[str, Any]
    ) -> str:
        """Path of the built filter (building it if needed)."""
        path = self.path(algorithm, etag)
        if os.path.exists(path):
            return path
        fut = self._building.get(path)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(
                None, self._build, table, algorithm, path, metadata
            )
            self._building[path] = fut
            fut.add_done_callback(lambda _f: self._building.pop(path, None))
        return await asyncio.shield(fut)

    def _build(
        self, table: Any, algorithm: str, path: str, metadata: dict[str, Any]
    ) -> str:
        lock = path + ".lock"
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.exists(path):  # another worker may have built it
                export_bloom(table, path, fpr=self.fpr, metadata=metadata)
                self._drop_stale(algorithm, path)
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        return path

    def _drop_stale(self, algorithm: str, keep: str) -> None:
        """Remove the filters of older generations (readers that still
        stream one keep their open file)."""
        for old in glob.glob(
            os.path.join(glob.escape(self.directory), f"{algorithm}-*.bloom")
        ):
            if old != keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old)
