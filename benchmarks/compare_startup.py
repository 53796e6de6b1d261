#!/usr/bin/env python3
"""Start-up, side by side with a bare interpreter: the wall time of one-shot
commands, each a fresh process, against ``python -I -c pass`` in the same run.

Run from the repository root (``make bench`` does)::

    .venv/bin/python benchmarks/compare_startup.py [--runs 10] [--workdir DIR]
        [--instructions]

Contenders (``hlookup`` is the console script beside this Python):

- ``python -I -c pass``: the interpreter alone (the baseline);
- ``hlookup check DATASET <md5>``: one digest, a hit;
- ``hlookup match DATASET list10.md5``: a 10-line digest list, 5 hits;
- ``hlookup scan DATASET emptydir``;
- ``python -I -c "import hashlookup; open_dataset(p); ds.lookup(d)"``;
- the same in a dataset of two sources (neither label on every record,
  so the hit's labels are read from their bitmaps).

The dataset holds 100,000 synthetic md5 digests (fixed seed) with one label;
the two-source one the first 60,000 and the last 60,000 of them.
Rounds interleave the contenders (the order rotates each round) so that a
burst of load on this shared 2-core machine hits them all alike; the table
gives each one's median and minimum over the rounds and its median minus the
baseline's.  Every answer is checked (the hit, the 5 matched lines, the empty
scan, the library's record) or the script exits 1.  Goals: <= 40 ms for the
three commands, <= 25 ms for the library lookup (absolute medians).

With --instructions, each contender also runs once under valgrind's
callgrind, and the table gives its count of executed instructions (millions,
and minus the interpreter's): a figure that does not move with the machine's
load, to see what a change of imports saves on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_KEYS = 100_000
SEED = 20261206


def _prepare(work: Path) -> tuple[Path, str, Path, Path, list[str], Path]:
    """The dataset, a digest in it, the 10-line list (and its expected
    matched lines), the empty directory and the two-source dataset."""
    rng = random.Random(SEED)
    digests = [f"{rng.getrandbits(128):032x}" for _ in range(N_KEYS)]
    lines = [f"{d}  synthetic/{i}\n" for i, d in enumerate(digests)]
    known = work / "known.md5"
    known.write_text("".join(lines))
    dataset = work / "known.hlds"
    subprocess.run(
        [sys.executable, "-I", "-m", "hashlookup", "build", "-q", "-o", str(dataset),
         f"known={known}"],
        check=True,
    )  # fmt: skip
    part = N_KEYS * 6 // 10
    (work / "a.md5").write_text("".join(lines[:part]))
    (work / "b.md5").write_text("".join(lines[-part:]))
    two = work / "two.hlds"
    subprocess.run(
        [sys.executable, "-I", "-m", "hashlookup", "build", "-q", "-o", str(two),
         f"a={work / 'a.md5'}", f"b={work / 'b.md5'}"],
        check=True,
    )  # fmt: skip
    lines = [f"{d}  hit{i}" for i, d in enumerate(rng.sample(digests, 5))]
    taken = set(digests)
    while len(lines) < 10:
        d = f"{rng.getrandbits(128):032x}"
        if d not in taken:
            lines.append(f"{d}  miss{len(lines)}")
    rng.shuffle(lines)
    list10 = work / "list10.md5"
    list10.write_text("".join(line + "\n" for line in lines))
    empty = work / "emptydir"
    empty.mkdir(exist_ok=True)
    expected = [line for line in lines if "  hit" in line]
    return dataset, digests[12345], list10, empty, expected, two


def _time(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - t0, done


def _instructions(argv: list[str]) -> float | None:
    """Millions of instructions ``argv`` executes (valgrind), or None."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        check=False,
    )
    m = re.search(rb"Collected : (\d+)", done.stderr)
    return int(m.group(1)) / 1e6 if m else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="rounds (default 10)")
    ap.add_argument("--workdir", help="directory for the data (default: a temp dir)")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="also count each one's instructions under valgrind (callgrind)",
    )
    args = ap.parse_args()
    python = sys.executable
    hlookup = str(Path(python).with_name("hlookup"))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        dataset, digest, list10, empty, expected, two = _prepare(Path(tmp))
        library = (
            "import hashlookup, sys\n"
            "ds = hashlookup.open_dataset(sys.argv[1])\n"
            "m = ds.lookup(sys.argv[2])\n"
            "sys.stdout.write(repr(m.labels) if m is not None else '')\n"
            "sys.exit(0 if m is not None and m.md5 == sys.argv[2] else 3)\n"
        )
        ds, lst, emp = str(dataset), str(list10), str(empty)
        contenders: list[tuple[str, list[str], float | None]] = [
            ("python -I -c pass", [python, "-I", "-c", "pass"], None),
            ("hlookup check DATASET <md5>", [hlookup, "check", ds, digest], 40),
            ("hlookup match DATASET list10.md5", [hlookup, "match", ds, lst], 40),
            ("hlookup scan DATASET emptydir", [hlookup, "scan", ds, emp], 40),
            ("python -I -c 'open_dataset; lookup'",
             [python, "-I", "-c", library, ds, digest], 25),
            ("the same, two sources (labels from bitmaps)",
             [python, "-I", "-c", library, str(two), digest], 25),
        ]  # fmt: skip
        hit = f"{digest}\tFOUND".encode()
        checks = {
            1: lambda r: r.returncode == 1 and r.stdout.startswith(hit),
            2: lambda r: (
                r.returncode == 1 and r.stdout.decode().splitlines() == expected
            ),
            3: lambda r: r.returncode == 0 and r.stdout == b"",
            4: lambda r: r.returncode == 0 and r.stdout == b"('source:known',)",
            # (digest 12,345 is among the first 60 % only: source a)
            5: lambda r: r.returncode == 0 and r.stdout == b"('source:a',)",
        }
        env_note = os.getloadavg()
        times: list[list[float]] = [[] for _ in contenders]
        for i in range(len(contenders)):  # warm the page cache and .pyc files
            _time(contenders[i][1])
        for rnd in range(args.runs):
            shift = rnd % len(contenders)
            for i in [*range(shift, len(contenders)), *range(shift)]:
                seconds, done = _time(contenders[i][1])
                check = checks.get(i)
                if check is not None and not check(done):
                    print(f"wrong answer from {contenders[i][0]}: exit "
                          f"{done.returncode}, {done.stdout[:200]!r} "
                          f"{done.stderr[:200]!r}", file=sys.stderr)  # fmt: skip
                    return 1
                times[i].append(seconds * 1000)
        counts = [
            _instructions(argv) if args.instructions else None
            for _, argv, _ in contenders
        ]
    base = statistics.median(times[0])
    day = time.strftime("%Y-%m-%d")
    print(f"Start-up, median of {args.runs} interleaved runs, {day} "
          f"(load average at start {env_note[0]:.1f}):\n")  # fmt: skip
    counted = counts[0] is not None
    extra = " M instructions | minus bare python |" if counted else ""
    print(f"| command | median ms | min ms | minus bare python |{extra} goal |")
    print("|---|---:|---:|---:|" + ("---:|---:|" if counted else "") + "---|")
    for (name, _, goal), ts, n in zip(contenders, times, counts, strict=True):
        med = statistics.median(ts)
        verdict = "" if goal is None else (
            f"<= {goal} ms: {'yes' if med <= goal else 'NO'}")  # fmt: skip
        mi = ""
        if counted and n is not None and counts[0] is not None:
            mi = f" {n:.1f} | {n - counts[0]:+.1f} |"
        row = f"| `{name}` | {med:.1f} | {min(ts):.1f} | {med - base:+.1f} |"
        print(f"{row}{mi} {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
