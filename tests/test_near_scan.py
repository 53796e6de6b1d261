"""scan on a dataset with PDQ hashes: image files (told by content) are
PDQ-hashed and searched; rotated, resized, recompressed and re-encoded
variants of known images are found when only the originals' PDQ is known,
unrelated images are not, and the near hits equal a brute-force oracle
over the files' own hashes.  Bad images are per-file errors; resume keeps
near hits; the CLI prints them in every format.  Images are drawn by
Pillow from fixed seeds."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hashlookup
from hashlookup.scan import ScanInterrupted, scan
from hashlookup.scan.images import ImageReader, image_kind
from near_utils import flip, oracle, write_csv

pytest.importorskip("PIL")
pytest.importorskip("pdqhash")
from PIL import Image

from test_near_images import draw, jpeg

HLOOKUP = [sys.executable, "-m", "hashlookup"]
ORIGINALS = 5
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def variants(img: Image.Image) -> dict[str, bytes]:
    """Changed copies of img, each encoded (several formats)."""
    fill = tuple(int(x) for x in np.asarray(img).reshape(-1, 3).mean(0))
    return {
        "half": encode(img.resize((160, 160)), "PNG"),
        "bigger": encode(img.resize((480, 480), Image.BICUBIC), "JPEG", quality=85),
        "jpeg30": jpeg(img, 30),
        "rotated": encode(
            img.rotate(1, resample=Image.BICUBIC, fillcolor=fill), "WEBP", quality=90
        ),
        "bmp": encode(img, "BMP"),
        "tiff": encode(img.resize((300, 300)), "TIFF"),
        "gif": encode(img, "GIF"),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A dataset of the originals' PDQ hashes (and decoys), and a tree of
    variants (names that hide what they are), unrelated images, bad images
    and other files."""
    tmp = tmp_path_factory.mktemp("nearscan")
    originals = [draw(seed) for seed in range(ORIGINALS)]
    known = [hashlookup.pdq_hash(i) for i in originals]
    decoys = np.random.default_rng(5).integers(0, 256, (500, 32), dtype=np.uint8)
    hashes = np.concatenate(
        [np.stack([np.frombuffer(h, np.uint8) for h, _ in known]), decoys]
    )
    quality = np.array([q for _, q in known] + [100] * len(decoys))
    write_csv(tmp / "known.csv", hashes, quality)
    hashlookup.build_dataset(str(tmp / "known.csv"), tmp / "known.hlds")
    tree = tmp / "tree"
    expect: dict[str, int] = {}  # variant file -> its original's record
    for i, img in enumerate(originals):
        d = tree / f"album{i}"
        d.mkdir(parents=True)
        for name, data in variants(img).items():
            # By content, not by name: misleading or no extensions.
            p = d / (f"{name}.txt" if i % 2 else name)
            p.write_bytes(data)
            expect[str(p)] = i
    other = tree / "other"
    other.mkdir()
    for k, seed in enumerate(range(100, 106)):
        (other / f"u{k}.{FORMATS[k].lower()}").write_bytes(
            encode(draw(seed), FORMATS[k])
        )
    bad = tree / "bad"
    bad.mkdir()
    good = jpeg(originals[0], 90)
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (bad / "header_only.png").write_bytes(encode(originals[1], "PNG")[:40])
    (bad / "garbage.gif").write_bytes(b"GIF89a" + bytes(range(256)) * 4)
    (bad / "not_a.bmp").write_bytes(b"BM" + b"\x00" * 12 + b"\x28\x00\x00\x00" + b"x")
    (other / "notes.txt").write_text("BM is not a bitmap\n" * 20)
    (other / "random.bin").write_bytes(random.Random(3).randbytes(5000))
    (other / "empty").write_bytes(b"")
    return {
        "ds": tmp / "known.hlds",
        "tree": tree,
        "hashes": hashes,
        "quality": quality,
        "expect": expect,
        "bad": {str(p) for p in bad.iterdir()},
        "tmp": tmp,
    }


def brute_force(world, max_distance=31, min_quality=50):
    """(path, record, distance) of every decodable image file in the tree,
    by hashing each with hashlookup.pdq_hash and comparing with every hash
    of the dataset; and the image files that do not decode."""
    want = set()
    undecodable = set()
    for root, _, files in os.walk(world["tree"]):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                if image_kind(fh.read(32)) is None:
                    continue
            try:
                h, q = hashlookup.pdq_hash(p)
            except Exception:
                undecodable.add(p)
                continue
            if q < min_quality:
                continue
            query = np.frombuffer(h, np.uint8)[None, :]
            _, rec, dist = oracle(
                query, world["hashes"], world["quality"], max_distance, min_quality
            )
            want |= {(p, int(r), int(d)) for r, d in zip(rec, dist, strict=True)}
    return want, undecodable


def test_variants_found_unrelated_not_and_equal_to_brute_force(world):
    errors = []
    r = scan(world["ds"], [world["tree"]], on_error=lambda p, e: errors.append(p))
    assert r.pdq and r.pdq_unavailable is None
    got = {(h.path, h.record_id, h.distance) for h in r.hits}
    assert all(h.algorithm == "pdq" and h.quality is not None for h in r.hits)
    want, undecodable = brute_force(world)
    assert got == want
    # Every variant finds its original, at a small distance; nothing else
    # (unrelated images, other files) finds anything.
    by_path: dict[str, list[tuple[int, int]]] = {}
    for p, rec, d in got:
        by_path.setdefault(p, []).append((rec, d))
    assert set(by_path) == set(world["expect"])
    for p, i in world["expect"].items():
        assert by_path[p] == [(i, by_path[p][0][1])], p
        assert by_path[p][0][1] <= 24, (p, by_path[p])
    # Bad images are per-file errors, named; the rest of the tree is done.
    assert set(errors) == world["bad"] == undecodable
    assert r.errors == len(world["bad"])
    n_images = len(world["expect"]) + 6
    assert r.images_hashed == n_images
    assert r.files_read == n_images + len(world["bad"]) + 3


@pytest.mark.parametrize("max_distance", [0, 8, 31, 63])
def test_radius_and_quality_floor_follow_the_oracle(world, max_distance):
    for min_quality in (0, 50, 100):
        r = scan(
            world["ds"],
            [world["tree"]],
            max_distance=max_distance,
            min_quality=min_quality,
            on_error=lambda p, e: None,
        )
        want, _ = brute_force(world, max_distance, min_quality)
        assert {(h.path, h.record_id, h.distance) for h in r.hits} == want
        assert r.images_low_quality <= r.images_hashed


def test_exact_hit_is_not_reported_again_as_near(tmp_path):
    img = draw(7)
    data = jpeg(img, 90)
    h, q = hashlookup.pdq_hash(data)
    import hashlib

    csv = tmp_path / "k.csv"
    csv.write_text(f"md5,pdq,quality\n{hashlib.md5(data).hexdigest()},{h.hex()},{q}\n")
    hashlookup.build_dataset(str(csv), tmp_path / "k.hlds")
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "same.jpg").write_bytes(data)
    (tree / "copy.png").write_bytes(encode(img, "PNG"))
    r = scan(tmp_path / "k.hlds", [tree])
    got = sorted((Path(x.path).name, x.algorithm, x.distance) for x in r.hits)
    assert got[0] == ("copy.png", "pdq", got[0][2]) and got[0][2] <= 8
    assert got[1] == ("same.jpg", "md5", None)
    assert len(got) == 2


def test_pdq_off_and_datasets_without_pdq(world, tmp_path):
    r = scan(world["ds"], [world["tree"]], pdq=False)
    assert not r.hits and not r.pdq and r.images_hashed == 0 and r.errors == 0
    plain = tmp_path / "plain.md5"
    plain.write_text("0" * 32 + "\n")
    hashlookup.build_dataset(str(plain), tmp_path / "plain.hlds")
    r = scan(tmp_path / "plain.hlds", [world["tree"]])
    assert not r.pdq and r.pdq_unavailable is None and r.images_hashed == 0
    with pytest.raises(ValueError, match="no PDQ"):
        scan(tmp_path / "plain.hlds", [world["tree"]], pdq=True)
    for bad in ({"max_distance": -1}, {"min_quality": 101}, {"image_jobs": 0}):
        with pytest.raises(ValueError):
            scan(world["ds"], [world["tree"]], **bad)
    with pytest.raises(TypeError):
        scan(world["ds"], [world["tree"]], max_distance="31")


def test_resume_keeps_near_hits(world, tmp_path):
    full = scan(world["ds"], [world["tree"]], on_error=lambda p, e: None)
    state = tmp_path / "state"
    seen = []

    def stop_after_nine(hit):
        # album0's seven variants, then one more: album0 is finished (its
        # near hits are in the state file), the next directory is not.
        seen.append(hit)
        if len(seen) == 9:
            raise KeyboardInterrupt

    with pytest.raises(ScanInterrupted):
        scan(
            world["ds"],
            [world["tree"]],
            resume=state,
            jobs=1,
            on_hit=stop_after_nine,
            on_error=lambda p, e: None,
        )
    assert '"pdq"' in state.read_text()  # a near hit recorded
    again = scan(world["ds"], [world["tree"]], resume=state, on_error=lambda p, e: None)
    assert again.resumed_units >= 2
    key = sorted(
        (h.path, h.algorithm, h.record_id, h.distance, h.quality) for h in full.hits
    )
    assert (
        sorted(
            (h.path, h.algorithm, h.record_id, h.distance, h.quality)
            for h in again.hits
        )
        == key
    )
    assert (again.images_hashed, again.errors) == (full.images_hashed, full.errors)
    # Other near parameters: the state file is refused.
    state2 = tmp_path / "state2"
    seen.clear()
    with pytest.raises(ScanInterrupted):
        scan(
            world["ds"],
            [world["tree"]],
            resume=state2,
            jobs=1,
            on_hit=stop_after_nine,
            on_error=lambda p, e: None,
        )
    with pytest.raises(hashlookup.HashLookupError, match="pdq"):
        scan(world["ds"], [world["tree"]], resume=state2, max_distance=10)


def test_invert_lists_images_without_near_hits(world):
    missed = []
    r = scan(
        world["ds"],
        [world["tree"]],
        on_miss=missed.append,
        on_error=lambda p, e: None,
    )
    hit_paths = {h.path for h in r.hits}
    all_files = {
        os.path.join(root, f) for root, _, fs in os.walk(world["tree"]) for f in fs
    }
    assert set(missed) == all_files - hit_paths - world["bad"]
    assert not set(missed) & hit_paths


def mutations(data: bytes, seed: int) -> list[bytes]:
    """Truncations and byte flips of an encoded image (fixed seed)."""
    rng = random.Random(seed)
    out = [data[:n] for n in (0, 8, 16, 40, len(data) // 2, len(data) - 1)]
    for _ in range(12):
        b = bytearray(data)
        for _ in range(rng.randrange(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        out.append(bytes(b))
    return out


def test_corrupt_images_are_counted_errors_never_crashes(tmp_path):
    img = draw(11, size=96)
    reader = ImageReader(os.O_RDONLY, True)
    tree = tmp_path / "t"
    tree.mkdir()
    n = 0
    for k, fmt in enumerate(FORMATS):
        for j, data in enumerate(mutations(encode(img, fmt), seed=k)):
            # The decoder gives a hash or a per-file error, never an exception;
            # a hash is the one pdq_hash gives the same bytes.
            res = reader.decode(data)
            if hasattr(res, "pdq"):
                assert (res.pdq, res.quality) == hashlookup.pdq_hash(data)
            else:
                assert res.reason.startswith("image could not be decoded")
            (tree / f"{fmt}{j}").write_bytes(data)
            n += 1
    csv = tmp_path / "k.csv"
    write_csv(csv, np.frombuffer(hashlookup.pdq_hash(img)[0], np.uint8)[None, :])
    hashlookup.build_dataset(str(csv), tmp_path / "k.hlds")
    errors = []
    r = scan(tmp_path / "k.hlds", [tree], on_error=lambda p, e: errors.append(e))
    assert r.files_read == n
    assert r.errors == len(errors) > 0
    assert all(e.startswith("image could not be decoded") for e in errors)
    sniffed = sum(
        image_kind((tree / f).read_bytes()[:32]) is not None for f in os.listdir(tree)
    )
    assert r.images_hashed + r.errors + r.images_too_large == sniffed


def test_image_kind_by_content():
    img = draw(2, size=32)
    for fmt in FORMATS:
        assert image_kind(encode(img, fmt)[:32]) == fmt.lower(), fmt
    for head in (
        b"",
        b"BM",
        b"BMxxxxxxxxxxxxxxxxxx",
        b"hello world, text",
        b"RIFF1234WAVE",
    ):
        assert image_kind(head) is None


def run_cli(*args, env=None):
    return subprocess.run(
        [*HLOOKUP, *map(str, args)], capture_output=True, text=True, env=env
    )


def test_cli_prints_near_hits_in_every_format(world):
    want, _ = brute_force(world)
    args = ["scan", world["ds"], world["tree"], "-q"]
    p = run_cli(*args, "--format", "jsonl")
    assert p.returncode == 1, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert {(r["path"], r["record"], r["distance"]) for r in rows} == want
    assert all(r["algorithm"] == "pdq" and 0 <= r["quality"] <= 100 for r in rows)
    p = run_cli(*args, "--format", "csv")
    lines = p.stdout.splitlines()
    assert lines[0] == "path,algorithm,digest,record,labels,mismatch,distance,quality"
    import csv as _csv

    got = {(r[0], int(r[3]), int(r[6])) for r in _csv.reader(lines[1:])}
    assert got == want
    p = run_cli(*args)
    got = set()
    for line in p.stdout.splitlines():
        f = line.split("\t")
        assert f[1] == "pdq" and f[-1].startswith("quality=")
        got.add((f[0], int(f[-2].removeprefix("distance="))))
    assert got == {(p_, d) for p_, _, d in want}
    # The radius option, and images off.
    p = run_cli(*args, "--format", "jsonl", "--max-distance", "4")
    assert {json.loads(x)["distance"] for x in p.stdout.splitlines()} <= set(range(5))
    p = run_cli(*args, "--no-pdq")
    assert (p.returncode, p.stdout) == (0, "")
    p = run_cli("scan", world["ds"], world["tree"])
    assert "images hashed" in p.stderr and "near" in p.stderr


def test_cli_without_the_images_extra_says_so_once(world):
    # The extra made unimportable in a child process (a real import failure).
    code = (
        "import sys; sys.modules['pdqhash'] = None; "
        "from hashlookup.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    base = [sys.executable, "-c", code, "scan", str(world["ds"]), str(world["tree"])]
    p = subprocess.run(base, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("hashlookup[images]") == 1
    assert "warning" in p.stderr and p.stdout == ""
    p = subprocess.run([*base, "--pdq"], capture_output=True, text=True)
    assert p.returncode == 2 and "hashlookup[images]" in p.stderr


def test_record_with_several_pdq_hashes_is_one_hit_at_its_nearest(tmp_path):
    img = draw(12)
    h = np.frombuffer(hashlookup.pdq_hash(img)[0], np.uint8)
    rng = np.random.default_rng(4)
    far, near = flip(h, 12, rng), flip(h, 3, rng)
    md5 = "ab" * 16
    (tmp_path / "k.csv").write_text(
        f"md5,pdq\n{md5},{far.tobytes().hex()}\n{md5},{near.tobytes().hex()}\n"
    )
    hashlookup.build_dataset(str(tmp_path / "k.csv"), tmp_path / "k.hlds")
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "x.png").write_bytes(encode(img, "PNG"))
    r = scan(tmp_path / "k.hlds", [tree])
    assert [(x.record_id, x.distance) for x in r.hits] == [(0, 3)]
    p = run_cli("scan", tmp_path / "k.hlds", tree, "-q", "--format", "jsonl")
    assert [json.loads(x)["distance"] for x in p.stdout.splitlines()] == [3]


def test_images_over_the_limits_are_counted_not_decoded(world, monkeypatch):
    from hashlookup.scan import images

    full = scan(world["ds"], [world["tree"]], on_error=lambda p, e: None)
    # 300x300 and smaller images stay; the 320x320 and larger ones are over.
    monkeypatch.setattr(images, "MAX_PIXELS", 300 * 300)
    missed: list[str] = []
    r = scan(
        world["ds"],
        [world["tree"]],
        on_miss=missed.append,
        on_error=lambda p, e: None,
    )
    assert r.images_too_large > 0 and r.images_hashed > 0
    # (A damaged image whose header says it is large is not decoded now.)
    done = r.images_hashed + r.images_too_large + r.errors
    assert done == full.images_hashed + full.errors
    small = {h.path for h in r.hits}
    assert small < {h.path for h in full.hits}
    # An image not decoded is examined by its digests only: a miss.
    assert {h.path for h in full.hits} - small <= set(missed)
    monkeypatch.setattr(images, "MAX_PIXELS", 10**9)
    monkeypatch.setattr(images, "MAX_BYTES", 1000)
    r = scan(world["ds"], [world["tree"]], on_error=lambda p, e: None)
    done = r.images_hashed + r.images_too_large + r.errors
    assert done == full.images_hashed + full.errors
    assert r.images_too_large > 0


def test_dihedral_finds_turned_and_mirrored_copies(world, tmp_path):
    img = draw(2)  # original 2 of the dataset (record 2)
    tree = tmp_path / "t"
    tree.mkdir()
    turned = {
        "r90.png": img.rotate(90, expand=True),
        "r180.jpg": img.rotate(180),
        "mirror.webp": img.transpose(Image.FLIP_LEFT_RIGHT),
        "flip.bmp": img.transpose(Image.FLIP_TOP_BOTTOM),
    }
    for name, t in turned.items():
        fmt = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "bmp": "BMP"}
        (tree / name).write_bytes(encode(t, fmt[name.split(".")[1]]))
    (tree / "other.png").write_bytes(encode(draw(200), "PNG"))
    plain = scan(world["ds"], [tree])
    assert not plain.hits  # PDQ alone misses them
    r = scan(world["ds"], [tree], dihedral=True)
    # Oracle: the least distance over the eight hashes of each file.
    want = set()
    for f in os.listdir(tree):
        eight, q = hashlookup.pdq_hash(tree / f, dihedral=True)
        if q < 50:
            continue
        best: dict[int, int] = {}
        for h in eight:
            _, rec, dist = oracle(
                np.frombuffer(h, np.uint8)[None, :],
                world["hashes"],
                world["quality"],
                31,
                50,
            )
            for rr, dd in zip(rec.tolist(), dist.tolist(), strict=True):
                best[rr] = min(best.get(rr, 999), dd)
        want |= {(str(tree / f), rr, dd) for rr, dd in best.items()}
    assert {(h.path, h.record_id, h.distance) for h in r.hits} == want
    assert {(Path(p).name, rec) for p, rec, _ in want} == {(n, 2) for n in turned}
    assert max(d for _, _, d in want) <= 8
    p = run_cli("scan", world["ds"], tree, "-q", "--dihedral", "--format", "jsonl")
    got = {
        (x["path"], x["record"], x["distance"])
        for x in map(json.loads, p.stdout.splitlines())
    }
    assert got == want
