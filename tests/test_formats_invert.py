"""`hashlookup scan --invert` and scan(on_miss=...): the files NOT in the
dataset, as hashdeep -x lists them.  Oracle: the set of files of a random
synthetic tree whose content is not among the known contents (brute force
with hashlib), for datasets with sizes (files of an unknown size are not
read, still listed) and without, label filters, output formats and exit
statuses; `hashdeep -x` itself when it is installed."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hashlookup import build_dataset
from hashlookup.scan import scan

CLI = [sys.executable, "-m", "hashlookup"]


def make_tree(root: Path, seed: int, n: int = 40) -> dict[str, bytes]:
    """n files of random content (some repeated) in nested directories."""
    rnd = random.Random(seed)
    files: dict[str, bytes] = {}
    pool = [rnd.randbytes(rnd.randrange(0, 3000)) for _ in range(n // 2)]
    for i in range(n):
        d = root.joinpath(*[f"d{rnd.randrange(3)}" for _ in range(rnd.randrange(3))])
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i} (x), y.bin"
        data = (
            rnd.choice(pool)
            if rnd.random() < 0.3
            else rnd.randbytes(rnd.randrange(0, 5000))
        )
        p.write_bytes(data)
        files[str(p)] = data
    return files


def known_lists(
    tmp: Path, files: dict[str, bytes], seed: int
) -> tuple[Path, Path, set]:
    """A hashdeep list (sizes) and an md5 list of a random half of the
    contents; the set of known contents."""
    rnd = random.Random(seed + 1)
    contents = sorted(set(files.values()))
    known = {c for c in contents if rnd.random() < 0.5}
    hd = tmp / "known.hashdeep"
    lines = ["%%%% HASHDEEP-1.0", "%%%% size,md5,sha256,filename", "## synthetic"]
    for i, c in enumerate(sorted(known)):
        md5, sha256 = hashlib.md5(c).hexdigest(), hashlib.sha256(c).hexdigest()
        lines.append(f"{len(c)},{md5},{sha256},/k/{i}")
    hd.write_text("\n".join(lines) + "\n")
    plain = tmp / "known.md5"
    # md5sum layout: md5deep -x needs a name after the digest.
    plain.write_text(
        "".join(f"{hashlib.md5(c).hexdigest()}  /k/{i}\n" for i, c in enumerate(known))
    )
    return hd, plain, known


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sized", [True, False], ids=["sizes", "no-sizes"])
@pytest.mark.parametrize("jobs", [1, 3])
def test_misses_oracle(tmp_path, seed, sized, jobs):
    files = make_tree(tmp_path / "tree", seed)
    hd, plain, known = known_lists(tmp_path, files, seed)
    ds = tmp_path / "k.hlds"
    build_dataset(hd if sized else plain, ds)
    missed: list[str] = []
    hits: list[str] = []
    report = scan(
        ds,
        [tmp_path / "tree"],
        jobs=jobs,
        on_miss=missed.append,
        on_hit=lambda h: hits.append(h.path),
    )
    want = {p for p, data in files.items() if data not in known}
    assert sorted(missed) == sorted(want)  # each once
    assert set(hits) == set(files) - want
    assert report.misses == len(want)
    if sized:  # some misses were not even read
        unread = {p for p in want if len(files[p]) not in {len(c) for c in known}}
        assert report.files_read == len(files) - len(unread)


def test_label_filters_and_limits(tmp_path):
    """A file whose records the label filter drops is a miss; files
    outside --min-size/--max-size and special files are not examined."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_bytes(b"in a")
    (tree / "b").write_bytes(b"in b")
    (tree / "c").write_bytes(b"neither")
    (tree / "big").write_bytes(b"x" * 100)
    os.mkfifo(tree / "fifo")
    la, lb = tmp_path / "a.md5", tmp_path / "b.md5"
    la.write_text(hashlib.md5(b"in a").hexdigest() + "\n")
    lb.write_text(hashlib.md5(b"in b").hexdigest() + "\n")
    ds = tmp_path / "k.hlds"
    build_dataset({"a": la, "b": lb}, ds)
    missed: list[str] = []
    scan(ds, [tree], on_miss=missed.append, only_labels="source:a", max_size=50)
    assert sorted(missed) == [str(tree / "b"), str(tree / "c")]
    with pytest.raises(ValueError, match="on_miss cannot be combined with resume"):
        scan(ds, [tree], on_miss=missed.append, resume=tmp_path / "state")


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, **kw)


def test_cli_invert(tmp_path):
    files = make_tree(tmp_path / "tree", 7, n=12)
    hd, _, known = known_lists(tmp_path, files, 7)
    ds = tmp_path / "k.hlds"
    build_dataset(hd, ds)
    want = sorted(p for p, d in files.items() if d not in known)
    assert want and len(want) < len(files)

    r = cli("scan", "-q", "--invert", ds, tmp_path / "tree")
    assert r.returncode == 1, r.stderr
    assert sorted(r.stdout.decode().splitlines()) == want

    r = cli("scan", "-q", "--invert", "--format", "jsonl", ds, tmp_path / "tree")
    assert sorted(json.loads(x)["path"] for x in r.stdout.splitlines()) == want
    r = cli("scan", "-q", "--invert", "--format", "csv", ds, tmp_path / "tree")
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "path" and len(lines) == len(want) + 1

    report = tmp_path / "out.txt"
    r = cli("scan", "--invert", "--report", report, ds, tmp_path / "tree")
    assert r.returncode == 1 and r.stdout == b""
    assert sorted(report.read_text().splitlines()) == want
    assert f"{len(want)} not in the dataset" in r.stderr.decode()

    # Every file known: nothing listed, exit 0.
    known_only = tmp_path / "known"
    known_only.mkdir()
    (known_only / "k").write_bytes(sorted(known)[0])
    r = cli("scan", "-q", "--invert", ds, known_only)
    assert r.returncode == 0 and r.stdout == b""

    r = cli("scan", "--invert", "--resume", tmp_path / "st", ds, tmp_path / "tree")
    assert r.returncode == 2
    assert b"--invert cannot be combined with --resume" in r.stderr


def test_same_as_hashdeep_x(tmp_path):
    """The files listed are those `hashdeep -x` (md5deep -x) lists."""
    if shutil.which("md5deep") is None:
        pytest.skip("md5deep is not installed (Debian: apt-get install hashdeep)")
    files = make_tree(tmp_path / "tree", 11, n=30)
    _, plain, _ = known_lists(tmp_path, files, 11)
    ds = tmp_path / "k.hlds"
    build_dataset(plain, ds)
    run = subprocess.run(
        ["md5deep", "-r", "-b", "-x", plain, "."],
        cwd=tmp_path / "tree",
        capture_output=True,
    )
    assert run.returncode in (0, 1) and not run.stderr, run.stderr
    theirs = run.stdout
    r = cli("scan", "-q", "--invert", ds, tmp_path / "tree")
    # md5deep -x -b prints the bare names of the files not in the list.
    ours = sorted(Path(p).name for p in r.stdout.decode().splitlines())
    assert ours == sorted(theirs.decode().splitlines())
    assert ours  # the tree has unknown files
