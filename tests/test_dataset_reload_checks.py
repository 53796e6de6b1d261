"""Checked reloads: Dataset.reload(verify=True, allow_older=False),
check_replacement() / swap_in() and Dataset.open(source=...).

A replacement whose header is valid but whose body is damaged, or whose
generation number goes backwards, must be refused (the old generation keeps
answering, the refusal is remembered and not checked again); a valid one
replaces the current generation.  A random sequence of replacements is
checked against a Python model (which generation must be current) and a
dict oracle per generation (every digest's record).  Synthetic data, fixed
seeds.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

import hashlookup
from hashlookup.errors import IndexFormatError
from hashlookup.store.dataset import Dataset, OlderGenerationError
from hashlookup.store.generation import Generation
from server_utils import make_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """generation -> (file, oracle); generations 2, 4 and 6 differ in content."""
    d = tmp_path_factory.mktemp("checked")
    out = {}
    for gen, seed in ((2, 21), (4, 41), (6, 61)):
        out[gen] = make_dataset(
            d, n=300, seed=seed, name=f"g{gen}.hlds", generation=gen
        )
    return out


def damage(src: Path, dst: Path) -> None:
    """A copy of `src` with bytes of its md5 keys inverted: the header (and
    so opening) stays valid, the body's checksum does not."""
    with hashlookup.open_dataset(src) as ds:
        offset, width, count = ds.current().key_spans["md5"]
    data = bytearray(src.read_bytes())
    mid = offset + (count // 2) * width
    data[mid : mid + 4 * width] = bytes(b ^ 0xFF for b in data[mid : mid + 4 * width])
    dst.write_bytes(data)


def put(src: Path, live: Path) -> None:
    """Replace `live` atomically (as build and update do)."""
    tmp = live.with_name(live.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, live)


def assert_serves(ds, oracle: dict, step: int = 7) -> None:
    for digest, rec in list(oracle.items())[::step]:
        m = ds.lookup(digest)
        assert m is not None and m.generation == ds.generation
        assert (m.md5, m.sha1, m.sha256) == (rec["md5"], rec["sha1"], rec["sha256"])


def test_damaged_body_refused_once(files, tmp_path, monkeypatch):
    live = tmp_path / "live.hlds"
    put(files[2][0], live)
    bad = tmp_path / "bad.hlds"
    damage(files[4][0], bad)
    with hashlookup.open_dataset(live) as ds:
        put(bad, live)
        calls = []
        real = Generation.verify
        monkeypatch.setattr(
            Generation, "verify", lambda self: (calls.append(1), real(self))[1]
        )
        for _ in range(2):
            with pytest.raises(IndexFormatError, match="checksum mismatch"):
                ds.reload(verify=True)
        assert calls == [1]  # remembered: not checked again
        assert ds.generation == 2
        assert_serves(ds, files[2][1])
        put(files[6][0], live)
        assert ds.reload(verify=True) is True and ds.generation == 6
        assert_serves(ds, files[6][1])


def test_unchecked_reload_serves_a_damaged_body(files, tmp_path):
    """The fault the check is for: without it, the damaged file's answers
    are not its records."""
    live = tmp_path / "live.hlds"
    put(files[2][0], live)
    bad = tmp_path / "bad.hlds"
    damage(files[4][0], bad)
    with hashlookup.open_dataset(live) as ds:
        put(bad, live)
        assert ds.reload() is True and ds.generation == 4
        with pytest.raises(AssertionError):
            assert_serves(ds, files[4][1], step=1)


def test_older_generation_refused_unless_allowed(files, tmp_path):
    live = tmp_path / "live.hlds"
    put(files[4][0], live)
    with hashlookup.open_dataset(live) as ds:
        put(files[2][0], live)
        with pytest.raises(OlderGenerationError, match="generation 2 is older than"):
            ds.reload(allow_older=False)
        with pytest.raises(OlderGenerationError):
            ds.check_replacement()
        assert ds.generation == 4
        assert ds.reload(allow_older=True) is True and ds.generation == 2
        assert_serves(ds, files[2][1])


def test_check_replacement_then_swap_in(files, tmp_path):
    live = tmp_path / "live.hlds"
    put(files[2][0], live)
    with hashlookup.open_dataset(live) as ds:
        assert ds.check_replacement() is None  # not replaced
        put(files[4][0], live)
        new = ds.check_replacement()
        assert new is not None and new.generation == 4
        assert ds.generation == 2  # not swapped in yet
        assert_serves(ds, files[2][1])
        ds.swap_in(new)
        assert ds.generation == 4 and ds.check_replacement() is None
        assert_serves(ds, files[4][1])
        os.unlink(live)
        assert ds.check_replacement() is None  # missing: being replaced
    with pytest.raises(ValueError):
        ds.swap_in(new)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_open_from_a_kept_descriptor(files, tmp_path):
    """A descriptor kept on the last good file opens it though the path now
    names a truncated file; reload() sees the file at the path."""
    live = tmp_path / "live.hlds"
    put(files[4][0], live)
    fd = os.open(live, os.O_RDONLY)
    try:
        truncated = tmp_path / "cut.hlds"
        truncated.write_bytes(files[6][0].read_bytes()[:3000])
        put(truncated, live)
        with pytest.raises(IndexFormatError):
            hashlookup.open_dataset(live)
        with Dataset.open(live, source=f"/proc/self/fd/{fd}") as ds:
            assert ds.path == str(live) and ds.generation == 4
            assert ds.name == "g4"  # named by the path, not by the descriptor
            assert_serves(ds, files[4][1])
            with pytest.raises(IndexFormatError):
                ds.reload(verify=True)
            put(files[6][0], live)
            assert ds.reload(verify=True) and ds.generation == 6
    finally:
        os.close(fd)


def test_random_replacements_against_a_model(files, tmp_path):
    """40 replacements drawn from valid (newer or the same), damaged,
    truncated and older files: after each, the dataset serves exactly the
    generation the model says, and every answer is that generation's."""
    rng = random.Random(1717)
    kinds = {}
    for gen, (path, _) in files.items():
        kinds[("valid", gen)] = path
        damaged = tmp_path / f"damaged{gen}.hlds"
        damage(path, damaged)
        kinds[("damaged", gen)] = damaged
        cut = tmp_path / f"cut{gen}.hlds"
        data = path.read_bytes()
        cut.write_bytes(data[: rng.randrange(64, len(data) - 1)])
        kinds[("truncated", gen)] = cut
    live = tmp_path / "live.hlds"
    put(files[2][0], live)
    current = 2
    seen = {"valid": 0, "damaged": 0, "truncated": 0, "older": 0}
    with hashlookup.open_dataset(live) as ds:
        for _ in range(40):
            kind, gen = rng.choice(sorted(kinds))
            put(kinds[(kind, gen)], live)
            try:
                ds.reload(verify=True, allow_older=False)
            except (IndexFormatError, OlderGenerationError):
                pass
            if kind == "valid" and gen >= current:
                current = gen
                seen["valid"] += 1
            else:
                seen["older" if kind == "valid" else kind] += 1
            assert ds.generation == current, (kind, gen)
            assert_serves(ds, files[current][1])
    assert all(seen.values()), seen
