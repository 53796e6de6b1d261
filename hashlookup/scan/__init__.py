"""File-tree scans: walk, read every file once, compute each digest the
dataset holds, look them up (docs/SCAN.md)."""

# Everything a scan of a tree needs is imported with the package (its thread
# pools are hashlookup.scan._pool's, on _thread): a scan may run after the
# process dropped privileges to a user who cannot read the Python
# installation (docs/SCAN.md).
from hashlookup.scan.report import ScanHit, ScanInterrupted, ScanReport
from hashlookup.scan.tree import scan

__all__ = ["ScanHit", "ScanInterrupted", "ScanReport", "scan"]
