"""Run ``hashlookup`` (the CLI's main) and SIGKILL this very process at a chosen
step of the atomic file write, for tests/test_crash_safety.py.

Usage: python crash_child.py STEP STEPFILE -- CLI ARGS...

The steps are the observable actions of hashlookup._atomic.atomic_output:
temporary file created, every write (split in two halves, so a kill can also
land in the middle of one section), flush, fchmod, fsync, replace, and the
directory fsync after it.  Before step STEP (1-based) the process sends
itself SIGKILL: a real kill of a real process, at a deterministic point.
STEP 0 never kills; the number of steps seen is written to STEPFILE.

Nothing here changes what hashlookup writes: the hooks wrap the os and
tempfile calls of _atomic only in this child process.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile


def main() -> int:
    kill_at = int(sys.argv[1])
    step_file = sys.argv[2]
    assert sys.argv[3] == "--"
    cli_args = sys.argv[4:]

    from hashlookup import _atomic, cli

    count = 0

    def step() -> None:
        nonlocal count
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    class HookedFile:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            mv = memoryview(data).cast("B")
            half = len(mv) // 2
            step()
            n = self._f.write(mv[:half])
            step()
            return n + self._f.write(mv[half:])

        def flush(self):
            step()
            self._f.flush()

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            self._f.__enter__()
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    def wrap(fn, before=True, after=False):
        def hooked(*a, **kw):
            if before:
                step()
            r = fn(*a, **kw)
            if after:
                step()
            return r
        return hooked

    class HookedOs:
        """The os module as seen by _atomic, with hooked calls."""

        def __getattr__(self, name):
            return getattr(os, name)

        fdopen = staticmethod(lambda *a, **kw: HookedFile(os.fdopen(*a, **kw)))
        fchmod = staticmethod(wrap(os.fchmod))
        fsync = staticmethod(wrap(os.fsync))
        replace = staticmethod(wrap(os.replace, before=True, after=True))

    class HookedTempfile:
        mkstemp = staticmethod(wrap(tempfile.mkstemp, before=False, after=True))

    _atomic.os = HookedOs()
    _atomic.tempfile = HookedTempfile()
    try:
        return cli.main(cli_args)
    finally:
        with open(step_file, "w") as f:
            f.write(str(count))


if __name__ == "__main__":
    sys.exit(main())
