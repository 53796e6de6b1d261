"""Per-client token buckets shared by all worker processes.

The buckets live in an anonymous shared mapping created by the supervisor
before it forks the workers, so a client's limit holds whichever worker
its connections land on.  A slot is (client hash, tokens, last refill);
a process-shared lock (a POSIX semaphore, about 0.2 us uncontended) makes
each take() atomic.  Slots are found by open addressing on a 64-bit hash
of the client id (API key id, or the remote address without auth); when
all probed slots are taken, a slot whose bucket has refilled completely is
reused: such a client is indistinguishable from a new one.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import multiprocessing
import time

SLOTS = 8192
_PROBES = 32
_FIELDS = 3  # hash (as float64 bits via a uint64 view), tokens, last


class RateLimiter:
    """Token buckets: `rate` tokens per second, at most `burst` of them."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._mm = mmap.mmap(-1, SLOTS * _FIELDS * 8)  # MAP_SHARED | ANONYMOUS
        self._q = memoryview(self._mm).cast("Q")
        self._d = memoryview(self._mm).cast("d")
        self._lock = multiprocessing.get_context("fork").Lock()
        self._hashes: dict[str, int] = {}   # per process: client -> hash

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @staticmethod
    def _hash(client: str) -> int:
        h = int.from_bytes(hashlib.blake2b(client.encode(), digest_size=8).digest(),
                           "little")
        return h or 1  # 0 marks a free slot

    def take(self, client: str, rate: float | None = None,
             burst: float | None = None) -> float:
        """Take one token for `client`: 0.0 if allowed, else the seconds to
        wait until a token is available (for Retry-After)."""
        rate = self.rate if rate is None else rate
        burst = max(1.0, 2 * rate) if burst is None and rate != self.rate else (
            self.burst if burst is None else burst)
        if rate <= 0:
            return 0.0
        h = self._hashes.get(client)
        if h is None:
            if len(self._hashes) >= 65536:
                self._hashes.clear()
            h = self._hashes[client] = self._hash(client)
        q, d = self._q, self._d
        now = time.monotonic()
        with self._lock:
            slot = self._find(h, now, rate, burst)
            i = slot * _FIELDS
            if q[i] != h:  # a new client: a full bucket
                q[i] = h
                d[i + 1] = burst
                d[i + 2] = now
            tokens = min(burst, d[i + 1] + (now - d[i + 2]) * rate)
            d[i + 2] = now
            if tokens >= 1.0:
                d[i + 1] = tokens - 1.0
                return 0.0
            d[i + 1] = tokens
        return (1.0 - tokens) / rate

    def _find(self, h: int, now: float, rate: float, burst: float) -> int:
        q, d = self._q, self._d
        start = h % SLOTS
        spare = -1
        for k in range(_PROBES):
            s = (start + k) % SLOTS
            i = s * _FIELDS
            if q[i] == h:
                return s
            if q[i] == 0:
                return s if spare < 0 else spare
            if spare < 0 and d[i + 1] + (now - d[i + 2]) * rate >= burst:
                spare = s  # refilled: reusable
        if spare >= 0:
            return spare
        return start  # every probed client is throttled: share the first bucket


def retry_after(seconds: float) -> str:
    """Whole seconds for a Retry-After header (at least 1)."""
    return str(max(1, math.ceil(seconds)))
