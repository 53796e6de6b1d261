"""The C reader of hashdeep data lines (hashlookup._core.hashdeep_parse) and
the build's fast paths around it (sort rows packed in C, merged rows split
and rowmaps inverted in C, the reading and merging threads of builds past
memory), each against a Python or numpy reference.

The Python hashdeep reader (the numpy fast path and the per-line reader,
``_hashdeep.USE_C = False``) is the reference: on random files mixing good
lines with every kind of odd or malformed one, the C path must give the
same records, the same report and the same error (file and line named).
All data is synthetic, from fixed seeds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashlookup import InputError, _core, build_dataset
from hashlookup.builders import runs
from hashlookup.importers import _hashdeep
from importer_data import read_hashdeep_both_ways

WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}
LAYOUTS = [
    ("size", "md5", "sha1", "sha256", "filename"),
    ("md5", "sha256", "filename"),
    ("size", "filename", "md5"),  # file name in the middle: commas inside
    ("sha1", "size"),
    ("size", "md5", "tiger", "whirlpool", "filename", "sha256"),
]


def _hex(rng: np.random.Generator, width: int, upper: bool = False) -> str:
    h = bytes(rng.integers(0, 256, width, dtype=np.uint8)).hex()
    return h.upper() if upper else h


def _cell(rng: np.random.Generator, col: str, odd: bool) -> str:
    """A good cell of column col, or (odd) one the C reader must hand on."""
    if col in WIDTH:
        w = WIDTH[col]
        if not odd:
            return "" if rng.random() < 0.1 else _hex(rng, w, rng.random() < 0.2)
        return str(
            rng.choice(
                [
                    _hex(rng, w)[:-1],  # too short
                    _hex(rng, w) + "0",  # too long
                    "g" + _hex(rng, w)[1:],  # not hex
                    " " + _hex(rng, w)[1:],  # a blank inside
                    _hex(rng, w)[:10] + "\r" + _hex(rng, w)[11:],  # a bare CR
                    '"' + _hex(rng, w)[1:-1] + '"',  # quoted
                ]
            )
        )
    if col == "size":
        if not odd:
            return "" if rng.random() < 0.1 else str(int(rng.integers(0, 10**15)))
        return str(
            rng.choice(
                ["9" * 19, "1" * 40, "-5", "+5", " 12", "12 ", "1e5", "0x10", "١٢"]
            )
        )
    if col == "filename":
        return str(
            rng.choice(
                ["./a.jpg", "./a,b.jpg", '"./quoted, name.txt"', "./é,ü", "", ",,"]
            )
        )
    return _hex(rng, 24 if col == "tiger" else 64)


def _line(
    rng: np.random.Generator, cols: tuple[str, ...], p_odd: float, headers: bool
) -> str:
    r = rng.random()
    if r < p_odd / 4:  # a line of another kind
        return str(
            rng.choice(
                [
                    "%%%% HASHDEEP-1.0" if headers else "#",  # where data is due
                    "",
                    "   ",
                    "# a comment",
                    "## $ hashdeep -r .",
                    " " + ",".join(_cell(rng, c, False) for c in cols),
                    "\t#indented comment",
                    ",".join(_cell(rng, c, False) for c in cols[:-1]),  # a field short
                    ",".join(_cell(rng, c, False) for c in cols) + ",extra",
                    "," * (len(cols) - 1),  # every field empty: no digest
                    "x" * 300,
                ]
            )
        )
    odd = r < p_odd
    which = int(rng.integers(0, len(cols)))
    return ",".join(_cell(rng, c, odd and i == which) for i, c in enumerate(cols))


def _write(
    path: Path,
    seed: int,
    n: int,
    p_odd: float,
    crlf: bool,
    final_nl: bool,
    headers: bool = True,
) -> None:
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _block in range(int(rng.integers(1, 3))):  # concatenated outputs
        cols = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
        out += ["%%%% HASHDEEP-1.0", "%%%% " + ",".join(cols), "## Invoked from: /x"]
        out += [_line(rng, cols, p_odd, headers) for _ in range(n)]
    nl = "\r\n" if crlf else "\n"
    text = nl.join(out) + (nl if final_nl else "")
    path.write_bytes(text.encode())


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 60),
    p_odd=st.sampled_from([0.0, 0.05, 0.5]),
    crlf=st.booleans(),
    final_nl=st.booleans(),
    skip=st.booleans(),
    batch=st.sampled_from([1, 7, 100_000]),
)
def test_c_reader_equals_python_reader(
    tmp_path_factory, seed, n, p_odd, crlf, final_nl, skip, batch
):
    p = tmp_path_factory.mktemp("hd") / "list.hashdeep"
    _write(p, seed, n, p_odd, crlf, final_nl)
    assert read_hashdeep_both_ways(p, True, skip, batch) == read_hashdeep_both_ways(
        p, False, skip, batch
    )


def test_c_reader_many_odd_lines_and_chunks(tmp_path, monkeypatch):
    """Past _MAX_ODD odd lines a chunk goes to the per-line reader whole;
    small chunks put chunk ends everywhere."""
    monkeypatch.setattr(_hashdeep, "CHUNK_SIZE", 4096)
    p = tmp_path / "odd.hashdeep"
    _write(p, 7, 3000, 0.3, False, True, headers=False)
    for skip in (True, False):
        assert read_hashdeep_both_ways(p, True, skip, 500) == read_hashdeep_both_ways(
            p, False, skip, 500
        )
    got = read_hashdeep_both_ways(p, True, True, 500)
    assert got[0] == "ok" and got[2][1] > 100  # many lines were skipped


def test_c_reader_names_file_and_line(tmp_path):
    p = tmp_path / "bad.hashdeep"
    good = "1," + "a" * 32 + ",./x"
    p.write_text(
        "%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n"
        + (good + "\n") * 5
        + "1,"
        + "g" * 32
        + ",./y\n"
        + good
        + "\n"
    )
    got = read_hashdeep_both_ways(p, True, False, 100)
    assert got == read_hashdeep_both_ways(p, False, False, 100)
    assert got[0] == "error" and "bad.hashdeep:8" in got[1]


def _empty_columns(cap: int) -> list[np.ndarray]:
    return [
        np.empty((cap, 16), np.uint8),
        np.empty((cap, 20), np.uint8),
        np.empty((cap, 32), np.uint8),
        np.empty(cap, np.uint8),
        np.empty(cap, np.uint8),
        np.empty(cap, np.uint8),
        np.empty(cap, np.int64),
    ]


def test_hashdeep_parse_stops_and_reports():
    md5 = "0123456789abcdefFEDCBA9876543210"
    data = f"10,{md5},a\n# c\n\n20,,b\n%%%% x\n30,{md5},c".encode()
    cols = _empty_columns(10)
    k, lines, end, stop = _core.hashdeep_parse(
        data, 0, (3, 2, 1, -1, -1, 0), 1 << 20, *cols
    )
    # "20,,b" has no digest: the exact reader decides
    assert (k, lines, stop) == (1, 3, _core.HASHDEEP_IRREGULAR)
    assert data[end:].startswith(b"20,,b")
    assert bytes(cols[0][0]) == bytes.fromhex(md5) and cols[6][0] == 10
    assert cols[3][0] == 1 and cols[4][0] == 0 and not cols[1][0].any()
    k, lines, end, stop = _core.hashdeep_parse(
        data, data.index(b"30,"), (3, 2, 1, -1, -1, 0), 1 << 20, *cols
    )
    assert (k, lines, end, stop) == (1, 1, len(data), _core.HASHDEEP_END)
    k, _, end, stop = _core.hashdeep_parse(
        data, 0, (3, 2, 1, -1, -1, 0), 1 << 20, *_empty_columns(1)
    )
    assert (k, stop) == (1, _core.HASHDEEP_FULL) and data[end:].startswith(b"# c")


@pytest.mark.parametrize(
    "layout",
    [
        (0, -1, 0, -1, -1, -1),
        (2, 2, 0, -1, -1, -1),
        (2, -1, 0, 0, -1, -1),
        (2, -1, -1, -1, -1, 1),
        (2, -1, 5, -1, -1, -1),
        (65, -1, 0, -1, -1, -1),
        (1, -1, 0, -1, -1),
    ],
)
def test_hashdeep_parse_rejects_bad_layouts(layout):
    with pytest.raises(ValueError):
        _core.hashdeep_parse(b"x\n", 0, layout, 100, *_empty_columns(4))


def test_hashdeep_parse_rejects_bad_arguments():
    lay = (1, -1, 0, -1, -1, -1)
    with pytest.raises(ValueError):
        _core.hashdeep_parse(b"x\n", 3, lay, 100, *_empty_columns(4))
    cols = _empty_columns(4)
    cols[0] = np.empty((4, 20), np.uint8)
    with pytest.raises(ValueError):
        _core.hashdeep_parse(b"x\n", 0, lay, 100, *cols)
    assert _core.hashdeep_parse(b"", 0, lay, 100, *_empty_columns(4)) == (0, 0, 0, 0)


def test_hashdeep_parse_random_bytes_never_crash():
    rng = np.random.default_rng(11)
    alphabet = np.frombuffer(b'0123456789abcdefABCDEF,,,,\n\n\r #%"xyz\t', np.uint8)
    for i in range(400):
        n = int(rng.integers(0, 400))
        data = alphabet[rng.integers(0, len(alphabet), n)].tobytes()
        ncols = int(rng.integers(1, 6))
        cols = list(rng.permutation(ncols)) + [-1] * 5
        lay = (ncols, int(cols[0]) if i % 2 else -1, *map(int, cols[1:4]), -1)
        if lay[1] >= 0 and lay[1] in lay[2:5]:
            continue
        if all(c < 0 for c in lay[2:5]):
            continue
        pos = 0
        while pos < len(data):
            k, lines, end, stop = _core.hashdeep_parse(
                data, pos, lay, int(rng.integers(1, 50)), *_empty_columns(3)
            )
            assert pos <= end <= len(data) and k <= 3 and k <= lines
            if stop == _core.HASHDEEP_IRREGULAR:
                nl = data.find(b"\n", end)
                end = len(data) if nl < 0 else nl + 1
            pos = end


def test_pack_rows_equals_numpy():
    rng = np.random.default_rng(3)
    for w in (16, 20, 32):
        dig = rng.integers(0, 256, (1000, w), dtype=np.uint8)
        has = rng.random(1000) < 0.7
        out = np.zeros((800, w + 4), np.uint8)
        k = _core.pack_rows(dig, has.view(np.uint8), 5000, out, 10)
        rows = np.flatnonzero(has)
        want = np.concatenate(
            [dig[rows], (rows + 5000).astype(">u4").view(np.uint8).reshape(-1, 4)], 1
        )
        assert k == min(len(rows), 790)
        assert (out[10 : 10 + k] == want[:k]).all() and not out[:10].any()
    with pytest.raises(ValueError):
        _core.pack_rows(dig, has.view(np.uint8), 2**32 - 10, out, 0)
    with pytest.raises(ValueError):
        _core.pack_rows(dig, has.view(np.uint8), 0, np.zeros((10, w), np.uint8), 0)


@pytest.mark.parametrize(("split", "shared"), [(64, False), (64, True), (10**9, True)])
def test_run_sorter_split_sorts_equal_numpy(tmp_path, monkeypatch, split, shared):
    """Full buffers sorted as two halves on two threads, with a scratch
    shared by two sorters or not: the same rows."""
    monkeypatch.setattr(runs, "_SPLIT_ROWS", split)
    scratch = runs.SortScratch() if shared else None
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 4, (5000, 2), dtype=np.uint8)  # many equal digests
    has = rng.random(len(keys)) < 0.9
    with runs.SpillDir(str(tmp_path / "x"), tmp_path) as spill:
        s = runs.RunSorter(6, 6 * 700, spill, scratch)
        other = runs.RunSorter(6, 6 * 500, spill, scratch)
        for start in range(0, 5000, 1000):
            s.add_digests(keys[start : start + 1000], has[start : start + 1000], start)
            other.add_digests(keys[start : start + 1000][::-1].copy(), has[:1000], 0)
        # (cap 1024 rows: full buffers give runs of 512 rows when split)
        assert s.spilled and max(n for _, n in s.runs) == (512 if split == 64 else 1024)
        got = np.concatenate([c.copy() for c in s.chunks(333, ahead=True)])
    rows = np.arange(len(keys)).astype(">u4").view(np.uint8).reshape(-1, 4)
    want = np.unique(np.concatenate([keys, rows], 1)[has], axis=0)
    assert got.tobytes() == want.tobytes()


def test_prefetch_passes_items_errors_and_stops():
    assert list(runs.prefetch(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise InputError("x:3: bad")

    got: list[int] = []
    with pytest.raises(InputError, match="x:3: bad"):
        got.extend(runs.prefetch(failing()))
    assert got == [1]
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = runs.prefetch(endless())
    assert next(it) == 0
    it.close()  # the thread stops and closes the generator
    assert closed.is_set()


def test_spilled_hashdeep_build_equals_python_reader_build(tmp_path):
    """A build past memory with the C reader and the threads: the same file
    as with the Python reader."""
    p = tmp_path / "in.hashdeep"
    _write(p, 21, 20_000, 0.0, False, True)
    outs = []
    for use_c in (True, False):
        _hashdeep.USE_C = use_c
        try:
            d = tmp_path / str(use_c)
            d.mkdir()
            build_dataset([p], d / "o.hlds", memory=1 << 20, skip_invalid=True)
            outs.append((d / "o.hlds").read_bytes())
        finally:
            _hashdeep.USE_C = True
    a, b = outs
    assert len(a) == len(b) and a[:24] + a[32:56] + a[64:] == b[:24] + b[32:56] + b[64:]


def test_split_merged_equals_numpy():
    """Keys and edges of merged rows (many equal digests), chunk by chunk,
    against a whole-array numpy reference."""
    rng = np.random.default_rng(9)
    w = 2
    keys = np.sort(rng.integers(0, 40, 3000)).astype(">u2").view(np.uint8)
    keys = keys.reshape(-1, w)
    rows = np.arange(3000, dtype=np.uint32)
    merged = np.concatenate([keys, rows.astype(">u4").view(np.uint8).reshape(-1, 4)], 1)
    first = np.ones(3000, bool)
    first[1:] = (keys[1:] != keys[:-1]).any(1)
    head = rows[np.maximum.accumulate(np.where(first, np.arange(3000), 0))]
    got_k, got_h, got_er, got_eh = [], [], [], []
    prev, carry = None, 0
    buf = [np.empty((700, w), np.uint8)] + [np.empty(700, np.uint32) for _ in range(3)]
    for s in range(0, 3000, 700):
        chunk = np.ascontiguousarray(merged[s : s + 700])
        k, e, carry = _core.split_merged(chunk, w, prev, carry, *buf)
        assert k + e == len(chunk)
        got_k.append(buf[0][:k].copy())
        got_h.append(buf[1][:k].copy())
        got_er.append(buf[2][:e].copy())
        got_eh.append(buf[3][:e].copy())
        prev = chunk[-1, :w].copy()
    assert np.concatenate(got_k).tobytes() == keys[first].tobytes()
    assert (np.concatenate(got_h) == rows[first]).all()
    assert (np.concatenate(got_er) == rows[~first]).all()
    assert (np.concatenate(got_eh) == head[~first]).all()
    with pytest.raises(ValueError):
        _core.split_merged(chunk, w + 1, None, 0, *buf)
    with pytest.raises(ValueError):
        _core.split_merged(chunk, w, b"abc", 0, *buf)


def test_rowmap_invert_equals_numpy():
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 1000, 5000).astype("<u4")
    for lo, hi in ((0, 300), (300, 1000), (999, 1000), (5, 5)):
        col = np.full(hi - lo, 2**32 - 1, np.uint32)
        _core.rowmap_invert(ids.tobytes(), 10, lo, hi, col)
        want = np.full(hi - lo, 2**32 - 1, np.uint32)
        sel = np.flatnonzero((ids >= lo) & (ids < hi))
        np.minimum.at(want, ids[sel] - lo, (sel + 10).astype(np.uint32))
        assert (col == want).all()
    with pytest.raises(ValueError):
        _core.rowmap_invert(b"abc", 0, 0, 1, np.zeros(1, np.uint32))
    with pytest.raises(ValueError):
        _core.rowmap_invert(b"abcd", 0, 0, 5, np.zeros(1, np.uint32))
