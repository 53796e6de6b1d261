"""Importers: read known-hash lists in their native formats as streams of
columnar record batches, for the multi-algorithm dataset builder.

    from hashlookup.importers import iter_records, ImportReport

    report = ImportReport()
    for batch in iter_records("list.json", report=report):   # format detected
        batch.md5, batch.has_md5, batch.size, batch.labels ...

Formats: "sqlite" (NSRL RDSv3), "hashdeep", "vics" (Project VIC JSON),
"csv", "text" (digest lists, md5sum output).  See docs/IMPORTERS.md.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlookup.importers._readers import FORMATS, detect_format, iter_records
    from hashlookup.importers._records import ALGORITHMS, ImportReport, RecordBatch

__all__ = [
    "ALGORITHMS",
    "FORMATS",
    "ImportReport",
    "RecordBatch",
    "detect_format",
    "iter_records",
]


def __getattr__(name: str) -> object:
    # The readers and record batches are imported on first use: a match of a
    # digest list imports hashlookup.importers.digests, and with it this
    # package, but needs neither (their dataclasses cost start-up).
    if name in ("FORMATS", "detect_format", "iter_records"):
        from hashlookup.importers import _readers

        value = getattr(_readers, name)
    elif name in ("ALGORITHMS", "ImportReport", "RecordBatch"):
        from hashlookup.importers import _records

        value = getattr(_records, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
