"""Whether a scan hashes images, the checks of its image options, and the
:class:`Sniffed` mark of an image file's hashing result.

Every scan decides (:func:`decide`) and checks its options
(:func:`check_options`); only a scan that hashes images (a dataset with
PDQ hashes, the ``images`` extra installed) imports the image stage,
``hashlookup/scan/images.py``, whose named tuples and classes cost a scan of
an empty tree start-up.
"""

from __future__ import annotations

from hashlookup.near._defaults import check_radius

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

__all__ = ["MISSING_EXTRA", "Sniffed", "check_options", "decide", "extra_available"]

#: The reason an image extra is missing, as the scan reports it.
MISSING_EXTRA = (
    "the dataset has PDQ hashes but the image packages (pdqhash, Pillow) are "
    "not installed: images are matched by their exact digests only "
    "(pip install 'hashlookup[images]')"
)


def extra_available() -> bool:
    """Whether pdqhash and Pillow import (the ``images`` extra)."""
    try:
        import pdqhash  # noqa: F401
        from PIL import Image  # noqa: F401
    except ImportError:
        return False
    return True


def check_options(max_distance: int, min_quality: int) -> None:
    """TypeError/ValueError for a radius or quality floor out of range
    (checked whether or not the dataset has PDQ hashes; without importing
    the search)."""
    check_radius(max_distance, min_quality)


def decide(has_pdq: bool, pdq: bool | None, path: str) -> tuple[bool, str | None]:
    """Whether a scan hashes images, and why not when it cannot.

    Parameters
    ----------
    has_pdq : bool
        The dataset holds PDQ hashes.
    pdq : bool or None
        The caller's choice: None hashes images when the dataset has PDQ
        hashes and the extra is installed; True requires both; False never.
    path : str
        The dataset, for error messages.

    Returns
    -------
    tuple of (bool, str or None)
        On or off, and the reason it is off although the dataset has PDQ
        hashes (the extra is missing), else None.

    Raises
    ------
    ValueError
        `pdq` is True and the dataset has no PDQ hashes.
    ImportError
        `pdq` is True and the extra is not installed.
    """
    if pdq is False:
        return False, None
    if not has_pdq:
        if pdq:
            raise ValueError(f"{path}: the dataset has no PDQ hashes (docs/NEAR.md)")
        return False, None
    if extra_available():
        return True, None
    if pdq:
        raise ImportError(MISSING_EXTRA)
    return False, MISSING_EXTRA


class Sniffed:
    """A file's hashing result (as Hasher.many gives it) and its stat from
    the walk, for a file that starts like an image."""

    __slots__ = ("result", "stat")

    def __init__(
        self,
        result: int | tuple[int, dict[str, bytes]],
        st: os.stat_result | None,
    ) -> None:
        self.result = result
        self.stat = st
