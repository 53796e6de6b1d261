"""``hashlookup export-bloom``: one key table as a DCSO bloom v1 filter."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any

from hashlookup._version import __version__
from hashlookup.cli._common import (
    EXIT_CLEAN,
    PROG,
    CLIError,
    Context,
    refuse_same_file,
    refuse_writing_directory,
    warn,
)
from hashlookup.cli._open import Opened
from hashlookup.cli._options import (
    add_algorithm,
    add_path,
    add_quiet,
    add_verify_key,
    float_arg,
    int_arg,
)
from hashlookup.cli._output import human_size

DESCRIPTION = (
    "Write the digests of one table of a dataset as a Bloom filter in the "
    "format of DCSO's bloom tool and the flor Python package (digests added as "
    "uppercase hex)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``export-bloom``."""
    add_path(p)
    add_algorithm(p, "table to export (default: the file's only table)")
    p.add_argument(
        "--fpr",
        type=float_arg(0.0),
        default=1e-4,
        metavar="P",
        help="false-positive probability, 0 < P < 1 (default: 1e-4)",
    )
    p.add_argument(
        "--capacity",
        type=int_arg(1),
        default=None,
        metavar="N",
        help="capacity in the header (default: the number of keys)",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="filter file to write"
    )
    p.add_argument(
        "--no-metadata",
        action="store_true",
        help="write no trailer (default: a JSON description of the source)",
    )
    p.add_argument(
        "--threads",
        type=int_arg(1),
        default=None,
        metavar="N",
        help="hashing threads (default: automatic)",
    )
    add_quiet(p)
    add_verify_key(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Write the filter; a summary line on stderr unless ``--quiet``."""
    try:
        from hashlookup.builders.bloom import export_bloom
    except ImportError as exc:
        raise CLIError(
            f"export-bloom is not available in this installation ({exc})"
        ) from None
    refuse_writing_directory(args.output, "-o")
    refuse_same_file(args.output, "-o", [args.path])

    with Opened(args.path, args.verify_key) as opened:
        algorithms = opened.algorithms
        algorithm = args.algorithm
        if algorithm is None:
            if len(algorithms) != 1:
                raise CLIError(
                    f"{args.path} has {', '.join(algorithms)} tables: choose one "
                    "with --algorithm"
                )
            algorithm = algorithms[0]
        elif algorithm not in algorithms:
            raise CLIError(
                f"{args.path} has no {algorithm} table (it has {', '.join(algorithms)})"
            )
        table = opened.table(algorithm)
        metadata: dict[str, Any] | None = None
        if not args.no_metadata:
            metadata = {
                "generator": f"hashlookup {__version__}",
                "source": os.path.basename(args.path),
                "algorithm": algorithm,
                "keys": len(table),
            }
            ds = opened.dataset
            if opened.is_dataset:  # index files have no dataset facts
                assert ds is not None
                metadata.update(
                    dataset=ds.name, generation=ds.generation, built=ds.built
                )
        kwargs: dict[str, Any] = {"fpr": args.fpr, "metadata": metadata}
        if args.capacity is not None:
            kwargs["capacity"] = args.capacity
        if args.threads is not None:
            kwargs["threads"] = args.threads
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = export_bloom(table, args.output, **kwargs)
    for w in caught:
        warn(str(w.message))
    if not args.quiet:
        size = int(report.file_size)
        sys.stderr.write(
            f"{PROG}: wrote {report.path} (DCSO bloom v1, {algorithm}): "
            f"{report.keys} keys, capacity {report.n}, {report.m} bits, "
            f"{report.k} hashes, fpr {report.fpr:g}, {size} bytes "
            f"({human_size(size)}), {float(report.seconds):.2f} s\n"
        )
    return EXIT_CLEAN
