#!/usr/bin/env python3
"""Compare the ratios of two pytest-benchmark runs (``make bench-compare``).

The ``bench_ratio_*.py`` benchmarks store, per figure, ``extra_info["ratio"]``:
hashlookup's best round over its baseline's, measured side by side in the
same run.  Absolute times on a shared machine move with the neighbours'
load; ratios much less.  This script reads two saved runs (JSON files of
``--benchmark-json`` or ``--benchmark-autosave``) and reports each figure's
ratio in both, failing when one grew by more than the tolerance (both the
ratio of the best rounds and that of the medians)::

    python benchmarks/compare_ratios.py [--tolerance 0.5] OLD.json NEW.json
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
#: this shared 2-core VM under load average 8-10, two runs of the same code
#: moved single ratios by up to 60 % (absolute times by far more); on a quiet
#: runner 0.25 is safe (docs/BENCHMARKS.md).
DEFAULT_TOLERANCE = 0.5


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


def _growth(old: dict[str, object], new: dict[str, object], key: str) -> float | None:
    """How much ``key`` (a ratio) grew from ``old`` to ``new`` (0.1: 10 %)."""
    a, b = old.get(key), new.get(key)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or a <= 0:
        return None
    return float(b) / float(a) - 1


def verdict(old: dict[str, object], new: dict[str, object], tolerance: float) -> str:
    """``REGRESSION`` when the ratio of the best rounds and that of the
    medians (when both runs have it) both grew by more than ``tolerance``;
    ``unsteady`` when only one did; ``faster``, ``ok``; ``info`` for a figure
    that is not gated (``extra_info["gate"]`` false: e.g. threads=2 against
    1, which depends on the second core being free)."""
    best = _growth(old, new, "ratio") or 0.0
    median = _growth(old, new, "ratio_median")
    grew = [best > tolerance] + ([] if median is None else [median > tolerance])
    if new.get("gate", True) is False:
        return "info"
    if all(grew):
        return "REGRESSION"
    if any(grew):
        return "unsteady"
    return "faster" if best < -tolerance else "ok"


def compare(old: Path, new: Path, tolerance: float) -> int:
    """Print the table of both runs' ratios; the number of regressions."""
    before, after = load_ratios(old), load_ratios(new)
    print(f"ratios (hashlookup / baseline; lower is better): {old} -> {new}")
    print(
        f"tolerance: a ratio may grow by {tolerance:.0%} (a regression: the best "
        "rounds' ratio and the medians' both grew by more)\n"
    )
    print("| figure | baseline | old | new | change | change of medians | verdict |")
    print("|---|---|---:|---:|---:|---:|---|")
    bad = 0
    for name in sorted(before.keys() | after.keys()):
        o, n = before.get(name), after.get(name)
        short = name.split("::", 1)[-1].replace("|", "\\|")
        base = str((n or o or {}).get("baseline", "")).replace("|", "\\|")
        if n is None:
            assert o is not None
            print(f"| {short} | {base} | {o['ratio']:.4g} | missing | | | REGRESSION |")
            bad += 1
            continue
        if o is None:
            print(f"| {short} | {base} | | {n['ratio']:.4g} | | | new |")
            continue
        v = verdict(o, n, tolerance)
        bad += v == "REGRESSION"
        best, median = _growth(o, n, "ratio"), _growth(o, n, "ratio_median")
        print(
            f"| {short} | {base} | {o['ratio']:.4g} | {n['ratio']:.4g} | "
            f"{'' if best is None else f'{best:+.0%}'} | "
            f"{'' if median is None else f'{median:+.0%}'} | {v} |"
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
