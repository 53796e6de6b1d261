"""Tests of the command-line interface (hashlookup.cli) and the streaming matcher
(hashlookup.match.keys).  The CLI runs in-process through ``main(argv)``; a few tests
run ``python -m hashlookup`` to check the entry point and real stdin."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hashlookup
from hashlookup.cli import main
from hashlookup.match.keys import MatchStats, match_chunks
from utils import match_stream

SEED = 20240917
N_MEMBERS = 3000
SUBCOMMANDS = [
    "build",
    "info",
    "verify",
    "check",
    "match",
    "update",
    "export-bloom",
    "demo",
]


# ---------------------------------------------------------------- fixtures


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _subprocess(
    args: list[str], input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hashlookup", *args],
        input=input,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hashlookup: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


class Data:
    """Seed-fixed random md5 keys: members (in the index) and non-members."""

    def __init__(self, root: Path) -> None:
        rng = np.random.default_rng(SEED)
        keys = rng.integers(0, 256, size=(2 * N_MEMBERS, 16), dtype=np.uint8)
        hexes = [bytes(k).hex() for k in keys]
        assert len(set(hexes)) == len(hexes)
        self.members = hexes[:N_MEMBERS]
        self.others = hexes[N_MEMBERS:]
        self.member_set = set(self.members)
        self.root = root
        self.known = root / "known.txt"
        self.known.write_text("".join(h + "\n" for h in self.members))
        self.index = root / "known.hlx"
        hashlookup.build_index(str(self.known), str(self.index))
        self.rng = np.random.default_rng(SEED + 1)

    def digest_of(self, line: str) -> str | None:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return None
        return stripped.split()[0].lstrip("\\").lower()

    def inventory(
        self, n: int, member_fraction: float = 0.1, crlf: bool = False
    ) -> list[str]:
        """Input lines (without line endings) of mixed shapes."""
        rng = self.rng
        lines: list[str] = []
        for i in range(n):
            pool = self.members if rng.random() < member_fraction else self.others
            h = pool[int(rng.integers(len(pool)))]
            if rng.random() < 0.3:
                h = h.upper()
            shape = int(rng.integers(6))
            if shape == 0:
                lines.append(h)
            elif shape == 1:
                lines.append(f'{h}  dir/fi,le "{i}".bin')
            elif shape == 2:
                lines.append(f"{h} *bin/file{i}")
            elif shape == 3:
                lines.append(f"  {h}\t")
            elif shape == 4:
                lines.append("" if rng.random() < 0.5 else f"# comment {i}")
            else:
                lines.append(f"\\{h}  odd\\nname{i}")
        return lines

    def expected(self, lines: list[str], invert: bool = False) -> list[str]:
        out = []
        for line in lines:
            d = self.digest_of(line)
            if d is None:
                continue
            if (d in self.member_set) != invert:
                out.append(line)
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    return Data(tmp_path_factory.mktemp("cli"))


def _write_lines(
    path: Path, lines: list[str], crlf: bool = False, final_newline: bool = True
) -> Path:
    eol = "\r\n" if crlf else "\n"
    text = eol.join(lines) + (eol if final_newline and lines else "")
    path.write_bytes(text.encode())
    return path


# ---------------------------------------------------------------- help / usage


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_help(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    code, out, err = _run(argv, capsys)
    assert code == 0
    assert out.startswith("usage: hashlookup")
    assert err == ""


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"hashlookup {hashlookup.__version__}" or out.startswith(
        "hashlookup "
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nosuchcommand"],
        ["check"],
        ["check", "x.hlx"],
        ["build", "in.txt"],
        ["match", "x.hlx", "--format", "xml"],
        ["match", "x.hlx", "--threads", "-1"],
        ["match", "x.hlx", "--chunk-size", "0"],
        ["build", "a", "-o", "b", "--algorithm", "crc32"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    assert "usage: hashlookup" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- build


def test_build_file(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dup = _write_lines(tmp_path / "dup.txt", data.members[:10] + data.members[:5])
    out_path = tmp_path / "a.hlx"
    code, out, err = _run(
        ["build", "--index", str(data.known), str(dup), "-o", str(out_path)], capsys
    )
    assert code == 0, err
    assert out == ""
    (line,) = err.splitlines()
    assert f"{N_MEMBERS + 15} keys read" in line
    assert f"{N_MEMBERS} unique" in line
    assert f"{15} duplicates" in line
    assert "0 invalid skipped" in line
    assert f"{out_path.stat().st_size} bytes" in line
    with hashlookup.open_index(str(out_path)) as index:
        assert len(index) == N_MEMBERS
        assert index.algorithm == "md5"
        assert data.members[0] in index


def test_build_quiet_and_algorithm(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "q.hlx"
    code, out, err = _run(
        [
            "build",
            "--index",
            str(data.known),
            "-o",
            str(out_path),
            "--quiet",
            "--algorithm",
            "md5",
            "--bloom-bits-per-key",
            "10",
        ],
        capsys,
    )
    assert (code, out, err) == (0, "", "")
    assert out_path.exists()
    code, _, err = _run(
        [
            "build",
            "--index",
            str(data.known),
            "-o",
            str(tmp_path / "s.hlx"),
            "--algorithm",
            "sha256",
        ],
        capsys,
    )
    assert code == 2
    _assert_one_error_line(err, "known.txt:1")


def test_build_invalid_line(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write_lines(
        tmp_path / "bad.txt", [data.members[0], data.members[1], "xyz-not-hex"]
    )
    out_path = tmp_path / "bad.hlx"
    code, out, err = _run(["build", "--index", str(src), "-o", str(out_path)], capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "bad.txt:3", "xyz-not-hex")
    assert not out_path.exists()
    code, out, err = _run(
        ["build", "--index", str(src), "-o", str(out_path), "--skip-invalid"], capsys
    )
    assert code == 0, err
    assert "1 invalid skipped" in err
    with hashlookup.open_index(str(out_path)) as index:
        assert len(index) == 2


def test_build_errors(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        ["build", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "m.hlx")], capsys
    )
    assert code == 2
    _assert_one_error_line(err, "missing.txt")
    code, _, err = _run(
        ["build", "--index", "-", str(data.known), "-o", str(tmp_path / "m.hlx")],
        capsys,
    )
    assert code == 2
    _assert_one_error_line(err, "standard input")


def test_build_stdin_subprocess(data: Data, tmp_path: Path) -> None:
    out_path = tmp_path / "stdin.hlx"
    payload = "".join(h + "\n" for h in data.members[:100]).encode()
    proc = _subprocess(["build", "--index", "-", "-o", str(out_path)], input=payload)
    assert proc.returncode == 0, proc.stderr
    assert b"100 keys read" in proc.stderr
    with hashlookup.open_index(str(out_path)) as index:
        assert len(index) == 100


# ---------------------------------------------------------------- info / verify


def test_info(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["info", str(data.index)], capsys)
    assert code == 0, err
    assert "md5" in out
    assert str(N_MEMBERS) in out
    code, out, err = _run(["info", str(data.index), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert isinstance(info, dict)
    assert str(N_MEMBERS) in json.dumps(info)


def test_verify(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["verify", str(data.index)], capsys)
    assert code == 0, err
    assert out.startswith("OK")
    assert err == ""


def _corrupt_copies(data: Data, tmp_path: Path) -> dict[str, Path]:
    raw = data.index.read_bytes()
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x55
    paths = {
        "flipped": tmp_path / "flipped.hlx",
        "truncated": tmp_path / "truncated.hlx",
        "foreign": tmp_path / "foreign.hlx",
        "empty": tmp_path / "empty.hlx",
    }
    paths["flipped"].write_bytes(bytes(flipped))
    paths["truncated"].write_bytes(raw[: len(raw) // 3])
    paths["foreign"].write_bytes(b"this is not an index\n" * 100)
    paths["empty"].write_bytes(b"")
    return paths


def test_corrupt_index(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _corrupt_copies(data, tmp_path)
    for kind, path in paths.items():
        code, out, err = _run(["verify", str(path)], capsys)
        assert code == 2, (kind, out, err)
        _assert_one_error_line(err)
        assert "OK" not in out
    inv = _write_lines(tmp_path / "inv.txt", data.members[:3])
    for kind in ("truncated", "foreign", "empty"):
        for argv in (
            ["info", str(paths[kind])],
            ["check", str(paths[kind]), data.members[0]],
            ["match", str(paths[kind]), str(inv)],
        ):
            code, out, err = _run(argv, capsys)
            assert code == 2, (kind, argv, out, err)
            assert out == ""
            _assert_one_error_line(err)
            assert data.members[0] not in err


@pytest.mark.parametrize("command", ["info", "verify", "check", "match"])
def test_missing_index(
    command: str, data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.hlx")
    argv = {
        "info": ["info", missing],
        "verify": ["verify", missing],
        "check": ["check", missing, data.members[0]],
        "match": ["match", missing, str(data.known)],
    }[command]
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    _assert_one_error_line(err, "nope.hlx")


def test_directory_as_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "dir.hlx"
    folder.mkdir()
    for argv in (["info", str(folder)], ["verify", str(folder)]):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        _assert_one_error_line(err, "dir.hlx")


# ---------------------------------------------------------------- check


def test_check_exit_codes(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    m, o = data.members[7], data.others[7]
    code, out, err = _run(["check", str(data.index), m], capsys)
    assert (code, out, err) == (1, f"{m}\tFOUND\n", "")
    code, out, err = _run(["check", str(data.index), o], capsys)
    assert (code, out, err) == (0, f"{o}\tnot found\n", "")
    code, out, _ = _run(["check", str(data.index), o, m.upper(), o], capsys)
    assert code == 1
    assert out == f"{o}\tnot found\n{m}\tFOUND\n{o}\tnot found\n"


def test_check_formats(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    m, o = data.members[1], data.others[1]
    code, out, _ = _run(["check", str(data.index), m, o, "--format", "jsonl"], capsys)
    assert code == 1
    assert [json.loads(x) for x in out.splitlines()] == [
        {"digest": m, "found": True},
        {"digest": o, "found": False},
    ]
    code, out, _ = _run(["check", str(data.index), "--format", "csv", o], capsys)
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [["digest", "found"], [o, "false"]]


def test_check_invalid_digest(data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    m = data.members[2]
    for bad in (m[:-1], m + "0", m[:-1] + "g", data.members[2][:40] + "0" * 24):
        code, out, err = _run(["check", str(data.index), m, bad], capsys)
        assert code == 2 and out == ""
        _assert_one_error_line(err, "digest argument 2")
        assert bad not in err and m not in err  # queried digests are never echoed


# ---------------------------------------------------------------- match


def test_match_oracle_text(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = data.inventory(4000)
    inv = _write_lines(tmp_path / "inv.txt", lines)
    expected = data.expected(lines)
    assert 100 < len(expected) < 1000
    code, out, err = _run(["match", str(data.index), str(inv)], capsys)
    assert code == 1 and err == ""
    assert out.splitlines() == expected
    # --count, --invert, --invert --count
    code, out, _ = _run(["match", str(data.index), str(inv), "--count"], capsys)
    assert (code, out) == (1, f"{len(expected)}\n")
    misses = data.expected(lines, invert=True)
    code, out, _ = _run(["match", str(data.index), str(inv), "--invert"], capsys)
    assert code == 1
    assert out.splitlines() == misses
    code, out, _ = _run(
        ["match", str(data.index), str(inv), "-v", "-c", "--threads", "2"], capsys
    )
    assert (code, out) == (1, f"{len(misses)}\n")


def test_match_formats(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = data.inventory(500, member_fraction=0.3)
    inv = _write_lines(tmp_path / "inv.txt", lines)
    expected = [
        (n, data.digest_of(line), line)
        for n, line in enumerate(lines, 1)
        if data.digest_of(line) in data.member_set
    ]
    assert expected
    code, out, err = _run(
        ["match", str(data.index), str(inv), "--format", "jsonl"], capsys
    )
    assert code == 1, err
    records = [json.loads(x) for x in out.splitlines()]
    assert records == [{"line": n, "digest": d, "text": t} for n, d, t in expected]
    code, out, err = _run(
        ["match", str(data.index), str(inv), "--format", "csv"], capsys
    )
    assert code == 1, err
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["line", "digest", "text"]
    assert rows[1:] == [[str(n), d, t] for n, d, t in expected]


def test_match_no_hits(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = data.others[:200]
    inv = _write_lines(tmp_path / "none.txt", lines)
    for fmt, want in (("text", ""), ("jsonl", ""), ("csv", "line,digest,text\n")):
        code, out, err = _run(
            ["match", str(data.index), str(inv), "--format", fmt], capsys
        )
        assert (code, out, err) == (0, want, "")
    code, out, _ = _run(["match", str(data.index), str(inv), "--count"], capsys)
    assert (code, out) == (0, "0\n")
    # --invert prints every line, but nothing was found: exit 0
    code, out, _ = _run(["match", str(data.index), str(inv), "--invert"], capsys)
    assert (code, out.splitlines()) == (0, lines)
    code, out, _ = _run(
        ["match", str(data.index), str(inv), "--invert", "--count"], capsys
    )
    assert (code, out) == (0, "200\n")
    empty = _write_lines(tmp_path / "empty.txt", [])
    code, out, _ = _run(["match", str(data.index), str(empty)], capsys)
    assert (code, out) == (0, "")


def test_match_invalid_line(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        data.members[0],
        data.others[0],
        "",
        "# c",
        "not-a-digest  name",
        data.members[1],
    ]
    inv = _write_lines(tmp_path / "badinv.txt", lines)
    code, out, err = _run(["match", str(data.index), str(inv)], capsys)
    assert code == 2
    _assert_one_error_line(err, "badinv.txt:5", "not-a-digest")
    code, out, err = _run(
        ["match", str(data.index), str(inv), "--skip-invalid"], capsys
    )
    assert code == 1, err
    assert out.splitlines() == [data.members[0], data.members[1]]
    # a digest of another width (sha1 against an md5 index) is invalid too
    inv2 = _write_lines(tmp_path / "sha1.txt", [data.members[0], "ab" * 20])
    code, out, err = _run(
        ["match", str(data.index), str(inv2), "--chunk-size", "5"], capsys
    )
    assert code == 2
    _assert_one_error_line(err, "sha1.txt:2")


def test_match_missing_input(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        ["match", str(data.index), str(tmp_path / "nofile.txt")], capsys
    )
    assert code == 2 and out == ""
    _assert_one_error_line(err, "nofile.txt")


def test_match_crlf_and_no_final_newline(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = data.inventory(300, member_fraction=0.3)
    lines.append(data.members[5] + "  last.bin")  # a hit on the unterminated last line
    expected = data.expected(lines)
    for crlf in (False, True):
        for final in (False, True):
            inv = _write_lines(
                tmp_path / f"c{crlf}{final}.txt", lines, crlf=crlf, final_newline=final
            )
            for chunk_size in (None, 1, 37, 4096):
                argv = ["match", str(data.index), str(inv), "--format", "jsonl"]
                if chunk_size is not None:
                    argv += ["--chunk-size", str(chunk_size)]
                code, out, err = _run(argv, capsys)
                assert code == 1, err
                records = [json.loads(x) for x in out.splitlines()]
                assert [r["text"] for r in records] == expected
                assert records[-1]["line"] == len(lines)
                assert all("\r" not in r["text"] for r in records)


@pytest.mark.parametrize("chunk_size", [1, 33, 64, 65, 100, 1000, 1 << 20])
def test_match_stream_chunk_boundaries(data: Data, chunk_size: int) -> None:
    lines = data.inventory(1500, member_fraction=0.2)
    raw = ("\n".join(lines) + "\n").encode()
    with hashlookup.open_index(str(data.index)) as index:
        stats = MatchStats()
        got = list(
            match_stream(index, io.BytesIO(raw), chunk_size=chunk_size, stats=stats)
        )
        assert [m.text for m in got] == data.expected(lines)
        want_numbers = [
            n
            for n, line in enumerate(lines, 1)
            if data.digest_of(line) in data.member_set
        ]
        assert [m.line for m in got] == want_numbers
        assert all(m.digest == data.digest_of(m.text) for m in got)
        assert stats.hits == len(got)
        assert stats.keys == sum(
            1 for line in lines if data.digest_of(line) is not None
        )
        assert stats.lines == len(lines)
        assert stats.bytes == len(raw)
        misses = list(
            match_stream(index, io.BytesIO(raw), chunk_size=chunk_size, invert=True)
        )
        assert [m.text for m in misses] == data.expected(lines, invert=True)


def test_chunk_lines_vectorised(data: Data) -> None:
    """ChunkMatch.lines (one numpy pass for many lines) agrees with line_bytes."""
    lines = data.inventory(6000, member_fraction=0.5)
    for eol in ("\n", "\r\n"):
        raw = eol.join(lines).encode()  # no final newline
        with hashlookup.open_index(str(data.index)) as index:
            chunks = list(match_chunks(index, io.BytesIO(raw)))
        for invert in (False, True):
            got: list[bytes] = []
            for chunk in chunks:
                sel = chunk.select(invert)
                want = [chunk.line_bytes(i) for i in sel.tolist()]
                assert chunk.lines(sel) == want
                got += want
            assert len(got) > 2048
            assert [x.decode() for x in got] == data.expected(lines, invert)


def test_match_chunks_count_only(data: Data) -> None:
    lines = data.inventory(800)
    raw = ("\n".join(lines)).encode()
    with hashlookup.open_index(str(data.index)) as index:
        stats = MatchStats()
        total = sum(
            int(c.found.sum())
            for c in match_chunks(
                index, io.BytesIO(raw), chunk_size=100, want_lines=False, stats=stats
            )
        )
    assert total == stats.hits == len(data.expected(lines))


def test_match_non_utf8_names(
    data: Data, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    raw = (
        data.members[3].encode()
        + b"  caf\xe9 \xff.bin\r\n"
        + data.others[3].encode()
        + b"  x\n"
    )
    inv = tmp_path / "latin1.txt"
    inv.write_bytes(raw)
    assert main(["match", str(data.index), str(inv)]) == 1
    assert (
        capsysbinary.readouterr().out
        == data.members[3].encode() + b"  caf\xe9 \xff.bin\n"
    )
    assert main(["match", str(data.index), str(inv), "--format", "jsonl"]) == 1
    record = json.loads(capsysbinary.readouterr().out)
    assert record["text"].encode("utf-8", "surrogateescape") == raw.split(b"\r\n")[0]


def test_match_stdin_inprocess(
    data: Data, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [data.others[10], data.members[10] + "  f", data.others[11]]
    stdin = io.TextIOWrapper(io.BytesIO("\n".join(lines).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, err = _run(["match", str(data.index)], capsys)
    assert (code, out, err) == (1, lines[1] + "\n", "")


# ---------------------------------------------------------------- entry point


def test_entry_point_subprocess(data: Data) -> None:
    lines = data.inventory(2000)
    payload = ("\r\n".join(lines)).encode()
    proc = _subprocess(["match", str(data.index), "-"], input=payload)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == b""
    assert proc.stdout.decode().splitlines() == data.expected(lines)

    proc = _subprocess(
        ["match", str(data.index), "--count"],
        input=b"\n".join(h.encode() for h in data.others[:50]),
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"0\n", b"")

    proc = _subprocess(["match", str(data.index), "-"], input=b"zz\n")
    assert proc.returncode == 2
    assert proc.stdout == b""
    _assert_one_error_line(proc.stderr.decode(), "<stdin>:1")

    proc = _subprocess(["check", str(data.index), data.members[0], data.others[0]])
    assert proc.returncode == 1, proc.stderr
    assert (
        proc.stdout.decode()
        == f"{data.members[0]}\tFOUND\n{data.others[0]}\tnot found\n"
    )

    proc = _subprocess(["verify", str(data.root / "missing.hlx")])
    assert proc.returncode == 2 and proc.stdout == b""
    _assert_one_error_line(proc.stderr.decode(), "missing.hlx")


def test_broken_pipe(data: Data, tmp_path: Path) -> None:
    """The reader closing the pipe early (`| head`) stops the command quietly."""
    lines = data.inventory(20000, member_fraction=0.5)
    inv = _write_lines(tmp_path / "big.txt", lines)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hashlookup", "match", str(data.index), str(inv), "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    code = proc.wait(timeout=60)
    assert first.decode().rstrip("\n") == data.expected(lines, invert=True)[0]
    assert err == b""
    assert code == 1  # hits were already known when the pipe broke


# ---------------------------------------------------------------- demo


def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "demo"
    code, out, err = _run(
        ["demo", "--dir", str(workdir), "--keys", "20000", "--inventory", "20000"],
        capsys,
    )
    assert code == 0, err
    assert err == ""
    for word in (
        "police",
        "hotline",
        "partner",
        "allow-list",
        "build",
        "records/s",
        "file size",
        "labels",
        "source:police",
        "category:",
        "suppressed   police 1, hotline 1",
        "not in the dataset",
        "open",
        "match",
        "lines/s",
        "hits",
        "succeeded",
    ):
        assert word in out, word
    assert (workdir / "known.hlds").exists()
    with hashlookup.open_dataset(workdir / "known.hlds") as ds:
        assert ds.algorithms == ("md5", "sha1", "sha256")
        assert {"source:police", "source:hotline", "source:partner"} <= set(ds.labels())
    inventory = workdir / "inventory.md5"
    # the demo's files work with the CLI: its hit count agrees with `match --count`
    code, count_out, _ = _run(
        ["match", str(workdir / "known.hlds"), str(inventory), "--count"], capsys
    )
    hits = int(count_out)
    assert f"hits         {hits:,}" in out
    assert code == (1 if hits else 0)
    if hits:
        assert "first hits:" in out
