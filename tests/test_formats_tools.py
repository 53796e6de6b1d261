"""The line formats md5deep/hashdeep -m read, as the real tools write them:
coreutils --tag, openssl dgst, shasum --tag, md5deep/sha1deep/sha256deep
(-z, -b, -l, -s, -k), hashdeep (with its '## ' lines); HashKeeper and iLook
.hsh in their exact header layouts.

Each layout is tested twice: from the tool run now on a small synthetic
tree (skipped, with the reason, when the tool is not installed) and from
the committed fixtures in tests/data/formats/ (made by the same commands
over the same tree: `python test_formats_tools.py --regenerate`), so the
format is tested on every machine.  The oracle is hashlib over the tree.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashlookup import InputError
from hashlookup.importers import (
    ImportReport,
    _deepsize,
    _fast,
    _tagged,
    detect_format,
    iter_records,
)
from importer_data import records_of

DATA = Path(__file__).parent / "data" / "formats"

#: the synthetic tree every tool hashes (names with blanks, commas,
#: parentheses and a backslash, which coreutils --tag escapes)
TREE = {
    "a.txt": b"alpha\n",
    "empty": b"",
    "sub/b c, d.txt": b"bravo charlie\n",
    "sub/paren (1).txt": b"x" * 1000,
    "sub/back\\slash.txt": b"delta\r\n",
}

#: fixture file -> (command run in the tree, format, algorithms, sizes known)
TOOLS: dict[str, tuple[str, str, tuple[str, ...], bool]] = {
    "md5sum.txt": ("md5sum FILES", "text", ("md5",), False),
    "sha1sum_b.txt": ("sha1sum -b FILES", "text", ("sha1",), False),
    "sha256sum.txt": ("sha256sum FILES", "text", ("sha256",), False),
    "md5sum_tag.txt": ("md5sum --tag FILES", "bsd", ("md5",), False),
    "sha1sum_tag.txt": ("sha1sum --tag FILES", "bsd", ("sha1",), False),
    "sha256sum_tag.txt": ("sha256sum --tag FILES", "bsd", ("sha256",), False),
    "shasum_tag.txt": ("shasum -a 1 --tag FILES", "bsd", ("sha1",), False),
    "shasum256_tag.txt": ("shasum -a 256 --tag FILES", "bsd", ("sha256",), False),
    "openssl_md5.txt": ("openssl dgst -md5 FILES", "bsd", ("md5",), False),
    "openssl_sha1.txt": ("openssl dgst -sha1 FILES", "bsd", ("sha1",), False),
    "openssl_sha256.txt": ("openssl dgst -sha256 FILES", "bsd", ("sha256",), False),
    "md5deep_z.txt": ("md5deep -z -r .", "md5deep-size", ("md5",), True),
    "sha1deep_z.txt": ("sha1deep -z -r .", "md5deep-size", ("sha1",), True),
    "sha256deep_z.txt": ("sha256deep -z -r .", "md5deep-size", ("sha256",), True),
    "md5deep_zb.txt": ("md5deep -z -b -r .", "md5deep-size", ("md5",), True),
    "md5deep_zl.txt": ("md5deep -z -l -s -r .", "md5deep-size", ("md5",), True),
    "md5deep_s.txt": ("md5deep -s -r .", "text", ("md5",), False),
    "md5deep_b.txt": ("md5deep -b -r .", "text", ("md5",), False),
    "md5deep_k.txt": ("md5deep -k -r .", "text", ("md5",), False),
    "sha256deep_l.txt": ("sha256deep -l -r .", "text", ("sha256",), False),
    "hashdeep.txt": ("hashdeep -r .", "hashdeep", ("md5", "sha256"), True),
    "hashdeep_all.txt": (
        "hashdeep -c md5,sha1,sha256 -l -r .",
        "hashdeep",
        ("md5", "sha1", "sha256"),
        True,
    ),
}


#: the Debian package of each tool not in hashdeep's
PACKAGES = {
    "md5sum": "coreutils",
    "sha1sum": "coreutils",
    "sha256sum": "coreutils",
    "shasum": "perl",
    "openssl": "openssl",
}


def make_tree(root: Path) -> list[str]:
    """Write TREE under root; its file names relative to root, sorted."""
    for name, data in TREE.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return sorted(TREE)


def expected(algos: tuple[str, ...], sized: bool) -> list[tuple]:
    """The records a list of TREE in these algorithms holds, sorted."""
    out = []
    for data in TREE.values():
        d = {a: hashlib.new(a, data).digest() if a in algos else None for a in algos}
        out.append(
            (
                d.get("md5"),
                d.get("sha1"),
                d.get("sha256"),
                len(data) if sized else -1,
            )
        )
    return sorted(out, key=repr)


def read(path: Path, **kw) -> tuple[list[tuple], ImportReport]:
    report = ImportReport()
    recs = records_of(iter_records(path, report=report, **kw))
    assert report.records == len(recs)
    got = sorted(((r.md5, r.sha1, r.sha256, r.size) for r in recs), key=repr)
    assert all(not r.labels for r in recs)
    return got, report


def run_tool(command: str, tree: Path) -> bytes:
    argv = command.split()
    files = make_tree(tree)
    if argv[-1] == "FILES":
        argv = argv[:-1] + files
    return subprocess.run(argv, cwd=tree, capture_output=True, check=True).stdout


@pytest.mark.parametrize("fixture", sorted(TOOLS))
def test_tool_output(tmp_path, fixture):
    """The tool's output, produced now, reads as the tree's records."""
    command, fmt, algos, sized = TOOLS[fixture]
    tool = command.split()[0]
    if shutil.which(tool) is None:
        package = PACKAGES.get(tool, "hashdeep")
        pytest.skip(f"{tool} is not installed (Debian: apt-get install {package})")
    out = tmp_path / "list"
    out.write_bytes(run_tool(command, tmp_path / "tree"))
    assert detect_format(out) == fmt
    got, report = read(out)
    assert got == expected(algos, sized)
    assert report.format == fmt


@pytest.mark.parametrize("fixture", sorted(TOOLS))
def test_fixture(fixture):
    """The committed output of the same command reads the same."""
    _, fmt, algos, sized = TOOLS[fixture]
    path = DATA / fixture
    assert detect_format(path) == fmt
    got, _ = read(path)
    assert got == expected(algos, sized)


def test_fixtures_are_tool_output():
    """The fixtures hold what the tools write (their tell-tale details)."""
    text = {name: (DATA / name).read_text() for name in TOOLS}
    assert "\\MD5 (sub/back\\\\slash.txt) = " in text["md5sum_tag.txt"]
    assert "MD5(a.txt)= " in text["openssl_md5.txt"]
    assert "SHA2-256(a.txt)= " in text["openssl_sha256.txt"]
    assert "SHA1 (a.txt) = " in text["shasum_tag.txt"]
    assert text["hashdeep.txt"].startswith("%%%% HASHDEEP-1.0\n%%%% size,md5,sha256")
    assert "\n## Invoked from: " in text["hashdeep.txt"]
    assert "      1000  " in text["md5deep_z.txt"]  # right-aligned sizes


# ---------------------------------------------------------------------------
# layouts no Debian tool writes: generated here, byte for byte as documented


def expected_md5(sized: bool) -> list[tuple]:
    return expected(("md5",), sized)


def test_bsd_md5_and_old_openssl(tmp_path):
    """BSD/macOS md5 ('MD5 (name) = hex'), FreeBSD sha256, old openssl
    ('MD5(stdin)= ' and '(stdin)= '), CRLF, any case, mixed algorithms."""
    lines = []
    for name, data in TREE.items():
        lines.append(f"MD5 ({name}) = {hashlib.md5(data).hexdigest()}")
        lines.append(f"SHA256 ({name}) = {hashlib.sha256(data).hexdigest().upper()}")
    data = b"alpha\n"
    lines += [
        f"MD5(stdin)= {hashlib.md5(data).hexdigest()}",
        f"(stdin)= {hashlib.sha1(data).hexdigest()}",
        f"sha-1 (x (2)) = {hashlib.sha1(data).hexdigest()}",
        "",
        "# a comment",
    ]
    p = tmp_path / "list.md5"
    p.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    assert detect_format(p) == "bsd"
    got, report = read(p)
    assert len(got) == 2 * len(TREE) + 3
    assert report.digests == {"md5": 6, "sha1": 2, "sha256": 5}
    want = {hashlib.md5(d).digest() for d in TREE.values()}
    assert {r[0] for r in got if r[0]} == want


def test_hashkeeper(tmp_path):
    """HashKeeper .hsh: the header md5deep and Sleuth Kit match exactly."""
    header = (
        '"file_id","hashset_id","file_name","directory","hash","file_size",'
        '"date_modified","time_modified","time_zone","comments",'
        '"date_accessed","time_accessed"'
    )
    rows = [
        f'{i},5,"{name.rsplit("/", 1)[-1]}","C:\\DATA","'
        f'{hashlib.md5(data).hexdigest().upper()}",{len(data)},'
        f'7/11/95 0:00:00,12/30/99 9:50:00,"PST",,,'
        for i, (name, data) in enumerate(TREE.items())
    ]
    p = tmp_path / "set.hsh"
    p.write_text(header + "\r\n" + "\r\n".join(rows) + "\r\n")
    assert detect_format(p) == "hsh"
    got, report = read(p)
    assert got == expected_md5(True)
    assert report.version == "hashkeeper"
    assert report.columns == {"md5": "hash", "size": "file_size"}


@pytest.mark.parametrize("version", ["1", "3", "4"])
def test_ilook(tmp_path, version):
    """iLook v1, v3 and v4 .hsh: the headers as md5deep defines them."""
    headers = {
        "1": "V1Hash,HashType,SetDescription,FileName,FilePath,FileSize",
        "3": "V3Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,HashSHA384,"
        "HashSHA512",
        "4": "V4Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,HashSHA384,"
        "HashSHA512,CreateTime,ModTime,LastAccessTime",
    }
    rows = []
    for name, data in TREE.items():
        md5 = hashlib.md5(data).hexdigest().upper()
        sha1 = hashlib.sha1(data).hexdigest().upper()
        sha256 = hashlib.sha256(data).hexdigest().upper()
        base = name.replace("/", "\\").replace(",", "")
        if version == "1":
            rows.append(f"{md5},MD5,Known,{base},C:\\,{len(data)}")
        else:
            row = f"{md5},{sha1},{base},C:\\,{len(data)},{sha256},,"
            rows.append(row + (",,," if version == "4" else ""))
    p = tmp_path / "ilook.hsh"
    p.write_text(headers[version] + "\n" + "\n".join(rows) + "\n")
    assert detect_format(p) == "hsh"
    got, report = read(p)
    algos = ("md5",) if version == "1" else ("md5", "sha1", "sha256")
    assert got == expected(algos, True)
    assert report.version == f"ilook{version}"


# ---------------------------------------------------------------------------
# bad lines: named by file and line, counted with skip_invalid


def test_bsd_bad_lines(tmp_path):
    good = f"MD5 (a) = {hashlib.md5(b'').hexdigest()}"
    p = tmp_path / "l.txt"
    p.write_text(
        "\n".join(
            [
                good,
                "SHA512 (a) = " + "ab" * 64,
                "MD5 (b) = xyz",
                "MD5 (c) = " + "ab" * 20,
                "something else",
                good,
            ]
        )
        + "\n"
    )
    with pytest.raises(InputError, match=rf"^{p}:2: SHA512 digests are not stored"):
        read(p)
    got, report = read(p, skip_invalid=True)
    assert len(got) == 2 and report.invalid == 4
    assert report.examples[1] == (
        f"{p}:3: md5 digest: expected 32 hex characters (md5), got 'xyz'"
    )
    assert report.examples[2].startswith(f"{p}:4: md5 digest: expected 32 hex")
    assert "(an sha1 digest?)" in report.examples[2]
    assert report.examples[3] == (
        f"{p}:5: not a tagged digest line like 'MD5 (name) = <hex>': 'something else'"
    )


def test_md5deep_size_bad_lines(tmp_path):
    md5 = hashlib.md5(b"").hexdigest()
    p = tmp_path / "z.txt"
    p.write_text(
        f"         0  {md5}  a\n"
        f"        -1  {md5}  b\n"
        f"        12  {md5[:-1]}  c\n"
        f"        12\n"
        f"         0  {md5}  d\n"
    )
    assert detect_format(p) == "md5deep-size"
    with pytest.raises(
        InputError, match=rf"^{p}:2: size: expected a non-negative integer"
    ):
        read(p)
    got, report = read(p, skip_invalid=True)
    assert len(got) == 2 and report.invalid == 3
    assert report.examples[1].startswith(f"{p}:3: expected a digest of 32, 40 or 64")
    assert report.examples[2].startswith(f"{p}:4: expected size, digest and file")


def test_long_line(tmp_path):
    md5 = hashlib.md5(b"").hexdigest()
    p = tmp_path / "l.txt"
    p.write_bytes(
        f"MD5 (a) = {md5}\n".encode()
        + b"MD5 ("
        + b"x" * (2 << 20)
        + b") = 00\n"
        + f"MD5 (b) = {md5}\n".encode()
    )
    with pytest.raises(InputError, match=rf"^{p}:2: line longer than"):
        read(p)
    got, report = read(p, skip_invalid=True)
    assert len(got) == 2 and report.invalid == 1


def test_small_batches(tmp_path):
    """Batches of one record give the same records, line numbers right."""
    p = DATA / "md5deep_z.txt"
    assert read(p, batch_size=1)[0] == read(p)[0]
    q = tmp_path / "z.txt"
    q.write_bytes(p.read_bytes() + b"        12  nothex  x\n")
    n = p.read_bytes().count(b"\n") + 1
    with pytest.raises(InputError, match=rf"^{q}:{n}: "):
        read(q, batch_size=1)


def regenerate() -> None:
    """Rewrite tests/data/formats/ from the tools (run by hand)."""
    import tempfile

    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (command, *_) in TOOLS.items():
            out = run_tool(command, Path(tmp) / "tree")
            # Absolute paths of the temporary tree would differ per run.
            out = out.replace(os.fsencode(tmp), b"/tmp/hashlookup-tree")
            (DATA / name).write_bytes(out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate"]:
        regenerate()


# ---------------------------------------------------------------------------
# EnCase .hash: binary, the layout md5deep -m reads (no Debian tool writes it)


def encase(md5s: list[bytes], count: int | None = None) -> bytes:
    header = b"HASH\r\n\xff\x00" + struct.pack(
        "<III", 1, 0, len(md5s) if count is None else count
    )
    header += b"\x00" * (0x480 - len(header))
    return header + b"".join(m + b"\x00\x00" for m in md5s)


def test_encase(tmp_path):
    md5s = [hashlib.md5(d).digest() for d in TREE.values()]
    p = tmp_path / "set.hash"
    p.write_bytes(encase(md5s))
    assert detect_format(p) == "encase"
    assert read(p)[0] == expected_md5(False)
    assert read(p, batch_size=2)[0] == expected_md5(False)
    p.write_bytes(encase(md5s)[:-5])
    with pytest.raises(
        InputError, match=rf"^{p}: EnCase hash set of .*\(truncated\?\)"
    ):
        read(p)
    p.write_bytes(encase(md5s, count=9))
    with pytest.raises(InputError, match=rf"^{p}: EnCase hash set header says 9 "):
        read(p)
    p.write_bytes(encase([]))
    assert read(p)[0] == []


# ---------------------------------------------------------------------------
# the vectorised path gives the records of the line-by-line one


def random_lines(seed: int, fmt: str, n: int = 400) -> bytes:
    """Mostly regular lines with irregular ones mixed in (escapes, blanks,
    other layouts, bad digests, comments), CRLF on some."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        data = rnd.randbytes(rnd.randrange(50))
        algo = rnd.choice(["md5", "md5", "md5", "sha1", "sha256"])
        digest = hashlib.new(algo, data).hexdigest()
        if rnd.random() < 0.1:
            digest = digest.upper()
        if fmt == "bsd":
            name = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}[algo]
            line = rnd.choice(
                [f"{name} (f {i}) = {digest}"] * 8
                + [f"{name}(f{i})= {digest}", f"\\{name} (a\\\\b) = {digest}"]
            )
        else:
            line = f"{len(data):10d}  {digest}  ./f {i}"
            if rnd.random() < 0.05:
                line = f"{len(data)} {digest} x"
        r = rnd.random()
        if r < 0.02:
            line = "# comment"
        elif r < 0.04:
            line = line[:-3]  # a bad digest (bsd) or a shorter name
        elif r < 0.05:
            line += " "
        out.append(line + ("\r\n" if rnd.random() < 0.1 else "\n"))
    return "".join(out).encode()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fmt", ["bsd", "md5deep-size"])
@pytest.mark.parametrize("batch_size", [7, 100_000])
def test_fast_equals_slow(tmp_path, monkeypatch, seed, fmt, batch_size):
    p = tmp_path / "l.txt"
    p.write_bytes(random_lines(seed, fmt))
    kw = dict(input_format=fmt, skip_invalid=True, batch_size=batch_size)
    fast, fast_report = read(p, **kw)
    module = _tagged if fmt == "bsd" else _deepsize
    monkeypatch.setattr(module, "fast_lines", lambda *a: None)
    slow, slow_report = read(p, **kw)
    assert fast == slow
    assert fast_report.invalid == slow_report.invalid
    assert fast_report.examples == slow_report.examples


@pytest.mark.parametrize(
    "fixture", ["openssl_md5.txt", "md5deep_z.txt", "sha1deep_z.txt"]
)
def test_fast_path_taken(fixture):
    """Regular tool output is read by the vectorised path (not the fallback)."""
    fmt = TOOLS[fixture][1]
    module = _tagged if fmt == "bsd" else _deepsize
    t = _fast.Text((DATA / fixture).read_bytes())
    batch = module.fast_lines(t, t.starts, t.ends)
    assert batch is not None and len(batch) == len(TREE)


# ---------------------------------------------------------------------------
# any input: records or InputError, never another exception


_PIECES = [
    b"MD5 (",
    b"SHA1(",
    b"SHA2-256 (",
    b") = ",
    b")= ",
    b"(stdin)= ",
    b"         12  ",
    b"d41d8cd98f00b204e9800998ecf8427e",
    b"da39a3ee5e6b4b0d3255bfef95601890afd80709",
    b"  ",
    b"\n",
    b"\r\n",
    b"#",
    b"\\",
    b",",
    b'"',
    b"V4Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256\n",
    b"HASH\r\n\xff\x00",
    b"PK\x03\x04",
    b"\x00",
    b"\xff\xfe",
]


@settings(max_examples=150)
@given(
    pieces=st.lists(st.sampled_from(_PIECES) | st.binary(max_size=8), max_size=40),
    fmt=st.sampled_from([None, "bsd", "md5deep-size", "hsh", "encase", "nsrl-rds2"]),
    skip=st.booleans(),
)
def test_any_input(tmp_path_factory, pieces, fmt, skip):
    p = tmp_path_factory.mktemp("any") / "input"
    p.write_bytes(b"".join(pieces))
    report = ImportReport()
    try:
        total = 0
        for batch in iter_records(
            p, input_format=fmt, skip_invalid=skip, batch_size=3, report=report
        ):
            assert 0 < len(batch) <= 3
            assert (batch.has_md5 | batch.has_sha1 | batch.has_sha256).all()
            total += len(batch)
        assert report.records == total
    except InputError as e:
        assert str(e).startswith(str(p))


def test_build_reads_every_fixture(tmp_path):
    """`hashlookup build` takes every layout above in one run, detected;
    each file of the tree is then found with every list as a source."""
    sources = {Path(name).stem: DATA / name for name in TOOLS}
    hk = tmp_path / "hk.hsh"
    hk.write_text(
        '"file_id","hashset_id","file_name","directory","hash","file_size",'
        '"date_modified","time_modified","time_zone","comments",'
        '"date_accessed","time_accessed"\n'
        + "".join(
            f'{i},1,"f","d","{hashlib.md5(d).hexdigest()}",{len(d)},,,,,,\n'
            for i, d in enumerate(TREE.values())
        )
    )
    enc = tmp_path / "set.hash"
    enc.write_bytes(encase([hashlib.md5(d).digest() for d in TREE.values()]))
    sources.update(hk=hk, enc=enc)
    out = tmp_path / "all.hlds"
    args = [f"{k}={v}" for k, v in sources.items()]
    subprocess.run(
        [sys.executable, "-m", "hashlookup", "build", "-q", "-o", str(out), *args],
        check=True,
    )
    from hashlookup import open_dataset

    with open_dataset(out) as ds:
        for data in TREE.values():
            m = ds.lookup(hashlib.sha1(data).hexdigest())
            assert m is not None and m.md5 == hashlib.md5(data).hexdigest()
            assert m.size == len(data)
            assert {f"source:{k}" for k in sources} == set(m.labels)
