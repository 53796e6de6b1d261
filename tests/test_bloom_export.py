"""DCSO bloom v1 export (hashlookup.builders.bloom), checked against flor itself.

flor (PyPI ``flor``, DCSO's Python implementation of the format) is the
reference: it must read every exported file, find every key, agree with our
vectorised checker, and -- adding the same values in the same order -- write
byte-identical files.  All keys are synthetic, from fixed seeds.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import struct
import subprocess
import warnings

import flor
import numpy as np
import pytest

import hashlookup
from hashlookup.builders import bloom as bx
from hashlookup.builders.bloom import (
    BloomExportWarning,
    dcso_fingerprint,
    dcso_parameters,
    export_bloom,
    read_bloom,
)

MASK64 = (1 << 64) - 1


def hex_upper(arr: np.ndarray) -> list[bytes]:
    """The values flor sees: uppercase hex ASCII of every row."""
    return [row.tobytes().hex().upper().encode("ascii") for row in arr]


def flor_read(path) -> flor.BloomFilter:
    f = flor.BloomFilter()
    with open(path, "rb") as fh:
        f.read(fh)
    return f


def flor_build(values: list[bytes], n: int, p: float, data: bytes = b"") -> bytes:
    """The file flor writes after adding ``values`` in order to BloomFilter(n, p)."""
    f = flor.BloomFilter(n=n, p=p, data=data)
    for v in values:
        try:
            f.add(v)
        except flor.BloomFilter.CapacityError:  # raised once N reaches n; bits are set
            pass
    out = io.BytesIO()
    f.write(out)
    return out.getvalue()


def random_keys(seed: int, n: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, width), dtype=np.uint8)


def non_members(index, seed: int, n: int) -> np.ndarray:
    """n random digests of the index's width, less any that are in the index."""
    probes = random_keys(seed, n, index.width)
    return probes[~index.contains_many(probes)]


def build_and_open(tmp_path_factory, name: str, keys: np.ndarray):
    path = tmp_path_factory.mktemp(name) / f"{name}.hlx"
    hashlookup.build_index(keys, str(path))
    return hashlookup.open_index(str(path))


@pytest.fixture(scope="module")
def md5_index(tmp_path_factory):
    index = build_and_open(tmp_path_factory, "md5", random_keys(101, 120_000, 16))
    yield index
    index.close()


@pytest.fixture(scope="module")
def sha1_index(tmp_path_factory):
    index = build_and_open(tmp_path_factory, "sha1", random_keys(202, 30_000, 20))
    yield index
    index.close()


# ---------------------------------------------------------------------------
# hashing and parameters: reference == flor, vectorised == reference


@pytest.mark.parametrize(
    "n,p",
    [
        (1, 0.5),
        (1000, 0.01),
        (120_000, 1e-4),
        (1_400_000, 1e-4),
        (10_000_000, 1e-6),
        (7, 0.3),
    ],
)
def test_parameters_match_flor(n, p):
    f = flor.BloomFilter(n=n, p=p) if n < 2_000_000 else None
    m, k = dcso_parameters(n, p)
    if f is not None:
        assert (m, k) == (f.m, f.k)
    # flor's formulas, written out
    assert m == int(abs(math.ceil(n * math.log(p) / math.log(2) ** 2)))
    assert k == math.ceil(math.log(2) * m / n)


def test_reference_fingerprint_matches_flor():
    rng = np.random.default_rng(7)
    for width in (1, 16, 20, 32, 64):
        values = hex_upper(rng.integers(0, 256, size=(200, width), dtype=np.uint8))
        for n, p in ((5000, 0.01), (100_000, 1e-4), (3, 0.2)):
            f = flor.BloomFilter(n=n, p=p)
            for v in values:
                assert dcso_fingerprint(v, f.k, f.m) == f.fingerprint(v)
    assert flor.fnv_1(b"D41D8CD98F00B204E9800998ECF8427E") == bx._fnv1_64(
        b"D41D8CD98F00B204E9800998ECF8427E"
    )


@pytest.mark.parametrize("width", [1, 7, 16, 20, 32, 64])
def test_vectorised_fingerprints_match_reference(width):
    keys = random_keys(width, 600, width)
    for m in (1, 2, 97, 1 << 20, 26_838_163, (1 << 61) + 12345):
        k = 9
        fp = bx._fingerprints(keys, k, m)
        assert fp.shape == (k, len(keys)) and fp.dtype == np.uint64
        for j, v in enumerate(hex_upper(keys)):
            assert fp[:, j].tolist() == dcso_fingerprint(v, k, m)


def test_index_rounds_wrap_and_reduce_like_flor():
    """The generator multiplies with 64-bit wraparound and then reduces modulo
    2**64 - 59.  Hashes whose state lands in [2**64 - 59, 2**64) -- 59 values
    in 2**64, never met by random keys -- are built on purpose here."""
    g, M = bx.DCSO_MULTIPLIER, bx.DCSO_MODULUS
    g_inv = pow(g, -1, 1 << 64)
    hashes = [0, 1, M - 1, M, M + 1, MASK64, MASK64 - 1]
    hashes += [((M + j) * g_inv) & MASK64 for j in range(59)]  # round 1 >= M
    hashes += [((((M + j) * g_inv) & MASK64) * g_inv) & MASK64 for j in (0, 58)]
    hashes += list(
        np.random.default_rng(3).integers(
            0, MASK64, size=200, dtype=np.uint64, endpoint=True
        )
    )
    hashes = [int(h) for h in hashes]
    k = 5
    for m in (3, 1 << 20, 1 << 63, M - 1):
        got = bx._index_rounds(np.array(hashes, dtype=np.uint64), k, m)
        for j, h0 in enumerate(hashes):
            hn = h0 % M  # flor: fnv_1(value) % m
            want = []
            for _ in range(k):
                hn = (hn * g & MASK64) % M  # flor: (hn*g & MASK) % m
                want.append(hn % m)
            assert got[:, j].tolist() == want, (h0, m)
    # the wrap matters: an exact modular product gives other indexes
    h = hashes[10]
    assert (h % M) * g % M != ((h % M) * g & MASK64) % M


def test_reduce_modulus_boundaries():
    M = bx.DCSO_MODULUS
    values = [0, 1, M - 1, M, M + 1, M + 57, MASK64]
    h = np.array(values, dtype=np.uint64)
    bx._reduce_modulus(h, np.empty(len(values), dtype=np.bool_))
    assert h.tolist() == [v % M for v in values]


# ---------------------------------------------------------------------------
# byte-for-byte identity with flor


@pytest.mark.parametrize(
    "chunk,threads,fpr,width",
    [
        (1 << 16, 1, 0.01, 16),  # one chunk
        (1024, 1, 0.01, 20),  # many chunks, counts carried across them
        (256, 3, 0.2, 16),  # worker threads; many keys add no new bit
        (4096, 2, 1e-4, 32),
    ],
)
def test_file_is_byte_identical_to_flor(
    tmp_path, monkeypatch, chunk, threads, fpr, width
):
    monkeypatch.setattr(bx, "_CHUNK", chunk)
    keys = random_keys(chunk + width, 12_000, width)
    keys[5000:5100] = keys[100:200]  # duplicates add no new bit
    out = tmp_path / "f.bloom"
    meta = {"source": "synthetic", "n": 12_000}
    rep = export_bloom(keys, out, fpr=fpr, metadata=meta, threads=threads)
    data = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    want = flor_build(hex_upper(keys), rep.n, fpr, data=data)
    got = out.read_bytes()
    assert got[:48] == want[:48]  # header, N included
    assert got == want
    assert rep.elements <= rep.keys - 100
    assert rep.file_size == len(got)


def test_output_does_not_depend_on_threads_or_chunking(tmp_path, monkeypatch):
    keys = random_keys(11, 40_000, 16)
    outputs = set()
    for chunk, threads in ((1 << 16, 1), (2048, 1), (2048, 2), (512, 4)):
        monkeypatch.setattr(bx, "_CHUNK", chunk)
        path = tmp_path / f"{chunk}-{threads}.bloom"
        export_bloom(keys, path, fpr=0.05, threads=threads)
        outputs.add(path.read_bytes())
    assert len(outputs) == 1


# ---------------------------------------------------------------------------
# exporting indexes: members, false positives, header


def check_header(path, rep, data: bytes):
    raw = path.read_bytes()
    flags, n, p, k, m, count = struct.unpack("<QQdQQQ", raw[:48])
    assert flags == 1
    assert (n, p, k, m, count) == (rep.n, rep.fpr, rep.k, rep.m, rep.elements)
    assert (m, k) == dcso_parameters(n, p)
    assert len(raw) == rep.file_size == 48 + math.ceil(m / 64) * 8 + len(data)
    assert raw[48 + math.ceil(m / 64) * 8 :] == data
    f = flor_read(path)
    assert (f.n, f.p, f.k, f.m, f.N, bytes(f.data)) == (n, p, k, m, count, data)
    assert math.ceil(m / 64) * 8 == f.M
    # bits past m in the last word are zero
    bits = np.unpackbits(
        np.frombuffer(raw[48 : 48 + f.M], dtype=np.uint8), bitorder="little"
    )
    assert not bits[m:].any()


def test_md5_index_members_found_by_flor(tmp_path, md5_index):
    out = tmp_path / "md5.bloom"
    rep = export_bloom(md5_index, out)
    assert (rep.keys, rep.n, rep.fpr) == (len(md5_index), len(md5_index), 1e-4)
    assert len(md5_index) - 50 < rep.elements <= len(md5_index)
    check_header(out, rep, b"")
    f = flor_read(out)
    values = hex_upper(md5_index.keys())
    assert values[0] == md5_index.keys()[0].tobytes().hex().upper().encode()
    assert all(v in f for v in values)  # flor: every member
    assert read_bloom(out).contains_many(md5_index).all()  # vectorised: every member


@pytest.mark.parametrize("fpr", [1e-3, 1e-4])
def test_md5_false_positive_rate(tmp_path, md5_index, fpr):
    out = tmp_path / "md5.bloom"
    rep = export_bloom(md5_index, out, fpr=fpr)
    ours = read_bloom(out)
    f = flor_read(out)
    probes = non_members(md5_index, 1000 + int(1 / fpr), 1_000_000)
    assert len(probes) == 1_000_000
    hits = ours.contains_many(probes)
    rate = hits.mean()
    assert fpr / 2 < rate < 1.5 * fpr, (rate, fpr, rep)
    # the vectorised checker is flor's check: on a 10k sample of members and
    # non-members, and on every false positive
    sample = np.concatenate([probes[:5000], md5_index.keys()[::24][:5000]])
    assert ours.contains_many(sample).tolist() == [v in f for v in hex_upper(sample)]
    assert all(v in f for v in hex_upper(probes[hits]))
    if fpr == 1e-3:
        # flor itself on 100k non-members
        flor_hits = sum(v in f for v in hex_upper(probes[:100_000]))
        assert flor_hits == int(hits[:100_000].sum())
        assert flor_hits < 1.5 * fpr * 100_000


def test_sha1_index(tmp_path, sha1_index):
    out = tmp_path / "sha1.bloom"
    meta = {"algorithm": sha1_index.algorithm, "keys": len(sha1_index), "note": "Grüße"}
    rep = export_bloom(sha1_index, out, fpr=1e-3, metadata=meta)
    data = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    check_header(out, rep, data.encode("utf-8"))
    f = flor_read(out)
    assert json.loads(bytes(f.data).decode("utf-8")) == meta
    assert all(v in f for v in hex_upper(sha1_index.keys()))
    probes = non_members(sha1_index, 303, 300_000)
    rate = read_bloom(out).contains_many(probes).mean()
    assert rate < 1.5e-3


def test_index_and_array_give_the_same_file(tmp_path, sha1_index):
    a, b = tmp_path / "a.bloom", tmp_path / "b.bloom"
    export_bloom(sha1_index, a, fpr=0.01)
    export_bloom(np.array(sha1_index.keys()), b, fpr=0.01)
    assert a.read_bytes() == b.read_bytes()


def test_raw_widths(tmp_path):
    for width in (1, 9, 64):
        keys = np.unique(random_keys(width, 3000, width), axis=0)
        out = tmp_path / f"raw{width}.bloom"
        rep = export_bloom(keys, out, fpr=0.01)
        f = flor_read(out)
        assert all(v in f for v in hex_upper(keys))
        assert out.read_bytes() == flor_build(hex_upper(keys), rep.n, 0.01)


# ---------------------------------------------------------------------------
# capacity


def test_capacity(tmp_path):
    keys = random_keys(5, 5000, 16)
    rep = export_bloom(keys, tmp_path / "c.bloom", fpr=0.01, capacity=20_000)
    assert (rep.n, rep.keys) == (20_000, 5000)
    assert (rep.m, rep.k) == dcso_parameters(20_000, 0.01)
    assert rep.elements == 5000
    # more room: flor can keep adding
    f = flor_read(tmp_path / "c.bloom")
    f.add(b"ANOTHER VALUE")
    assert b"ANOTHER VALUE" in f


def test_default_capacity_avoids_power_of_two_bit_counts(tmp_path):
    """DCSO/bloom issue #19: capacity 109397 at p=0.01 gives m = 2**20 and a
    false-positive rate of about 20%.  The default capacity steps past it;
    asking for it explicitly warns."""
    assert dcso_parameters(109_397, 0.01)[0] == 1 << 20
    keys = random_keys(19, 109_397, 16)
    probes = random_keys(91, 200_000, 16)

    rep = export_bloom(keys, tmp_path / "d.bloom", fpr=0.01)
    assert rep.n == 109_398 and rep.m % 4 == 2
    assert read_bloom(tmp_path / "d.bloom").contains_many(probes).mean() < 0.015

    with pytest.warns(BloomExportWarning, match="issue #19"):
        rep = export_bloom(keys, tmp_path / "e.bloom", fpr=0.01, capacity=109_397)
    assert rep.m == 1 << 20
    assert read_bloom(tmp_path / "e.bloom").contains_many(probes).mean() > 0.1


def test_default_capacity_is_the_key_count_almost_always():
    bumped = 0
    for count in range(1000, 200_000, 997):
        for p in (1e-2, 1e-4, 1e-6):
            n = bx._default_capacity(count, p)
            bumped += n != count
            assert count <= n <= count + 64
            m, _ = dcso_parameters(n, p)
            assert m % 2 == 1 or n / (m & -m) >= bx.MIN_KEYS_PER_CLASS
    assert bumped < 10


def test_empty_and_single_key(tmp_path):
    out = tmp_path / "empty.bloom"
    rep = export_bloom(np.zeros((0, 16), dtype=np.uint8), out)
    assert rep.keys == 0 and rep.elements == 0 and rep.n >= 1
    f = flor_read(out)
    assert b"D41D8CD98F00B204E9800998ECF8427E" not in f
    one = np.frombuffer(
        bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e"), dtype=np.uint8
    ).reshape(1, 16)
    rep = export_bloom(one, out, fpr=0.01)
    assert rep.elements == 1
    f = flor_read(out)
    assert b"D41D8CD98F00B204E9800998ECF8427E" in f
    assert "d41d8cd98f00b204e9800998ecf8427e" in read_bloom(out)


# ---------------------------------------------------------------------------
# metadata and atomic writes


@pytest.mark.parametrize(
    "metadata,data",
    [
        (None, b""),
        (b"\x00raw\xffbytes\n", b"\x00raw\xffbytes\n"),
        ("line one\nline two\n", b"line one\nline two\n"),
        ({"b": [1, 2], "a": "x"}, b'{"a":"x","b":[1,2]}'),
    ],
)
def test_metadata_round_trip(tmp_path, metadata, data):
    out = tmp_path / "m.bloom"
    rep = export_bloom(random_keys(1, 100, 16), out, fpr=0.01, metadata=metadata)
    f = flor_read(out)
    assert bytes(f.data) == data
    assert read_bloom(out).data == data
    assert rep.file_size == 48 + f.M + len(data)
    if isinstance(metadata, dict):
        assert json.loads(f.data) == metadata


def only_file(directory) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"fpr": 0.0}, ValueError),
        ({"fpr": 1.0}, ValueError),
        ({"fpr": -0.1}, ValueError),
        ({"fpr": float("nan")}, ValueError),
        ({"fpr": "0.01"}, TypeError),
        ({"fpr": True}, TypeError),
        ({"capacity": 99}, ValueError),  # fewer than the 100 keys
        ({"capacity": 0}, ValueError),
        ({"capacity": 2.5}, TypeError),
        ({"metadata": {"x": object()}}, TypeError),
        ({"metadata": 12}, TypeError),
        ({"threads": 0}, ValueError),
    ],
)
def test_invalid_arguments_leave_existing_file_untouched(tmp_path, kwargs, exc):
    out = tmp_path / "keep.bloom"
    out.write_bytes(b"previous contents")
    with pytest.raises(exc):
        export_bloom(random_keys(2, 100, 16), out, **kwargs)
    assert out.read_bytes() == b"previous contents"
    assert only_file(tmp_path) == ["keep.bloom"]


@pytest.mark.parametrize(
    "keys",
    [
        [b"\x00" * 16],
        np.zeros((3, 16), dtype=np.int64),
        np.zeros(16, dtype=np.uint8),
        np.zeros((3, 0), dtype=np.uint8),
        "d41d8cd98f00b204e9800998ecf8427e",
    ],
)
def test_invalid_keys(tmp_path, keys):
    out = tmp_path / "keep.bloom"
    out.write_bytes(b"previous contents")
    with pytest.raises((TypeError, ValueError)):
        export_bloom(keys, out)
    assert out.read_bytes() == b"previous contents"
    assert only_file(tmp_path) == ["keep.bloom"]


def test_failure_while_writing_leaves_existing_file_untouched(tmp_path, monkeypatch):
    out = tmp_path / "keep.bloom"
    out.write_bytes(b"previous contents")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bx.np, "packbits", boom)
    with pytest.raises(OSError, match="disk full"):
        export_bloom(random_keys(3, 1000, 16), out)
    assert out.read_bytes() == b"previous contents"
    assert only_file(tmp_path) == ["keep.bloom"]


def test_replaces_existing_file_and_missing_directory(tmp_path):
    out = tmp_path / "f.bloom"
    out.write_bytes(b"old")
    export_bloom(random_keys(4, 10, 16), out, fpr=0.01)
    assert flor_read(out).n >= 10
    assert only_file(tmp_path) == ["f.bloom"]
    with pytest.raises(FileNotFoundError):
        export_bloom(random_keys(4, 10, 16), tmp_path / "nope" / "f.bloom")


def test_no_warning_for_ordinary_exports(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in (1, 10, 1000, 50_000):
            export_bloom(random_keys(n, n, 16), tmp_path / "w.bloom", fpr=1e-3)


# ---------------------------------------------------------------------------
# read_bloom


def test_read_bloom_rejects_bad_files(tmp_path):
    good = tmp_path / "good.bloom"
    export_bloom(random_keys(6, 50, 16), good, fpr=0.01)
    raw = good.read_bytes()
    cases = {
        "short": raw[:47],
        "version": struct.pack("<Q", 2) + raw[8:],
        "truncated": raw[:60],
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.bloom"
        path.write_bytes(content)
        with pytest.raises(ValueError):
            read_bloom(path)
        with pytest.raises(IOError):  # flor refuses them too
            flor_read(path)
    # flags: only the low byte is the version
    path = tmp_path / "flags.bloom"
    path.write_bytes(struct.pack("<Q", 0x100 | 1) + raw[8:])
    assert read_bloom(path).flags == 0x101
    assert flor_read(path).m == read_bloom(path).m


# ---------------------------------------------------------------------------
# DCSO's Go tool, when installed (Debian: golang-github-dcso-bloom-cli)


def dcso_bloom_cli() -> str | None:
    exe = shutil.which("bloom")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--help"], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if "Bloom Filter" in out.stdout and "set-data" in out.stdout else None


@pytest.mark.skipif(dcso_bloom_cli() is None, reason="DCSO bloom CLI not installed")
def test_dcso_go_tool(tmp_path, sha1_index):
    exe = dcso_bloom_cli()

    def bloom(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [exe, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout

    out = tmp_path / "ours.bloom"
    rep = export_bloom(sha1_index, out, fpr=1e-3, metadata=b"synthetic keys")

    show = bloom("show", str(out))
    assert f"Capacity:\t\t{rep.n}\n" in show
    assert f"Elements present:\t{rep.elements}\n" in show
    assert f"Bits:\t\t\t{rep.m}\n" in show
    assert f"Hash functions:\t\t{rep.k}\n" in show
    assert bloom("get-data", str(out)) == "synthetic keys"

    members = "".join(v.decode() + "\n" for v in hex_upper(sha1_index.keys()))
    assert len(bloom("check", str(out), stdin=members).splitlines()) == len(sha1_index)

    probes = non_members(sha1_index, 404, 100_000)
    hits = read_bloom(out).contains_many(probes)
    go_hits = bloom(
        "check", str(out), stdin="".join(v.decode() + "\n" for v in hex_upper(probes))
    )
    want = sorted(v.decode() for v in hex_upper(probes[hits]))
    assert sorted(go_hits.split()) == want

    # the Go tool, given the same values in the same order, builds the same filter
    go_file = tmp_path / "go.bloom"
    bloom("create", "-p", repr(rep.fpr), "-n", str(rep.n), str(go_file), stdin=members)
    nbits = 48 + math.ceil(rep.m / 64) * 8
    assert go_file.read_bytes() == out.read_bytes()[:nbits]
