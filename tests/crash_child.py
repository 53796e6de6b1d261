"""A fork server that runs ``hashlookup`` builds (the CLI's main) in child
processes that get SIGKILLed, for tests/test_crash_safety.py.

Usage: python crash_child.py   (requests on stdin, answers on stdout)

It imports hashlookup once; for every request line (JSON: {"step": K,
"delay": D, "step_file": PATH, "args": [CLI ARGS]}) it forks a child that
runs ``hashlookup.cli.main(args)`` and answers ``S SECONDS PID``: the
child's status as subprocess's returncode (negative for a signal), its run
time and pid.  Each child is a real process that is really killed; forking
from a warm parent only saves the interpreter start-up (0.3 s) per kill.

STEP K > 0 makes the child send itself SIGKILL before step K of the atomic
file write (hashlookup._atomic): temporary file created, each half of
every write (so a kill can land in the middle of a section), flush, fchmod,
fsync, replace, and the directory fsync after it.  K = 0 never kills; the
number of steps seen is written to step_file.  DELAY >= 0 makes the server
SIGKILL the child DELAY seconds after the fork (timed kill points); it only
kills its own child before reaping it, so the pid is never another's.

Nothing here changes what hashlookup writes: the hooks wrap the os and
tempfile calls of _atomic only inside this test helper.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time

from hashlookup import _atomic, cli

_kill_at = 0
_count = 0


def _step() -> None:
    global _count
    _count += 1
    if _count == _kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


class _HookedFile:
    def __init__(self, f):
        self._f = f

    def write(self, data):
        mv = memoryview(data).cast("B")
        half = len(mv) // 2
        _step()
        n = self._f.write(mv[:half])
        _step()
        return n + self._f.write(mv[half:])

    def flush(self):
        _step()
        self._f.flush()

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        self._f.__enter__()
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def _hooked(fn, before=True, after=False):
    def call(*a, **kw):
        if before:
            _step()
        r = fn(*a, **kw)
        if after:
            _step()
        return r

    return call


class _HookedOs:
    """The os module as _atomic sees it, with the write path hooked."""

    def __getattr__(self, name):
        return getattr(os, name)

    fdopen = staticmethod(lambda *a, **kw: _HookedFile(os.fdopen(*a, **kw)))
    fchmod = staticmethod(_hooked(os.fchmod))
    fsync = staticmethod(_hooked(os.fsync))
    replace = staticmethod(_hooked(os.replace, before=True, after=True))


class _HookedTempfile:
    mkstemp = staticmethod(_hooked(tempfile.mkstemp, before=False, after=True))


def _child(request: dict) -> int:
    global _kill_at, _count
    _kill_at, _count = request["step"], 0
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # the protocol pipe is the parent's, not the build's
        os.dup2(devnull, fd)
    try:
        code = cli.main(request["args"])
    finally:
        with open(request["step_file"], "w") as f:
            f.write(str(_count))
    return code


def main() -> int:
    _atomic.os = _HookedOs()
    _atomic.tempfile = _HookedTempfile()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = _child(request)
            finally:
                os._exit(code)
        delay = request.get("delay", -1.0)
        done = 0
        if delay >= 0:
            time.sleep(delay)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:  # not reaped yet: the pid is still our child's
                os.kill(pid, signal.SIGKILL)
        if done == 0:
            _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - start
        code = (
            -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        )
        print(f"{code} {elapsed:.6f} {pid}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
