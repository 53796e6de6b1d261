"""The reload methods of Dataset (a mixin): map a replaced file, checked
or not, and swap its generation in whole.  Lookups in flight finish on the
generation they started on; refusals are remembered per file version so a
bad file is not checked again until another one appears."""

from __future__ import annotations

import _thread
import os

from hashlookup.errors import IndexFormatError
from hashlookup.store.generation import (
    Generation,
    OlderGenerationError,
    checked_replacement,
    file_versions,
)
from hashlookup.store.index import file_identity

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Reloading:
    """:meth:`reload`, :meth:`check_replacement` and :meth:`swap_in` (mixed
    into Dataset, which sets the attributes below)."""

    path: str
    _suppress: tuple[str, ...]
    _lock: _thread.LockType
    _state: Generation | None
    _signature_key: Any
    _rejected: tuple[Any, Exception] | None

    def _install(self, generation: Generation) -> None:
        raise NotImplementedError  # Dataset's

    def _live(self) -> Generation:
        raise NotImplementedError  # Dataset's

    def reload(self, *, verify: bool = False, allow_older: bool = True) -> bool:
        """Map the file again if it was replaced.

        One stat when nothing changed.  Lookups in flight finish on the
        old generation; reloading never blocks them.  A missing file (being
        replaced, or removed) is not a change: the old generation stays.

        Parameters
        ----------
        verify : bool, default False
            Check the replacement's body first, as :meth:`verify` (O(file
            size)): a valid header over a damaged body is refused.
        allow_older : bool, default True
            False refuses a lower generation number than the current one.

        Returns
        -------
        bool
            True if a new generation was swapped in (by this call or by
            another thread meanwhile), False if the file was not replaced.

        Raises
        ------
        IndexFormatError
            The replacement is not a valid file (with `verify`: also a
            damaged body; with `require_signature`, ``SignatureError``: a
            bad signature); the old generation stays.  With any of these
            checks a refusal is remembered: the same error is raised while
            the file (and its signature file) stays the same.
        OlderGenerationError
            Without `allow_older`: the replacement's generation is older.
        OSError
            The replacement cannot be opened; the old generation stays.
        ValueError
            The dataset is closed.
        """
        replaced = self._replaced()
        if replaced is None:
            return False
        st, s = replaced
        with self._lock:
            if self._state is not st:
                return True  # another thread reloaded meanwhile
            self._install(self._replacement(st, s, verify, allow_older))
        # The old generation is not closed here: batch calls in other threads
        # may still run on its tables; its mapping goes when they let go of it.
        return True

    def check_replacement(
        self, *, verify: bool = True, allow_older: bool = False, source: Any = None
    ) -> Generation | None:
        """:meth:`reload` without the swap: the replaced file, checked.

        For a caller that checks the body in another thread and swaps the
        new generation in (:meth:`swap_in`) at a moment of its choosing,
        e.g. between two requests.  Refusals are remembered as by
        :meth:`reload`; the parameters and errors are its own (note the
        defaults: checked, and no older generation).  `source` (e.g.
        ``/proc/self/fd/N`` of the path, opened by the caller) is looked
        at instead of the path: the caller knows which file it got.

        Returns
        -------
        Generation or None
            The new generation (for :meth:`swap_in`, or to close), None if
            the file was not replaced (or is missing).
        """
        replaced = self._replaced(source)
        if replaced is None:
            return None
        with self._lock:
            return self._replacement(*replaced, verify, allow_older, source)

    def swap_in(self, generation: Generation) -> None:
        """Make `generation` (from :meth:`check_replacement`) the current one.

        Lookups in flight finish on the old generation, as with
        :meth:`reload`.  Raises ``ValueError`` if the dataset or
        `generation` is closed.
        """
        if generation.mapping is None:
            raise ValueError("I/O operation on closed generation")
        with self._lock:
            self._live()
            self._install(generation)

    def _replaced(self, source: Any = None) -> tuple[Generation, os.stat_result] | None:
        """(current generation, stat of the path) if the path names another
        file; None if not (a missing file is being replaced, or removed:
        the current generation stays)."""
        st = self._live()
        try:
            s = os.stat(self.path if source is None else source)
        except FileNotFoundError:
            return None
        return None if file_identity(s) == st.identity else (st, s)

    def _replacement(
        self,
        st: Generation,
        s: os.stat_result,
        verify: bool,
        allow_older: bool,
        source: Any = None,
    ) -> Generation:
        """The replaced file at `path` (stat `s`), checked; raises if refused.
        Called with the lock held."""
        versions = file_versions(self.path, s, self._signature_key)
        rejected = self._rejected
        if rejected is not None and rejected[0] == versions:
            if not (allow_older and isinstance(rejected[1], OlderGenerationError)):
                raise rejected[1]  # same files as last time: not checked again
        try:
            return checked_replacement(
                self.path,
                st,
                self._signature_key,
                self._suppress,
                verify,
                allow_older,
                source,
            )
        except (IndexFormatError, OlderGenerationError) as e:
            if self._signature_key is not None or verify or not allow_older:
                self._rejected = (versions, e)
            raise
