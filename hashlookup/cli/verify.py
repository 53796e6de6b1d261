"""``hashlookup verify``: every checksum and structure of a file."""

from __future__ import annotations

import argparse

from hashlookup.cli._common import EXIT_CLEAN, Context
from hashlookup.cli._open import Opened
from hashlookup.cli._options import add_path, add_verify_key

DESCRIPTION = (
    "Recompute every checksum and run the structural checks of a dataset or "
    "index. Exit 0 and print OK when it is intact, exit 2 otherwise."
)

#: Exit status of verify, shown in its --help.
EXIT_STATUS = (
    "Exit status: 0 every checksum and structure check passed, 2 a check "
    "failed or the file cannot be read (one line on stderr naming it)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``verify``."""
    add_path(p)
    add_verify_key(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Verify the file; one OK line, or the error (exit 2)."""
    with Opened(args.path, args.verify_key) as opened:
        opened.verify()
        ds = opened.dataset
        if opened.is_dataset:
            assert ds is not None
            keys = ", ".join(f"{len(ds.table(a))} {a}" for a in ds.algorithms)
            text = (
                f"OK: {args.path}: dataset {ds.name} generation {ds.generation}, "
                f"{len(ds)} records ({keys} keys), all checks passed"
            )
        else:  # an index file counts keys, as before datasets
            table = opened.table()
            text = (
                f"OK: {args.path}: {len(table)} {table.algorithm} keys, "
                "all checks passed"
            )
    ctx.out.line(text)
    return EXIT_CLEAN
