"""The scan's thread pools and progress ticker, on ``_thread`` alone.

Why not ``concurrent.futures``: importing it (with ``logging``,
``threading``, ``queue`` and ``traceback``) costs about 32 M instructions,
a third of a scan of an empty directory, and its ``ThreadPoolExecutor``
is loaded on first use, which a process that dropped privileges to a user
who cannot read the Python installation can no longer do.  This module
needs only ``_thread``, ``_queue`` and ``collections``, imported with
``hashlookup.scan``, so a scan after a privilege drop imports nothing
(docs/SCAN.md) and a scan of an empty directory starts no thread.

The part of ``concurrent.futures`` the scan used is all there is: submit,
``done``/``result`` in the submitting thread, ``cancel`` of what has not
started, and a shutdown that cancels what waits and joins the workers.
Waiting is a plain lock acquire, which Ctrl-C interrupts with a
KeyboardInterrupt in the main thread.
"""

from __future__ import annotations

import _queue
import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Cancelled", "Pool", "Task", "start_ticker"]

_PENDING, _RUNNING, _FINISHED, _CANCELLED = range(4)


class Cancelled(Exception):
    """The result of a task cancelled before it started."""


class Task:
    """One call submitted to a :class:`Pool` (a minimal future)."""

    __slots__ = ("_args", "_done", "_error", "_fn", "_result", "_state", "_state_lock")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._result: Any = None
        self._error: BaseException | None = None
        self._state = _PENDING
        self._state_lock = _thread.allocate_lock()
        # Held until the task is finished or cancelled.
        self._done = _thread.allocate_lock()
        self._done.acquire()

    def run(self) -> None:
        """Call the function (in a worker), unless the task was cancelled."""
        with self._state_lock:
            if self._state != _PENDING:
                return
            self._state = _RUNNING
        try:
            self._result = self._fn(*self._args)
        except BaseException as e:
            self._error = e
        finally:
            self._fn = self._args = None  # type: ignore[assignment]
        with self._state_lock:
            self._state = _FINISHED
        self._done.release()

    def cancel(self) -> bool:
        """Cancel the task if it has not started; whether it is cancelled."""
        with self._state_lock:
            if self._state == _PENDING:
                self._state = _CANCELLED
                self._fn = self._args = None  # type: ignore[assignment]
                self._done.release()
            return self._state == _CANCELLED

    def done(self) -> bool:
        """Whether the task finished or was cancelled (never waits)."""
        return not self._done.locked()

    def result(self) -> Any:
        """Wait for the task; its return value, or raise its exception
        (:class:`Cancelled` if it was cancelled)."""
        if self._done.locked():
            self._done.acquire()  # Ctrl-C interrupts this wait
            self._done.release()
        if self._state == _CANCELLED:
            raise Cancelled("the task was cancelled")
        if self._error is not None:
            raise self._error
        return self._result


class Pool:
    """Up to `workers` threads running submitted tasks in submission order
    (a thread is started at a submit, while fewer than `workers` run)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._max = workers
        self._queue: _queue.SimpleQueue[Task | None] = _queue.SimpleQueue()
        self._exited: list[Any] = []  # one lock per worker, held while it runs
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Task:
        """Run ``fn(*args)`` on a worker; its :class:`Task`."""
        if self._closed:
            raise RuntimeError("submit after shutdown")
        task = Task(fn, args)
        self._queue.put(task)
        if len(self._exited) < self._max:
            exited = _thread.allocate_lock()
            exited.acquire()
            _thread.start_new_thread(self._work, (exited,))
            self._exited.append(exited)
        return task

    def _work(self, exited: Any) -> None:
        get = self._queue.get
        try:
            while True:
                task = get()
                if task is None:
                    return
                task.run()
                del task  # not kept alive while waiting
        finally:
            exited.release()

    def shutdown(self) -> None:
        """Cancel the tasks not started, then wait for the running ones and
        for every worker to end."""
        self._closed = True
        while True:
            try:
                task = self._queue.get_nowait()
            except _queue.Empty:
                break
            if task is not None:
                task.cancel()
        for _ in self._exited:
            self._queue.put(None)
        for exited in self._exited:
            exited.acquire()
            exited.release()


def start_ticker(tick: Callable[[], Any], seconds: float) -> Callable[[], None]:
    """Call ``tick()`` every `seconds` from a thread of its own; returns the
    function that stops it (and waits for a tick under way to return)."""
    stop = _thread.allocate_lock()
    stop.acquire()
    exited = _thread.allocate_lock()
    exited.acquire()

    def loop() -> None:
        try:
            # acquire(timeout=...) is False while stop is held: a tick is due.
            while not stop.acquire(timeout=seconds):
                tick()
        finally:
            exited.release()

    _thread.start_new_thread(loop, ())

    def halt() -> None:
        stop.release()
        exited.acquire()
        exited.release()

    return halt
