"""NSRL sets in NIST's layouts, synthetic (never real NSRL data): RDS 2.x
as a directory, a .zip (set at the top or in a folder, NSRLFile.txt.zip
inside) and NSRLFile.txt alone; RDSv3 SQLite in the "minimal" schema (FILE
table, DISTINCT_HASH view) and the "curated" one (FILE, PKG, OS, MFG as
views over base tables).  Oracle: the generated rows; also end to end
through `hashlookup build` and `check`.  Refusals: zips and directories
that hold no set, several sets, binary and UTF-16 inputs."""

from __future__ import annotations

import io
import random
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hashlookup import InputError, open_dataset
from hashlookup.importers import ImportReport, detect_format, iter_records
from importer_data import records_of

FILE_HEADER = (
    '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode",'
    '"OpSystemCode","SpecialCode"'
)
COMPANIONS = {
    "NSRLOS.txt": '"OpSystemCode","OpSystemName","OpSystemVersion","MfgCode"\r\n'
    '"358","Windows 2000","5.0","MSFT"\r\n',
    "NSRLProd.txt": '"ProductCode","ProductName","ProductVersion","OpSystemCode",'
    '"MfgCode","Language","ApplicationType"\r\n'
    '190,"Synthetic Suite","1.0","358","SYN","English","Utility"\r\n',
    "NSRLMfg.txt": '"MfgCode","MfgName"\r\n"SYN","Synthetic Software"\r\n',
    "version.txt": "RDS Version 2.99 - synthetic\r\n",
}


def rows(n: int, seed: int) -> list[tuple[bytes, bytes, bytes, int]]:
    """n synthetic (sha1, md5, sha256, size) rows."""
    rnd = random.Random(seed)
    return [
        (
            rnd.randbytes(20),
            rnd.randbytes(16),
            rnd.randbytes(32),
            rnd.randrange(1 << 40),
        )
        for _ in range(n)
    ]


def nsrl_file(data: list[tuple[bytes, bytes, bytes, int]]) -> bytes:
    """NSRLFile.txt as NIST writes it: quoted upper-case hex, CRLF."""
    lines = [FILE_HEADER]
    for i, (sha1, md5, _, size) in enumerate(data):
        lines.append(
            f'"{sha1.hex().upper()}","{md5.hex().upper()}","{i:08X}",'
            f'"file {i}, v(1).dll",{size},190,"358",""'
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def want(data, sha256: bool = False) -> list[tuple]:
    return [(md5, sha1, s2 if sha256 else None, size) for sha1, md5, s2, size in data]


def read(path, **kw) -> tuple[list[tuple], ImportReport]:
    report = ImportReport()
    recs = records_of(iter_records(path, report=report, **kw))
    return [(r.md5, r.sha1, r.sha256, r.size) for r in recs], report


def write_set(root: Path, data, folder: str = "", zipped_file: bool = False) -> Path:
    d = root / folder if folder else root
    d.mkdir(parents=True, exist_ok=True)
    for name, text in COMPANIONS.items():
        (d / name).write_text(text, newline="")
    if zipped_file:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("NSRLFile.txt", nsrl_file(data))
        (d / "NSRLFile.txt.zip").write_bytes(buf.getvalue())
    else:
        (d / "NSRLFile.txt").write_bytes(nsrl_file(data))
    return root


def zip_dir(src: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(src).as_posix())
    return dest


@pytest.mark.parametrize("folder", ["", "RDS_299_modern_minimal"])
@pytest.mark.parametrize("zipped_file", [False, True], ids=["txt", "txt.zip"])
@pytest.mark.parametrize("as_zip", [False, True], ids=["dir", "zip"])
def test_rds2_set(tmp_path, folder, zipped_file, as_zip):
    data = rows(300, 1)
    path = write_set(tmp_path / "set", data, folder, zipped_file)
    if as_zip:
        path = zip_dir(path, tmp_path / "rds.zip")
    assert detect_format(path) == "nsrl-rds2"
    got, report = read(path, batch_size=64)
    assert got == want(data)
    assert report.format == "nsrl-rds2"
    assert report.version == "RDS Version 2.99 - synthetic"
    assert report.columns == {"sha1": "SHA-1", "md5": "MD5", "size": "FileSize"}


def test_rds2_errors_name_the_member(tmp_path):
    data = rows(5, 2)
    d = write_set(tmp_path / "set", data, "RDS")
    f = d / "RDS" / "NSRLFile.txt"
    f.write_bytes(f.read_bytes().replace(data[3][1].hex().upper().encode(), b"XYZ"))
    z = zip_dir(d, tmp_path / "rds.zip")
    with pytest.raises(InputError, match=rf"^{z}/RDS/NSRLFile.txt:5: column MD5: "):
        read(z)
    with pytest.raises(InputError, match=rf"^{d}/RDS/NSRLFile.txt:5: column MD5: "):
        read(d)
    got, report = read(z, skip_invalid=True)
    assert len(got) == 4 and report.invalid == 1


def test_rds2_build_and_check(tmp_path):
    """`hashlookup build` takes the set as one input; check finds it."""
    data = rows(50, 3)
    z = zip_dir(write_set(tmp_path / "set", data), tmp_path / "rds.zip")
    out = tmp_path / "nsrl.hlds"
    cli = [sys.executable, "-m", "hashlookup"]
    subprocess.run([*cli, "build", "-q", "-o", out, f"nsrl={z}"], check=True)
    with open_dataset(out) as ds:
        for sha1, md5, _, size in data[:10]:
            m = ds.lookup(md5.hex())
            assert m is not None and m.sha1 == sha1.hex() and m.size == size
            assert "source:nsrl" in m.labels


def test_rds2_refusals(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("list.txt", "0" * 32 + "\n")
    with pytest.raises(
        InputError,
        match=rf"^{other}: a zip archive, but not an NSRL RDS 2.x set \(no "
        r"NSRLFile.txt among its 1 members: list.txt\); extract .*; accepted: ",
    ):
        detect_format(other)
    empty_dir = tmp_path / "dir"
    empty_dir.mkdir()
    with pytest.raises(InputError, match=rf"^{empty_dir}: a directory without "):
        detect_format(empty_dir)
    two = tmp_path / "two"
    write_set(two, rows(1, 4), "a")
    write_set(two, rows(1, 5), "b")
    with pytest.raises(InputError, match=r"holds 2 NSRLFile.txt files"):
        detect_format(two)
    damaged = tmp_path / "bad.zip"
    damaged.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(InputError, match=rf"^{damaged}: a damaged zip archive"):
        detect_format(damaged)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x1f\x8b\x08\x00rest", "gzip-compressed data (decompress it first)"),
        (b"%PDF-1.7\n", "a PDF document"),
        (b"PK\x05\x06" + b"\x00" * 18, "a zip archive, but not an NSRL RDS 2.x"),
        (b"\x00\x01\x02\x03binary\n", "binary data (control bytes such as NUL"),
        ("MD5 (a) = 00\n".encode("utf-16-le"), "UTF-16 text without a byte-order"),
    ],
    ids=["gzip", "pdf", "empty-zip", "binary", "utf16-nobom"],
)
def test_refused_content(tmp_path, data, message):
    p = tmp_path / "input"
    p.write_bytes(data)
    with pytest.raises(InputError) as info:
        detect_format(p)
    text = str(info.value)
    assert text.startswith(f"{p}: {message}")
    assert "accepted: " in text and "NSRL RDS 2.x sets" in text


def test_utf16_tagged_refused(tmp_path):
    p = tmp_path / "l.txt"
    p.write_bytes(b"\xff\xfe" + f"MD5 (a) = {'0' * 32}\n".encode("utf-16-le"))
    with pytest.raises(InputError, match="convert this bsd file to UTF-8"):
        detect_format(p)


# ---------------------------------------------------------------------------
# RDSv3 SQLite


def rds3_minimal(path: Path, data) -> None:
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE FILE (sha256 VARCHAR NOT NULL, sha1 VARCHAR NOT NULL,
            md5 VARCHAR NOT NULL, crc32 VARCHAR NOT NULL,
            file_name VARCHAR NOT NULL, file_size INTEGER NOT NULL,
            package_id INTEGER NOT NULL);
        CREATE VIEW DISTINCT_HASH AS SELECT DISTINCT sha256, sha1, md5 FROM FILE;
        CREATE TABLE VERSION (version VARCHAR, build_set VARCHAR,
            build_date TIMESTAMP, release_date TIMESTAMP, description VARCHAR);
        INSERT INTO VERSION VALUES ('2099.01.1', 'Modern', '', '', 'synthetic');
        """
    )
    con.executemany(
        "INSERT INTO FILE VALUES (?,?,?,?,?,?,?)",
        [
            (
                s2.hex().upper(),
                s1.hex().upper(),
                m.hex().upper(),
                "00000000",
                f"f{i}",
                size,
                190,
            )
            for i, (s1, m, s2, size) in enumerate(data)
        ],
    )
    con.commit()
    con.close()


def rds3_curated(path: Path, data) -> None:
    """FILE, PKG, OS and MFG as views over base tables."""
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE MANUFACTURER (manufacturer_id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE OPERATING_SYSTEM (operating_system_id INTEGER PRIMARY KEY,
            name TEXT, version TEXT, manufacturer_id INTEGER);
        CREATE TABLE PACKAGE (package_id INTEGER PRIMARY KEY, name TEXT,
            version TEXT, operating_system_id INTEGER, manufacturer_id INTEGER,
            language TEXT, application_type TEXT);
        CREATE TABLE OBJECT (object_id INTEGER PRIMARY KEY, sha256 TEXT,
            sha1 TEXT, md5 TEXT, crc32 TEXT, file_name TEXT, file_size INTEGER);
        CREATE TABLE PACKAGE_OBJECT (package_id INTEGER, object_id INTEGER);
        CREATE VIEW MFG AS SELECT manufacturer_id, name FROM MANUFACTURER;
        CREATE VIEW OS AS SELECT operating_system_id, name, version,
            manufacturer_id FROM OPERATING_SYSTEM;
        CREATE VIEW PKG AS SELECT package_id, name, version, operating_system_id,
            manufacturer_id, language, application_type FROM PACKAGE;
        CREATE VIEW FILE AS SELECT o.sha256, o.sha1, o.md5, o.crc32, o.file_name,
            o.file_size, po.package_id FROM PACKAGE_OBJECT po
            JOIN OBJECT o ON o.object_id = po.object_id;
        INSERT INTO MANUFACTURER VALUES (1, 'Synthetic Software');
        INSERT INTO OPERATING_SYSTEM VALUES (1, 'SynOS', '1', 1);
        INSERT INTO PACKAGE VALUES (190, 'Suite', '1.0', 1, 1, 'English', 'Utility');
        """
    )
    con.executemany(
        "INSERT INTO OBJECT VALUES (?,?,?,?,?,?,?)",
        [
            (
                i + 1,
                s2.hex().upper(),
                s1.hex().upper(),
                m.hex().upper(),
                "0",
                f"f{i}",
                size,
            )
            for i, (s1, m, s2, size) in enumerate(data)
        ],
    )
    con.executemany(
        "INSERT INTO PACKAGE_OBJECT VALUES (190, ?)",
        [(i + 1,) for i in range(len(data))],
    )
    con.commit()
    con.close()


@pytest.mark.parametrize(
    "schema", [rds3_minimal, rds3_curated], ids=["minimal", "curated"]
)
def test_rds3(tmp_path, schema):
    data = rows(250, 6)
    p = tmp_path / "RDS_2099.01.1_modern.db"
    schema(p, data)
    assert detect_format(p) == "sqlite"
    got, report = read(p, batch_size=100)
    assert sorted(got) == sorted(want(data, sha256=True))
    assert report.columns == {
        "md5": "md5",
        "sha1": "sha1",
        "sha256": "sha256",
        "size": "file_size",
    }


@pytest.mark.parametrize("version", ["1.5", "2.x"])
def test_nsrl_file_alone(tmp_path, version):
    """NSRLFile.txt on its own (the NSRL 1.5 and 2.x headers md5deep knows)
    is a CSV; forced as nsrl-rds2 it reads the same."""
    data = rows(20, 8)
    p = tmp_path / "NSRLFile.txt"
    if version == "2.x":
        p.write_bytes(nsrl_file(data))
    else:
        lines = [
            '"SHA-1","FileName","FileSize","ProductCode","OpSystemCode","MD4",'
            '"MD5","CRC32","SpecialCode"'
        ]
        for i, (sha1, md5, _, size) in enumerate(data):
            lines.append(
                f'"{sha1.hex().upper()}","f{i}.dll",{size},190,"358",'
                f'"{"0" * 32}","{md5.hex().upper()}","00000000",""'
            )
        p.write_text("\r\n".join(lines) + "\r\n")
    assert detect_format(p) == "csv"
    assert read(p)[0] == want(data)
    if version == "2.x":
        assert read(p, input_format="nsrl-rds2")[0] == want(data)


@pytest.mark.parametrize("damage", ["deflate", "crc", "method"])
def test_rds2_damaged_zip(tmp_path, damage):
    """Damage inside the archive (bad deflate data, a bad CRC, a compression
    method zipfile lacks) is an InputError naming the archive."""
    data = rows(2000, 9)
    src = write_set(tmp_path / "set", data)
    z = tmp_path / "rds.zip"
    method = zipfile.ZIP_STORED if damage == "crc" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(z, "w", method) as zf:
        zf.write(src / "version.txt", "version.txt")
        zf.write(src / "NSRLFile.txt", "NSRLFile.txt")
    raw = bytearray(z.read_bytes())
    if damage == "method":
        for magic, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
            at = raw.rfind(magic)  # NSRLFile.txt's headers come last
            raw[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    else:
        mid = raw.find(b"PK\x03\x04", 10) + len(raw) // 3  # inside its data
        raw[mid : mid + 8] = b"\x00\xff" * 4
    z.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=rf"^{z}: damaged or unsupported zip archive"):
        read(z)
