"""Atomic file replacement: the only way hashlookup writes output files.

A temporary file is created in the target's directory (same file system, so
os.replace is atomic), written, flushed and fsynced, then renamed over the
target, and the directory is fsynced so the rename survives a crash.  On any
error, or if the process is interrupted, the target is left as it was and
the temporary file is removed (a SIGKILL can leave a ".*.tmp" file, never a
half-written target).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str],
                  mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file; on clean exit it atomically becomes `path`.

    `mode` sets the permission bits (e.g. 0o600 for secrets); by default the
    usual 0o666 less the umask."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "output directory does not exist", path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            # mkstemp creates mode 0600; give the file the usual umask mode.
            if mode is None:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not possible on every platform; the data itself is synced
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
