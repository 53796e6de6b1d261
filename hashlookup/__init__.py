"""hashlookup: check file digests against known-hash lists, fast.

A memory-mapped, immutable index file per list; lookups in a C core
(Bloom filter, prefix locator, sorted keys).  See docs/API.md.
"""

import os as _os
import sys as _sys
from _imp import extension_suffixes as _extension_suffixes

from hashlookup._lazy import defer_dataclasses as _defer_dataclasses
from hashlookup._version import __version__
from hashlookup.errors import (
    HashLookupError,
    IndexFormatError,
    IndexVersionError,
    InputError,
    SignatureError,
)


def _missing_extension_message() -> str | None:
    """What to do when this package has no compiled core (a source tree that
    was never built), or None when it has one.

    One directory listing: cheaper than importing the extension, which
    would load numpy's stand-in and the C core for ``hashlookup --help``.
    (The suffixes from ``_imp``, which ``importlib.machinery`` reads too:
    importing that, with importlib and warnings, costs start-up.)
    """
    here = _os.path.dirname(__file__)
    try:
        names = _os.listdir(here)
    except OSError:
        return None  # a zip or other loader: let the import say what is wrong
    suffixes = tuple(_extension_suffixes())
    for name in names:
        if name.startswith("_core.") and name.endswith(suffixes):
            return None
    return (
        f"hashlookup: the compiled core (hashlookup._core) is missing from "
        f"{here}: this is a source tree that was not built. Install the "
        f"package (`make install`, or `pip install .`) and run it from "
        f"outside the source tree: `.venv/bin/hlookup ...` or "
        f"`.venv/bin/python -I -m hashlookup ...` (-I keeps the current "
        f"directory off sys.path); or build in place with "
        f"`python setup.py build_ext --inplace` (see README.md, Building)."
    )


_MISSING = _missing_extension_message()
if _MISSING is not None:
    if _sys.argv[:1] == ["-m"]:
        # `python -m hashlookup` while Python locates hashlookup.__main__
        # (sys.argv[0] is "-m" until then): exit as the command line does on
        # an error (2), since 1 means "found" to scripts.
        _sys.stderr.write(_MISSING + "\n")
        raise SystemExit(2)
    raise ImportError(_MISSING, name=__name__)

# Before any module of this package defines a dataclass: the first import
# of dataclasses, if one comes, is made without the inspect module
# (hashlookup._lazy), which would double the start-up of `hashlookup check`.
_defer_dataclasses()

# (not typing.TYPE_CHECKING: importing typing costs start-up)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlookup.builders.bloom import BloomExportReport, export_bloom
    from hashlookup.builders.dataset import (
        DatasetReport,
        UpdateReport,
        build_dataset,
        update_dataset,
    )
    from hashlookup.builders.index import BuildReport, build_index
    from hashlookup.builders.signing import generate_signing_key, sign_dataset
    from hashlookup.near.image import pdq_hash
    from hashlookup.near.query import NearHits, NearMatch
    from hashlookup.store.dataset import Dataset, Invalid, Match, open_dataset
    from hashlookup.store.index import HashIndex, open_index

# The public names are imported on first use (PEP 562): a command such as
# ``hashlookup match`` then imports only the modules it runs (numpy, the
# core), not the builders, the Bloom exporter or the signing code; start-up
# time is a visible part of matching a few hundred MB.  (Grouped by module,
# by hand.)
# fmt: off
_LAZY = {
    "BloomExportReport": "builders.bloom", "export_bloom": "builders.bloom",
    "BuildReport": "builders.index", "build_index": "builders.index",
    "Dataset": "store.dataset", "Invalid": "store.dataset", "Match": "store.dataset",
    "open_dataset": "store.dataset",
    "DatasetReport": "builders.dataset", "UpdateReport": "builders.dataset",
    "build_dataset": "builders.dataset", "update_dataset": "builders.dataset",
    "HashIndex": "store.index", "open_index": "store.index",
    "generate_signing_key": "builders.signing", "sign_dataset": "builders.signing",
    "NearHits": "near.query", "NearMatch": "near.query", "pdq_hash": "near.image",
}
# fmt: on


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hashlookup' has no attribute {name!r}")
    # (__import__, not importlib.import_module: importing importlib, with
    # warnings, would cost every one-shot lookup)
    full = f"hashlookup.{module}"
    __import__(full)
    value = getattr(_sys.modules[full], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BloomExportReport",
    "BuildReport",
    "Dataset",
    "DatasetReport",
    "HashIndex",
    "HashLookupError",
    "IndexFormatError",
    "IndexVersionError",
    "InputError",
    "Invalid",
    "Match",
    "NearHits",
    "NearMatch",
    "SignatureError",
    "UpdateReport",
    "__version__",
    "build_dataset",
    "build_index",
    "export_bloom",
    "generate_signing_key",
    "open_dataset",
    "open_index",
    "pdq_hash",
    "sign_dataset",
    "update_dataset",
]
