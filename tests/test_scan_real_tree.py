"""md5-only scans of a tree of real files (standard library sources and
shared libraries of several MB, which the C reader streams through its AVX2
lanes part by part): every hit and digest equals hashlib's, whatever the
part size, the number of threads, and with the SIMD path switched off."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from hashlookup import build_dataset
from hashlookup.scan import scan


def _real_files() -> list[Path]:
    """About 400 standard library files (every 5th, fixed order) and up to
    four shared libraries between 1 and 12 MB."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    py = sorted(
        p
        for p in stdlib.rglob("*")
        if "site-packages" not in p.parts and p.is_file() and not p.is_symlink()
    )[::5][:400]
    libs: list[Path] = []
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
        if Path(d).is_dir():
            libs = sorted(
                p
                for p in Path(d).iterdir()
                if p.is_file()
                and not p.is_symlink()
                and os.access(p, os.R_OK)
                and 1 << 20 < p.stat().st_size < 12 << 20
            )[:4]
            break
    return py + libs


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("real") / "tree"
    digests = {}
    for i, src in enumerate(_real_files()):
        dst = root / f"d{i % 7}" / f"{i}-{src.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, dst)
        except OSError:
            continue
        digests[str(dst)] = hashlib.md5(dst.read_bytes()).hexdigest()
    # the same large file twice: equal digests in two lanes at once
    big = max(digests, key=lambda p: os.path.getsize(p))
    twin = root / "twin.bin"
    shutil.copyfile(big, twin)
    digests[str(twin)] = digests[big]
    return root, digests


def _dataset(tmp_path: Path, listed: set[str]) -> Path:
    rng = np.random.default_rng(0x5EA1)
    decoys = [bytes(r).hex() for r in rng.integers(0, 256, (500, 16), dtype=np.uint8)]
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(sorted(listed) + decoys) + "\n")
    out = tmp_path / "md5.hlx"
    build_dataset({"synthetic": str(lst)}, str(out))
    return out


@pytest.mark.parametrize(("jobs", "chunk_size"), [(2, 1 << 20), (1, 64 << 10)])
def test_hits_and_digests_equal_hashlib(tmp_path, tree, jobs, chunk_size):
    root, digests = tree
    paths = sorted(digests)
    listed = {digests[p] for p in paths[::3]} | {
        digests[max(paths, key=os.path.getsize)]
    }
    ds = _dataset(tmp_path, listed)
    errors: list[tuple[str, str]] = []
    r = scan(
        ds,
        [root],
        jobs=jobs,
        chunk_size=chunk_size,
        on_error=lambda *e: errors.append(e),
    )
    assert errors == []
    assert r.files_read == len(digests)
    assert r.bytes_read == sum(os.path.getsize(p) for p in paths)
    expect = {(p, d) for p, d in digests.items() if d in listed}
    assert {(h.path, h.digest) for h in r.hits} == expect
    assert len(expect) < len(digests)  # not everything is a hit
    # streamed through a lane part by part (sources over 64 KiB exist on
    # every system; shared libraries over 1 MiB where /usr/lib has them)
    assert any(os.path.getsize(p) > 64 << 10 for p, _ in expect)


def test_cli_same_hits_without_simd(tmp_path, tree):
    root, digests = tree
    ds = _dataset(tmp_path, set(digests.values()))
    runs = []
    for simd in ("0", "1"):
        env = {**os.environ, "HASHLOOKUP_DISABLE_SIMD": simd}
        out = subprocess.run(
            [sys.executable, "-m", "hashlookup", "scan", "--quiet", "--read-all"]
            + [str(ds), str(root)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert out.returncode == 1, out.stderr  # 1: hits found
        runs.append(sorted(out.stdout.splitlines()))
    assert runs[0] == runs[1]
    got = {line.split("\t")[0]: line.split("\t")[2] for line in runs[0]}
    assert got == digests
