"""hashlookup: check file digests against known-hash lists, fast.

A memory-mapped, immutable index file per list; lookups in a C core
(Bloom filter, prefix locator, sorted keys).  See docs/API.md.
"""

from typing import TYPE_CHECKING

from hashlookup._version import __version__
from hashlookup.errors import (
    HashLookupError,
    IndexFormatError,
    IndexVersionError,
    InputError,
    SignatureError,
)

if TYPE_CHECKING:
    from hashlookup._bloom_export import BloomExportReport, export_bloom
    from hashlookup._build import BuildReport, build_index
    from hashlookup._dataset import Dataset, Invalid, Match, open_dataset
    from hashlookup._dataset_build import (
        DatasetReport,
        UpdateReport,
        build_dataset,
        update_dataset,
    )
    from hashlookup._index import HashIndex, open_index
    from hashlookup._signing import generate_signing_key, sign_dataset

# The public names are imported on first use (PEP 562): a command such as
# ``hashlookup match`` then imports only the modules it runs (numpy, the
# core), not the builders, the Bloom exporter or the signing code; start-up
# time is a visible part of matching a few hundred MB.
_LAZY = {
    "BloomExportReport": "_bloom_export", "export_bloom": "_bloom_export",
    "BuildReport": "_build", "build_index": "_build",
    "Dataset": "_dataset", "Invalid": "_dataset", "Match": "_dataset",
    "open_dataset": "_dataset",
    "DatasetReport": "_dataset_build", "UpdateReport": "_dataset_build",
    "build_dataset": "_dataset_build", "update_dataset": "_dataset_build",
    "HashIndex": "_index", "open_index": "_index",
    "generate_signing_key": "_signing", "sign_dataset": "_signing",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hashlookup' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"hashlookup.{module}"), name)
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
    "UpdateReport",
    "Match",
    "SignatureError",
    "__version__",
    "build_dataset",
    "build_index",
    "export_bloom",
    "generate_signing_key",
    "open_dataset",
    "open_index",
    "sign_dataset",
    "update_dataset",
]
