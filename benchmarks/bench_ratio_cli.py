"""Command-line figures as ratios against their baselines in the same run:
start-up of one-shot commands (against ``python -I -c pass``), ``match``
of a digest list (against awk) and ``scan`` of a file tree (against
``md5sum`` over every file, as ``find | xargs md5sum``).

Every contender is a separate process timed from start to exit; answers are
checked (the hit, the matched lines, the scan's hits against md5sum's).
The side-by-side scripts with more contenders and larger data are
compare_startup.py, compare_match.py and compare_scan_speed.py.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import scaled, versus

PYTHON = sys.executable
HLOOKUP = str(Path(sys.executable).with_name("hlookup"))
SEED = 0x5354  # "ST"


def run(argv: list[str], ok: tuple[int, ...] = (0, 1)) -> bytes:
    done = subprocess.run(argv, capture_output=True, check=False, timeout=600)
    if done.returncode not in ok:
        raise AssertionError(
            f"{argv[:3]}: exit {done.returncode}: {done.stderr[-500:]!r}"
        )
    return done.stdout


def build(out: Path, source: Path) -> Path:
    run([HLOOKUP, "build", "-q", "-o", str(out), f"known={source}"], ok=(0,))
    return out


class CliData:
    """A dataset of random md5 digests, a 10-line list (5 hits), a larger
    list (1 % hits), an empty directory and a file tree (half of its files
    known)."""

    def __init__(self, root: Path) -> None:
        rng = random.Random(SEED)
        self.root = root
        n_keys = scaled(100_000, 1000)
        self.digests = [f"{rng.getrandbits(128):032x}" for _ in range(n_keys)]
        known = root / "known.md5"
        # the tree's known files are added below; this list is the rest
        tree = root / "tree"
        self.tree_files: list[Path] = []
        tree_known: list[str] = []
        n_files = scaled(2000, 40)
        for i in range(n_files):
            d = tree / f"d{i % 16:02d}"
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"f{i:05d}.bin"
            data = rng.randbytes(rng.randrange(1, scaled(200_000, 4096)))
            path.write_bytes(data)
            self.tree_files.append(path)
            if i % 2 == 0:
                import hashlib

                tree_known.append(hashlib.md5(data).hexdigest())
        self.known_set = set(self.digests) | set(tree_known)
        known.write_text("".join(f"{d}  x\n" for d in [*self.digests, *tree_known]))
        self.dataset = build(root / "known.hlds", known)
        self.known_txt = root / "known.txt"
        self.known_txt.write_text("".join(d + "\n" for d in self.known_set))
        self.hit = self.digests[len(self.digests) // 2]
        lines = [f"{d}  hit{i}" for i, d in enumerate(rng.sample(self.digests, 5))]
        lines += [f"{rng.getrandbits(128):032x}  miss{i}" for i in range(5)]
        rng.shuffle(lines)
        self.list10 = root / "list10.md5"
        self.list10.write_text("".join(line + "\n" for line in lines))
        self.list10_hits = [line for line in lines if "  hit" in line]
        n_lines = scaled(1_000_000, 2000)
        big = [
            rng.choice(self.digests)
            if rng.random() < 0.01
            else f"{rng.getrandbits(128):032x}"
            for _ in range(n_lines)
        ]
        self.inventory = root / "inventory.txt"
        self.inventory.write_text("".join(d + "\n" for d in big))
        self.inventory_hits = [d for d in big if d in self.known_set]
        self.empty = root / "empty"
        self.empty.mkdir()
        self.tree = tree


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> CliData:
    return CliData(tmp_path_factory.mktemp("bench-cli"))


BARE = [PYTHON, "-I", "-c", "pass"]
LIBRARY = (
    "import hashlookup, sys\n"
    "ds = hashlookup.open_dataset(sys.argv[1])\n"
    "m = ds.lookup(sys.argv[2])\n"
    "sys.exit(0 if m is not None and m.md5 == sys.argv[2] else 3)\n"
)


@pytest.mark.parametrize(
    "path", ["check", "match10", "scan-empty", "library"], ids=lambda p: p
)
def test_startup_vs_bare_python(benchmark, cli: CliData, path: str) -> None:
    benchmark.group = f"ratio: start-up, {path}, vs python -I -c pass"
    ds = str(cli.dataset)
    argv, expect, goal = {
        "check": (
            [HLOOKUP, "check", ds, cli.hit],
            lambda out: out.startswith(f"{cli.hit}\tFOUND".encode()),
            "<= 40 ms absolute",
        ),
        "match10": (
            [HLOOKUP, "match", ds, str(cli.list10)],
            lambda out: out.decode().splitlines() == cli.list10_hits,
            "<= 40 ms absolute",
        ),
        "scan-empty": (
            [HLOOKUP, "scan", ds, str(cli.empty)],
            lambda out: out == b"",
            "<= 40 ms absolute",
        ),
        "library": (
            [PYTHON, "-I", "-c", LIBRARY, ds, cli.hit],
            lambda out: out == b"",
            "<= 25 ms absolute",
        ),
    }[path]

    def check(ours: object, base: object) -> None:
        assert expect(ours), ours
        assert base == b""

    versus(
        benchmark,
        lambda: run(argv),
        lambda: run(BARE),
        name="python -I -c pass",
        goal=goal,
        rounds=scaled(10, 1),
        check=check,
    )


def test_match_vs_awk(benchmark, cli: CliData) -> None:
    benchmark.group = "ratio: hlookup match (1% hits) vs awk"
    awk = [
        "awk",
        "NR == FNR { k[$1]; next } ($1 in k)",
        str(cli.known_txt),
        str(cli.inventory),
    ]

    def check(ours: object, base: object) -> None:
        assert isinstance(ours, bytes) and isinstance(base, bytes)
        assert ours.decode().splitlines() == cli.inventory_hits
        assert ours == base

    versus(
        benchmark,
        lambda: run([HLOOKUP, "match", str(cli.dataset), str(cli.inventory)]),
        lambda: run(awk),
        name="awk, the known digests in an array",
        rounds=scaled(5, 1),
        check=check,
    )


def test_scan_vs_md5sum(benchmark, cli: CliData) -> None:
    benchmark.group = "ratio: hlookup scan vs md5sum of every file"
    files = sorted(str(p) for p in cli.tree.rglob("*") if p.is_file())

    def baseline() -> set[str]:
        # find | xargs md5sum: md5sum over every file, then the known ones.
        hits: set[str] = set()
        for i in range(0, len(files), 1000):
            for line in run(["md5sum", "--", *files[i : i + 1000]]).splitlines():
                digest, _, name = line.decode().partition("  ")
                if digest in cli.known_set:
                    hits.add(name)
        return hits

    def ours() -> set[str]:
        out = run([HLOOKUP, "scan", "-q", str(cli.dataset), str(cli.tree)])
        return {line.split("\t")[0] for line in out.decode().splitlines()}

    def check(a: object, b: object) -> None:
        assert a == b and len(files) // 2 <= len(b)  # type: ignore[arg-type]

    versus(
        benchmark,
        ours,
        baseline,
        name="md5sum over every file (as find | xargs md5sum)",
        goal="<= 0.67 (>= 1.5x) on trees of 200 MB and more",
        rounds=scaled(5, 1),
        check=check,
    )
