"""File-tree scans: walk, read every file once, compute each digest the
dataset holds, look them up (docs/SCAN.md)."""

from hashlookup.scan.report import ScanHit, ScanInterrupted, ScanReport
from hashlookup.scan.tree import scan

__all__ = ["ScanHit", "ScanInterrupted", "ScanReport", "scan"]
