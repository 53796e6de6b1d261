#!/usr/bin/env python3
"""Compare the ratios of two pytest-benchmark runs (``make bench-compare``).

The ``bench_ratio_*.py`` benchmarks store, per figure, ``extra_info["ratio"]``:
hashlookup's best round over its baseline's, measured side by side in the
same run.  Absolute times on a shared machine move with the neighbours'
load; ratios much less.  This script reads two saved runs (JSON files of
``--benchmark-json`` or ``--benchmark-autosave``) and reports each figure's
ratio in both, failing when one grew by more than the tolerance::

    python benchmarks/compare_ratios.py [--tolerance 0.25] OLD.json NEW.json
    python benchmarks/compare_ratios.py --storage build/benchmarks [OLD.json]

With ``--storage``, NEW is the newest run saved there and OLD the one
before it (or the file given).  Exit status: 0 no regression, 1 at least
one ratio grew by more than the tolerance (or a figure of OLD is missing
from NEW), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: A ratio may grow by this fraction before it counts as a regression: on
#: this shared 2-core VM, repeated runs of the same commit move ratios by
#: up to about 15 % (absolute times by far more).
DEFAULT_TOLERANCE = 0.25


def load_ratios(path: Path) -> dict[str, dict[str, object]]:
    """Figure name -> its extra_info, for the benchmarks of ``path`` that
    have a ratio."""
    try:
        data = json.loads(path.read_text())
        benchmarks = data["benchmarks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"compare_ratios: {path}: not a pytest-benchmark run ({exc})",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    out: dict[str, dict[str, object]] = {}
    for b in benchmarks:
        info = b.get("extra_info") or {}
        if isinstance(info.get("ratio"), int | float):
            out[b["fullname"]] = info
    return out


def saved_runs(storage: Path) -> list[Path]:
    """The runs saved under ``storage`` (pytest-benchmark's layout:
    ``<machine>/<NNNN>_<commit>_<date>.json``), oldest first."""
    return sorted(storage.rglob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))


def compare(old: Path, new: Path, tolerance: float) -> int:
    """Print the table of both runs' ratios; the number of regressions."""
    before, after = load_ratios(old), load_ratios(new)
    print(f"ratios (hashlookup / baseline; lower is better): {old} -> {new}")
    print(f"tolerance: a ratio may grow by {tolerance:.0%}\n")
    print("| figure | baseline | old | new | change | verdict |")
    print("|---|---|---:|---:|---:|---|")
    bad = 0
    for name in sorted(before.keys() | after.keys()):
        o, n = before.get(name), after.get(name)
        short = name.split("::", 1)[-1].replace("|", "\\|")
        base = str((n or o or {}).get("baseline", "")).replace("|", "\\|")
        if n is None:
            print(f"| {short} | {base} | {o['ratio']:.4g} | missing | | REGRESSION |")  # type: ignore[index]
            bad += 1
            continue
        new_ratio = float(n["ratio"])  # type: ignore[arg-type]
        if o is None:
            print(f"| {short} | {base} | | {new_ratio:.4g} | | new |")
            continue
        old_ratio = float(o["ratio"])  # type: ignore[arg-type]
        change = new_ratio / old_ratio - 1 if old_ratio > 0 else 0.0
        verdict = "ok"
        if change > tolerance:
            verdict = "REGRESSION"
            bad += 1
        elif change < -tolerance:
            verdict = "faster"
        print(
            f"| {short} | {base} | {old_ratio:.4g} | {new_ratio:.4g} | "
            f"{change:+.0%} | {verdict} |"
        )
    print(f"\n{bad} regression(s) beyond {tolerance:.0%}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "runs",
        nargs="*",
        type=Path,
        help="OLD.json NEW.json (or OLD.json with --storage)",
    )
    ap.add_argument(
        "--storage",
        type=Path,
        help="pytest-benchmark's storage directory (--benchmark-storage)",
    )
    ap.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="growth of a ratio that counts as a regression "
        f"(default {DEFAULT_TOLERANCE})",
    )
    args = ap.parse_args(argv)
    if args.storage is not None:
        runs = saved_runs(args.storage)
        if not runs:
            print(f"compare_ratios: no saved run in {args.storage}", file=sys.stderr)
            return 2
        new = runs[-1]
        if args.runs:
            old = args.runs[0]
        elif len(runs) >= 2:
            old = runs[-2]
        else:
            print(
                f"compare_ratios: {new} is the first run saved in {args.storage}: "
                "nothing to compare it with yet (the next run will be)"
            )
            return 0
    elif len(args.runs) == 2:
        old, new = args.runs
    else:
        ap.error("give OLD.json NEW.json, or --storage DIR")
    return 1 if compare(old, new, args.tolerance) else 0


if __name__ == "__main__":
    sys.exit(main())
