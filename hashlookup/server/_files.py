"""The dataset and keys files of `hashlookup serve`: the last good ones,
kept by the supervisor for the workers it starts (LastGood), and a
worker's view of them (WorkerFiles): where it starts from, the checks of a
replacement before it is served, and what is wrong with the files on disk
(for /readyz).

- Dataset: the supervisor holds a descriptor on the last file a worker
  swapped in (at first, the file it opened at start).  A worker sends the
  descriptor of each file it swaps in over a socket (SCM_RIGHTS), so the
  supervisor keeps exactly the file that was checked, even if the path has
  been replaced again since; a fork inherits the descriptor.  A new worker
  maps it (through /proc/self/fd/N) and then treats the file the path names
  as a replacement: checked (body and generation number) before it is
  served, refused (and reported in /readyz and the log) if bad.  So a file
  that goes bad on disk, or disappears, never stops a worker from starting.
- Body checks once for the service: the workers share a small file (the
  verdict board) and a POSIX record lock on it (released by the kernel if
  its holder dies).  The first worker to look at a new file checks its body
  under the lock and writes the verdict; the others wait for the lock and
  take the verdict, so N workers cost one check per replacement, not N.
- Keys: the supervisor re-reads the keys file when it changes (every
  reload interval; a keys file is small) and keeps the last one that
  parsed; a new worker starts with it, then loads the file itself and
  reports a bad one as the running workers do.

Linux (and systems with /dev/fd) only for the descriptor; elsewhere a new
worker opens the path as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

from hashlookup.errors import HashLookupError, IndexFormatError
from hashlookup.server._config import ServerConfig
from hashlookup.server._keys import KeyStore
from hashlookup.store.dataset import Dataset, Generation, open_dataset
from hashlookup.store.index import file_identity

log = logging.getLogger("hashlookup.server")

_FD_DIR = next((d for d in ("/proc/self/fd", "/dev/fd") if os.path.isdir(d)), None)


def fd_path(fd: int) -> str | None:
    """A path that opens the file behind descriptor `fd`, or None."""
    return None if _FD_DIR is None else f"{_FD_DIR}/{fd}"


def keys_identity(path: str) -> Any:
    """What tells two versions of the keys file apart (None: missing)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class LastGood:
    """The last good dataset file and keys (see the module's docstring).

    Parameters
    ----------
    dataset : str
        The dataset path.
    keys : str or None
        The keys file (None without keys).
    allow_older : bool
        Keep a reported generation even if its number is lower.
    say : callable
        Writes one line to the service's log.
    """

    def __init__(
        self,
        dataset: str,
        keys: str | None,
        allow_older: bool,
        say: Callable[[str], None],
    ) -> None:
        self.dataset = dataset
        self.keys_path = keys
        self.allow_older = allow_older
        self._say = say
        self.fd = -1  # the kept dataset file (-1: none)
        self.identity: Any = None
        self.generation = 0
        self.keys: KeyStore | None = None
        self.keys_identity: Any = None
        self._keys_checked = 0.0
        self._keys_error: str | None = None
        self._keys_tried: Any = None  # the last version of the file read
        # workers send (generation, descriptor) datagrams; neither end
        # ever blocks (a full buffer drops a report: the next one comes)
        self._receiver, self._sender = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_DGRAM
        )
        self._receiver.setblocking(False)
        self._sender.setblocking(False)
        self._board = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())

    # -- the supervisor's side -----------------------------------------------

    def open_first(self, options: dict[str, Any]) -> Dataset:
        """Open the dataset at start (raises what opening raises) and keep
        its file; the caller closes the returned dataset."""
        fd = os.open(self.dataset, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            source = fd_path(fd)
            ds = Dataset.open(self.dataset, source=source or self.dataset, **options)
        except BaseException:
            os.close(fd)
            raise
        self._keep(fd, ds.generation)
        return ds

    def load_keys(self) -> KeyStore:
        """Load the keys file at start (raises what loading raises)."""
        assert self.keys_path is not None
        identity = keys_identity(self.keys_path)
        self.keys = KeyStore.load(self.keys_path)
        self.keys_identity = identity
        return self.keys

    def poll(self, now: float, interval: float) -> None:
        """The supervisor's step: take the workers' reports, and re-read the
        keys file if it changed (at most every `interval` seconds)."""
        self._receive()
        if self.keys_path is not None and now - self._keys_checked >= interval:
            self._keys_checked = now
            self._check_keys()

    def _receive(self) -> None:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self._receiver, 64, 4)
            except OSError:  # nothing more to read (BlockingIOError)
                return
            for fd in fds[1:]:
                os.close(fd)
            if not fds:
                continue
            try:
                generation = int(msg)
            except ValueError:
                os.close(fds[0])
                continue
            if generation >= self.generation or self.allow_older:
                self._keep(fds[0], generation)
            else:
                os.close(fds[0])

    def _keep(self, fd: int, generation: int) -> None:
        identity = file_identity(os.fstat(fd))
        if identity == self.identity:
            os.close(fd)
            return
        old, self.fd = self.fd, fd
        self.identity, self.generation = identity, generation
        if old >= 0:
            os.close(old)

    def _check_keys(self) -> None:
        assert self.keys_path is not None
        identity = keys_identity(self.keys_path)
        if identity in (self.keys_identity, self._keys_tried, None):
            return
        self._keys_tried = identity
        try:
            keys = KeyStore.load(self.keys_path)
        except Exception as exc:  # a bad file: keep the keys we have
            if str(exc) != self._keys_error:
                self._keys_error = str(exc)
                self._say(
                    f"keys file not loaded, new workers start with the "
                    f"keys loaded before: {exc}"
                )
            return
        self._keys_error = None
        self.keys, self.keys_identity = keys, identity

    def close(self) -> None:
        """Close the kept file and the report socket."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._receiver.close()
        self._sender.close()
        self._board.close()

    # -- a worker's side -----------------------------------------------------

    def source(self) -> str | None:
        """Where a new worker maps the last good file from (None: nowhere)."""
        return None if self.fd < 0 else fd_path(self.fd)

    def drop_file(self) -> None:
        """In a worker, once its dataset is mapped: close the inherited
        descriptor (else a replaced file's disk space stays in use for the
        worker's life)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def checked(
        self, key: list[Any], check: Callable[[bool], Generation | None]
    ) -> tuple[Generation | None, str]:
        """``check(verify)`` with the body of the file `key` checked once for
        the whole service (see the module's docstring).

        Returns the result and who checked the body ("here", "by another
        worker"); raises what `check` raises, or ``IndexFormatError`` with
        the recorded reason for a file another worker refused.
        """
        fd = self._board.fileno()
        fcntl.lockf(fd, fcntl.LOCK_EX)  # in a thread, or before serving
        try:
            try:
                verdict = json.loads(os.pread(fd, 1 << 16, 0) or b"null")
            except ValueError:
                verdict = None
            if isinstance(verdict, dict) and verdict.get("key") == key:
                if not verdict.get("ok"):
                    raise IndexFormatError(str(verdict.get("reason")))
                return check(False), "by another worker"
            t0 = time.perf_counter()
            try:
                new = check(True)
            except IndexFormatError as exc:  # deterministic for this file
                self._write(fd, {"key": key, "ok": False, "reason": str(exc)})
                raise
            if new is not None:
                self._write(fd, {"key": key, "ok": True})
            return new, f"here in {time.perf_counter() - t0:.2f} s"
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)

    @staticmethod
    def _write(fd: int, verdict: dict[str, Any]) -> None:
        data = json.dumps(verdict).encode()[: 1 << 16]
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def report(self, fd: int, generation: int) -> None:
        """Tell the supervisor that the file behind `fd` (the worker's own
        descriptor, closed by the caller) is served from now on."""
        with contextlib.suppress(OSError):  # full or gone: the next report
            socket.send_fds(self._sender, [str(generation).encode()], [fd])

    def child_started(self) -> None:
        """In a new worker: the supervisor's receiving end is not its own."""
        with contextlib.suppress(OSError):
            self._receiver.close()


class WorkerFiles:
    """A worker's dataset and keys, and the problems of the files on disk.

    Parameters
    ----------
    config : ServerConfig
        The service's settings (dataset and keys paths, options).
    worker : int
        The worker's slot, for the log.
    last_good : LastGood or None
        What the supervisor kept (None: open the paths).
    warn : callable
        Logs a warning once per distinct message.

    Attributes
    ----------
    ds : Dataset or None
        The dataset, once :meth:`open` ran.
    keys : KeyStore or None
        The keys, once :meth:`load_keys` ran.
    dataset_error, keys_error : str or None
        Why the file the path names is not served (None: it is).
    """

    def __init__(
        self,
        config: ServerConfig,
        worker: int,
        last_good: LastGood | None,
        warn: Callable[[str], None],
    ) -> None:
        self.config = config
        self.worker = worker
        self.last_good = last_good
        self._warn = warn
        self.ds: Dataset | None = None
        self.keys: KeyStore | None = None
        self._keys_identity: Any = None  # of the keys file last tried
        self.dataset_error: str | None = None
        self.keys_error: str | None = None
        self.checked_by = ""  # who checked the body of the last replacement
        if last_good is not None and last_good.keys is not None:
            self.keys, self._keys_identity = last_good.keys, last_good.keys_identity

    # -- the dataset ---------------------------------------------------------

    def open(self) -> Dataset:
        """Open the dataset: the last good file the supervisor kept, then
        the file the path names as its replacement, checked now (the worker
        serves nothing yet; a bad file there is reported, not fatal).
        Without a kept file, or if it cannot be opened: the path's file."""
        cfg = self.config
        last = self.last_good
        source = last.source() if last is not None else None
        if last is not None and source is not None:
            try:
                self.ds = Dataset.open(cfg.dataset, source=source, **cfg.open_options())
            except (OSError, HashLookupError) as exc:
                log.warning(
                    "worker %d: the last good dataset file cannot be opened "
                    "(%s), opening %s",
                    self.worker,
                    exc,
                    cfg.dataset,
                )
            else:
                last.drop_file()  # mapped: the descriptor is not needed
                found = self.replacement()
                if found is not None:
                    self.swap(*found)
                return self.ds
        self.ds = open_dataset(cfg.dataset, **cfg.open_options())
        return self.ds

    def generation(self) -> int:
        """The generation served (0 before :meth:`open`)."""
        return 0 if self.ds is None else self.ds.generation

    def replaced(self) -> bool:
        """Whether the path names another file than the one served (a stat)."""
        assert self.ds is not None
        try:
            st = os.stat(self.config.dataset)
        except OSError:
            return False  # missing: being replaced, or removed (/readyz says)
        return file_identity(st) != self.ds.current().identity

    def replacement(self) -> tuple[Generation, int] | None:
        """The file the path names if it is not the one served, checked (its
        body, O(file size): call it in a thread, or before serving) and
        still open (its descriptor, for :meth:`swap`); None if there is
        none or it is refused (then reported: the log and /readyz)."""
        ds = self.ds
        assert ds is not None
        try:
            fd = os.open(self.config.dataset, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._refused(exc)
            return None
        source = fd_path(fd)

        def check(verify: bool) -> Generation | None:
            return ds.check_replacement(
                verify=verify,
                allow_older=self.config.allow_older_generation,
                source=source,
            )

        try:
            if self.last_good is None:
                new, self.checked_by = check(True), "here"
            else:
                new, self.checked_by = self.last_good.checked(self._key(fd), check)
        except (OSError, HashLookupError) as exc:
            os.close(fd)
            self._refused(exc)
            return None
        except BaseException:
            os.close(fd)
            raise
        if new is None:
            os.close(fd)
        return None if new is None else (new, fd)

    def _key(self, fd: int) -> list[Any]:
        """What a body check's verdict is for: the file behind `fd` and,
        with --verify-key, the signature file next to the path."""
        key: list[Any] = list(file_identity(os.fstat(fd)))
        if self.config.verify_key is not None:
            from hashlookup.store.signature import signature_path

            key.append(keys_identity(signature_path(self.config.dataset)))
        return key

    def swap(self, new: Generation, fd: int) -> None:
        """Serve `new` (from :meth:`replacement`) from now on, and tell the
        supervisor, which keeps its file (`fd`, closed here) for workers
        started later."""
        assert self.ds is not None
        try:
            self.ds.swap_in(new)
            if self.last_good is not None:
                self.last_good.report(fd, new.generation)
        finally:
            os.close(fd)
        self.dataset_error = None

    def _refused(self, exc: BaseException) -> None:
        assert self.ds is not None
        self.dataset_error = str(exc)
        self._warn(
            f"dataset file refused, still serving generation "
            f"{self.ds.generation}: {exc}"
        )

    # -- the keys ------------------------------------------------------------

    def load_keys(self) -> KeyStore:
        """Load the keys file if it changed since the last try.  A bad file
        is reported (the log, /readyz) and the keys loaded before stay;
        with none loaded before, it raises (``KeysFileError``, ``OSError``)."""
        path = self.config.api_keys
        assert path is not None
        identity = keys_identity(path)
        if identity == self._keys_identity and self.keys is not None:
            return self.keys
        try:
            self.keys = KeyStore.load(path)
        except (OSError, HashLookupError, ValueError) as exc:
            if self.keys is None:
                raise
            self.keys_error = str(exc)
            self._warn(f"keys file not loaded, keeping the keys loaded before: {exc}")
        else:
            self.keys_error = None
        self._keys_identity = identity
        return self.keys

    def warnings(self) -> list[str]:
        """What /readyz says about the files (still ready: the last good
        ones are served)."""
        out = []
        if self.dataset_error is not None and self.ds is not None:
            out.append(
                f"dataset file refused, serving generation {self.ds.generation}: "
                f"{self.dataset_error}"
            )
        if self.keys_error is not None:
            out.append(
                f"keys file not loaded, using the keys loaded before: {self.keys_error}"
            )
        return out
