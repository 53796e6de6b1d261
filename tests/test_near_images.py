"""hashlookup.pdq_hash on images that Pillow draws (fixed seeds): every
input form gives the same hash, resized, recompressed and slightly rotated
copies stay within PDQ's match radius and are found by Dataset.near when
only the original is known; different images are far apart."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest

import hashlookup
from near_utils import POPCOUNT, write_csv

PIL = pytest.importorskip("PIL")
pytest.importorskip("pdqhash")
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402


def draw(seed: int, size: int = 320) -> Image.Image:
    """Random ellipses, boxes and lines, softened (a photo-like image)."""
    r = random.Random(seed)
    img = Image.new("RGB", (size, size), tuple(r.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(25):
        x0, y0 = r.randrange(size), r.randrange(size)
        x1, y1 = x0 + r.randrange(20, 160), y0 + r.randrange(20, 160)
        col = tuple(r.randrange(256) for _ in range(3))
        kind = r.randrange(3)
        if kind == 0:
            d.ellipse([x0, y0, x1, y1], fill=col)
        elif kind == 1:
            d.rectangle([x0, y0, x1, y1], fill=col)
        else:
            d.line([x0, y0, x1, y1], fill=col, width=r.randrange(2, 12))
    return img.filter(ImageFilter.GaussianBlur(4))


def jpeg(img: Image.Image, quality: int) -> bytes:
    b = io.BytesIO()
    img.save(b, "JPEG", quality=quality)
    return b.getvalue()


def distance(a: bytes, b: bytes) -> int:
    return int(POPCOUNT[np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)].sum())


def variants(img: Image.Image) -> dict[str, object]:
    fill = tuple(int(x) for x in np.asarray(img).reshape(-1, 3).mean(0))
    return {
        "half": img.resize((160, 160)),
        "bigger": img.resize((480, 480), Image.BICUBIC),
        "jpeg30": jpeg(img, 30),
        "png": _png(img),
        "rotated1": img.rotate(1, resample=Image.BICUBIC, fillcolor=fill),
    }


def _png(img: Image.Image) -> bytes:
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def test_input_forms_agree(tmp_path):
    img = draw(1)
    path = tmp_path / "a.png"
    img.save(path)
    want = hashlookup.pdq_hash(img)
    assert len(want[0]) == 32 and 0 <= want[1] <= 100
    assert hashlookup.pdq_hash(path) == want
    assert hashlookup.pdq_hash(str(path)) == want
    assert hashlookup.pdq_hash(path.read_bytes()) == want
    assert hashlookup.pdq_hash(np.asarray(img)) == want
    assert hashlookup.pdq_hash(img.convert("RGBA")) == want
    grey = img.convert("L")
    assert hashlookup.pdq_hash(grey) == hashlookup.pdq_hash(np.asarray(grey))


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="not an image"):
        hashlookup.pdq_hash(b"certainly not an image")
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"x\.png"):
        hashlookup.pdq_hash(bad)
    with pytest.raises(FileNotFoundError):
        hashlookup.pdq_hash(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="RGB"):
        hashlookup.pdq_hash(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        hashlookup.pdq_hash(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(TypeError, match="int"):
        hashlookup.pdq_hash(3)


def test_variants_are_near_and_found(tmp_path):
    originals = [draw(seed) for seed in range(6)]
    hashes = np.stack(
        [np.frombuffer(hashlookup.pdq_hash(i)[0], np.uint8) for i in originals]
    )
    quality = [hashlookup.pdq_hash(i)[1] for i in originals]
    # Decoys: random hashes, so that the originals are needles in a haystack.
    decoys = np.random.default_rng(2).integers(0, 256, (2000, 32), dtype=np.uint8)
    allh = np.concatenate([hashes, decoys])
    csv = tmp_path / "known.csv"
    write_csv(csv, allh, np.array(quality + [100] * len(decoys)))
    hashlookup.build_dataset(str(csv), tmp_path / "known.hlds")
    with hashlookup.open_dataset(tmp_path / "known.hlds") as ds:
        for i, img in enumerate(originals):
            for name, v in variants(img).items():
                h, _ = hashlookup.pdq_hash(v)
                d = distance(h, hashes[i].tobytes())
                assert d <= 31, (i, name, d)
                found = ds.near(h)
                assert found and found[0].record_id == i, (i, name, found)
                assert found[0].distance == d
        for i in range(len(originals)):
            for j in range(i):
                assert distance(hashes[i].tobytes(), hashes[j].tobytes()) > 63


def test_dihedral_hashes_find_rotated_and_mirrored_copies(tmp_path):
    img = draw(3)
    digest, quality = hashlookup.pdq_hash(img)
    hashes, q8 = hashlookup.pdq_hash(img, dihedral=True)
    assert len(hashes) == 8 and hashes[0] == digest and q8 == quality
    csv = tmp_path / "one.csv"
    write_csv(csv, np.frombuffer(digest, np.uint8).reshape(1, 32))
    hashlookup.build_dataset(str(csv), tmp_path / "one.hlds")
    turned = [
        img.rotate(90, expand=True),
        img.rotate(180),
        img.transpose(Image.FLIP_LEFT_RIGHT),
        img.transpose(Image.FLIP_TOP_BOTTOM),
    ]
    with hashlookup.open_dataset(tmp_path / "one.hlds") as ds:
        for t in turned:
            plain, _ = hashlookup.pdq_hash(t)
            assert distance(plain, digest) > 31  # PDQ alone misses it
            variants, _ = hashlookup.pdq_hash(t, dihedral=True)
            hits = ds.near_many(variants)
            assert 0 in hits.record_id.tolist()
            assert int(hits.distance.min()) <= 8
