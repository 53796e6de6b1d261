"""Importers: read known-hash lists in their native formats as streams of
columnar record batches, for the multi-algorithm dataset builder.

    from hashlookup.importers import iter_records, ImportReport

    report = ImportReport()
    for batch in iter_records("list.json", report=report):   # format detected
        batch.md5, batch.has_md5, batch.size, batch.labels ...

Formats: "sqlite" (NSRL RDSv3), "hashdeep", "vics" (Project VIC JSON),
"csv", "text" (digest lists, md5sum output).  See docs/IMPORTERS.md.
"""

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
