"""``hashlookup info``: the facts of a dataset or index file."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hashlookup.cli._common import EXIT_CLEAN, Context
from hashlookup.cli._open import Opened
from hashlookup.cli._options import add_path, add_verify_key
from hashlookup.cli._output import json_default, render_info

DESCRIPTION = (
    "Print the name, generation, records, keys per algorithm, labels, "
    "suppressed counts, sizes and sections of a dataset (or the header, "
    "sizes and build parameters of an index)."
)

_TABLE_FIELDS = ("algorithm", "width", "count", "key_bytes", "locator_bits", "bloom")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``info``."""
    add_path(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_verify_key(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Print the facts as text or JSON."""
    with Opened(args.path, args.verify_key) as opened:
        # An index file shows its one table's facts, as before datasets.
        info = dataset_info(opened) if opened.is_dataset else opened.table().info()
    if args.json:
        ctx.out.line(json.dumps(info, indent=2, default=json_default))
    else:
        if opened.is_dataset:  # the raw metadata: with --json only
            info = {k: v for k, v in info.items() if k != "metadata"}
        for line in render_info(info):
            ctx.out.line(line)
    return EXIT_CLEAN


def dataset_info(opened: Opened) -> dict[str, Any]:
    """The facts ``info`` shows for a dataset: summary first, then the tables,
    the sections (once, not per table) and the raw metadata."""
    assert opened.dataset is not None
    raw = opened.dataset.info()
    meta = raw.get("metadata")
    build = meta.get("build") if isinstance(meta, dict) else None
    if not isinstance(build, dict):
        build = {}
    tables: dict[str, Any] = raw["tables"]
    first = next(iter(tables.values()))
    # PDQ hashes and attribute names only when the file has them: the facts
    # of other files read as before
    extra: dict[str, Any] = {}
    if raw.get("pdq") is not None:
        extra["pdq"] = raw["pdq"]
    if raw.get("attributes"):
        extra["attributes"] = raw["attributes"]
    if raw.get("code_tables"):
        extra["code_tables"] = raw["code_tables"]
    if raw.get("nsrl_version"):
        extra["nsrl_version"] = raw["nsrl_version"]
    return {
        "path": raw["path"],
        "kind": "dataset",
        "name": raw["name"],
        "generation": raw["generation"],
        "built": raw["built"],
        "records": raw["records"],
        "file_size": raw["file_size"],
        "format_version": first.get("format_version"),
        "keys": {a: t["count"] for a, t in tables.items()},
        "labels": dict(sorted(raw["labels"].items())),
        **extra,
        "suppressed": build.get("suppressed", {}),
        "merged": build.get("merged"),
        "invalid": build.get("invalid"),
        "sources": build.get("sources", {}),
        "allow_lists": build.get("allow_lists", []),
        "kernel": first.get("kernel"),
        "tables": {
            a: {k: t[k] for k in _TABLE_FIELDS if k in t} for a, t in tables.items()
        },
        "sections": first.get("sections", []),
        "metadata": meta,
    }
