"""Builds past their memory budget: runs spilled to disk and merged back.

Every build here is forced to spill with a tiny budget (``memory=1 MiB``)
and compared with the in-memory build of the same input: the files must be
identical byte for byte (but for the creation time and the header checksum
that covers it), and lookups must agree with a set of the input's digests.
A failed or interrupted build must leave the previous file and no temporary
file behind.  Synthetic digests from seeded generators only.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashlookup import (
    build_dataset,
    build_index,
    open_dataset,
    open_index,
    update_dataset,
)
from hashlookup.builders import runs
from hashlookup.errors import InputError

TINY = 1 << 20
WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}


def same_file(a: Path, b: Path) -> bool:
    """Equal bytes apart from created_ns (24..32) and the header checksum
    (56..64), which covers it."""
    x, y = a.read_bytes(), b.read_bytes()
    return len(x) == len(y) and x[:24] + x[32:56] + x[64:] == y[:24] + y[32:56] + y[64:]


@pytest.fixture
def spills(monkeypatch):
    """Counts the runs written (a spy around RunSorter.flush)."""
    count = [0]
    flush = runs.RunSorter.flush

    def spy(self):
        count[0] += 1
        flush(self)

    monkeypatch.setattr(runs.RunSorter, "flush", spy)
    return count


def no_temporaries(*dirs: Path) -> None:
    for d in dirs:
        left = [p.name for p in d.iterdir() if p.name.startswith(".")]
        assert left == [], f"left in {d}: {left}"


# --------------------------------------------------------------------------
# the merge itself


@settings(max_examples=15)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 5000),
    width=st.sampled_from([1, 3, 8, 16, 24]),
    alphabet=st.sampled_from([2, 256]),
    cap=st.integers(1, 700),
    unique=st.booleans(),
)
def test_run_sorter_matches_numpy(
    tmp_path_factory, seed, n, width, alphabet, cap, unique
):
    """Rows in runs of `cap` rows, merged in chunks: the sorted rows (each
    run drops its own duplicates; `unique` drops those across runs)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, alphabet, (n, width), dtype=np.uint8)
    with runs.SpillDir(str(tmp_path_factory.mktemp("out") / "x"), None) as spill:
        sorter = runs.RunSorter(width, cap * width, spill)
        for i in range(0, n, 333):
            sorter.add(rows[i : i + 333])
        got = [c.copy() for c in sorter.chunks(97, unique=unique)]
        got_rows = np.concatenate(got) if got else np.empty((0, width), np.uint8)
    want = np.unique(rows, axis=0) if n else rows
    if unique or not sorter.spilled:
        assert got_rows.tobytes() == want.tobytes()
    else:  # every row's key is there, in order
        assert np.unique(got_rows, axis=0).tobytes() == want.tobytes()
        v = got_rows.view(f"V{width}").ravel()
        assert all(bytes(v[i]) <= bytes(v[i + 1]) for i in range(len(v) - 1))


# (build options, whether a first-level filter is built): the default (none
# beside the Bloom filter), the default without a Bloom filter (one), an
# explicit size beside the Bloom filter (one).  Spilled and in-memory builds
# must give the same bytes in each case.
FILTERS = [
    ({}, False),
    ({"bloom_bits_per_key": 0}, True),
    ({"prefilter_bits_per_key": 4}, True),
]
FILTER_IDS = ["default", "no-bloom", "explicit-4"]


# --------------------------------------------------------------------------
# single-table indexes


@settings(max_examples=8)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(16_000, 60_000),
    dup=st.floats(0, 0.9),
    config=st.sampled_from([("md5", 16), ("sha1", 20), ("raw", 5), ("raw", 9)]),
    filters=st.sampled_from(FILTERS),
)
def test_spilled_index_equals_in_memory_and_the_set(
    tmp_path_factory, seed, n, dup, config, filters
):
    algorithm, width = config
    d = tmp_path_factory.mktemp("ix")
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, width), dtype=np.uint8)
    k = int(n * dup)
    keys[rng.integers(0, n, k)] = keys[rng.integers(0, n, k)]  # duplicates
    kw = {"algorithm": algorithm, **({"width": width} if algorithm == "raw" else {})}
    kw.update(filters[0])
    r1 = build_index(iter(np.array_split(keys, 7)), d / "mem.hlx", **kw)
    r2 = build_index(iter(np.array_split(keys, 3)), d / "spill.hlx", memory=TINY, **kw)
    assert r1.unique_keys == r2.unique_keys and r1.input_keys == r2.input_keys == n
    assert same_file(d / "mem.hlx", d / "spill.hlx")
    oracle = {bytes(x) for x in keys}
    misses = rng.integers(0, 256, (2000, width), dtype=np.uint8)
    with open_index(d / "spill.hlx") as ix:
        assert (ix.info()["prefilter"] is not None) == filters[1]
        ix.verify()
        assert len(ix) == len(oracle)
        assert bool((ix.find_many(keys) >= 0).all())
        got = ix.find_many(misses) >= 0
        assert list(got) == [bytes(x) in oracle for x in misses]
    no_temporaries(d)


def test_index_of_text_spills_and_reports(tmp_path, spills):
    rng = np.random.default_rng(11)
    keys = rng.integers(0, 256, (40_000, 16), dtype=np.uint8)
    src = tmp_path / "list.txt"
    src.write_text("".join(k.tobytes().hex() + "\n" for k in keys[:30_000]) * 2)
    r = build_index(src, tmp_path / "a.hlx", memory=TINY)
    assert spills[0] >= 2
    assert (r.input_keys, r.unique_keys, r.duplicates) == (60_000, 30_000, 30_000)
    build_index(src, tmp_path / "b.hlx")
    assert same_file(tmp_path / "a.hlx", tmp_path / "b.hlx")


# --------------------------------------------------------------------------
# datasets


def write_inputs(d: Path, seed: int, n: int) -> dict[str, Path]:
    """A hashdeep list (md5, sha1, sha256, size), a CSV with labels and an
    attribute, a plain md5 list and an allow-list, sharing digests within
    and across the lists."""
    rng = np.random.default_rng(seed)
    md5 = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    sha1 = rng.integers(0, 256, (n, 20), dtype=np.uint8)
    sha256 = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    md5[1::9] = md5[0 : len(md5[1::9])]  # same file listed twice
    sha1[2::13] = sha1[5 : 5 + len(sha1[2::13])]  # chains of shared digests
    size = rng.integers(-1, 10**12, n)
    hd = d / "hd.txt"
    with hd.open("w") as f:
        f.write("%%%% HASHDEEP-1.0\n%%%% size,md5,sha1,sha256,filename\n")
        for i in range(n):
            f.write(
                f"{max(size[i], 0)},{md5[i].tobytes().hex()},{sha1[i].tobytes().hex()},"
                f"{sha256[i].tobytes().hex()},/f/{i}\n"
            )
    m = n // 2
    c_md5 = rng.integers(0, 256, (m, 16), dtype=np.uint8)
    c_md5[::4] = md5[rng.integers(0, n, len(c_md5[::4]))]  # shared with hd
    c_sha1 = rng.integers(0, 256, (m, 20), dtype=np.uint8)
    cs = d / "cat.csv"
    with cs.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["md5", "sha1", "category", "Name"])
        for i in range(m):
            w.writerow(
                [
                    c_md5[i].tobytes().hex(),
                    c_sha1[i].tobytes().hex() if i % 3 else "",
                    str(i % 4),
                    f"name {i % 50}" if i % 5 else "",
                ]
            )
    plain = d / "plain.txt"
    extra = rng.integers(0, 256, (m, 16), dtype=np.uint8)
    extra[::3] = md5[rng.integers(0, n, len(extra[::3]))]
    plain.write_text(
        "".join(k.tobytes().hex() + "\n" for k in np.concatenate([extra, extra[:99]]))
    )
    allow = d / "allow.txt"
    allow.write_text("".join(md5[i].tobytes().hex() + "\n" for i in range(0, n, 101)))
    return {"hd": hd, "cat": cs, "plain": plain, "allow": allow}


def dataset_options(files: dict[str, Path], allow: bool) -> dict:
    return {
        "name": "t",
        "generation": 1,
        "columns": None,
        "label_columns": {"category": "category"},
        "attributes": ["Name"],
        "allow": [files["allow"]] if allow else None,
    }


@pytest.mark.parametrize("filters", FILTERS, ids=FILTER_IDS)
@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize(("seed", "n"), [(1, 4000), (2, 9000)])
def test_spilled_dataset_equals_in_memory(tmp_path, spills, seed, n, allow, filters):
    files = write_inputs(tmp_path, seed, n)
    inputs = {"hd": files["hd"], "cat": files["cat"], "plain": files["plain"]}
    opts = {**dataset_options(files, allow), **filters[0]}
    r1 = build_dataset(inputs, tmp_path / "mem.hlds", **opts)
    assert spills[0] == 0
    r2 = build_dataset(inputs, tmp_path / "spill.hlds", memory=TINY, **opts)
    assert spills[0] >= 3  # every algorithm's digests went through runs
    assert r1.records == r2.records and r1.keys == r2.keys
    assert (r1.merged, r1.suppressed, r1.invalid) == (
        r2.merged,
        r2.suppressed,
        r2.invalid,
    )
    assert r1.merged > 0 and (sum(r1.suppressed.values()) > 0) == allow
    assert same_file(tmp_path / "mem.hlds", tmp_path / "spill.hlds")
    with open_dataset(tmp_path / "spill.hlds") as ds:
        ds.verify()
        want = set(files["plain"].read_text().split())
        gone = set(files["allow"].read_text().split()) if allow else set()
        table = ds.table("md5")
        assert (table.info()["prefilter"] is not None) == filters[1]
        have = {k.tobytes().hex() for k in table.keys()}  # noqa: SIM118
        if not allow:
            assert want <= have
        assert not (have & gone)
    no_temporaries(tmp_path)


@pytest.mark.parametrize("remove", [False, True])
def test_spilled_update_equals_in_memory(tmp_path, spills, remove):
    files = write_inputs(tmp_path, 5, 6000)
    build_dataset({"hd": files["hd"]}, tmp_path / "base.hlds", label_columns=None)
    kw = {
        "remove": [files["allow"]] if remove else None,
        "label_columns": {"category": "category"},
    }
    add = {"cat": files["cat"], "plain": files["plain"]}
    u1 = update_dataset(
        tmp_path / "base.hlds", add=add, output=tmp_path / "u1.hlds", **kw
    )
    assert spills[0] == 0
    u2 = update_dataset(
        tmp_path / "base.hlds", add=add, output=tmp_path / "u2.hlds", memory=TINY, **kw
    )
    assert spills[0] >= 3
    assert (u1.added, u1.removed, u1.changed, u1.records_after) == (
        u2.added,
        u2.removed,
        u2.changed,
        u2.records_after,
    )
    assert u1.changed > 0 and (u1.removed > 0) == remove
    assert same_file(tmp_path / "u1.hlds", tmp_path / "u2.hlds")
    no_temporaries(tmp_path)


# --------------------------------------------------------------------------
# failures leave nothing behind


def test_failed_spilled_build_keeps_the_old_file(tmp_path, spills):
    files = write_inputs(tmp_path, 3, 5000)
    out = tmp_path / "ds.hlds"
    build_dataset({"hd": files["hd"]}, out)
    before = out.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_text(files["plain"].read_text() + "not a digest\n")
    tmp = tmp_path / "scratch"
    tmp.mkdir()
    with pytest.raises(InputError, match=r"bad\.txt"):
        build_dataset([files["hd"], bad], out, memory=TINY, tmp_dir=tmp)
    assert spills[0] >= 1  # it failed after spilling
    assert out.read_bytes() == before
    no_temporaries(tmp_path, tmp)
    assert list(tmp.iterdir()) == []


def test_unusable_tmp_dir_is_named(tmp_path):
    """A --tmp-dir that is missing or a file: an OSError naming it, raised
    when the first run spills; no output file."""
    keys = np.random.default_rng(5).integers(0, 256, (200_000, 16), dtype=np.uint8)
    a_file = tmp_path / "a_file"
    a_file.write_bytes(b"")
    for tmp, error, words in (
        (tmp_path / "missing", FileNotFoundError, "does not exist"),
        (a_file, NotADirectoryError, "is not a directory"),
    ):
        out = tmp_path / "x.hlx"
        with pytest.raises(error, match=words) as info:
            build_index(keys, out, memory=TINY, tmp_dir=tmp)
        assert info.value.filename == str(tmp)
        assert not out.exists()


def test_fault_in_the_merge_keeps_the_old_file(tmp_path, monkeypatch):
    """A fault that cannot be produced otherwise (the merge failing half
    way): the output and the runs are removed."""
    from hashlookup import _core

    rng = np.random.default_rng(4)
    keys = rng.integers(0, 256, (60_000, 16), dtype=np.uint8)
    out = tmp_path / "a.hlx"
    build_index(keys[:10], out)
    before = out.read_bytes()
    calls = [0]
    merge = _core.merge_rows

    def failing(*a):
        calls[0] += 1
        if calls[0] == 1:
            raise MemoryError("injected")
        return merge(*a)

    monkeypatch.setattr(_core, "merge_rows", failing)
    with pytest.raises(MemoryError, match="injected"):
        build_index(keys, out, memory=TINY)
    assert calls[0] == 1 and out.read_bytes() == before
    no_temporaries(tmp_path)


def test_interrupted_cli_build_leaves_nothing(tmp_path):
    """Ctrl-C (SIGINT) while the CLI reads its input after spilling: exit
    130-style failure, the old index intact, no run directory left."""
    out = tmp_path / "a.hlx"
    build_index(["d41d8cd98f00b204e9800998ecf8427e"], out)
    before = out.read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hashlookup", "build", "--index", "-", "-o", str(out)]
        + ["--memory", "1M", "--tmp-dir", str(scratch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    rng = np.random.default_rng(9)
    deadline = time.monotonic() + 60
    spilled = False
    while time.monotonic() < deadline:
        block = rng.integers(0, 256, (20_000, 16), dtype=np.uint8)
        proc.stdin.write("".join(k.tobytes().hex() + "\n" for k in block).encode())
        proc.stdin.flush()
        dirs = list(scratch.iterdir())
        if dirs and any(True for _ in dirs[0].iterdir()):
            spilled = True
            break
    assert spilled, "the build never spilled a run"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert out.read_bytes() == before
    assert list(scratch.iterdir()) == []
    no_temporaries(tmp_path)


# --------------------------------------------------------------------------
# the command line


def test_cli_memory_and_tmp_dir(tmp_path):
    rng = np.random.default_rng(6)
    src = tmp_path / "l.txt"
    src.write_text(
        "".join(
            k.tobytes().hex() + "\n"
            for k in rng.integers(0, 256, (30_000, 16), dtype=np.uint8)
        )
    )
    run = [sys.executable, "-m", "hashlookup", "build", "-o"]
    ok = subprocess.run(
        run + [str(tmp_path / "a.hlds"), str(src), "--memory", "1M"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "\rbuild:" not in ok.stderr  # not a terminal: no progress line
    subprocess.run(
        run + [str(tmp_path / "b.hlds"), str(src)], check=True, capture_output=True
    )
    with open_dataset(tmp_path / "a.hlds") as a, open_dataset(tmp_path / "b.hlds") as b:
        assert len(a) == len(b) == 30_000
    bad = subprocess.run(
        run + [str(tmp_path / "c.hlds"), str(src), "--memory", "lots"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--memory" in bad.stderr
    missing = subprocess.run(
        run
        + [
            str(tmp_path / "c.hlds"),
            str(src),
            "--memory",
            "1M",
            "--tmp-dir",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "nope" in missing.stderr
    assert not (tmp_path / "c.hlds").exists()


def test_progress_on_a_terminal(tmp_path):
    pty = pytest.importorskip("pty")
    rng = np.random.default_rng(8)
    src = tmp_path / "l.txt"
    src.write_text(
        "".join(
            k.tobytes().hex() + "\n"
            for k in rng.integers(0, 256, (200_000, 16), dtype=np.uint8)
        )
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hashlookup",
            "build",
            "--index",
            str(src),
            "-o",
            str(tmp_path / "a.hlx"),
            "--memory",
            "1M",
        ],
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    assert b"\rbuild: " in seen  # redrawn in place
    assert b"wrote" in seen  # then the summary line


def test_scale_benchmark_small(tmp_path):
    """benchmarks/scale_build.py on a small input, forced to spill: it
    checks its own answers and exits non-zero on any difference."""
    if not os.path.exists("/usr/bin/time"):
        pytest.skip("needs /usr/bin/time")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "scale_build.py"
    for args in (["--records", "20000"], ["--index-keys", "300000"]):
        r = subprocess.run(
            [
                sys.executable,
                str(script),
                *args,
                "--memory",
                "1M",
                "--dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert '"max_rss_bytes"' in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_table_writer_feeds_consumers_the_sorted_chunks(tmp_path):
    """A per-key section built from the same pass (as a first-level filter
    would be): it sees every key once, in order, and its section lands
    after the Bloom filter, skipped by readers as an optional kind."""
    from hashlookup._atomic import atomic_output
    from hashlookup.builders.assemble import FileAssembler
    from hashlookup.builders.index import TableWriter
    from hashlookup.store import format as fmt

    class Collect:
        def __init__(self):
            self.n = None
            self.chunks = []

        def start(self, n, width):
            self.n = (n, width)

        def add(self, keys, row0):
            assert row0 == sum(len(c) for c in self.chunks)
            self.chunks.append(keys.copy())

        def sections(self):
            body = np.frombuffer(b"%d" % sum(len(c) for c in self.chunks), np.uint8)
            return [fmt.SectionData(99, body, flags=0)]

    rng = np.random.default_rng(12)
    keys = np.unique(rng.integers(0, 256, (50_000, 16), dtype=np.uint8), axis=0)
    consumer = Collect()
    with atomic_output(tmp_path / "t.hlx") as f:
        asm = FileAssembler(f)
        table = TableWriter(
            asm, "md5", 16, 0, 12.0, 8, chunk_rows=7_000, consumers=[consumer]
        )
        for i in range(0, len(keys), 9_999):
            table.add(keys[i : i + 9_999])
        table.finish()
        asm.finish(1)
    assert consumer.n == (len(keys), 16)
    assert np.concatenate(consumer.chunks).tobytes() == keys.tobytes()
    with open_index(tmp_path / "t.hlx") as ix:
        ix.verify()
        assert bool((ix.find_many(keys) >= 0).all())
    raw = (tmp_path / "t.hlx").read_bytes()
    kinds = [int.from_bytes(raw[64 + 64 * i : 68 + 64 * i], "little") for i in range(4)]
    assert kinds == [fmt.KIND_KEYS, fmt.KIND_LOCATOR, fmt.KIND_BLOOM, 99]


def test_spilled_dataset_with_pdq_hashes_equals_in_memory(tmp_path, spills):
    """PDQ hashes (kept in memory, numbered by the spilled plan's record ids),
    with records merged through shared md5s."""
    from near_utils import planted_set, write_csv

    hashes, _ = planted_set(6000, seed=3)
    quality = np.random.default_rng(3).integers(0, 101, len(hashes))
    src = tmp_path / "near.csv"
    md5 = write_csv(src, hashes, quality, seed=3)
    again = tmp_path / "again.txt"  # the same files listed again: merged
    again.write_text("".join(m.tobytes().hex() + "\n" for m in md5[::3]))
    inputs = {"near": src, "again": again}
    build_dataset(inputs, tmp_path / "mem.hlds", name="n", generation=1)
    assert spills[0] == 0
    build_dataset(inputs, tmp_path / "spill.hlds", name="n", generation=1, memory=TINY)
    assert spills[0] >= 1
    assert same_file(tmp_path / "mem.hlds", tmp_path / "spill.hlds")
