"""The file a command works on, opened once, whatever it is.

Every file opens through :func:`hashlookup.open_dataset`: a dataset, and a
single-table index file too (a Dataset holds an index file as one md5, sha1
or sha256 table with a record per key; the lookup service serves index
files the same way).  Commands use the one :class:`Opened` object and do not
ask which kind of file it is, except where the output of an index file has
always differed (no records, no labels): ``is_dataset`` says so.
"""

from __future__ import annotations

from hashlookup.cli._common import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from hashlookup.store.dataset import Dataset, Match
    from hashlookup.store.index import HashIndex

# Sections only a dataset has: a file with any of them that does not open as
# a dataset is a damaged dataset, never an index.
_DATASET_SECTIONS = {"rowmap", "records", "label bitmaps", "label index"}

Filters = tuple[tuple[str, ...] | None, tuple[str, ...] | None]


class Opened:
    """A dataset or index file opened for one command.

    Parameters
    ----------
    path
        The file.
    verify_key
        Public key (``--verify-key``) the file must carry a valid signature of.

    Attributes
    ----------
    path : str
        The file.
    dataset : Dataset or None
        The opened file; None only for an index of raw keys (not digests),
        which a Dataset does not hold.
    is_dataset : bool
        True for a dataset (records, labels), False for an index file.
    algorithms : tuple of str
        The algorithms of the file's key tables, in the usual order.
    """

    def __init__(self, path: str, verify_key: str | None = None) -> None:
        from hashlookup import IndexFormatError, SignatureError, open_dataset

        kwargs: dict[str, Any] = {}
        if verify_key is not None:
            kwargs["require_signature"] = verify_key
        self.path = path
        self.dataset: Dataset | None = None
        self._raw: HashIndex | None = None
        try:
            self.dataset = open_dataset(path, **kwargs)
        except SignatureError:
            raise
        except IndexFormatError as exc:
            # A Dataset refuses a table of raw keys (an index built with the
            # API); such a file still opens as an index, as it always did.
            self._raw = _open_raw_index(path, kwargs, exc)
        except OSError as exc:
            if exc.filename is None and exc.errno is not None:  # e.g. mmap of a dir
                raise OSError(exc.errno, exc.strerror, path) from exc
            raise
        try:
            if self.dataset is not None:
                self.is_dataset = self.dataset.info()["kind"] == "dataset"
                self.algorithms: tuple[str, ...] = tuple(self.dataset.algorithms)
            else:
                assert self._raw is not None
                self.is_dataset = False
                self.algorithms = (str(self._raw.algorithm),)
        except BaseException:
            self.close()
            raise

    def table(self, algorithm: str | None = None) -> HashIndex:
        """The key table of ``algorithm`` (default: the first, for an index
        file its only one)."""
        if self.dataset is None:
            assert self._raw is not None
            return self._raw
        return self.dataset.table(algorithm or self.algorithms[0])

    @property
    def matcher_target(self) -> Dataset | HashIndex:
        """What ``KeyMatcher`` looks up in: the dataset, or the one table of
        an index file (a fixed width, as before datasets: the inputs' errors
        name its digest length)."""
        if self.is_dataset:
            assert self.dataset is not None
            return self.dataset
        return self.table()

    def lookup(
        self, digest: str, only: tuple[str, ...] | None, exclude: tuple[str, ...] | None
    ) -> tuple[bool, Match | None]:
        """Whether ``digest`` (validated hex of one of the file's algorithms)
        is in the file, and (datasets only) the record that was found."""
        if self.dataset is None:  # raw keys: membership only
            return bytes.fromhex(digest) in self.table(), None
        match = self.dataset.lookup(digest, only, exclude)
        return match is not None, match if self.is_dataset else None

    def verify(self) -> None:
        """Recompute every checksum and run the structural checks."""
        if self.dataset is None:
            self.table().verify()
        else:
            self.dataset.verify()

    def label_filters(
        self, only: list[str] | None, exclude: list[str] | None
    ) -> Filters:
        """Validated ``--only-label``/``--exclude-label`` labels
        (:func:`label_filters`)."""
        return label_filters(
            self.dataset if self.is_dataset else None, self.path, only, exclude
        )

    def close(self) -> None:
        """Release the mapping."""
        for owner in (self.dataset, self._raw):
            if owner is not None:
                owner.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_raw_index(path: str, kwargs: dict[str, Any], refused: Exception) -> HashIndex:
    """The file as a single-table index, or ``refused`` (the dataset's error)
    if it is none (or a damaged dataset)."""
    from hashlookup import IndexFormatError, open_index

    try:
        index = open_index(path, **kwargs)
    except (IndexFormatError, OSError):
        raise refused from None
    kinds = {s["kind"] for s in index.info()["sections"]}
    if kinds & _DATASET_SECTIONS:
        index.close()
        raise refused from None
    return index


def label_filters(
    dataset: Dataset | None,
    path: str,
    only: list[str] | None,
    exclude: list[str] | None,
) -> Filters:
    """Validated ``--only-label``/``--exclude-label`` labels of ``path``
    (``dataset`` None: a single-table index file, which has no labels).

    An ``--only-label`` label the file does not have is an error (a typo
    would otherwise hide every hit); an unknown ``--exclude-label`` label
    excludes nothing.  Index files have no labels: ``--exclude-label`` is
    ignored there.
    """
    if only and dataset is None:
        raise CLIError(f"--only-label: {path} is a single-table index without labels")
    if dataset is None:
        return None, None
    if only:
        known = dataset.labels()
        for label in only:
            if label not in known:
                names = sorted(known)
                shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
                raise CLIError(
                    f"--only-label {label!r}: no such label in {path} "
                    f"(labels: {shown or 'none'})"
                )
    return (tuple(only) if only else None, tuple(exclude) if exclude else None)
