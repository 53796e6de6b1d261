"""HashIndex: an opened, memory-mapped, read-only index file.

Opening maps the file and validates its header and section table (O(1), no
pass over the keys); lookups run in the C core through hashlookup._core.
Many processes can open the same file: they share its pages in the page
cache.  The file is never modified; a newer index replaces it atomically and
readers holding the old mapping keep working on the old file.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import stat
import sys
from collections.abc import Iterable, Iterator

from hashlookup import algorithms
from hashlookup._core import KeyTable, kernel_name
from hashlookup._threads import thread_pool
from hashlookup.errors import IndexFormatError
from hashlookup.store import format as _format

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import numpy as np
    import numpy.typing as npt

    from hashlookup._types import KeyBatch, PublicKeySpec
else:
    from hashlookup._lazy import numpy as np

# Below this many keys per thread, splitting a batch costs more than it saves.
_MIN_KEYS_PER_THREAD = 32_768


def _describe(algorithm: str, width: int) -> str:
    """How error messages name one key, e.g. "an md5 digest"."""
    return algorithms.describe(algorithm, width)


class HashIndex(KeyTable):
    """A read-only, memory-mapped set of fixed-width digests.

    Use :func:`hashlookup.open_index` (or ``HashIndex.open``) to get one.
    Supports ``key in index``, ``len``, iteration in sorted order, batch
    lookups, ``with`` and ``close()``.  A handle can be shared between
    threads; it pickles by path (the receiver opens the file again, with
    the same required signature key if any).

    ``key in index`` takes one key: a hex ``str`` (any case) of
    ``2 * width`` characters, or a bytes-like object (``bytes``,
    ``bytearray``, ``memoryview``, strided ones included) of ``width``
    bytes.  It returns a ``bool``; a key of another type raises
    ``TypeError``, one of the wrong length or with a non-hex character
    raises ``ValueError`` saying what was expected (for example
    "expected an md5 digest: 16 raw bytes or 32 hex characters, got 15
    bytes").  ``len(index)`` is the number of unique keys;
    ``iter(index)`` yields every key as raw ``bytes`` in sorted (memcmp)
    order.  After :meth:`close`, these, ``width`` and the lookup, ``keys``,
    ``info`` and ``verify`` methods raise
    ``ValueError("I/O operation on closed index")``.

    Attributes
    ----------
    path : str
        Path of the opened file, as given to :meth:`open`.
    algorithm : str
        ``"md5"``, ``"sha1"``, ``"sha256"`` or ``"raw"``.
    width : int
        Key width in bytes: 16, 20 or 32, or 1 to 64 for ``"raw"``
        (``ValueError`` once closed).
    closed : bool
        True once :meth:`close` has run.

    Methods
    -------
    find(key)
        Row of `key` in the sorted key table (an ``int``), or -1 if it is
        absent.  Takes and rejects keys as ``key in index`` does.

    See Also
    --------
    hashlookup.open_dataset : Datasets, whose tables are HashIndex objects.

    Examples
    --------
    >>> import hashlookup, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "known.hlx")
    >>> _ = hashlookup.build_index(["d41d8cd98f00b204e9800998ecf8427e"], path)
    >>> with hashlookup.open_index(path) as index:
    ...     "D41D8CD98F00B204E9800998ECF8427E" in index, len(index)
    (True, 1)
    """

    path: str
    algorithm: str
    _mmap: mmap.mmap | None
    _owns_mmap: bool
    _header: _format.Header
    _identity: Identity | None
    _signature_key: Any
    _layout: _format.TableLayout
    #: the dataset generation (hashlookup.store.generation) the table belongs
    #: to, set by it; absent for an index opened on its own
    _generation: Any

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        require_signature: PublicKeySpec | None = None,
        preload: bool = False,
    ) -> HashIndex:
        """Map the index file at `path` and validate its header (O(1)).

        Only the header and the section table are read; the keys are not.

        Parameters
        ----------
        path : str or os.PathLike
            The index file (one key table; a dataset file with several
            tables is refused, see :func:`hashlookup.open_dataset`).
        require_signature : optional
            A public key (path of NAME.pub, its bytes, 32 raw bytes or an
            ``Ed25519PublicKey``): the file must carry a valid signature by
            it (docs/SIGNING.md).  Costs one SHA-256 pass over the file.
            None (the default) checks no signature.
        preload : bool, default False
            Read the whole file into memory now (MADV_POPULATE_READ, else
            MADV_WILLNEED), so that no lookup waits for the disk.

        Returns
        -------
        HashIndex
            The open index; close it with :meth:`close` or a ``with`` block.

        Raises
        ------
        IndexFormatError
            The file is not a valid index: corrupt, truncated, foreign, not
            a regular file, without a key table, or a dataset with several
            tables.  Subclasses: ``IndexVersionError`` (a newer format
            version) and ``SignatureError`` (not signed by the required
            key, modified since it was signed, or an unusable key).
        TypeError
            `require_signature` is not one of the accepted forms.
        HashLookupError
            `require_signature` is given but the ``cryptography`` package
            is not installed.
        OSError
            The file, or the public key file named by `require_signature`,
            cannot be opened (``FileNotFoundError``, ``PermissionError``,
            ``IsADirectoryError``...), unchanged.
        """
        path = os.fspath(path)
        key = None
        if require_signature is not None:
            from hashlookup.store.signature import load_public_key

            key = load_public_key(require_signature)
        mm, header, st = map_file(path)
        if preload:
            preload_mapping(mm)
        try:
            if key is not None:
                from hashlookup.store.signature import check_signature

                check_signature(mm, header, path, key)
            groups = _format.table_groups(header)
            if not groups:
                raise IndexFormatError(f"{path}: no keys section")
            if len(groups) != 1:
                raise IndexFormatError(
                    f"{path}: a dataset with {len(groups)} key tables; open it with "
                    "hashlookup.open_dataset()"
                )
            self = cls.over_mapping(mm, header, path, groups[0], file_identity(st))
        except BaseException:
            mm.close()
            raise
        self._owns_mmap = True
        self._signature_key = key
        return self

    @classmethod
    def over_mapping(
        cls,
        mm: mmap.mmap,
        header: _format.Header,
        path: str,
        group: int,
        identity: Identity | None = None,
    ) -> HashIndex:
        """Make a table over a mapping that the caller owns.

        For a dataset generation, or a caller of :func:`map_file`: the
        caller closes the mapping, after closing the table (closing the
        table leaves the mapping alone).

        Parameters
        ----------
        mm : mmap.mmap
            The mapping (:func:`map_file`).
        header : hashlookup.store.format.Header
            Its validated header.
        path : str
            The mapped file, for error messages.
        group : int
            The table's section group (``format.table_groups(header)``).
        identity : tuple, optional
            The mapped file's :func:`file_identity`, which lets
            :meth:`verify` notice a file changed in place; None skips that
            check.

        Returns
        -------
        HashIndex
            An open table that does not own `mm`.

        Raises
        ------
        IndexFormatError
            The group's sections are missing, inconsistent or outside the
            file.
        """
        self = cls.__new__(cls)
        self.path = path
        layout = _format.table_layout(header, path, group)
        view = memoryview(mm)
        try:
            self._attach(
                view,
                layout.keys.offset,
                layout.count,
                layout.width,
                layout.locator.offset,
                layout.locator_bits,
                layout.bloom.offset if layout.bloom else 0,
                layout.bloom_blocks,
                layout.bloom_k,
                layout.bloom_seed,
                _describe(layout.algorithm, layout.width),
            )
            if layout.prefilter is not None:
                self._attach_prefilter(
                    layout.prefilter.offset,
                    layout.prefilter_words,
                    layout.prefilter_k,
                    layout.prefilter_seed,
                )
        except BaseException:
            self._detach()
            view.release()
            raise
        self._mmap = mm
        self._owns_mmap = False
        self._header = header
        self._identity = identity
        self._signature_key = None
        self._layout = layout
        self.algorithm = layout.algorithm
        return self

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Unmap the file (unless the table is part of a dataset generation).

        Further use raises ``ValueError("I/O operation on closed index")``;
        closing twice is fine.  Arrays returned by :meth:`keys` keep the
        mapping alive until they are freed.

        Raises
        ------
        BufferError
            A batch call (:meth:`contains_many`, :meth:`find_many`) is
            running in another thread; the index stays open, and can be
            closed once the batch has returned.
        """
        if self.closed:
            return
        view = self._detach()
        view.release()
        if self._owns_mmap and self._mmap is not None:
            close_mapping(self._mmap)
        self._mmap = None

    def __enter__(self) -> HashIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles by path (e.g. for Dask workers): the receiver maps the file
        # (and checks its signature again if this handle required one).
        return (_reopen_index, (self.path, _raw_public_key(self._signature_key)))

    def __repr__(self) -> str:
        if self.closed:
            return f"<HashIndex {self.path!r} (closed)>"
        return f"<HashIndex {self.path!r} {self.algorithm} {len(self):,} keys>"

    # -- iteration ----------------------------------------------------------

    def keys(self) -> np.ndarray:
        """The sorted keys as a read-only array over the mapping (no copy).

        Returns
        -------
        numpy.ndarray
            A read-only ``uint8`` array of shape ``(len(index), width)``,
            rows in sorted (memcmp) order: row ``i`` is the key that
            :meth:`find` answers ``i`` for.  It keeps the mapping alive
            after :meth:`close` until it is freed.

        Raises
        ------
        ValueError
            The index is closed.
        """
        n, w = len(self), self.width  # len() raises ValueError once closed
        assert self._mmap is not None
        return np.frombuffer(
            self._mmap, dtype=np.uint8, count=n * w, offset=self._layout.keys.offset
        ).reshape(n, w)

    def __iter__(self) -> Iterator[bytes]:
        keys = self.keys()
        for start in range(0, len(keys), 65536):
            block = keys[start : start + 65536].tobytes()
            w = self.width
            for i in range(0, len(block), w):
                yield block[i : i + w]

    # -- batch lookups ------------------------------------------------------

    def contains_many(
        self,
        keys: KeyBatch,
        out: npt.NDArray[np.bool_] | None = None,
        threads: int = 1,
    ) -> npt.NDArray[np.bool_]:
        """Membership of every key of a batch: a bool array in input order.

        The lookups run in C with the GIL released.

        Parameters
        ----------
        keys : numpy.ndarray, bytes-like or iterable
            A ``(n, width)`` uint8 numpy array (made C-contiguous if it is
            not; a 1-d uint8 array or an ``S``/``V`` array of ``width``-byte
            items also works), a flat bytes-like object of ``n * width``
            bytes, or an iterable of keys, each raw bytes of ``width`` or a
            hex ``str``.
        out : numpy.ndarray, optional
            A writable C-contiguous ``bool`` array of shape ``(n,)`` to fill
            and return instead of a new one.
        threads : int, default 1
            Split the batch over up to this many threads (0: one per core),
            at most one per 32,768 keys.

        Returns
        -------
        numpy.ndarray
            `out`, or a new ``bool`` array of shape ``(n,)``: True where the
            key is in the index.

        Raises
        ------
        TypeError
            `keys` is a single ``str``, a non-uint8 array or of another
            type; a key in a sequence is of another type; `out` is not a
            numpy array or not of dtype ``bool``; `threads` is not an
            ``int``.
        ValueError
            The index is closed; `keys` has the wrong shape or a length
            that is not a multiple of `width`; a key in a sequence has the
            wrong length or a non-hex character (the message names its
            position); `out` has the wrong shape or is not C-contiguous and
            writable; `threads` is negative.

        Examples
        --------
        ::

            found = index.contains_many(["d41d8cd98f00b204e9800998ecf8427e"])
            found.tolist()  # [True] or [False]
        """
        flat, n = self._key_buffer(keys)
        out = _check_out(out, n, np.bool_, "bool")
        self._run(self._contains_into, flat, out.view(np.uint8), n, threads)
        return out

    def find_many(
        self,
        keys: KeyBatch,
        out: npt.NDArray[np.int64] | None = None,
        threads: int = 1,
    ) -> npt.NDArray[np.int64]:
        """Row of every key of a batch in the sorted table, -1 for misses.

        Takes the same `keys`, `threads` and errors as
        :meth:`contains_many`, with `out` of dtype ``int64``.

        Parameters
        ----------
        keys : numpy.ndarray, bytes-like or iterable
            The keys, as for :meth:`contains_many`.
        out : numpy.ndarray, optional
            A writable C-contiguous ``int64`` array of shape ``(n,)`` to
            fill and return instead of a new one.
        threads : int, default 1
            Split the batch over up to this many threads (0: one per core).

        Returns
        -------
        numpy.ndarray
            `out`, or a new ``int64`` array of shape ``(n,)``: the row of
            each key in :meth:`keys`, or -1 where it is absent.

        Raises
        ------
        TypeError, ValueError
            As for :meth:`contains_many` (`out` must have dtype ``int64``).
        """
        flat, n = self._key_buffer(keys)
        out = _check_out(out, n, np.int64, "int64")
        self._run(self._find_into, flat, out, n, threads)
        return out

    def _run(
        self, kernel: Any, flat: Any, out: np.ndarray, n: int, threads: int
    ) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool):
            raise TypeError(f"threads must be an int, got {type(threads).__name__}")
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        if threads == 0:
            threads = os.cpu_count() or 1
        threads = min(threads, max(1, n // _MIN_KEYS_PER_THREAD))
        if threads <= 1:
            kernel(flat, out)
            return
        w = self.width
        bounds = [n * i // threads for i in range(threads + 1)]
        futures = [
            thread_pool().submit(kernel, flat[a * w : b * w], out[a:b])
            for a, b in itertools.pairwise(bounds)
        ]
        for fut in futures:
            fut.result()

    def _key_buffer(self, keys: Any) -> tuple[Any, int]:
        """Normalise batch input to (flat C-contiguous uint8 buffer, n)."""
        if self.closed:
            raise ValueError("I/O operation on closed index")
        w = self.width
        flat: np.ndarray | memoryview
        if isinstance(keys, np.ndarray):
            arr = keys
            if arr.dtype.kind in "SV" and arr.dtype.itemsize == w:
                arr = np.ascontiguousarray(arr).view(np.uint8).reshape(-1, w)
            if arr.dtype != np.uint8:
                raise TypeError(
                    f"expected a uint8 array of shape (n, {w}), got dtype {arr.dtype}"
                )
            if arr.ndim == 2:
                if arr.shape[1] != w:
                    raise ValueError(
                        f"expected a uint8 array of shape (n, {w}), "
                        f"got shape {arr.shape}"
                    )
            elif arr.ndim != 1:
                raise ValueError(
                    f"expected a uint8 array of shape (n, {w}), got "
                    f"{arr.ndim} dimensions"
                )
            flat = np.ascontiguousarray(arr).reshape(-1)
        elif isinstance(keys, (bytes, bytearray, memoryview)):
            view = memoryview(keys)
            if not view.c_contiguous:
                view = memoryview(view.tobytes())
            flat = view.cast("B")
        elif isinstance(keys, str):
            raise TypeError(
                "expected a sequence of keys, got a single str "
                "(use `key in index` for one key)"
            )
        elif isinstance(keys, Iterable):
            flat = memoryview(_pack(keys, w, self._what()))
        else:
            raise TypeError(
                "expected a uint8 array, a bytes-like object or a "
                f"sequence of keys, got {type(keys).__name__}"
            )
        size = len(flat) if not isinstance(flat, np.ndarray) else flat.size
        if size % w:
            raise ValueError(
                f"flat key buffer of {size} bytes is not a multiple "
                f"of the key width {w}"
            )
        return flat, size // w

    def _what(self) -> str:
        return _describe(self.algorithm, self.width)

    # -- facts and integrity ------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Counts, sizes, sections, build parameters and metadata.

        Reads the header and the metadata section only (O(1) in the number
        of keys).

        Returns
        -------
        dict
            ``path``, ``format_version``, ``algorithm``, ``width``,
            ``count`` (unique keys), ``file_size``, ``key_bytes``,
            ``header_size``, ``created`` (ISO 8601, UTC), ``locator_bits``,
            ``kernel`` (the C kernels in use), ``bloom`` (None, or a dict of
            ``blocks``, ``hashes``, ``seed``, ``bytes``, ``bits_per_key``),
            ``prefilter`` (None, or a dict of ``words``, ``hashes``,
            ``seed``, ``bytes``, ``bits_per_key``: the first-level
            filter, docs/FORMAT.md), ``sections`` (one dict per section)
            and ``metadata`` (the file's JSON metadata, ``{}`` if it has
            none).

        Raises
        ------
        ValueError
            The index is closed.
        IndexFormatError
            The metadata section is not valid JSON (or not an object).
        """
        if self.closed:
            raise ValueError("I/O operation on closed index")
        h, lay = self._header, self._layout
        return {
            "path": self.path,
            "format_version": h.version,
            "algorithm": self.algorithm,
            "width": self.width,
            "count": len(self),
            "file_size": h.file_size,
            "key_bytes": lay.keys.length,
            "header_size": h.header_size,
            "created": _format.iso_utc(h.created_ns),
            "locator_bits": lay.locator_bits,
            "kernel": kernel_name(),
            "bloom": _filter_info(
                lay.bloom,
                lay.count,
                blocks=lay.bloom_blocks,
                hashes=lay.bloom_k,
                seed=lay.bloom_seed,
            ),
            "prefilter": _filter_info(
                lay.prefilter,
                lay.count,
                words=lay.prefilter_words,
                hashes=lay.prefilter_k,
                seed=lay.prefilter_seed,
            ),
            "sections": [s.as_dict() for s in h.sections],
            "metadata": _format.read_metadata(self._mmap, h, self.path),
        }

    def verify(self, checksums: bool = True) -> dict[str, Any]:
        """Recompute every checksum and check the structure (O(file size)).

        Parameters
        ----------
        checksums : bool, default True
            False checks this table's structure only (keys sorted and
            unique, locator exact, every key passing the first-level and
            Bloom filters) and
            skips the file's checksums and the in-place change check: a
            dataset verifies the file's checksums once, not per table.

        Returns
        -------
        dict
            ``{"path": ..., "sections": ..., "bytes": ..., "keys": ...,
            "ok": True}``: the number of sections, the file size and the
            number of keys.

        Raises
        ------
        IndexFormatError
            The first thing found wrong: the file was truncated or modified
            in place since it was opened (checked before any page is read),
            the header or a section checksum differs (naming the section),
            the keys are not sorted and unique, the locator does not match
            the keys, or the first-level or Bloom filter rejects a key.
        ValueError
            The index is closed.
        """
        if self.closed:
            raise ValueError("I/O operation on closed index")
        h = self._header
        if checksums and self._identity is not None:
            # Before any page is read: a file truncated under the mapping
            # would fault (SIGBUS) on the lost pages.
            check_unchanged(self.path, self._identity)
        assert self._mmap is not None
        view = memoryview(self._mmap)
        try:
            if not checksums:
                return self._verify_structure(h)
            if _format.header_checksum(view[: h.header_size]) != h.checksum:
                raise IndexFormatError(f"{self.path}: header checksum mismatch")
            for i, s in enumerate(h.sections):
                got = _format.section_checksum(view[s.offset : s.offset + s.length])
                if got != s.checksum:
                    raise IndexFormatError(
                        f"{self.path}: checksum mismatch in section {i} ({s.name}): "
                        f"expected {s.checksum:016x}, got {got:016x}"
                    )
        finally:
            view.release()
        return self._verify_structure(h)

    def _verify_structure(self, h: _format.Header) -> dict[str, Any]:
        problem = self._check_structure()
        if problem is not None:
            what, pos = problem
            if what == "keys":
                msg = f"keys section: row {pos} is not greater than row {pos - 1}"
            else:
                msg = f"locator section: slot {pos} does not match the keys"
            raise IndexFormatError(f"{self.path}: {msg}")
        bad = self._check_prefilter()
        if bad is not None:
            raise IndexFormatError(
                f"{self.path}: prefilter section rejects the key at row {bad}"
            )
        if self._layout.bloom is not None and len(self):
            missing = ~self.contains_many(self.keys())
            if missing.any():
                row = int(np.flatnonzero(missing)[0])
                raise IndexFormatError(
                    f"{self.path}: bloom section rejects the key at row {row}"
                )
        return {
            "path": self.path,
            "sections": len(h.sections),
            "bytes": h.file_size,
            "keys": len(self),
            "ok": True,
        }


Identity = tuple[int, int, int, int]


def file_identity(st: os.stat_result) -> Identity:
    """What tells a file version apart: device, inode, mtime, size."""
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def check_unchanged(path: str, identity: Identity) -> None:
    """Raise IndexFormatError if the file mapped with `identity` was changed
    in place since it was opened (same inode, other size or mtime).  A path
    that now names another file (replaced, the supported way) or none is
    fine: the mapping still holds the old, immutable file."""
    try:
        s = os.stat(path)
    except OSError:
        return
    dev, ino, mtime_ns, size = identity
    if (s.st_dev, s.st_ino) != (dev, ino):
        return
    advice = (
        "index files must be replaced (os.replace, as hashlookup does), "
        "never modified in place; reopen it"
    )
    if s.st_size < size:
        raise IndexFormatError(
            f"{path}: truncated on disk after it was opened ({size} bytes mapped, "
            f"{s.st_size} now; reading the lost pages would crash with SIGBUS): "
            f"{advice}"
        )
    if s.st_size != size or s.st_mtime_ns != mtime_ns:
        raise IndexFormatError(
            f"{path}: changed on disk after it was opened (modified in place: "
            f"size {size} -> {s.st_size}, mtime changed): {advice}"
        )


def map_file(path: str) -> tuple[mmap.mmap, _format.Header, os.stat_result]:
    """Map an index or dataset file read-only and validate its header.
    Also returns the fstat of the file that was mapped (its identity, for
    reload checks: a later stat of the path may see a newer file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not an index", path)
        if not stat.S_ISREG(st.st_mode):
            raise IndexFormatError(
                f"{path}: not a regular file (an index must be a "
                "file that can be memory-mapped)"
            )
        size = st.st_size
        if size == 0:
            _format.read_header(b"", 0, path)  # raises "empty file"
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        with memoryview(mm) as view:
            header = _format.read_header(view, size, path)
    except BaseException:
        mm.close()
        raise
    return mm, header, st


def preload_mapping(mm: mmap.mmap | None) -> None:
    """Make a mapped file resident now: MADV_POPULATE_READ (Linux 5.14+)
    reads every page in before returning; elsewhere MADV_WILLNEED starts
    the read-ahead of the whole file.  For services that must not pay a
    disk read on a first lookup (docs/API.md, "Preloading")."""
    if mm is None or len(mm) == 0:
        return
    populate = getattr(
        mmap, "MADV_POPULATE_READ", 22 if sys.platform == "linux" else None
    )
    if populate is not None:
        try:
            mm.madvise(populate)
            return
        except (OSError, ValueError):
            pass  # an older kernel: EINVAL
    try:  # (not contextlib.suppress: contextlib and functools cost start-up)
        mm.madvise(mmap.MADV_WILLNEED)
    except (OSError, ValueError, AttributeError):
        pass


def close_mapping(mm: mmap.mmap) -> None:
    """Unmap unless arrays (keys()) still use the mapping; then it is
    unmapped when the last of them is freed."""
    try:
        mm.close()
    except BufferError:
        pass


def _pack(keys: Iterable[Any], width: int, what: str) -> bytearray:
    from hashlookup._core import pack_keys

    return pack_keys(keys, width, what)


def _check_out(out: np.ndarray | None, n: int, dtype: Any, name: str) -> np.ndarray:
    if out is None:
        return np.empty(n, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy {name} array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {name}, got {out.dtype}")
    if out.shape != (n,):
        raise ValueError(f"out must have shape ({n},), got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    return out


def open_index(
    path: str | os.PathLike[str],
    *,
    require_signature: PublicKeySpec | None = None,
    preload: bool = False,
) -> HashIndex:
    """Open an index file for lookups: the same as :meth:`HashIndex.open`.

    Parameters
    ----------
    path : str or os.PathLike
        The index file.
    require_signature : optional
        A public key (path of NAME.pub, its bytes, 32 raw bytes or an
        ``Ed25519PublicKey``) that must have signed the file, or None.
    preload : bool, default False
        Read the whole file into memory now (see :meth:`HashIndex.open`).

    Returns
    -------
    HashIndex
        The open index (a context manager).

    Raises
    ------
    IndexFormatError
        Not a valid index file (``IndexVersionError``: a newer format;
        ``SignatureError``: the required signature does not verify).
    TypeError
        `require_signature` is not one of the accepted forms.
    HashLookupError
        `require_signature` is given without the ``cryptography`` package.
    OSError
        The file or the public key file cannot be opened
        (``FileNotFoundError``...), unchanged.

    Examples
    --------
    ::

        with hashlookup.open_index("known.hlx") as index:
            "d41d8cd98f00b204e9800998ecf8427e" in index  # True or False
            index.find_many(keys)                        # rows, -1 for misses
    """
    return HashIndex.open(path, require_signature=require_signature, preload=preload)


def _raw_public_key(key: Any) -> bytes | None:
    """32 raw bytes of an Ed25519 public key (picklable), or None."""
    if key is None:
        return None
    from cryptography.hazmat.primitives import serialization as s

    raw: bytes = key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return raw


def _reopen_index(path: str, key: bytes | None = None) -> HashIndex:
    return HashIndex.open(path, require_signature=key)


def _filter_info(section: Any, count: int, **params: int) -> dict[str, Any] | None:
    """info() of a table's Bloom or first-level filter: its parameters, size
    and bits per key; None when the table has none."""
    if section is None:
        return None
    bits_per_key = section.length * 8 / count if count else None
    return {**params, "bytes": section.length, "bits_per_key": bits_per_key}
