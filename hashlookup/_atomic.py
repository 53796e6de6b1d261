"""Atomic file replacement: the only way hashlookup writes output files.

A temporary file is created in the target's directory (same file system, so
os.replace is atomic), written, flushed and fsynced, then renamed over the
target, and the directory is fsynced so the rename survives a crash.  On any
error, or if the process is interrupted, the target is left as it was and
the temporary file is removed.

A process killed with SIGKILL (or a power loss) cannot remove its temporary
file.  Such files are named ``.TARGET.PID@HOST.RANDOM.tmp`` (see
docs/SAFETY.md), so that the next write of the same target on the same host
removes those whose process is gone, and an operator can see what they are.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

if TYPE_CHECKING:
    import tempfile
else:  # imported on first use: with shutil and random, ~3 ms of start-up
    from hashlookup._lazy import lazy_module

    tempfile = lazy_module("tempfile")

# Errors of the write itself (as opposed to a bad path): worth saying that
# the target was not touched.
_WRITE_FAILURES = {
    errno.ENOSPC,
    errno.EFBIG,
    errno.EIO,
    getattr(errno, "EDQUOT", errno.ENOSPC),
}


def _host_tag() -> str:
    """This host's name, reduced to characters that are safe in a file name
    and cannot be confused with the name's separators."""
    import socket  # here: a command that writes no file never needs it

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def temp_prefix(base: str, pid: int | None = None) -> str:
    """Prefix of the temporary files written for target `base` by `pid`
    (the name is cut to 120 characters so the whole stays under NAME_MAX)."""
    return f".{base[:120]}.{os.getpid() if pid is None else pid}@{_host_tag()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temps(directory: str, base: str) -> list[str]:
    """Remove temporary files of `base` left by dead processes of this host
    (a SIGKILLed build); returns their names.  Files of live processes, of
    other hosts (a shared file system) and anything else are kept."""
    pattern = re.compile(
        re.escape(f".{base[:120]}.")
        + r"(\d+)@"
        + re.escape(_host_tag())
        + r"\.[A-Za-z0-9_]+\.tmp\Z"
    )
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for name in entries:
        m = pattern.match(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return removed


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], mode: int | None = None
) -> Iterator[BinaryIO]:
    """Yield a binary file; on clean exit it atomically becomes `path`.

    `mode` sets the permission bits (e.g. 0o600 for secrets); by default the
    usual 0o666 less the umask.  An OSError while writing (no space left, file
    size limit, I/O error) is re-raised with the target's name and the note
    that it was left unchanged.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "output directory does not exist", path)
    remove_stale_temps(directory, base)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(base), suffix=".tmp", dir=directory)
    try:
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
        except OSError as e:
            if e.errno in _WRITE_FAILURES:
                raise OSError(
                    e.errno,
                    f"{e.strerror} while writing {path} "
                    "(nothing was replaced, the temporary file is "
                    "removed)",
                    path,
                ) from e
            raise
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
