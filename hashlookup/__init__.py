"""hashlookup: check file digests against known-hash lists, fast.

A memory-mapped, immutable index file per list; lookups in a C core
(Bloom filter, prefix locator, sorted keys).  See docs/API.md.
"""

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
from hashlookup._version import __version__
from hashlookup.errors import (
    HashLookupError,
    IndexFormatError,
    IndexVersionError,
    InputError,
    SignatureError,
)

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
