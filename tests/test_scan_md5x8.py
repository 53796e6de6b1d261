"""md5-only scans: small files are hashed eight at a time in AVX2 lanes
(csrc/hl_md5x8.c), large ones by libcrypto.  Every digest must agree with
hashlib, whatever the mix of lengths (block and padding boundaries, empty
files, files longer than a lane) and with the SIMD path switched off."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hashlookup import build_dataset
from hashlookup.scan import scan

# Around every MD5 padding boundary (55/56/64 bytes) and a few blocks more,
# then random lengths up to several lanes of the test's chunk size.
LENGTHS = (
    list(range(200)) + list(range(440, 460)) + [8191, 8192, 8193, 16384, 65536 + 55]
)
CHUNK = 8192  # lanes of 8 KiB: longer files take the libcrypto path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("md5x8") / "tree"
    rng = np.random.default_rng(0x5D8)
    lengths = LENGTHS + [int(n) for n in rng.integers(0, 3 * CHUNK, 120)]
    files = []
    for i, n in enumerate(lengths):
        d = root / f"d{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i:04d}"
        # some files share content: equal digests in several lanes at once
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes() if i % 9 else b"x" * n
        p.write_bytes(data)
        files.append(p)
    return root, files


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def _dataset(tmp_path: Path, listed: list[Path]) -> Path:
    rng = np.random.default_rng(7)
    decoys = [bytes(r).hex() for r in rng.integers(0, 256, (300, 16), dtype=np.uint8)]
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(sorted({_md5(p) for p in listed}) + decoys) + "\n")
    out = tmp_path / "md5.hlx"
    build_dataset({"synthetic": str(lst)}, str(out))
    return out


def test_every_digest_agrees_with_hashlib(tmp_path, tree):
    root, files = tree
    listed = [p for i, p in enumerate(files) if i % 7]
    ds = _dataset(tmp_path, listed)
    errors: list[tuple[str, str]] = []
    r = scan(
        ds,
        [root],
        jobs=2,
        chunk_size=CHUNK,
        on_error=lambda p, why: errors.append((p, why)),
    )
    assert errors == []
    assert r.files_read == len(files)
    assert r.bytes_read == sum(p.stat().st_size for p in files)
    want = {_md5(p) for p in listed}
    expect = {(str(p), _md5(p)) for p in files if _md5(p) in want}
    assert {(h.path, h.digest) for h in r.hits} == expect
    # the files not listed (and not equal to a listed one) were no hits
    assert any(_md5(p) not in want for p in files)


def _cli_hits(ds: Path, root: Path, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hashlookup",
            "scan",
            "--quiet",
            "--read-all",
            "--jobs",
            "2",
            str(ds),
            str(root),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    return sorted(out.stdout.splitlines())


def test_same_hits_without_simd(tmp_path, tree):
    """HASHLOOKUP_DISABLE_SIMD=1: every file through libcrypto, same hits."""
    root, files = tree
    ds = _dataset(tmp_path, files)
    env = dict(os.environ)
    env.pop("HASHLOOKUP_DISABLE_SIMD", None)
    fast = _cli_hits(ds, root, env)
    slow = _cli_hits(ds, root, {**env, "HASHLOOKUP_DISABLE_SIMD": "1"})
    assert fast == slow
    assert {line.split("\t")[0] for line in fast} == {str(p) for p in files}
    digests = {line.split("\t")[0]: line.split("\t")[2] for line in fast}
    assert all(digests[str(p)] == _md5(p) for p in files)
