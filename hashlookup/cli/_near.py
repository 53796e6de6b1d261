"""``check --pdq``: the arguments are PDQ hashes, matched within a Hamming
radius (docs/NEAR.md); the options and the three output forms.

Errors name an argument's position, never its text: queried hashes are
only ever printed as results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hashlookup import algorithms
from hashlookup.cli._common import CLIError
from hashlookup.cli._output import csv_rows, json_line

if TYPE_CHECKING:
    import argparse

    from hashlookup.cli._open import Opened
    from hashlookup.near import NearMatch

#: Per PDQ argument: its lowercase hex and the records within the radius.
Results = list[tuple[str, "list[NearMatch]"]]

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_HEADER = (
    "pdq",
    "found",
    "distance",
    "quality",
    "record",
    *algorithms.NAMES,
    "size",
    "labels",
)


def add_near_options(p: argparse.ArgumentParser) -> None:
    """``--pdq``, ``--max-distance``, ``--min-quality``."""
    p.add_argument(
        "--pdq",
        action="store_true",
        help="the arguments are PDQ hashes (64 hex characters), matched within "
        "--max-distance bits of the dataset's PDQ hashes",
    )
    p.add_argument(
        "--max-distance",
        type=int,
        default=31,
        metavar="BITS",
        help="largest Hamming distance of a PDQ match (default: 31)",
    )
    p.add_argument(
        "--min-quality",
        type=int,
        default=50,
        metavar="Q",
        help="ignore the dataset's PDQ hashes of lower quality, 0..100 (default: 50)",
    )


def near_results(
    args: argparse.Namespace,
    opened: Opened,
    only: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
) -> Results:
    """The near matches of every argument (a PDQ hash), in order."""
    hexes = []
    for pos, raw in enumerate(args.digests, 1):
        text = raw.strip()
        if not _HEX64.fullmatch(text):
            raise CLIError(
                f"PDQ argument {pos}: expected 64 hex characters, got "
                f"{len(text)} characters" + ("" if len(text) != 64 else " (not hex)")
            )
        hexes.append(text.lower())
    if args.max_distance < 0:
        raise CLIError(f"--max-distance must be >= 0, got {args.max_distance}")
    if not 0 <= args.min_quality <= 100:
        raise CLIError(f"--min-quality must be 0..100, got {args.min_quality}")
    ds = opened.dataset
    if ds is None or not opened.is_dataset or not ds.has_pdq:
        raise CLIError(f"{opened.path} has no PDQ hashes (docs/NEAR.md)")
    return [
        (
            h,
            ds.near(
                h,
                args.max_distance,
                min_quality=args.min_quality,
                only=only,
                exclude=exclude,
            ),
        )
        for h in hexes
    ]


def render(fmt: str, results: Results) -> bytes:
    """The results as ``text``, ``jsonl`` or ``csv``."""
    if fmt == "jsonl":
        return b"".join(
            json_line({"pdq": h, "found": bool(ms), "matches": [_dict(m) for m in ms]})
            for h, ms in results
        )
    if fmt == "csv":
        rows: list[Sequence[object]] = [_HEADER]
        for h, ms in results:
            if not ms:
                rows.append([h, "false"] + [""] * (len(_HEADER) - 2))
            for m in ms:
                rows.append(
                    [
                        h,
                        "true",
                        m.distance,
                        m.quality,
                        m.record_id,
                        *(getattr(m, a) or "" for a in algorithms.NAMES),
                        "" if m.size is None else m.size,
                        ";".join(m.labels),
                    ]
                )
        return csv_rows(rows)
    lines = []
    for h, ms in results:
        if not ms:
            lines.append(f"{h}\tnot found\n")
        for m in ms:
            fields = [f"distance={m.distance}", f"quality={m.quality}"]
            fields.append(f"record={m.record_id}")
            fields += [
                f"{a}={getattr(m, a)}" for a in algorithms.NAMES if getattr(m, a)
            ]
            if m.size is not None:
                fields.append(f"size={m.size}")
            fields.append(f"labels={';'.join(m.labels)}")
            fields.append(f"match={m.pdq}")
            lines.append(f"{h}\tNEAR\t" + "\t".join(fields) + "\n")
    return "".join(lines).encode("utf-8")


def _dict(m: NearMatch) -> dict[str, Any]:
    d: dict[str, Any] = {
        "record": m.record_id,
        "distance": m.distance,
        "quality": m.quality,
        "pdq": m.pdq,
    }
    d.update((a, getattr(m, a)) for a in algorithms.NAMES)
    d.update(size=m.size, labels=list(m.labels))
    return d
