"""The "pdq" fuzz target: dataset files with PDQ sections (hashes, rows,
multi-index), mutated, opened and searched.

Input encoding as the dataset target's (targets.py): one byte of flags
(& 1: fix the header checksum and size, & 2: fix the section checksums, so
that mutated bodies reach the search and verify()), then the file.

Checked on every input that opens: each near match holds a hash at the
distance it reports (the search measures before it answers) and within the
radius, record ids are records.  Once verify() passes, near_many and near
equal a brute-force comparison with every PDQ row of the file, for radii
0..63 and two quality floors.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hashlookup
from hashlookup import IndexFormatError
from near_utils import POPCOUNT, build, flip, planted_set

_RADII = (0, 9, 31, 40, 63)


def seeds() -> list[bytes]:
    """Small datasets with PDQ hashes (planted neighbours, duplicates, the
    all-zero and all-one hashes, several qualities, labels), with flags."""
    from fuzz.seeds import with_flags

    out = []
    with tempfile.TemporaryDirectory() as d:
        for n, seed in ((1, 1), (9, 2), (60, 3), (250, 4)):
            hashes, _ = planted_set(n, seed=seed, centers=2, max_plant=40)
            quality = np.random.default_rng(seed).integers(0, 101, n)
            labels = [f"c{i % 3}" for i in range(n)] if n > 5 else None
            path = build(Path(d), hashes, quality, name=f"p{n}", labels=labels)
            out.append(path.read_bytes())
    return with_flags(out)


def _probes(hashes: np.ndarray) -> np.ndarray:
    """Rows of the file, near copies of them, all-zero and all-one."""
    rng = np.random.default_rng(7)
    rows = [np.array(h) for h in hashes[:6]]
    rows += [flip(np.array(h), 5 + 6 * i, rng) for i, h in enumerate(hashes[:6])]
    rows += [np.zeros(32, np.uint8), np.full(32, 255, np.uint8)]
    return np.stack(rows)


def _distances(q: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    return POPCOUNT[q[None, :] ^ hashes].sum(axis=1)


def exercise(ds: hashlookup.Dataset) -> None:
    """Near searches of a dataset that opened (see the module docstring)."""
    if not ds.has_pdq:
        return
    idx = ds.current().pdq
    assert idx is not None
    n = len(ds)
    hashes = np.array(idx.hashes)
    probes = _probes(hashes)
    for d in _RADII:
        hits = ds.near_many(probes, d, min_quality=0, threads=1)
        assert (hits.distance <= d).all() and (hits.record_id < n).all()
        for q in probes[::3]:
            for m in ds.near(q.tobytes(), d, min_quality=0):
                assert 0 <= m.record_id < n
                raw = np.frombuffer(bytes.fromhex(m.pdq), np.uint8)
                assert int(_distances(q, raw[None, :])[0]) == m.distance <= d
    try:
        ds.verify()
    except IndexFormatError:
        return
    # A verified file answers exactly as comparing with every row.
    rids = np.array(idx.record_ids, dtype=np.int64)
    quality = np.array(idx.quality)
    for d in _RADII:
        for floor in (0, 50):
            hits = ds.near_many(probes, d, min_quality=floor, threads=2)
            got = sorted(
                zip(
                    hits.query.tolist(), hits.record_id.tolist(), hits.distance.tolist()
                )
            )
            want = []
            for qi, q in enumerate(probes):
                dist = _distances(q, hashes)
                ok = np.flatnonzero((dist <= d) & (quality >= floor))
                want += [(qi, int(rids[r]), int(dist[r])) for r in ok]
            assert got == sorted(want), f"verified file: near_many({d}, {floor})"
            for qi in range(0, len(probes), 4):
                one = ds.near(probes[qi].tobytes(), d, min_quality=floor)
                assert sorted((qi, m.record_id, m.distance) for m in one) == sorted(
                    w for w in want if w[0] == qi
                )


def fuzz_pdq(data: bytes) -> None:
    """One input: flags, then a dataset file (see the module docstring)."""
    from fuzz.targets import _file

    path = _file(data, "pdq.hlds")
    if path is not None:
        with hashlookup.open_dataset(path) as ds:
            exercise(ds)
