"""``hashlookup check``: look up digests given as arguments."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hashlookup import algorithms
from hashlookup.cli import _near
from hashlookup.cli._common import EXIT_CLEAN, EXIT_FOUND, CLIError, Context
from hashlookup.cli._open import Opened
from hashlookup.cli._options import (
    add_filter_options,
    add_format,
    add_path,
    add_verify_key,
    label_options,
)
from hashlookup.cli._output import csv_rows, json_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = (
    "Look up hex digests (md5, sha1 or sha256) given on the command line, "
    "or with --pdq PDQ hashes within a Hamming distance. "
    "Prints one result per digest, with the record of each hit; exit 1 if "
    "any was found, 0 if none, 2 on error."
)

#: Exit status of check, shown in its --help.
EXIT_STATUS = (
    "Exit status: 0 no digest found, 1 at least one found, 2 error (an "
    "invalid digest, an unreadable file; one line on stderr)."
)

if TYPE_CHECKING:
    import argparse

    from hashlookup.store.dataset import Match

#: Per digest: found, and the record found (datasets only).
Results = list[tuple[bool, "Match | None"]]

_HEX_RE = re.compile(r"[0-9A-Fa-f]*")
_RECORD_FIELDS = ("record", *algorithms.NAMES, "size", "labels")


def _either(items: Sequence[object]) -> str:
    """``"a, b or c"``."""
    words = [str(x) for x in items]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


_ANY_DIGEST = (
    f"expected an {_either(algorithms.NAMES)} digest "
    f"({_either([a.hex_length for a in algorithms.DIGESTS])} hex characters)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``check``."""
    add_path(p)
    p.add_argument("digests", nargs="+", metavar="DIGEST", help="hex digest (any case)")
    _near.add_near_options(p)
    add_format(p, "output format (default: text)")
    add_filter_options(p)
    add_verify_key(p)
    p.add_argument(
        "--attributes",
        action="store_true",
        help="show each hit's record attributes (text: NAME=VALUE fields, "
        "tab, newline and backslash escaped; jsonl: an 'attributes' object; "
        "csv: an 'attributes' column holding a JSON object)",
    )


def parse_digests(digests: Sequence[str], opened: Opened) -> list[str]:
    """Lowercase hex of the digest arguments, each of an algorithm the file
    has (the hex length names it).  Errors name the argument's position,
    never its text (queried digests are only ever printed as results)."""
    # An index file has one width and says so, as before datasets.
    fixed = None if opened.is_dataset else opened.table()
    out: list[str] = []
    for pos, raw in enumerate(digests, 1):
        text = raw.strip()
        algorithm = algorithms.BY_HEX_LENGTH.get(len(text))
        if fixed is not None and len(text) != 2 * fixed.width:
            raise CLIError(
                f"digest argument {pos}: expected {2 * fixed.width} hex characters "
                f"({fixed.algorithm}), got {len(text)} characters"
            )
        if fixed is None and algorithm is None:
            raise CLIError(
                f"digest argument {pos}: {_ANY_DIGEST}, got {len(text)} characters"
            )
        if not _HEX_RE.fullmatch(text):
            raise CLIError(f"digest argument {pos}: not a hexadecimal string")
        if fixed is None and algorithm not in opened.algorithms:
            raise CLIError(
                f"digest argument {pos}: an {algorithm} digest, but {opened.path} "
                f"has no {algorithm} table (it has {', '.join(opened.algorithms)})"
            )
        out.append(text.lower())
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Print one result per digest; exit 1 if any was found."""
    with Opened(args.path, args.verify_key) as opened:
        only, exclude = opened.label_filters(*label_options(args))
        if args.pdq:  # the arguments are PDQ hashes
            near = _near.near_results(args, opened, only, exclude)
            ctx.found = any(ms for _, ms in near)
            ctx.out.write(_near.render(args.format, near))
            return EXIT_FOUND if ctx.found else EXIT_CLEAN
        hexes = parse_digests(args.digests, opened)
        results = [opened.lookup(h, only, exclude) for h in hexes]
        is_dataset = opened.is_dataset
    ctx.found = any(found for found, _ in results)
    if args.format == "text":
        data = _text(hexes, results, args.attributes)
    elif args.format == "jsonl":
        data = _jsonl(hexes, results, args.attributes)
    else:
        data = _csv(hexes, results, is_dataset, args.attributes)
    ctx.out.write(data)
    return EXIT_FOUND if ctx.found else EXIT_CLEAN


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(hexes: list[str], results: Results, attributes: bool = False) -> bytes:
    lines = []
    for h, (found, m) in zip(hexes, results, strict=True):
        line = f"{h}\t{'FOUND' if found else 'not found'}"
        if m is not None:
            fields = [f"record={m.record_id}"]
            fields += [
                f"{a}={getattr(m, a)}"
                for a in algorithms.NAMES
                if getattr(m, a) is not None
            ]
            if m.size is not None:
                fields.append(f"size={m.size}")
            fields.append(f"labels={';'.join(m.labels)}")
            if attributes:  # a file name may hold a tab or a newline
                fields += [
                    f"{k}={v}".translate(_TEXT_ESCAPES) for k, v in m.attributes.items()
                ]
            line += "\t" + "\t".join(fields)
        lines.append(line + "\n")
    return "".join(lines).encode("utf-8")


def _jsonl(hexes: list[str], results: Results, attributes: bool = False) -> bytes:
    records: list[bytes] = []
    for h, (found, m) in zip(hexes, results, strict=True):
        rec: dict[str, Any] = {"digest": h, "found": bool(found)}
        if m is not None:
            rec["record"] = m.record_id
            rec.update((a, getattr(m, a)) for a in algorithms.NAMES)
            rec.update(size=m.size, labels=list(m.labels))
            if attributes:
                rec["attributes"] = dict(m.attributes)
        records.append(json_line(rec))
    return b"".join(records)


def _csv(
    hexes: list[str], results: Results, is_dataset: bool, attributes: bool = False
) -> bytes:
    # An index file has no records: no record columns, as before datasets.
    extra = ("attributes",) if attributes and is_dataset else ()
    rows: list[Sequence[object]] = [
        ("digest", "found", *_RECORD_FIELDS, *extra)
        if is_dataset
        else ("digest", "found")
    ]
    for h, (found, m) in zip(hexes, results, strict=True):
        row: list[object] = [h, "true" if found else "false"]
        if is_dataset:
            if m is None:
                row += [""] * (len(_RECORD_FIELDS) + len(extra))
            else:
                row += [
                    m.record_id,
                    *(getattr(m, a) or "" for a in algorithms.NAMES),
                    "" if m.size is None else m.size,
                    ";".join(m.labels),
                ]
                if extra:
                    import json

                    row.append(json.dumps(dict(m.attributes), ensure_ascii=False))
        rows.append(row)
    return csv_rows(rows)
