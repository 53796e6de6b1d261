"""File-tree scans: walk, read every file once, compute each digest the
dataset holds, look them up (docs/SCAN.md)."""

# The walk's thread pool, loaded with the package (concurrent.futures loads
# it on first use otherwise): a scan may run after the process dropped
# privileges to a user who cannot read the Python installation (docs/SCAN.md).
import concurrent.futures.thread  # noqa: F401

from hashlookup.scan.report import ScanHit, ScanInterrupted, ScanReport
from hashlookup.scan.tree import scan

__all__ = ["ScanHit", "ScanInterrupted", "ScanReport", "scan"]
