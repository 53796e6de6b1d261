"""Prometheus metrics of the lookup service, summed over the workers.

Each worker counts into its own slot of an anonymous shared mapping made
by the supervisor before the fork, so no lock is needed (one writer per
slot) and GET /metrics, served by any worker, adds the slots up.  Counters
survive the restart of a crashed worker (the slot belongs to the
supervisor).  Nothing here records which digests were asked.

The same mapping carries what the supervisor and the workers tell each
other (each field has one writer, so a process that dies mid-write cannot
wedge anyone): every worker's heartbeat (monotonic time, written from its
event loop, read by the supervisor's watchdog) and the supervisor's
restart state (how many workers wait for a restart with back-off, and
when the next one starts), which any worker reports in /readyz.

limit() counts a connection or upload cut off by a deadline or a cap
(LIMITS) and logs it, at most one line per LOG_EVERY seconds per worker
with the counts since the last line and the last client's address (never a
path or a digest).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import mmap
import time

ENDPOINTS = (
    "lookup",
    "bulk",
    "info",
    "check",
    "bloom",
    "pdq",
    "hma",
    "ping",
    "healthz",
    "readyz",
    "metrics",
    "openapi",
    "unsupported",
    "other",
)
CODES = (200, 304, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 431, 500, 501, 503)
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

#: Why a connection or an upload was cut off (hashlookup_limits_total).
LIMITS = {
    "head_deadline": "request head not complete within --head-timeout",
    "body_deadline": "request body not complete within --body-timeout",
    "send_deadline": "client stopped reading a response for --body-timeout",
    "worker_connections": "connection refused: --max-connections reached",
    "client_connections": "connection refused: --max-client-connections reached",
    "upload_memory": "upload refused: --upload-memory reached",
    "batch_items": "batch refused while reading: more items than --max-batch",
    "head_size": "request head over the size limit",
    "idle": "idle keep-alive connection closed after --idle-timeout",
    "max_age": "connection closed after --connection-max-age",
}
#: Reasons that are normal housekeeping: counted, not logged.
_QUIET = ("idle", "max_age")
#: Seconds between two log lines about limits of one worker.
LOG_EVERY = 10.0

log = logging.getLogger("hashlookup.server")

_E = {e: i for i, e in enumerate(ENDPOINTS)}
_L = {r: i for i, r in enumerate(LIMITS)}
_C = {c: i for i, c in enumerate(CODES)}
_NB = len(BUCKETS) + 1  # + the +Inf bucket
# per worker: requests[endpoint][code] (+1 column for other codes),
# histogram[endpoint][bucket], sum[endpoint], hits, misses, invalid,
# generation, dataset build time, started, heartbeat.  (Digests checked is the sum of
# hits, misses and invalid: not counted apart, one update less per lookup;
# and hits of GET /lookup are its 200 answers, see render.)
_REQ = 0
_HIST = _REQ + len(ENDPOINTS) * (len(CODES) + 1)
_SUM = _HIST + len(ENDPOINTS) * _NB
_HITS = _SUM + len(ENDPOINTS)
_MISSES, _INVALID = _HITS + 1, _HITS + 2
_GEN, _BUILT, _STARTED = _HITS + 3, _HITS + 4, _HITS + 5
_BEAT = _STARTED + 1
_OPEN = _BEAT + 1  # open connections (a gauge)
_LIMIT = _OPEN + 1  # one counter per LIMITS reason
# PDQ queries (POST /v1/pdq and HMA's lookups), those with a match, matches
_PDQ = _LIMIT + len(LIMITS)
_WIDTH = _PDQ + 3
# after the worker slots, written by the supervisor only: workers waiting
# for a restart with back-off, monotonic time of the next start, worker
# deaths in the last minute
_DOWN, _NEXT, _DEATHS = 0, 1, 2
_SUPERVISOR = 3


class Metrics:
    """Shared counters for `workers` worker slots."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._mm = mmap.mmap(-1, (max(1, workers) * _WIDTH + _SUPERVISOR) * 8)
        self._all = memoryview(self._mm).cast("d")
        self._sup = max(1, workers) * _WIDTH
        self._base = 0
        self._miss_slot = _MISSES
        self.worker = 0
        # per process: reason -> count not logged yet; last client; when
        self._unlogged: dict[str, int] = {}
        self._last_client = ""
        self._logged_at = -LOG_EVERY
        self._flush_due = False

    def bind(self, worker: int) -> None:
        """Count into slot `worker` from now on (called in the worker)."""
        self._base = worker * _WIDTH
        self._miss_slot = self._base + _MISSES
        self.worker = worker
        self._all[self._base + _STARTED] = time.time()
        self._all[self._base + _OPEN] = 0

    def connections(self, open_now: int) -> None:
        """Record this worker's number of open connections."""
        self._all[self._base + _OPEN] = open_now

    def worker_gone(self, worker: int) -> None:
        """Zero the open-connection gauge of a dead worker's slot (called by
        the supervisor: the kernel closed its connections, and the gauge
        would otherwise show them until a replacement binds the slot)."""
        self._all[worker * _WIDTH + _OPEN] = 0

    def limit(self, reason: str, client: str | None = None) -> None:
        """Count a connection or upload cut off for `reason` (a LIMITS key)
        and log it, at most one line per LOG_EVERY seconds (with the counts
        since the last line); idle and max-age closes are only counted."""
        self._all[self._base + _LIMIT + _L[reason]] += 1
        if reason in _QUIET:
            return
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        if client:
            self._last_client = client
        if self.flush_limits() and not self._flush_due:
            try:  # log the rest LOG_EVERY seconds later, even if all is quiet
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush_due = True
            loop.call_later(LOG_EVERY, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_due = False
        self.flush_limits(force=True)

    def flush_limits(self, force: bool = False) -> bool:
        """Log the limits counted since the last line, if LOG_EVERY seconds
        have passed (or `force`); True if there is something left to log."""
        if not self._unlogged:
            return False
        now = time.monotonic()
        if not force and now - self._logged_at < LOG_EVERY:
            return True
        self._logged_at = now
        parts = "; ".join(f"{n} x {LIMITS[r]}" for r, n in self._unlogged.items())
        self._unlogged.clear()
        log.warning(
            "worker %d: limits: %s (last client %s)",
            self.worker,
            parts,
            self._last_client or "?",
        )
        return False

    def request(self, endpoint: str, code: int, seconds: float) -> None:
        a, b, e = self._all, self._base, _E.get(endpoint, len(ENDPOINTS) - 1)
        a[b + _REQ + e * (len(CODES) + 1) + _C.get(code, len(CODES))] += 1
        a[b + _HIST + e * _NB + bisect.bisect_left(BUCKETS, seconds)] += 1
        a[b + _SUM + e] += seconds

    def digests(self, hits: int, misses: int, invalid: int) -> None:
        a, b = self._all, self._base
        a[b + _HITS] += hits
        a[b + _MISSES] += misses
        a[b + _INVALID] += invalid

    def pdq(self, queries: int, matched: int, matches: int) -> None:
        """Count PDQ queries, those with at least one match, and matches."""
        a, b = self._all, self._base + _PDQ
        a[b] += queries
        a[b + 1] += matched
        a[b + 2] += matches

    def miss(self) -> None:
        """digests(0, 1, 0) for a single lookup."""
        self._all[self._miss_slot] += 1

    def dataset(self, generation: int, built: float) -> None:
        self._all[self._base + _GEN] = generation
        self._all[self._base + _BUILT] = built

    def beat(self) -> None:
        """Record that this worker's event loop runs (called every 0.1 s)."""
        self._all[self._base + _BEAT] = time.monotonic()

    def heartbeat(self, worker: int) -> float:
        """Monotonic time of the last beat() of slot `worker` (0.0: none)."""
        return self._all[worker * _WIDTH + _BEAT]

    def supervisor_state(self, down: int, next_start: float, deaths: int) -> None:
        """Publish the supervisor's restart state (called by the supervisor):
        `down` workers wait for a restart with back-off, the next starts at
        monotonic time `next_start`; `deaths` in the last minute."""
        a, s = self._all, self._sup
        a[s + _NEXT] = next_start
        a[s + _DEATHS] = deaths
        a[s + _DOWN] = down

    def supervisor_warnings(self) -> list[str]:
        """The /readyz warnings about the workers (none while all run)."""
        a, s = self._all, self._sup
        down = int(a[s + _DOWN])
        if not down:
            return []
        wait = max(0.0, a[s + _NEXT] - time.monotonic())
        return [
            f"{down} of {self.workers} workers down after {int(a[s + _DEATHS])} "
            f"worker deaths in the last minute; restarting with back-off, "
            f"next start in {wait:.1f} s"
        ]

    def _sum(self, offset: int) -> float:
        return sum(self._all[w * _WIDTH + offset] for w in range(self.workers))

    def render(self, records: int) -> bytes:
        """The Prometheus text exposition (format 0.0.4)."""
        out: list[str] = []

        def head(name: str, kind: str, text: str) -> None:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")

        head(
            "hashlookup_requests_total",
            "counter",
            "HTTP requests by endpoint and status code.",
        )
        for e, ep in enumerate(ENDPOINTS):
            for c, code in enumerate((*CODES, "other")):
                v = self._sum(_REQ + e * (len(CODES) + 1) + c)
                if v:
                    out.append(
                        f'hashlookup_requests_total{{endpoint="{ep}",'
                        f'code="{code}"}} {v:.0f}'
                    )
        head(
            "hashlookup_request_duration_seconds",
            "histogram",
            "Time from request start to the last byte of the response.",
        )
        for e, ep in enumerate(ENDPOINTS):
            counts = [self._sum(_HIST + e * _NB + i) for i in range(_NB)]
            total = sum(counts)
            if not total:
                continue
            acc = 0.0
            for bound, n in zip((*BUCKETS, "+Inf"), counts, strict=True):
                acc += n
                out.append(
                    f"hashlookup_request_duration_seconds_bucket{{endpoint="
                    f'"{ep}",le="{bound}"}} {acc:.0f}'
                )
            out.append(
                f'hashlookup_request_duration_seconds_sum{{endpoint="{ep}"}} '
                f"{self._sum(_SUM + e):.6f}"
            )
            out.append(
                f'hashlookup_request_duration_seconds_count{{endpoint="{ep}"}}'
                f" {total:.0f}"
            )
        totals = {off: self._sum(off) for off in (_HITS, _MISSES, _INVALID)}
        # a GET /lookup hit is counted once, as the endpoint's 200 answer
        # (every one is a hit): one update less on the hottest path
        totals[_HITS] += self._sum(_REQ + _E["lookup"] * (len(CODES) + 1) + _C[200])
        for name, value, text in (
            (
                "digests_checked",
                sum(totals.values()),
                "Digests looked up (valid or not).",
            ),
            ("hits", totals[_HITS], "Digests found in the dataset."),
            ("misses", totals[_MISSES], "Valid digests not in the dataset."),
            ("invalid", totals[_INVALID], "Items that were not a digest."),
        ):
            head(f"hashlookup_{name}_total", "counter", text)
            out.append(f"hashlookup_{name}_total {value:.0f}")
        now = time.time()
        gens = [
            (w, self._all[w * _WIDTH + _GEN], self._all[w * _WIDTH + _BUILT])
            for w in range(self.workers)
            if self._all[w * _WIDTH + _STARTED]
        ]
        head(
            "hashlookup_dataset_generation",
            "gauge",
            "Dataset generation each worker serves.",
        )
        for w, g, _ in gens:
            out.append(f'hashlookup_dataset_generation{{worker="{w}"}} {g:.0f}')
        head(
            "hashlookup_dataset_age_seconds",
            "gauge",
            "Seconds since the served generation was built.",
        )
        for w, _, built in gens:
            out.append(
                f'hashlookup_dataset_age_seconds{{worker="{w}"}} '
                f"{max(0.0, now - built):.3f}"
            )
        head("hashlookup_dataset_records", "gauge", "Records in the dataset.")
        out.append(f"hashlookup_dataset_records {records}")
        head(
            "hashlookup_connections_open",
            "gauge",
            "Open client connections of each worker.",
        )
        for w, _, _ in gens:
            out.append(
                f'hashlookup_connections_open{{worker="{w}"}} '
                f"{self._all[w * _WIDTH + _OPEN]:.0f}"
            )
        head(
            "hashlookup_limits_total",
            "counter",
            "Connections and uploads cut off by a deadline or a cap, by reason.",
        )
        for r, i in _L.items():
            out.append(
                f'hashlookup_limits_total{{reason="{r}"}} {self._sum(_LIMIT + i):.0f}'
            )
        for i, (name, text) in enumerate(
            (
                ("pdq_queries", "PDQ hashes searched (near matches)."),
                ("pdq_matched", "PDQ hashes searched with at least one match."),
                ("pdq_matches", "Near matches returned."),
            )
        ):
            head(f"hashlookup_{name}_total", "counter", text)
            out.append(f"hashlookup_{name}_total {self._sum(_PDQ + i):.0f}")
        head("hashlookup_workers", "gauge", "Worker processes started.")
        out.append(f"hashlookup_workers {len(gens)}")
        return ("\n".join(out) + "\n").encode()
