"""Damaged and crafted PDQ sections: refused at open with a message naming
the section and field, or (body damage) never a crash, and verify() names
what is wrong.  Each file is opened and searched in a subprocess, so that a
crash fails the test instead of killing pytest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xxhash

from hashlookup.store import format as _format
from near_utils import build, planted_set
from utils import run_in_subprocess

_RUNNER = r"""
import json, sys
import numpy as np
import hashlookup
from hashlookup.errors import IndexFormatError

out = {}
for path in sys.argv[1:]:
    res = out[path] = {}
    try:
        ds = hashlookup.open_dataset(path)
    except IndexFormatError as e:
        res["open"] = str(e)
        continue
    res["open"] = None
    rng = np.random.default_rng(1)
    q = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    q[:20] = ds.current().pdq.hashes[:20] if ds.has_pdq else q[:20]
    for d in (0, 31, 63, 300):
        try:
            ds.near_many(q, d, min_quality=0)
            ds.near(q[0].tobytes(), d, min_quality=0)
            res[f"near{d}"] = None
        except IndexFormatError as e:
            res[f"near{d}"] = str(e)
    try:
        ds.verify()
        res["verify"] = None
    except IndexFormatError as e:
        res["verify"] = str(e)
    ds.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nearbase")
    hashes, _ = planted_set(3000, seed=21)
    quality = np.random.default_rng(22).integers(0, 101, 3000).astype(np.uint8)
    path = build(tmp, hashes, quality)
    data = path.read_bytes()
    header = _format.read_header(data, len(data), str(path))
    return data, header


def _section(header, kind):
    return next(s for s in header.sections if s.kind == kind)


def _with_header(data, header, sections) -> bytes:
    """The file with its header rewritten (checksum recomputed)."""
    raw = _format.encode_header(sections, header.created_ns, header.file_size)
    return raw + data[len(raw) :]


def _with_body(data, header, kind, edit, fix_checksum) -> bytes:
    """The file with one section's body edited (edit(bytearray) in place),
    its checksum recomputed in the header or left stale."""
    s = _section(header, kind)
    buf = bytearray(data)
    body = bytearray(buf[s.offset : s.offset + s.length])
    edit(body)
    buf[s.offset : s.offset + s.length] = body
    if not fix_checksum:
        return bytes(buf)
    sections = [
        x.replace(checksum=xxhash.xxh3_64_intdigest(bytes(body))) if x is s else x
        for x in header.sections
    ]
    return _with_header(bytes(buf), header, sections)


def _run(tmp_path, files: dict[str, bytes]) -> dict[str, dict]:
    paths = []
    for name, data in files.items():
        p = tmp_path / f"{name}.hlds"
        p.write_bytes(data)
        paths.append(str(p))
    _, out, _ = run_in_subprocess(_RUNNER, *paths, check=True)
    res = json.loads(out)
    return {name: res[p] for name, p in zip(files, paths)}


def _params(header, kind, params):
    return [x.replace(params=params) if x.kind == kind else x for x in header.sections]


def test_crafted_pdq_headers_are_refused_at_open(base, tmp_path):
    data, h = base
    hs = _section(h, _format.KIND_PDQ_HASHES)
    ix = _section(h, _format.KIND_PDQ_INDEX)
    chunks, bits, count = ix.params
    cases = {
        "count": (_params(h, _format.KIND_PDQ_HASHES, (count + 1, 0, 0)), "pdq hashes"),
        "records": (
            _params(h, _format.KIND_PDQ_RECORDS, (count - 1, 0, 0)),
            "pdq records",
        ),
        "few_chunks": (_params(h, _format.KIND_PDQ_INDEX, (7, bits, count)), "chunks"),
        "many_chunks": (
            _params(h, _format.KIND_PDQ_INDEX, (65, bits, count)),
            "chunks",
        ),
        "no_bits": (_params(h, _format.KIND_PDQ_INDEX, (chunks, 0, count)), "bucket"),
        "huge_bits": (
            _params(h, _format.KIND_PDQ_INDEX, (chunks, 2**40, count)),
            "bucket",
        ),
        "other_size": (
            _params(h, _format.KIND_PDQ_INDEX, (chunks + 1, bits, count)),
            "need",
        ),
        "index_rows": (
            _params(h, _format.KIND_PDQ_INDEX, (chunks, bits, count + 1)),
            "rows",
        ),
        "missing": (
            [x.replace(kind=99) if x is hs else x for x in h.sections],
            "incomplete",
        ),
        "twice": (
            [
                x.replace(kind=_format.KIND_PDQ_HASHES)
                if x.kind == _format.KIND_PDQ_RECORDS
                else x
                for x in h.sections
            ],
            "two pdq hashes",
        ),
    }
    files = {k: _with_header(data, h, s) for k, (s, _) in cases.items()}
    files["intact"] = data
    res = _run(tmp_path, files)
    assert res["intact"] == dict.fromkeys(res["intact"], None)
    for name, (_, word) in cases.items():
        msg = res[name]["open"]
        assert msg is not None, name
        assert word in msg and f"{name}.hlds" in msg, (name, msg)


def _fill(start_frac, value):
    def edit(body):
        i = int(len(body) * start_frac)
        body[i : i + 4096] = bytes([value]) * len(body[i : i + 4096])

    return edit


def _random(seed):
    def edit(body):
        rng = np.random.default_rng(seed)
        pos = rng.integers(0, len(body), 200)
        for p in pos:
            body[p] = int(rng.integers(0, 256))

    return edit


def _records_edit(kind_of_damage):
    def edit(body):
        n = len(body) // 5
        ids = np.frombuffer(bytes(body[: 4 * n]), "<u4").copy()
        q = bytearray(body[4 * n :])
        if kind_of_damage == "past":
            ids[-1] = 10**9
        elif kind_of_damage == "order":
            ids[[0, -1]] = ids[[-1, 0]]
        else:
            q[5] = 101
        body[:] = ids.astype("<u4").tobytes() + bytes(q)

    return edit


def test_pdq_body_damage_never_crashes_and_verify_names_it(base, tmp_path):
    data, h = base
    ix = _format.KIND_PDQ_INDEX
    cases = {
        "index_ff": (ix, _fill(0.5, 0xFF), "does not match"),
        "index_00": (ix, _fill(0.01, 0x00), "does not match"),
        "index_random": (ix, _random(5), "does not match"),
        "hashes_random": (_format.KIND_PDQ_HASHES, _random(6), "does not match"),
        "ids_past": (_format.KIND_PDQ_RECORDS, _records_edit("past"), "past the"),
        "ids_order": (_format.KIND_PDQ_RECORDS, _records_edit("order"), "order"),
        "quality": (_format.KIND_PDQ_RECORDS, _records_edit("q"), "quality"),
    }
    files = {k: _with_body(data, h, kd, e, True) for k, (kd, e, _) in cases.items()}
    for k, (kd, e, _) in cases.items():
        files[f"{k}_stale"] = _with_body(data, h, kd, e, False)
    res = _run(tmp_path, files)
    for name, (kind, _, word) in cases.items():
        r = res[name]
        assert r["open"] is None, (name, r)
        assert r["verify"] is not None and word in r["verify"], (name, r)
        for key, msg in r.items():
            if key.startswith("near") and msg is not None:
                assert f"{name}.hlds" in msg, (name, key, msg)
        stale = res[f"{name}_stale"]["verify"]
        assert "checksum mismatch" in stale and _format.KIND_NAMES[kind] in stale
