"""``hashlookup update``: the next generation of a dataset."""

from __future__ import annotations

import argparse
import contextlib
import json

from hashlookup.cli._common import (
    EXIT_CLEAN,
    Context,
    note_stale_signature,
    refuse_same_file,
    refuse_writing_directory,
)
from hashlookup.cli._inputs import dataset_inputs, import_options, named_input
from hashlookup.cli._memory import add_memory_options, memory_options
from hashlookup.cli._options import add_import_options, add_path, add_prefilter_option
from hashlookup.cli._output import render_info

DESCRIPTION = (
    "Write the next generation of a dataset: its records plus the records of "
    "the --add lists, minus every record with a digest in a --remove list. "
    "The file is replaced atomically (or the result goes to -o); readers that "
    "reload pick it up. Prints the change summary."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``update``."""
    add_path(p)
    p.add_argument(
        "--add",
        action="append",
        metavar="[NAME=]FILE",
        help="hash list to add, its records labelled source:NAME (repeatable)",
    )
    p.add_argument(
        "--remove",
        action="append",
        metavar="FILE",
        help="digests whose records are removed (repeatable)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DATASET",
        help="write the new generation here instead of replacing DATASET",
    )
    add_import_options(p)
    add_prefilter_option(p)
    add_memory_options(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Write the new generation; print the change summary."""
    from hashlookup import update_dataset

    # The new generation replaces DATASET (or goes to -o): no hash list read
    # for it may be that file.
    target, option = (
        (args.path, "DATASET") if args.output is None else (args.output, "-o")
    )
    if args.output is not None:
        refuse_writing_directory(args.output, "-o")
    refuse_same_file(
        target,
        option,
        [named_input(t)[1] for t in args.add or ()] + list(args.remove or ()),
    )
    opts = import_options(args)
    if args.prefilter_bits_per_key is not None:
        opts["prefilter_bits_per_key"] = args.prefilter_bits_per_key
    opts.update(memory_options(args))
    with contextlib.ExitStack() as stack:
        add = dataset_inputs(args.add or [], stack)
        report = update_dataset(
            args.path,
            add=add or None,
            remove=args.remove or None,
            output=args.output,
            **opts,
        )
    note_stale_signature(report.path)
    summary = {
        "path": report.path,
        "source": args.path,
        "generation": report.generation,
        "previous_generation": report.generation - 1,
        "records_before": report.records_before,
        "records_after": report.records_after,
        "added": report.added,
        "removed": report.removed,
        "changed": report.changed,
        "file_size": report.file_size,
        "seconds": round(float(report.seconds), 3),
    }
    if args.json:
        ctx.out.line(json.dumps(summary, indent=2))
        return EXIT_CLEAN
    target = report.path if args.output is None else f"{args.path} -> {report.path}"
    for line in (
        f"updated: {target}",
        f"generation: {report.generation} (was {report.generation - 1})",
        f"records: {report.records_after} (was {report.records_before})",
        f"added: {report.added}",
        f"removed: {report.removed}",
        f"changed: {report.changed}",
        *render_info(report.file_size, "file_size"),
        f"seconds: {float(report.seconds):.2f}",
    ):
        ctx.out.line(line)
    return EXIT_CLEAN
