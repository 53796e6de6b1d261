"""`hashlookup scan` against `hashdeep -r -m -k` and `md5sum`, side by side.

Tree: copies of this interpreter's standard library directory and the
venv's site-packages (real files of every size), repeated until about
--target-bytes.  Known list: the digests (size, md5, sha1, sha256) of every
40th file plus 200,000 synthetic records (fixed seed), as a hashdeep file
for hashdeep and as datasets for hashlookup:

* full.hlds: md5+sha1+sha256 per record (what a hashdeep list gives): the
  scan hashes every file with the cheapest algorithm covering all records;
* md5.hlds: md5 only, so the scan has to compute md5 like its competitors.

Each round runs every tool once in turn on the warm page cache (the tree is
read once before); the table gives the median over --rounds, in MB/s of the
tree's bytes, and the ratio of hashlookup to each competitor.  The scan
runs with --read-all: every record has a size, and without it files whose
size is in no record are not even read (shown separately).  Hits are checked
to be identical: hashdeep's matched paths, md5sum's lines whose digest is
listed, hashlookup's paths.

hashdeep comes from the Debian package `hashdeep`, installed here with
apt-get when missing.  Usage: python benchmarks/compare_scan.py [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import site
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# `python -I -m hashlookup`, not the venv's `hashlookup` script: the test
# dependencies include the PyPI client pyhashlookup, whose console script is
# also named `hashlookup` and replaces ours when installed after it.  -I keeps
# the current directory (the source tree, without the compiled core) off
# sys.path.
HL = [sys.executable, "-I", "-m", "hashlookup"]


def ensure_hashdeep() -> str:
    exe = shutil.which("hashdeep")
    if exe:
        return exe
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        sudo + ["apt-get", "install", "-y", "-q", "hashdeep"], check=True, env=env
    )
    exe = shutil.which("hashdeep")
    if not exe:
        sys.exit("hashdeep not found after apt-get install hashdeep")
    return exe


def build_tree(work: Path, target: int) -> Path:
    tree, done = work / "tree", work / "tree.complete"
    if done.exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    sources = [Path(sysconfig.get_paths()["stdlib"])]
    for sp in site.getsitepackages():
        p = Path(sp)
        if p.is_dir() and not any(p.is_relative_to(s) for s in sources):
            sources.append(p)
    total, copy = 0, 0
    while total < target and copy < 8:
        for i, src in enumerate(sources):
            dst = tree / f"copy{copy}" / f"{i}-{src.name}"
            shutil.copytree(
                src,
                dst,
                symlinks=True,
                ignore=shutil.ignore_patterns("hashlookup-scan-bench*"),
            )
        copy += 1
        total = 0
        for dirpath, _, files in os.walk(tree):
            for f in files:
                p = os.path.join(dirpath, f)
                if os.path.islink(p) or not os.path.isfile(p):
                    os.unlink(p)  # links and specials: every tool sees the same files
                else:
                    total += os.path.getsize(p)
    done.write_text("")
    return tree


def regular_files(tree: Path) -> list[str]:
    out = []
    for dirpath, dirnames, files in os.walk(tree):
        dirnames.sort()
        out += [os.path.join(dirpath, f) for f in sorted(files)]
    return out


def known_lists(work: Path, files: list[str]) -> tuple[Path, Path, set[str]]:
    full, md5 = work / "known.hashdeep", work / "known-md5.hashdeep"
    rng = np.random.default_rng(20261128)
    rows = []
    listed_md5 = set()
    for p in files[::40]:
        data = Path(p).read_bytes()
        m = hashlib.md5(data).hexdigest()
        listed_md5.add(m)
        rows.append(
            (
                len(data),
                m,
                hashlib.sha1(data).hexdigest(),
                hashlib.sha256(data).hexdigest(),
                p,
            )
        )
    n = 200_000
    sizes = rng.integers(1, 10**7, n)
    keys = [rng.integers(0, 256, (n, w), dtype=np.uint8) for w in (16, 20, 32)]
    for i in range(n):
        rows.append(
            (
                int(sizes[i]),
                keys[0][i].tobytes().hex(),
                keys[1][i].tobytes().hex(),
                keys[2][i].tobytes().hex(),
                f"/synthetic/{i}",
            )
        )
    head = "%%%% HASHDEEP-1.0\n%%%% size,{cols},filename\n## synthetic\n##\n"
    full.write_text(
        head.format(cols="md5,sha1,sha256")
        + "".join(f"{s},{a},{b},{c},{p}\n" for s, a, b, c, p in rows)
    )
    md5.write_text(
        head.format(cols="md5") + "".join(f"{s},{a},{p}\n" for s, a, _, _, p in rows)
    )
    return full, md5, listed_md5


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str] | str, shell: bool = False) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout).  CPU: user + system of the command and every
    process it waited for (find, xargs, md5sum), the steadier figure on a
    shared machine."""
    c = cpu_children()
    t = time.perf_counter()
    res = subprocess.run(
        cmd, shell=shell, capture_output=True, text=True, errors="surrogateescape"
    )
    dt = time.perf_counter() - t
    cpu = cpu_children() - c
    if res.returncode not in (0, 1):
        sys.exit(f"{cmd} failed ({res.returncode}): {res.stderr[-2000:]}")
    return dt, cpu, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/hashlookup-scan-bench")
    ap.add_argument("--target-bytes", type=float, default=1e9)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    hashdeep = ensure_hashdeep()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tree = build_tree(work, int(args.target_bytes))
    files = regular_files(tree)
    total = sum(os.path.getsize(p) for p in files)
    full, md5, listed = known_lists(work, files)
    for name, src in (("full", full), ("md5", md5)):
        subprocess.run(
            [*HL, "build", "-o", str(work / f"{name}.hlds"), f"known={src}", "--quiet"],
            check=True,
        )
    for p in files:  # warm the page cache
        Path(p).read_bytes()

    tree_s = str(tree)
    scan = [*HL, "scan", "--quiet", "--read-all", "--jobs", str(os.cpu_count() or 1)]
    tools = {
        "md5sum (find, xargs -0 md5sum)": (
            f"find {tree_s} -type f -print0 | xargs -0 md5sum",
            True,
        ),
        "hashdeep -r -m -k KNOWN (md5+sha256)": (
            [hashdeep, "-r", "-m", "-k", str(md5), tree_s],
            False,
        ),
        "hashdeep -c md5 -r -m -k KNOWN": (
            [hashdeep, "-c", "md5", "-r", "-m", "-k", str(md5), tree_s],
            False,
        ),
        "hashlookup scan, md5 dataset": (
            scan + [str(work / "md5.hlds"), tree_s],
            False,
        ),
        "hashlookup scan, md5+sha1+sha256 dataset": (
            scan + [str(work / "full.hlds"), tree_s],
            False,
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in tools}
    cpus: dict[str, list[float]] = {k: [] for k in tools}
    hits: dict[str, set[str]] = {}
    names = list(tools)
    for r in range(args.rounds):
        # the order rotates: no tool always runs right after the same one
        for name in names[r % len(names) :] + names[: r % len(names)]:
            cmd, shell = tools[name]
            dt, cpu, out = timed(cmd, shell)
            times[name].append(dt)
            cpus[name].append(cpu)
            print(
                f"round {r + 1}: {name}: {dt:.2f} s, CPU {cpu:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            if name.startswith("md5sum"):
                got = {line[34:] for line in out.splitlines() if line[:32] in listed}
            elif name.startswith("hashdeep"):
                got = set(out.splitlines())
            else:
                got = {line.split("\t", 1)[0] for line in out.splitlines()}
            hits.setdefault(name, got)
            first = next(iter(hits.values()))
            if got != hits[name] or got != first:
                sys.exit(
                    f"{name}: hits differ from the others: {sorted(got ^ first)[:5]}"
                )
    dt_sized, _cpu, out = timed(
        [*HL, "scan", "--quiet", str(work / "full.hlds"), tree_s]
    )
    assert {line.split("\t", 1)[0] for line in out.splitlines()} == next(
        iter(hits.values())
    )

    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    print(
        f"\nTree: {len(files):,} files, {total / 1e6:,.0f} MB ({tree}); "
        f"{len(next(iter(hits.values()))):,} hits, identical for every tool; "
        f"{args.rounds} rounds, warm page cache, {os.cpu_count()} cores.\n"
    )
    a = "hashlookup scan, md5 dataset"
    b = "hashlookup scan, md5+sha1+sha256 dataset"
    print(
        "| tool | median s | MB/s (median) | MB/s (best) | median CPU s | "
        "MB per CPU s | hashlookup md5 dataset: x faster (median / best / CPU) | "
        "hashlookup md5+sha1+sha256: x faster (median / best / CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in tools:
        print(
            f"| {k} | {med[k]:.2f} | {total / med[k] / 1e6:,.0f} | "
            f"{total / best[k] / 1e6:,.0f} | {cpu[k]:.2f} | "
            f"{total / cpu[k] / 1e6:,.0f} | {med[k] / med[a]:.2f} / "
            f"{best[k] / best[a]:.2f} / {cpu[k] / cpu[a]:.2f} | "
            f"{med[k] / med[b]:.2f} / {best[k] / best[b]:.2f} / "
            f"{cpu[k] / cpu[b]:.2f} |"
        )
    print(
        "\n(x faster: the tool's time over hashlookup's; CPU: user + system "
        "seconds, a measure of work that other load on the machine distorts "
        "less than wall time.)"
    )
    print(
        f"\nWith the size pre-filter (no --read-all, md5+sha1+sha256 dataset): "
        f"{dt_sized:.2f} s (files whose size is in no record are not read)."
    )


if __name__ == "__main__":
    main()
