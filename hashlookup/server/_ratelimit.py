"""Per-client token buckets shared by all worker processes, without a lock.

The buckets live in an anonymous shared mapping created by the supervisor
before it forks the workers, so a client's limit holds whichever worker
its connections land on.  No process ever waits for another: a worker that
dies (SIGKILL, the OOM killer) at any instruction cannot wedge the others,
which a shared lock could (a dead holder never releases it).

Single writer per region: the mapping holds one region per worker slot and
a worker writes only its own (a replacement worker takes over the region of
the one it replaces).  A region is an open-addressing table on a 64-bit
hash of the client id (API key id, or the remote address without auth);
an entry is

    (client hash, taken, debt, at, seen)

`taken` counts the requests this slot admitted for the client (it only
grows), `debt` is the client's bucket debt (burst minus tokens) as this
worker computed it at monotonic time `at`, and `seen` is the sum of every
region's `taken` it had read then.  A take() reads the client's entry in
every region, starts from the freshest (largest `at`), lets its debt drain
at `rate` since then, adds what was admitted since it was written (the
sum of `taken` now minus its `seen`: requests admitted concurrently) and
admits if a token is left; then it rewrites its own entry, `at` last.

Precision: the decision of two workers that take() for the same client at
the same instant can each miss the other's request, so a client spread
over W workers can momentarily exceed its burst by at most W - 1 requests;
every admitted request is counted in the end (`taken` never goes back), so
the long-run rate is exact.  A client served by one worker is limited
exactly as by a single bucket.  Entries are rewritten only on admission.

When all probed entries of a region are taken, one whose bucket has
refilled completely (as its writer saw it) is reused: such a client is
indistinguishable from a new one.  A reused entry drops that slot's
`taken` for the old client, which the clamp of `taken - seen` at 0 absorbs
(the old client's debt is carried in the other regions' entries).

Test hook: HASHLOOKUP_TEST_LIMITER_PAUSE=SECONDS makes every take() sleep
that long between reading and writing its entry (fault tests kill a worker
there); bind() reads it in the worker.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import time

SLOTS = 8192
_PROBES = 32
_FIELDS = 5  # hash (uint64 view), taken, debt, at, seen (float64)
_TAKEN, _DEBT, _AT, _SEEN = 1, 2, 3, 4


class RateLimiter:
    """Token buckets: `rate` tokens per second, at most `burst` of them.

    Parameters
    ----------
    rate, burst
        The default bucket (take() may pass a client's own).
    workers
        Number of worker slots; each process writes only the region of the
        slot it was bound to (bind()).
    """

    def __init__(self, rate: float, burst: float, workers: int = 1) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.workers = max(1, int(workers))
        self._mm = mmap.mmap(-1, self.workers * SLOTS * _FIELDS * 8)  # shared
        self._q = memoryview(self._mm).cast("Q")
        self._d = memoryview(self._mm).cast("d")
        # (index in a _known list, offset) of each region
        self._regions = tuple((w + 2, w * SLOTS * _FIELDS) for w in range(self.workers))
        self._own = 2  # this process's region, as a _known index
        # per process: client -> [hash, first probe offset in a region,
        # offset of its entry in each region (-1: none seen)]
        self._known: dict[str, list[int]] = {}
        self._pause = 0.0

    def bind(self, worker: int) -> None:
        """Write into the region of slot `worker` from now on (called in the
        worker process after the fork)."""
        self._own = worker % self.workers + 2
        self._known.clear()
        self._pause = max(
            0.0, float(os.environ.get("HASHLOOKUP_TEST_LIMITER_PAUSE") or 0)
        )

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @staticmethod
    def _hash(client: str) -> int:
        h = int.from_bytes(
            hashlib.blake2b(client.encode(), digest_size=8).digest(), "little"
        )
        return h or 1  # 0 marks a free entry

    def take(
        self, client: str, rate: float | None = None, burst: float | None = None
    ) -> float:
        """Take one token for `client`: 0.0 if allowed, else the seconds to
        wait until a token is available (for Retry-After)."""
        rate = self.rate if rate is None else rate
        burst = (
            max(1.0, 2 * rate)
            if burst is None and rate != self.rate
            else (self.burst if burst is None else burst)
        )
        if rate <= 0:
            return 0.0
        known = self._known.get(client)
        if known is None:
            if len(self._known) >= 65536:
                self._known.clear()
            h = self._hash(client)
            known = self._known[client] = [
                h,
                (h % SLOTS) * _FIELDS,
                *([-1] * self.workers),
            ]
        h, first = known[0], known[1]
        q, d = self._q, self._d
        now = time.monotonic()
        taken = 0.0
        fresh = -1.0
        debt = seen = 0.0
        for r, base in self._regions:
            i = known[r]
            if i < 0 or q[i] != h:
                i = base + first
                v = q[i]  # the first probe, inline: mostly enough
                if v != h:
                    i = -1 if v == 0 else self._locate(h, base)
                known[r] = i
                if i < 0:
                    continue
            at = d[i + _AT]
            if at < 0:  # being claimed by its writer
                continue
            taken += d[i + _TAKEN]
            if at > fresh:
                fresh, debt, seen = at, d[i + _DEBT], d[i + _SEEN]
        if fresh >= 0:
            elapsed = now - fresh
            if elapsed > 0:
                debt = max(0.0, debt - elapsed * rate)
            if taken > seen:
                debt += taken - seen
        if self._pause:
            time.sleep(self._pause)
        if debt + 1.0 > burst:  # less than one token left
            return (debt + 1.0 - burst) / rate
        own = self._own
        i = known[own]
        if i < 0:
            i = known[own] = self._claim(h, now, rate, burst)
        elif d[i + _AT] < 0:  # a predecessor in this slot died claiming it
            d[i + _TAKEN] = d[i + _DEBT] = d[i + _SEEN] = 0.0
        d[i + _TAKEN] += 1.0
        d[i + _DEBT] = debt + 1.0
        d[i + _SEEN] = taken + 1.0
        d[i + _AT] = now  # last: readers take the freshest entry
        return 0.0

    def _locate(self, h: int, base: int) -> int:
        """Offset of the entry of `h` in the region at `base`, or -1.

        Entries are reused, never emptied, so a free one ends the probe."""
        q = self._q
        start = h % SLOTS
        for k in range(_PROBES):
            i = base + ((start + k) % SLOTS) * _FIELDS
            v = q[i]
            if v == h:
                return i
            if v == 0:
                return -1
        return -1

    def _claim(self, h: int, now: float, rate: float, burst: float) -> int:
        """An entry for `h` in this process's region: a free one, else one
        whose bucket has refilled, else the first probed (every probed client
        is throttled: they share it)."""
        q, d = self._q, self._d
        base = self._regions[self._own - 2][1]
        start = h % SLOTS
        spare = -1
        for k in range(_PROBES):
            i = base + ((start + k) % SLOTS) * _FIELDS
            if q[i] == 0:
                spare = i
                break
            if spare < 0 and d[i + _DEBT] - (now - d[i + _AT]) * rate <= 0:
                spare = i  # refilled: reusable
        if spare < 0:
            spare = base + start * _FIELDS
        d[spare + _AT] = -1.0  # readers skip it until it is written
        q[spare] = h
        d[spare + _TAKEN] = 0.0
        d[spare + _DEBT] = 0.0
        d[spare + _SEEN] = 0.0
        return spare


def retry_after(seconds: float) -> str:
    """Whole seconds for a Retry-After header (at least 1)."""
    return str(max(1, math.ceil(seconds)))
