"""``hashlookup build``: a dataset (or, with ``--index``, a single-table
index) from known-hash lists."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any

from hashlookup.cli._common import (
    EXIT_CLEAN,
    PROG,
    CLIError,
    Context,
    note_stale_signature,
    refuse_same_file,
    refuse_writing_directory,
)
from hashlookup.cli._inputs import dataset_inputs, import_options, named_input
from hashlookup.cli._memory import add_memory_options, memory_options
from hashlookup.cli._options import (
    add_algorithm,
    add_import_options,
    add_prefilter_option,
    add_quiet,
    float_arg,
    int_arg,
)
from hashlookup.cli._output import human_size

DESCRIPTION = (
    "Build a dataset file from known-hash lists (plain digest lists, md5sum "
    "output, hashdeep, CSV, Project VIC JSON, NSRL SQLite). Every record of "
    "INPUT NAME=PATH gets the label source:NAME; records of the same file "
    "(sharing a digest) are merged. With --index, write a single-table index "
    "of plain digest lists instead. The file is written atomically."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``build``."""
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="PATH, or NAME=PATH to name the source (default NAME: the file's "
        "stem); '-' or NAME=- for standard input",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="DATASET", help="file to write"
    )
    p.add_argument(
        "--allow",
        action="append",
        metavar="FILE",
        help="list of digests that must never match: records with any of them "
        "are left out (repeatable)",
    )
    p.add_argument("--name", default=None, help="dataset name (default: output stem)")
    p.add_argument(
        "--generation",
        type=int_arg(0),
        default=None,
        metavar="N",
        help="generation number to store (default: the existing file's plus one, or 1)",
    )
    add_import_options(p)
    p.add_argument(
        "--bloom-bits-per-key",
        type=float_arg(0, 64),
        default=None,
        metavar="N",
        help="Bloom filter size in bits per key (default: library default)",
    )
    add_prefilter_option(p)
    p.add_argument(
        "--index",
        action="store_true",
        help="write a single-table index of plain digest lists (the format before "
        "datasets) instead of a dataset",
    )
    add_algorithm(
        p, "with --index: digest algorithm (default: detected from the first digest)"
    )
    add_memory_options(p)
    add_quiet(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Build the file; a summary line on stderr unless ``--quiet``."""
    refuse_writing_directory(args.output, "-o")
    refuse_same_file(
        args.output,
        "-o",
        [named_input(t)[1] for t in args.inputs] + list(args.allow or ()),
    )
    if args.index:
        return _build_index(args)
    if args.algorithm is not None:
        raise CLIError(
            "--algorithm applies to --index builds only (a dataset keeps every "
            "algorithm its inputs have)"
        )
    from hashlookup import build_dataset

    kwargs = import_options(args)
    kwargs.update(memory_options(args))
    if args.bloom_bits_per_key is not None:
        kwargs["bloom_bits_per_key"] = args.bloom_bits_per_key
    if args.prefilter_bits_per_key is not None:
        kwargs["prefilter_bits_per_key"] = args.prefilter_bits_per_key
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        sources = dataset_inputs(args.inputs, stack)
        report = build_dataset(
            sources,
            args.output,
            name=args.name,
            allow=args.allow or None,
            generation=args.generation,
            **kwargs,
        )
    note_stale_signature(args.output)
    elapsed = float(report.seconds or (time.perf_counter() - started))
    if not args.quiet:
        read = sum(report.inputs.values())
        per_source = ", ".join(f"{k} {v}" for k, v in report.inputs.items())
        keys = ", ".join(f"{a} {n}" for a, n in report.keys.items())
        suppressed = sum(report.suppressed.values())
        sys.stderr.write(
            f"{PROG}: wrote {report.path} (dataset {report.name}, generation "
            f"{report.generation}): {report.records} records from {read} input "
            f"records ({per_source}); keys: {keys}; {report.merged} merged, "
            f"{suppressed} suppressed by the allow-list, {report.invalid} invalid "
            f"skipped; {report.file_size} bytes "
            f"({human_size(int(report.file_size))}), {elapsed:.2f} s\n"
        )
    return EXIT_CLEAN


def _build_index(args: argparse.Namespace) -> int:
    """``build --index``: one single-table index file, as before datasets."""
    from hashlookup import build_index
    from hashlookup.errors import InputError

    for option, value in (
        ("--name", args.name),
        ("--allow", args.allow),
        ("--input-format", args.input_format),
        ("--column", args.column),
        ("--label-column", args.label_column),
        ("--attribute", args.attribute),
        ("--generation", args.generation),
    ):
        if value is not None:
            raise CLIError(f"{option} applies to dataset builds, not to --index")
    inputs: list[str] = args.inputs
    for text in inputs:
        if named_input(text)[0] is not None:
            raise CLIError(
                f"input {text!r}: source names (NAME=PATH) apply to dataset builds; "
                "--index reads plain digest lists"
            )
    source: Any
    if "-" in inputs:
        if len(inputs) > 1:
            raise CLIError("'-' (standard input) cannot be combined with other inputs")
        source = sys.stdin.buffer
    elif len(inputs) == 1:
        source = inputs[0]
    else:
        source = list(inputs)
    kwargs: dict[str, Any] = {
        "algorithm": args.algorithm,
        "skip_invalid": args.skip_invalid,
        **memory_options(args),
    }
    if args.bloom_bits_per_key is not None:
        kwargs["bloom_bits_per_key"] = args.bloom_bits_per_key
    if args.prefilter_bits_per_key is not None:
        kwargs["prefilter_bits_per_key"] = args.prefilter_bits_per_key
    started = time.perf_counter()
    try:
        report = build_index(source, args.output, **kwargs)
    except InputError as exc:
        # The library's advice names its keyword; here the flag is the answer.
        raise InputError(
            str(exc).replace("pass algorithm=", "give --algorithm")
        ) from None
    note_stale_signature(args.output)
    elapsed = float(getattr(report, "seconds", 0.0) or (time.perf_counter() - started))
    if not args.quiet:
        sys.stderr.write(
            f"{PROG}: wrote {report.path} ({report.algorithm}): "
            f"{report.input_keys} keys read, {report.unique_keys} unique, "
            f"{report.duplicates} duplicates, {report.invalid} invalid skipped, "
            f"{report.file_size} bytes ({human_size(int(report.file_size))}), "
            f"{elapsed:.2f} s\n"
        )
    return EXIT_CLEAN
