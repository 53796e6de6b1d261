#!/usr/bin/env python3
"""`hashlookup scan` (the whole command) against `md5sum`, `xargs -P2 md5sum`
and `hashdeep -m`, side by side, on trees of real files with an md5-only list.

Run from the repository root (``make bench`` does)::

    .venv/bin/python benchmarks/compare_scan_speed.py [--sizes 250,1100]
        [--rounds 5] [--work /tmp/hashlookup-scan-speed] [--keep]
        [--also NAME=PYTHON ...]

Trees: copies of this interpreter's standard library (without
site-packages) and of the shared libraries under /usr/lib (ELF binaries of
every size up to tens of MB), taken in a fixed order until each tree holds
the given number of MB; a larger tree repeats the sources.  Symbolic links
and special files are left out, so every tool sees the same regular files.

Known list: the md5 and size of every 40th file plus 200,000 synthetic
records (fixed seed), as a hashdeep file (``-m`` input) and as an md5-only
dataset for hashlookup (size pre-filter off: ``--read-all``, so every tool
reads every byte).

Each round runs every tool once, in an order that rotates, on a warm page
cache (the tree is read before the first round).  The machine is a shared
2-core VM: only ratios measured in the same run mean anything, so the table
gives medians over the rounds and the ratio of each tool's median wall time
to hashlookup's, with the CPU time (user + system of the whole pipeline) as
the figure that other load distorts least.  Hits must be identical for
every tool and every round (hashdeep's matched paths, the md5sum lines
whose digest is listed, hashlookup's hit paths), else the script exits 1.
A tool that is not installed (hashdeep) is skipped with a note.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

# `python -I -m hashlookup` (see compare_scan.py): the venv's `hashlookup`
# script may be pyhashlookup's.
HL = [sys.executable, "-I", "-m", "hashlookup"]
SEED = 0x5343  # "SC"
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def sources() -> list[Path]:
    """Regular files to copy, in a fixed order: the standard library first,
    then the shared libraries."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out: list[Path] = []
    for top, skip in ((stdlib, "site-packages"),) + tuple(
        (Path(d), "python") for d in LIB_DIRS
    ):
        if not top.is_dir():
            continue
        for dirpath, dirnames, files in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(skip))
            for f in sorted(files):
                p = Path(dirpath, f)
                if not p.is_symlink() and p.is_file() and os.access(p, os.R_OK):
                    out.append(p)
        if top == Path(LIB_DIRS[0]) or top == Path(LIB_DIRS[1]):
            break  # the multiarch directory is enough
    return out


def build_tree(tree: Path, target: int) -> None:
    done = tree.with_suffix(".complete")
    if done.exists():
        return
    if tree.exists():
        shutil.rmtree(tree)
    src = sources()
    total, copy = 0, 0
    while total < target:
        for i, p in enumerate(src):
            if total >= target:
                break
            dst = tree / f"copy{copy}" / f"{i // 500:03d}" / f"{i}-{p.name}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(p, dst)
            except OSError:
                continue
            total += dst.stat().st_size
        copy += 1
    done.write_text("")


def regular_files(tree: Path) -> list[str]:
    out = []
    for dirpath, dirnames, files in os.walk(tree):
        dirnames.sort()
        out += [os.path.join(dirpath, f) for f in sorted(files)]
    return out


def known_list(work: Path, files: list[str]) -> tuple[Path, set[str]]:
    """A hashdeep file (size,md5) with every 40th file and synthetic rows."""
    rng = np.random.default_rng(SEED)
    rows = []
    listed = set()
    for p in files[::40]:
        data = Path(p).read_bytes()
        m = hashlib.md5(data).hexdigest()
        listed.add(m)
        rows.append(f"{len(data)},{m},{p}\n")
    n = 200_000
    sizes = rng.integers(1, 10**7, n)
    keys = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    rows += [
        f"{int(sizes[i])},{keys[i].tobytes().hex()},/synthetic/{i}\n" for i in range(n)
    ]
    out = work / f"known-{len(files)}.hashdeep"
    out.write_text(
        "%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n## synthetic\n##\n" + "".join(rows)
    )
    return out, listed


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str] | str, shell: bool) -> tuple[float, float, str]:
    """(wall s, CPU s of the command and its children, stdout)."""
    c = cpu_children()
    t = time.perf_counter()
    res = subprocess.run(
        cmd, shell=shell, capture_output=True, text=True, errors="surrogateescape"
    )
    dt = time.perf_counter() - t
    if res.returncode not in (0, 1):
        sys.exit(f"{cmd} failed ({res.returncode}): {res.stderr[-2000:]}")
    return dt, cpu_children() - c, res.stdout


def hits_of(name: str, out: str, listed: set[str]) -> set[str]:
    if name.startswith(("md5sum", "xargs")):
        return {line[34:] for line in out.splitlines() if line[:32] in listed}
    if name.startswith("hashdeep"):
        return set(out.splitlines())
    return {line.split("\t", 1)[0] for line in out.splitlines()}


def run_tree(
    work: Path, mb: int, rounds: int, others: dict[str, str] | None = None
) -> list[str]:
    tree = work / f"tree-{mb}mb"
    log(f"building {tree} ...")
    build_tree(tree, mb * 10**6)
    files = regular_files(tree)
    total = sum(os.path.getsize(p) for p in files)
    known, listed = known_list(work, files)
    ds = work / f"md5-{mb}mb.hlds"
    subprocess.run(
        [*HL, "build", "-o", str(ds), f"known={known}", "--quiet"], check=True
    )
    for p in files:  # warm the page cache
        Path(p).read_bytes()
    t = str(tree)
    tools: dict[str, tuple[list[str] | str, bool]] = {
        "md5sum (find | xargs -0 md5sum)": (
            f"find {t} -type f -print0 | xargs -0 md5sum",
            True,
        ),
        "xargs -P2 md5sum (find | xargs -0 -P2 -n 512 md5sum)": (
            f"find {t} -type f -print0 | xargs -0 -P2 -n 512 md5sum",
            True,
        ),
    }
    hashdeep = shutil.which("hashdeep")
    if hashdeep:
        tools["hashdeep -c md5 -r -m -k KNOWN"] = (
            [hashdeep, "-c", "md5", "-r", "-m", "-k", str(known), t],
            False,
        )
    else:
        log("hashdeep not installed (apt-get install -y hashdeep): skipped")
    for name, python in (others or {}).items():  # e.g. an older checkout's venv
        tools[f"hashlookup scan --read-all ({name})"] = (
            [python, "-I", "-m", "hashlookup", "scan", "--quiet", "--read-all"]
            + [str(ds), t],
            False,
        )
    ours = "hashlookup scan --read-all"
    tools[ours] = ([*HL, "scan", "--quiet", "--read-all", str(ds), t], False)
    times: dict[str, list[float]] = {k: [] for k in tools}
    cpus: dict[str, list[float]] = {k: [] for k in tools}
    first: set[str] | None = None
    names = list(tools)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            cmd, shell = tools[name]
            dt, cpu_s, out = timed(cmd, shell)
            times[name].append(dt)
            cpus[name].append(cpu_s)
            got = hits_of(name, out, listed)
            if first is None:
                first = got
            if got != first:
                sys.exit(f"{name}: hits differ: {sorted(got ^ first)[:5]}")
            log(f"{mb} MB round {r + 1}: {name}: {dt:.2f} s, CPU {cpu_s:.2f} s")
    assert first is not None
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    load = os.getloadavg()[0]
    lines = [
        f"Tree: {len(files):,} files, {total / 1e6:,.0f} MB; {len(first):,} hits, "
        f"identical for every tool and round; {rounds} rounds, warm page cache, "
        f"{os.cpu_count()} cores, load average {load:.1f} at the end.",
        "",
        "| tool | median s | MB/s | median CPU s | hashlookup is x faster "
        "(median wall) | x less CPU |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in tools:
        label = k.replace("|", "\\|")  # a literal | inside a table cell
        lines.append(
            f"| {label} | {med[k]:.2f} | {total / med[k] / 1e6:,.0f} | {cpu[k]:.2f} | "
            f"**{med[k] / med[ours]:.2f}** | {cpu[k] / cpu[ours]:.2f} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/hashlookup-scan-speed")
    ap.add_argument("--sizes", default="250,1100", help="tree sizes in MB")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the trees")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="also time `PYTHON -m hashlookup scan` (another install, e.g. "
        "main=/path/to/main/.venv/bin/python), for before/after figures",
    )
    args = ap.parse_args()
    others = dict(a.split("=", 1) for a in args.also)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = [f"`compare_scan_speed.py --rounds {args.rounds}`, {stamp}", ""]
    try:
        for mb in (int(s) for s in args.sizes.split(",")):
            out += run_tree(work, mb, args.rounds, others) + [""]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
