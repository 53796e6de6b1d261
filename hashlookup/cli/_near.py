"""``check --pdq``: the arguments are PDQ hashes, matched within a Hamming
radius (docs/NEAR.md); the options and the three output forms.

Errors name an argument's position, never its text: queried hashes are
only ever printed as results.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from hashlookup import algorithms
from hashlookup.cli._common import PROG, CLIError, Context, warn
from hashlookup.cli._output import csv_rows, json_line
from hashlookup.near._defaults import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_QUALITY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    import argparse

    from hashlookup.cli._open import Opened
    from hashlookup.near import NearMatch
    from hashlookup.scan import ScanReport
    from hashlookup.store.dataset import Dataset

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
    add_radius_options(p, "the dataset's PDQ hashes")


def add_radius_options(p: argparse.ArgumentParser, floor: str) -> None:
    """``--max-distance`` and ``--min-quality`` (whose PDQ hashes `floor`
    drops, in the help)."""
    p.add_argument(
        "--max-distance",
        type=int,
        default=DEFAULT_MAX_DISTANCE,
        metavar="BITS",
        help="largest Hamming distance of a PDQ match (default: "
        f"{DEFAULT_MAX_DISTANCE})",
    )
    p.add_argument(
        "--min-quality",
        type=int,
        default=DEFAULT_MIN_QUALITY,
        metavar="Q",
        help=f"ignore {floor} of lower quality, 0..100 (default: "
        f"{DEFAULT_MIN_QUALITY})",
    )


def check_radius_options(args: argparse.Namespace) -> None:
    """CLIError for --max-distance or --min-quality out of range."""
    if args.max_distance < 0:
        raise CLIError(f"--max-distance must be >= 0, got {args.max_distance}")
    if not 0 <= args.min_quality <= 100:
        raise CLIError(f"--min-quality must be 0..100, got {args.min_quality}")


def add_scan_near_options(p: argparse.ArgumentParser) -> None:
    """``scan``'s image options: ``--pdq/--no-pdq`` and the radius."""
    from hashlookup.cli._fast import boolean_optional

    p.add_argument(
        "--pdq",
        action=boolean_optional(p),
        default=None,
        help="compute the PDQ hash of every image file (JPEG, PNG, GIF, BMP, "
        "WebP, TIFF, told by content) and report near hits (default: when the "
        "dataset has PDQ hashes and hashlookup[images] is installed; --pdq "
        "makes both required, --no-pdq matches digests only)",
    )
    add_radius_options(p, "the dataset's PDQ hashes and images")
    p.add_argument(
        "--dihedral",
        action="store_true",
        help="also match images turned by 90, 180 or 270 degrees or mirrored "
        "(eight PDQ hashes per image; PDQ alone is not invariant to them)",
    )


def scan_near_columns(args: argparse.Namespace, ds: Dataset) -> bool:
    """Whether the scan of `ds` hashes images (its output then has the near
    columns); says once on stderr when it cannot although the dataset has
    PDQ hashes (the images extra is missing)."""
    from hashlookup.scan._near_options import decide

    check_radius_options(args)
    try:
        on, unavailable = decide(ds.has_pdq, args.pdq, args.path)
    except (ImportError, ValueError) as e:
        raise CLIError(f"--pdq: {e}") from None
    if unavailable is not None and not args.quiet:
        warn(unavailable)
    return on


def near_summary(r: ScanReport) -> str:
    """The images part of scan's summary line (empty without PDQ)."""
    if not r.pdq:
        return ""
    near = sum(1 for h in r.hits if h.distance is not None)
    extra = ""
    if r.images_low_quality:
        extra += f", {r.images_low_quality:,} of low quality"
    if r.images_too_large:
        extra += f", {r.images_too_large:,} too large"
    return f" ({near:,} near; {r.images_hashed:,} images hashed{extra})"


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
    check_radius_options(args)
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
            lines.append(f"{h}\tNEAR\t" + "\t".join(_fields(m)) + "\n")
    return "".join(lines).encode("utf-8")


def _fields(m: NearMatch) -> list[str]:
    """The text output's fields of one near match."""
    fields = [f"distance={m.distance}", f"quality={m.quality}"]
    fields.append(f"record={m.record_id}")
    fields += [f"{a}={getattr(m, a)}" for a in algorithms.NAMES if getattr(m, a)]
    if m.size is not None:
        fields.append(f"size={m.size}")
    fields.append(f"labels={';'.join(m.labels)}")
    fields.append(f"match={m.pdq}")
    return fields


def _dict(m: NearMatch, pdq_key: str = "pdq") -> dict[str, Any]:
    d: dict[str, Any] = {
        "record": m.record_id,
        "distance": m.distance,
        "quality": m.quality,
        pdq_key: m.pdq,
    }
    d.update((a, getattr(m, a)) for a in algorithms.NAMES)
    d.update(size=m.size, labels=list(m.labels))
    return d


# -- match --pdq ---------------------------------------------------------------


def add_match_near_options(p: argparse.ArgumentParser) -> None:
    """``match``'s ``--pdq`` and the radius."""
    p.add_argument(
        "--pdq",
        action="store_true",
        help="the inventories' PDQ column (named pdq, or --column; quality from "
        "quality/pdq_quality) is matched within --max-distance bits: one output "
        "line per (row, record) with its distance; digest columns are not read",
    )
    add_radius_options(p, "PDQ hashes (the dataset's and the rows')")


def refuse_pdq_column(args: argparse.Namespace) -> None:
    """A column named pdq without --pdq: its 64 hex characters would be
    read as SHA-256 digests (PDQ is never guessed)."""
    if args.pdq or not args.column:
        return  # (the importers' names: numpy, not needed by a text match)
    from hashlookup.importers._common import normalise_name
    from hashlookup.importers.pdq import PDQ_NAMES

    if normalise_name(args.column) in PDQ_NAMES:
        raise CLIError(
            f"--column {args.column}: PDQ hashes are matched with --pdq (without "
            "it the column would be read as SHA-256 digests)"
        )


_MATCH_HEADER = ("row", "pdq", "record", "distance", "quality", "match")


def run_pdq_match(
    args: argparse.Namespace,
    ctx: Context,
    opened: Opened,
    only: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
) -> bool:
    """``match --pdq``: near matches of every input's PDQ column, written
    to ``ctx.out`` input by input in row order; whether any was found."""
    from hashlookup.match.near import match_pdq
    from hashlookup.match.pieces import Inventory

    check_radius_options(args)
    if args.annotate or args.line_number:
        raise CLIError("--pdq does not combine with --annotate or -n")
    if args.workers is not None or args.scheduler is not None:
        raise CLIError("--pdq matches on this machine: no --workers/--scheduler")
    ds = opened.dataset
    if ds is None or not opened.is_dataset or not ds.has_pdq:
        raise CLIError(f"{opened.path} has no PDQ hashes (docs/NEAR.md)")
    files = list(args.files)
    if not files or "-" in files:
        raise CLIError("--pdq reads CSV/TSV or Parquet files (not standard input)")
    invs = []
    for path in files:
        kind = args.input_format
        if kind == "auto":
            from hashlookup.match.pieces import detect_kind

            kind = detect_kind(path)
            if kind == "text":
                kind = "csv"
        if kind == "text":
            raise CLIError("--pdq reads CSV/TSV or Parquet inventories")
        column = args.column or "pdq"
        invs.append(Inventory(path, kind, column=column, delimiter=args.delimiter))
    multi = len(invs) > 1
    fmt = args.format
    out = ctx.out
    if fmt == "csv" and not args.count:
        cols: tuple[str, ...] = ("row", "pdq") if args.invert else _MATCH_HEADER
        if not args.invert:
            cols += (*algorithms.NAMES, "size", "labels")
        out.write(csv_rows([(("file",) if multi else ()) + cols]))
    found = low = rows = 0
    for inv in invs:
        skipped = 0
        for piece in match_pdq(
            ds,
            inv,
            args.max_distance,
            args.min_quality,
            skip_invalid=args.skip_invalid,
            only=only,
            exclude=exclude,
            threads=args.threads,
        ):
            hit = piece.found
            found += int(hit.sum())
            rows += len(hit)
            low += piece.low_quality
            skipped += piece.invalid
            if args.count:
                continue
            name = inv.name if multi else None
            if args.invert:
                out.write(_misses(fmt, name, piece, ~hit))
            else:
                out.write(_near_rows(fmt, name, piece, ds, args, only, exclude))
        if skipped:
            sys.stderr.write(
                f"{PROG}: {inv.name}: skipped {skipped:,} invalid rows "
                "(--skip-invalid)\n"
            )
    if args.count:
        out.line(str(rows - found if args.invert else found))
    if low:
        sys.stderr.write(
            f"{PROG}: {low:,} row{'' if low == 1 else 's'} below PDQ quality "
            f"{args.min_quality} not searched (--min-quality)\n"
        )
    return found > 0


def _misses(fmt: str, name: str | None, piece: Any, sel: Any) -> bytes:
    """Rows without a near match (--invert): row number and PDQ hash."""
    rows = piece.rows[sel].tolist()
    hexes = [h.tobytes().hex() for h in piece.hashes[sel]]
    head: list[Any] = [name] if name is not None else []
    if fmt == "csv":
        return csv_rows([[*head, r, h] for r, h in zip(rows, hexes, strict=True)])
    if fmt == "jsonl":
        extra = {"file": name} if name is not None else {}
        return b"".join(
            json_line({**extra, "row": r, "pdq": h})
            for r, h in zip(rows, hexes, strict=True)
        )
    prefix = f"{name}:" if name is not None else ""
    return "".join(
        f"{prefix}{r}\t{h}\n" for r, h in zip(rows, hexes, strict=True)
    ).encode("utf-8", "surrogateescape")


def _near_rows(
    fmt: str,
    name: str | None,
    piece: Any,
    ds: Dataset,
    args: argparse.Namespace,
    only: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
) -> bytes:
    """One output line per (row, record) near match, the record's nearest
    PDQ hash when it has several: the rows near_many found are searched
    again one by one for the matched hashes' details (matches are rare; the
    batch search keeps the rest fast)."""
    out: list[bytes] = []
    prefix = f"{name}:" if name is not None else ""
    head: list[Any] = [name] if name is not None else []
    for qi in sorted(set(piece.query.tolist())):
        row = int(piece.rows[qi])
        h = piece.hashes[qi].tobytes().hex()
        seen: set[int] = set()  # a record with several PDQ hashes: its nearest
        for m in ds.near(
            h,
            args.max_distance,
            min_quality=args.min_quality,
            only=only,
            exclude=exclude,
        ):
            if m.record_id in seen:
                continue
            seen.add(m.record_id)
            if fmt == "jsonl":
                d: dict[str, Any] = {"file": name} if name is not None else {}
                d.update(row=row, pdq=h)
                d.update(_dict(m, "match"))
                out.append(json_line(d))
            elif fmt == "csv":
                out.append(
                    csv_rows(
                        [
                            [
                                *head,
                                row,
                                h,
                                m.record_id,
                                m.distance,
                                m.quality,
                                m.pdq,
                                *(getattr(m, a) or "" for a in algorithms.NAMES),
                                "" if m.size is None else m.size,
                                ";".join(m.labels),
                            ]
                        ]
                    )
                )
            else:
                line = f"{prefix}{row}\t{h}\tNEAR\t" + "\t".join(_fields(m)) + "\n"
                out.append(line.encode("utf-8", "surrogateescape"))
    return b"".join(out)
