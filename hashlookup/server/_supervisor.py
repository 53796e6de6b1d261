"""The supervisor's loop of `hashlookup serve`: restarts with back-off, the
watchdog and the stop deadline.

- Restarts: a worker that dies is restarted after BASE_DELAY.  Deaths of a
  slot that come in a row, each less than STABLE seconds after its worker
  started serving (or before it did), double the delay up to MAX_DELAY;
  the log says so and /readyz shows it as a warning.  Back-off never
  leaves the service without a worker for long: if the worker that died
  had served and no other is serving, it is restarted after BASE_DELAY
  whatever its slot's streak; if no worker is left at all (every slot
  waits), the one that died last is tried after at most ALONE_DELAY.  The
  supervisor never gives up on a service that has served; only one whose
  workers never started (GIVE_UP failed starts per slot, none ever
  serving) stops, with exit status 2.
- Watchdog: a worker whose heartbeat (see _worker) is older than the
  watchdog timeout, or that has not started serving START_TIMEOUT seconds
  after its fork, is killed (SIGKILL) and restarted like any dead worker.
- Stop: SIGTERM or SIGINT is forwarded to the workers (graceful: requests
  in flight finish); a worker still there STOP_DEADLINE seconds later is
  killed, and the supervisor returns.

The loop polls (waitpid WNOHANG, 50 ms sleeps) rather than blocking in
wait(): it has timers to keep, and a signal handler only sets a flag.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from hashlookup.server._metrics import Metrics

BASE_DELAY = 0.1
MAX_DELAY = 5.0
ALONE_DELAY = 0.5
STABLE = 10.0
START_TIMEOUT = 120.0
STOP_DEADLINE = 9.0
GIVE_UP = 5
_POLL = 0.05


@dataclass
class _Slot:
    index: int
    pid: int = 0  # 0: no worker running
    forked: float = 0.0  # monotonic time of the fork
    ready: float = 0.0  # first heartbeat of this worker (0: none yet)
    streak: int = 0  # quick deaths in a row
    restart_at: float = 0.0  # a pending restart (0: none)
    backoff: bool = False  # the pending restart waits longer than BASE_DELAY
    killed: bool = False  # the watchdog or the deadline sent SIGKILL


class Supervisor:
    """Runs `workers` worker slots until stopped.

    Parameters
    ----------
    workers
        Number of worker slots.
    spawn
        Forks the worker of a slot, returns its pid (in the supervisor).
    metrics
        The shared memory holding the heartbeats and the restart state.
    say
        Writes one line to the service's log.
    watchdog
        Seconds without a heartbeat before a worker is killed (0: never).
    poll
        Called with the monotonic time at every turn of the loop (the
        last good files' upkeep, see _files).
    """

    def __init__(
        self,
        workers: int,
        spawn: Callable[[int], int],
        metrics: Metrics,
        say: Callable[[str], None],
        watchdog: float,
        poll: Callable[[float], None] | None = None,
    ) -> None:
        self._poll = poll
        self.slots = [_Slot(i) for i in range(workers)]
        self._spawn = spawn
        self._metrics = metrics
        self._say = say
        self._watchdog = watchdog
        self._signals = 0  # stop requests received
        self._forwarded = 0  # stop requests passed to the workers
        self._deadline = 0.0
        self._deaths: list[float] = []
        self._failed_starts = 0
        self._served = False  # some worker has ever served

    def request_stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Signal handler: stop the service (the loop does the work)."""
        self._signals += 1

    def run(self) -> int:
        """Start the workers and supervise them until a stop; the exit status."""
        status = 0
        for slot in self.slots:
            if not self._signals:
                self._start(slot)
        while True:
            now = time.monotonic()
            self._reap(now)
            if self._signals:
                if self._stopping(now):
                    break
            elif self._failed_starts >= GIVE_UP * len(self.slots) and not self._served:
                self._say("workers could not start; giving up")
                self.request_stop()
                status = 2
                continue
            else:
                if self._poll is not None:
                    self._poll(now)
                self._watch(now)
                self._restart_due(now)
                self._publish(now)
            time.sleep(_POLL)
        return status

    # -- workers -------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = 0.0
        slot.backoff = False
        slot.ready = 0.0
        slot.killed = False
        slot.forked = time.monotonic()
        slot.pid = self._spawn(slot.index)

    def _reap(self, now: float) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                self._died(slot, status, now)

    def _died(self, slot: _Slot, status: int, now: float) -> None:
        pid, slot.pid = slot.pid, 0
        self._metrics.worker_gone(slot.index)
        self._check_ready(slot)
        if self._signals:
            return
        self._deaths = [t for t in self._deaths if now - t < 60] + [now]
        if not slot.ready:
            self._failed_starts += 1
        quick = not slot.ready or now - slot.ready < STABLE
        slot.streak = slot.streak + 1 if quick else 1
        delay = min(MAX_DELAY, BASE_DELAY * 2 ** (slot.streak - 1))
        if slot.ready and not any(s.pid and s.ready for s in self.slots):
            delay = BASE_DELAY  # the last worker: the service must come back
        elif not any(s.pid for s in self.slots):
            delay = min(delay, ALONE_DELAY)  # none left: one try at a time
        slot.restart_at = now + delay
        slot.backoff = delay > BASE_DELAY
        message = (
            f"worker {slot.index} (pid {pid}) exited with status "
            f"{os.waitstatus_to_exitcode(status)}; restarting it"
        )
        if slot.backoff:
            message += (
                f" in {delay:.1f} s (back-off: {slot.streak} deaths in a "
                f"row within {STABLE:g} s of starting)"
            )
        self._say(message)

    def _check_ready(self, slot: _Slot) -> None:
        if not slot.ready:
            beat = self._metrics.heartbeat(slot.index)
            if beat >= slot.forked:
                slot.ready = beat
                self._served = True

    def _watch(self, now: float) -> None:
        for slot in self.slots:
            if not slot.pid or slot.killed:
                continue
            self._check_ready(slot)
            if slot.ready:
                silent = now - self._metrics.heartbeat(slot.index)
                if self._watchdog > 0 and silent > self._watchdog:
                    self._kill(
                        slot,
                        f"has not answered for {silent:.1f} s "
                        f"(watchdog: {self._watchdog:g} s)",
                    )
            elif now - slot.forked > START_TIMEOUT:
                self._kill(slot, f"did not start within {START_TIMEOUT:g} s")

    def _kill(self, slot: _Slot, why: str) -> None:
        self._say(f"worker {slot.index} (pid {slot.pid}) {why}; killing it")
        slot.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.pid, signal.SIGKILL)

    def _restart_due(self, now: float) -> None:
        for slot in self.slots:
            if not slot.pid and slot.restart_at and now >= slot.restart_at:
                self._start(slot)

    def _publish(self, now: float) -> None:
        waiting = [
            s.restart_at for s in self.slots if not s.pid and s.restart_at and s.backoff
        ]
        deaths = sum(1 for t in self._deaths if now - t < 60)
        self._metrics.supervisor_state(len(waiting), min(waiting, default=0.0), deaths)

    # -- stop ----------------------------------------------------------------

    def _stopping(self, now: float) -> bool:
        """One step of the stop; True when every worker is gone."""
        if not self._deadline:
            self._deadline = now + STOP_DEADLINE
            self._metrics.supervisor_state(0, 0.0, 0)
        if self._forwarded < self._signals:
            self._forwarded = self._signals
            for slot in self.slots:
                if slot.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(slot.pid, signal.SIGTERM)
        if not any(s.pid for s in self.slots):
            return True
        if now >= self._deadline:
            for slot in self.slots:
                if slot.pid and not slot.killed:
                    self._kill(slot, f"did not stop within {STOP_DEADLINE:g} s")
            if now >= self._deadline + 0.4:  # SIGKILL works at once; do not hang
                return True
        return False
