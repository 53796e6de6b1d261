"""The one-pass text path of `hashlookup match` (csrc/hl_linematch.c).

Text inputs printed as text (hits, ``--invert``, ``--count``) are parsed,
looked up and selected in C, chunk by chunk.  Every other output goes through
the general path (keys and answers back in Python).  Here both are held to a
Python set oracle over random inputs with every line form the parser accepts
(md5sum names, ``*`` and ``\\`` forms, leading blanks, CRLF, upper case,
comments, blank lines, bad lines with ``--skip-invalid``), random chunk sizes
(lines cut at every place) and thread counts, and their error messages are
held to each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hashlookup
from hashlookup import _core
from hashlookup.cli import main

SEED = 0x4C4D  # "LM"
N_KNOWN = 400


class Data:
    def __init__(self, root: Path) -> None:
        rng = np.random.default_rng(SEED)
        md5 = [
            bytes(k).hex()
            for k in rng.integers(0, 256, (2 * N_KNOWN, 16), dtype=np.uint8)
        ]
        sha = [
            bytes(k).hex()
            for k in rng.integers(0, 256, (2 * N_KNOWN, 32), dtype=np.uint8)
        ]
        self.known = {16: md5[:N_KNOWN], 32: sha[:N_KNOWN]}
        self.others = {16: md5[N_KNOWN:], 32: sha[N_KNOWN:]}
        self.known_set = set(md5[:N_KNOWN]) | set(sha[:N_KNOWN])
        (root / "md5.txt").write_text("".join(h + "\n" for h in md5[:N_KNOWN]))
        (root / "sha.txt").write_text("".join(h + "\n" for h in sha[:N_KNOWN]))
        self.dataset = root / "known.hlx"
        hashlookup.build_dataset(
            {"a": str(root / "md5.txt"), "b": str(root / "sha.txt")}, str(self.dataset)
        )
        self.index = root / "known.hli"
        hashlookup.build_index(str(root / "md5.txt"), str(self.index))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    return Data(tmp_path_factory.mktemp("fastmatch"))


def _line(draw: st.DrawFn, data: Data, width: int, bad: bool) -> str:
    kind = draw(
        st.sampled_from(
            [
                "hit",
                "miss",
                "hit",
                "miss",
                "name",
                "star",
                "escaped",
                "blanks",
                "crlf",
                "upper",
                "comment",
                "blank",
                "spaces",
            ]
            + (["bad"] if bad else [])
        )
    )
    pool = (
        data.known[width]
        if kind in ("hit", "name", "star", "escaped", "blanks", "crlf", "upper")
        and draw(st.booleans())
        else data.others[width]
    )
    h = pool[draw(st.integers(0, len(pool) - 1))]
    if kind == "name":
        return f"{h}  dir/file name {draw(st.integers(0, 99))}"
    if kind == "star":
        return f"{h} *file.bin"
    if kind == "escaped":
        return f"\\{h}  dir\\nname"
    if kind == "blanks":
        return f" \t{h}\t "
    if kind == "crlf":
        return f"{h}\r"
    if kind == "upper":
        return h.upper()
    if kind == "comment":
        return f"# {h}"
    if kind == "blank":
        return ""
    if kind == "spaces":
        return "  \r"
    if kind == "bad":
        return draw(
            st.sampled_from(
                [h[:-1], h + "0", "x" + h[1:], "not a digest", h[:10] + " " + h[10:]]
            )
        )
    return h


@st.composite
def inputs(draw: st.DrawFn, data: Data, bad: bool) -> tuple[int, list[str], bool]:
    width = draw(st.sampled_from([16, 32]))
    n = draw(st.integers(0, 60))
    lines = [_line(draw, data, width, bad) for _ in range(n)]
    return width, lines, draw(st.booleans())


def _oracle(
    known: set[str], lines: list[str], width: int, invert: bool
) -> tuple[bytes, int]:
    """(selected lines without a CR before the line end, each + '\\n'; hits)."""
    out = []
    hits = 0
    for line in lines:
        token = line.strip(" \t\r\v\f")
        if not token or token.startswith("#"):
            continue
        digest = token.split()[0].lstrip("\\").lower()
        if len(digest) != 2 * width or any(c not in "0123456789abcdef" for c in digest):
            continue  # a bad line (skipped)
        hit = digest in known
        hits += hit
        if hit != invert:
            out.append(line.removesuffix("\r") + "\n")
    return "".join(out).encode(), hits


def _run(
    argv: list[object], capsysbinary: pytest.CaptureFixture[bytes]
) -> tuple[int, bytes, str]:
    code = main([str(a) for a in argv])
    cap = capsysbinary.readouterr()
    return code, cap.out, cap.err.decode()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_fast_path_matches_set_oracle(
    data: Data,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    draw: st.DataObject,
) -> None:
    width, lines, final_newline = draw.draw(inputs(data, bad=True))
    invert = draw.draw(st.booleans())
    chunk = draw.draw(st.sampled_from([1, 7, 33, 65, 100, 257, 4096]))
    jobs = draw.draw(st.sampled_from([1, 2, 3]))
    target = data.index if width == 16 and draw.draw(st.booleans()) else data.dataset
    path = tmp_path / "in.txt"
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    path.write_bytes(text.encode())
    want, hits = _oracle(data.known_set, lines, width, invert)
    base = ["match", target, path, "--skip-invalid", "--chunk-size", chunk, "-j", jobs]
    code, out, err = _run([*base, *(["-v"] if invert else [])], capsysbinary)
    assert out == want, err
    selected = want.count(b"\n")
    assert code == (1 if hits else 0), err  # found anything, even with -v
    code, out, err = _run([*base, "-c", *(["-v"] if invert else [])], capsysbinary)
    assert out.decode().strip() == str(selected), err
    # the general path (JSON lines) agrees on which lines were selected
    code, out, err = _run(
        [*base, "--format", "jsonl", *(["-v"] if invert else [])], capsysbinary
    )
    texts = [json.loads(x)["text"] + "\n" for x in out.decode().splitlines()]
    assert "".join(texts).encode() == want, err


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_fast_path_errors_equal_general_path(
    data: Data,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    draw: st.DataObject,
) -> None:
    _width, lines, final_newline = draw.draw(inputs(data, bad=True))
    chunk = draw.draw(st.sampled_from([1, 40, 200, 4096]))
    path = tmp_path / "in.txt"
    path.write_bytes(("\n".join(lines) + ("\n" if final_newline else "")).encode())
    base = ["match", data.dataset, path, "--chunk-size", chunk, "-j", 2]
    fast = _run(base, capsysbinary)
    general = _run([*base, "--format", "jsonl"], capsysbinary)
    assert fast[0] == general[0]
    if fast[0] == 2:
        assert fast[2] == general[2]
        assert fast[2].startswith(f"hashlookup: error: {path}:")


def test_fast_path_line_numbers_of_errors(
    data: Data, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The first bad line is named by its number, across chunk and block
    boundaries (blocks of 1,024 keys inside a chunk)."""
    good = data.others[16]
    lines = [good[i % len(good)] for i in range(3000)]
    lines[2500] = "z" * 32
    path = tmp_path / "bad.txt"
    path.write_text("# header\n" + "\n".join(lines) + "\n")
    for chunk in (1000, 1 << 20):
        code, out, err = _run(
            ["match", data.dataset, path, "--chunk-size", chunk], capsysbinary
        )
        assert code == 2 and out == b""
        assert err.startswith(f"hashlookup: error: {path}:2502: "), err


def test_fast_path_long_input_and_several_files(
    data: Data, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Many blocks per chunk, several inputs (file-name prefixes, input order)."""
    rng = np.random.default_rng(SEED + 1)
    files = []
    want = []
    for f in range(3):
        picks = rng.integers(0, 2 * N_KNOWN, 5000)
        lines = [(data.known[16] + data.others[16])[i] for i in picks]
        path = tmp_path / f"part{f}.txt"
        path.write_text("".join(x + "\n" for x in lines))
        files.append(path)
        want += [f"{path}:{x}\n" for x in lines if x in data.known_set]
    code, out, err = _run(
        ["match", data.dataset, *files, "-j", 3, "--chunk-size", 20000], capsysbinary
    )
    assert code == 1 and out.decode() == "".join(want), err


def test_match_lines_core_api(data: Data) -> None:
    """KeyTable.match_lines directly: counts, output, out=None, bad sizes."""
    ds = hashlookup.open_dataset(str(data.dataset))
    try:
        table = ds.table("md5")
        hit, miss = data.known[16][0], data.others[16][0]
        buf = f"{hit}\n\n#c\n{miss}  name\r\n{hit.upper()}\r".encode()
        out = bytearray(len(buf) + 1)
        st, keys, lines, invalid, found, selected, n, *_ = table.match_lines(
            buf, 1 << 20, False, False, out
        )
        assert (st, keys, lines, invalid, found, selected) == (0, 3, 5, 0, 2, 2)
        assert bytes(out[:n]) == f"{hit}\n{hit.upper()}\n".encode()
        st, *counts = table.match_lines(buf, 1 << 20, False, True, None)
        assert st == 0 and counts[4] == 1 and counts[5] == 0
        with pytest.raises(ValueError, match="len"):
            table.match_lines(buf, 1 << 20, False, False, bytearray(len(buf)))
        bad = f"{hit}\nxyz\n{hit}\n".encode()
        st, keys, lines, invalid, found, selected, n, eline, eoff, elen = (
            table.match_lines(bad, 1 << 20, False, False, bytearray(len(bad) + 1))
        )
        assert st == _core.ELENGTH and (eline, eoff, elen) == (1, 33, 3)
        st, keys, lines, invalid, *_ = table.match_lines(
            bad, 1 << 20, True, False, bytearray(len(bad) + 1)
        )
        assert (st, keys, lines, invalid) == (0, 2, 3, 1)
    finally:
        ds.close()


def test_text_match_does_not_import_numpy(data: Data, tmp_path: Path) -> None:
    """numpy costs ~90 ms of start-up, a third of a 10 M-line match: the text
    path must not import it (hashlookup._lazy)."""
    path = tmp_path / "in.txt"
    path.write_text(data.known[16][0] + "\n" + data.others[16][0] + "\n")
    code = (
        "import sys\n"
        "from hashlookup.cli import main\n"
        f"rc = main(['match', {str(data.dataset)!r}, {str(path)!r}])\n"
        "assert rc == 1, rc\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'numpy')\n"
        "print(len(loaded))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [data.known[16][0], "0"], proc.stdout
