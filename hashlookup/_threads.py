"""The process-wide thread pool that batch lookups and signature hashing
share (threads that release the GIL in C or in hashlib)."""

from __future__ import annotations

import _thread
import os

TYPE_CHECKING = False

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
# (_thread's lock is threading.Lock: importing threading costs start-up)
_pool_lock = _thread.allocate_lock()


def _forget_pool_after_fork() -> None:
    # A forked child inherits the executor object but not its threads:
    # submitting to it would wait forever.  Start a fresh one on demand.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # Imported here: concurrent.futures brings logging (~5 ms), and
            # opening a file or a single lookup never starts the pool.
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="hashlookup"
            )
        return _pool
