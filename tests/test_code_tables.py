"""Code tables (section kind 19, docs/FORMAT.md): NSRL's product, operating
system and manufacturer tables kept once per dataset, keyed by the codes
records carry, and the dataset's nsrl-version.

Oracle: Python dicts of the generated rows (random codes and values, fixed
seeds).  Also: RDS 2.x sets (directory and .zip) and RDSv3 databases (PKG,
OS, MFG as tables or views, VERSION) give their tables and version; update
carries them over; a dataset without them has no such section; crafted and
damaged sections are refused at open or by verify, never a crash.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from hashlookup import IndexFormatError, InputError, build_dataset, open_dataset
from hashlookup.builders.dataset import update_dataset
from hashlookup.store import code_tables as ct
from hashlookup.store import format as _format
from hashlookup.store.index import map_file


def random_table(rnd: random.Random, rows: int, distinct: int, ncols: int):
    columns = ["Key"] + [f"C{i}" for i in range(1, ncols)]
    table = {}
    for _ in range(rows):
        code = rnd.choice(["", "é", "0", "10", "9"]) + str(rnd.randrange(10**6))
        table[code] = {
            c: rnd.choice(["", f'v{rnd.randrange(distinct)} \u00e9,"x"'])
            for c in columns[1:]
        }
    return columns, table


def _open(section: _format.SectionData) -> ct.CodeTable:
    body = bytes(section.data)
    return ct.CodeTable(
        body,
        SimpleNamespace(params=section.params, offset=0, length=len(body)),
        "t.hld",
    )


@pytest.mark.parametrize(
    ("rows", "distinct", "ncols"), [(1, 1, 1), (200, 30, 4), (3000, 40000, 3)]
)
def test_encode_and_read_match_the_oracle(rows, distinct, ncols):
    """Widths 1, 2 and 4 of the references; every code found with its row,
    codes not in the table are not, iteration in the codes' byte order."""
    rnd = random.Random(rows)
    columns, table = random_table(rnd, rows, distinct, ncols)
    t = _open(ct.encode(columns, table))
    t.verify()
    assert t.name == "Key" and t.columns == tuple(columns)
    assert len(t) == len(table)
    assert list(t) == sorted(table, key=lambda c: c.encode())
    for code, row in table.items():
        want = {"Key": code, **{c: v for c, v in row.items() if v}}
        assert dict(t[code]) == want
    for other in ("", "x", "99999999", "é"):
        if other not in table:
            assert t.get(other) is None


def test_encode_refuses_bad_tables():
    with pytest.raises(ValueError, match="empty code"):
        ct.encode(["K"], {"": {}})
    with pytest.raises(ValueError, match="repeated"):
        ct.encode(["K", "K"], {"1": {}})


# -- from the importers ---------------------------------------------------------

PROD = [
    "ProductCode",
    "ProductName",
    "ProductVersion",
    "OpSystemCode",
    "MfgCode",
    "Language",
    "ApplicationType",
]


def rds2_set(root: Path, seed: int, version: str) -> dict[str, dict[str, dict]]:
    """An RDS 2.x directory: a few files and random tables (NSRLProd.txt
    repeats a code: the last row wins); the tables it must give."""
    rnd = random.Random(seed)
    root.mkdir()
    files = [
        '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode",'
        + ('"OpSystemCode","SpecialCode"')
    ]
    for i in range(20):
        files.append(
            f'"{rnd.randbytes(20).hex().upper()}","{rnd.randbytes(16).hex().upper()}",'
            f'"{i:08X}","f{i}",{i},{100 + i % 5},"{200 + i % 3}",""'
        )
    (root / "NSRLFile.txt").write_text("\r\n".join(files) + "\r\n", newline="")
    want: dict[str, dict[str, dict]] = {"ProductCode": {}, "OpSystemCode": {}}
    lines = [",".join(f'"{c}"' for c in PROD)]
    for code in [*range(100, 105), 102]:
        vals = [str(code), f'P "{rnd.randrange(99)}", x', "1.0", "200", "", "En", ""]
        lines.append(",".join('"' + v.replace('"', '""') + '"' for v in vals))
        want["ProductCode"][str(code)] = {
            c: v for c, v in zip(PROD, vals, strict=True) if v
        }
    (root / "NSRLProd.txt").write_text("\r\n".join(lines) + "\r\n", newline="")
    lines = ['"OpSystemCode","OpSystemName","OpSystemVersion","MfgCode"']
    for code in range(200, 203):
        lines.append(f'"{code}","OS {code}","{code % 7}","M{code % 2}"')
        want["OpSystemCode"][str(code)] = {
            "OpSystemCode": str(code),
            "OpSystemName": f"OS {code}",
            "OpSystemVersion": str(code % 7),
            "MfgCode": f"M{code % 2}",
        }
    (root / "NSRLOS.txt").write_text("\r\n".join(lines) + "\r\n", newline="")
    (root / "NSRLMfg.txt").write_text('"MfgCode","MfgName"\r\n"M0","Zero"\r\n')
    want["MfgCode"] = {"M0": {"MfgCode": "M0", "MfgName": "Zero"}}
    (root / "version.txt").write_text(f"{version}\r\nmore text\r\n")
    return want


def tables_of(ds) -> dict[str, dict[str, dict]]:
    return {n: {c: dict(t[c]) for c in t} for n, t in ds.code_tables.items()}


@pytest.mark.parametrize("as_zip", [False, True])
def test_rds2_set_gives_its_tables_and_version(tmp_path, as_zip):
    want = rds2_set(tmp_path / "rds", 5, "RDS 2.98")
    src = tmp_path / "rds"
    if as_zip:
        src = tmp_path / "rds.zip"
        with zipfile.ZipFile(src, "w") as z:
            for f in (tmp_path / "rds").iterdir():
                z.write(f, f"RDS_2.98/{f.name}")
    out = tmp_path / "n.hld"
    build_dataset({"nsrl": src}, out)
    with open_dataset(out) as ds:
        ds.current().verify()
        assert tables_of(ds) == want
        assert ds.nsrl_version == "RDS 2.98"
        info = ds.info()
        assert info["nsrl_version"] == "RDS 2.98"
        assert info["code_tables"] == {k: len(v) for k, v in want.items()}
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-m", "hashlookup", "info", str(out), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert shown["nsrl_version"] == "RDS 2.98"
    assert shown["code_tables"] == {k: len(v) for k, v in want.items()}


def test_update_carries_tables_and_adds_versions(tmp_path):
    first = rds2_set(tmp_path / "a", 1, "RDS 2.1")
    second = rds2_set(tmp_path / "b", 2, "RDS 2.2")
    out = tmp_path / "n.hld"
    build_dataset({"a": tmp_path / "a"}, out)
    update_dataset(out, add={"b": tmp_path / "b"})
    with open_dataset(out) as ds:
        ds.current().verify()
        assert ds.nsrl_version == "RDS 2.1, RDS 2.2"
        got = tables_of(ds)
        for name in first:
            # the dataset being updated comes first: its rows win
            assert got[name] == {**second[name], **first[name]}


def test_no_tables_no_section(tmp_path):
    src = tmp_path / "l.txt"
    src.write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    out = tmp_path / "plain.hld"
    build_dataset([src], out)
    mm, header, _ = map_file(str(out))
    try:
        assert not _format.find_sections(header, _format.KIND_CODE_TABLE)
    finally:
        mm.close()
    with open_dataset(out) as ds:
        assert ds.code_tables == {} and ds.nsrl_version is None
        assert "nsrl-version" not in ds.info()["metadata"]["dataset"]
    shown = subprocess.run(
        [sys.executable, "-m", "hashlookup", "info", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "code_tables" not in json.loads(shown)
    assert "nsrl_version" not in json.loads(shown)


def test_companion_without_its_key_column_is_refused(tmp_path):
    rds2_set(tmp_path / "rds", 3, "v")
    (tmp_path / "rds" / "NSRLOS.txt").write_text('"Code","Name"\r\n"1","x"\r\n')
    with pytest.raises(InputError, match=r"NSRLOS\.txt:1: no OpSystemCode column"):
        build_dataset([tmp_path / "rds"], tmp_path / "x.hld")


@pytest.mark.parametrize("view", [False, True])
def test_rds3_tables_and_version(tmp_path, view):
    db = tmp_path / "rds.db"
    con = sqlite3.connect(db)
    base = ("B_" if view else "") + "{}"
    con.executescript(
        f"""
        CREATE TABLE FILE (sha256 TEXT, sha1 TEXT, md5 TEXT, crc32 TEXT,
            file_name TEXT, file_size INTEGER, package_id INTEGER);
        CREATE TABLE {base.format("PKG")} (package_id INTEGER, name TEXT,
            version TEXT, operating_system_id INTEGER, manufacturer_id INTEGER,
            language TEXT, application_type TEXT);
        CREATE TABLE {base.format("OS")} (operating_system_id INTEGER, name TEXT,
            version TEXT, manufacturer_id INTEGER);
        CREATE TABLE {base.format("MFG")} (manufacturer_id INTEGER, name TEXT);
        CREATE TABLE VERSION (version TEXT, build_set TEXT, build_date TEXT,
            release_date TEXT, description TEXT);
        INSERT INTO VERSION VALUES ('2099.01.1', 'Modern', '', '', 'synthetic');
        INSERT INTO {base.format("PKG")} VALUES
            (7, 'Suite', '1.0', 3, 5, 'English', NULL),
            (8, 'Other', '', 3, 5, 'French', 'Game');
        INSERT INTO {base.format("OS")} VALUES (3, 'SynOS', '1', 5);
        INSERT INTO {base.format("MFG")} VALUES (5, 'Maker');
        INSERT INTO FILE VALUES ('{"A" * 64}', '{"B" * 40}', '{"C" * 32}',
            '0000ABCD', 'f.exe', 12, 7);
        """
    )
    if view:
        for t in ("PKG", "OS", "MFG"):
            con.execute(f"CREATE VIEW {t} AS SELECT * FROM B_{t}")
    con.commit()
    con.close()
    out = tmp_path / "r.hld"
    build_dataset([db], out)
    with open_dataset(out) as ds:
        ds.current().verify()
        assert ds.nsrl_version == "2099.01.1 Modern"
        assert tables_of(ds) == {
            "ProductCode": {
                "7": dict(zip(PROD[:6], ["7", "Suite", "1.0", "3", "5", "English"])),
                "8": {
                    "ProductCode": "8",
                    "ProductName": "Other",
                    "OpSystemCode": "3",
                    "MfgCode": "5",
                    "Language": "French",
                    "ApplicationType": "Game",
                },
            },
            "OpSystemCode": {
                "3": {
                    "OpSystemCode": "3",
                    "OpSystemName": "SynOS",
                    "OpSystemVersion": "1",
                    "MfgCode": "5",
                }
            },
            "MfgCode": {"5": {"MfgCode": "5", "MfgName": "Maker"}},
        }
        m = ds.lookup("c" * 32)
        assert m is not None and m.attributes["ProductCode"] == "7"


# -- crafted and damaged sections -------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("codes_good")
    rds2_set(d / "rds", 9, "RDS 2.9")
    path = d / "good.hld"
    build_dataset([d / "rds"], path)
    return path


def _parts(path: Path) -> list[_format.SectionData]:
    mm, header, _ = map_file(str(path))
    try:
        return [
            _format.SectionData(
                s.kind,
                bytes(mm[s.offset : s.offset + s.length]),
                s.flags,
                s.group,
                s.params,
            )
            for s in header.sections
        ]
    finally:
        mm.close()


def _write(parts, out: Path) -> None:
    with out.open("wb") as f:
        _format.write_file(f, parts, time.time_ns())


def _tables(parts):
    return [p for p in parts if p.kind == _format.KIND_CODE_TABLE]


def _crafted(kind: str):
    def change(parts):
        t = _tables(parts)[0]
        s, r, c = t.params
        if kind == "columns":
            t.params = (s, r, 0)
        elif kind == "rows":
            t.params = (s, r + 1, c)
        elif kind == "strings":
            t.params = (10**9, r, c)
        elif kind == "length":
            t.data = bytes(t.data)[:-1]
        elif kind == "name not utf-8":
            t.data = bytes(t.data).replace(b"MfgName", b"Mfg\xffame", 1)
        elif kind == "two of a name":
            parts.append(t)
        return parts

    return change


@pytest.mark.parametrize(
    ("kind", "word"),
    [
        ("columns", "columns"),
        ("rows", "length"),
        ("strings", "offsets"),
        ("length", "length"),
        ("name not utf-8", "UTF-8"),
        ("two of a name", "two code tables"),
    ],
)
def test_crafted_sections_refused_at_open(good, tmp_path, kind, word):
    parts = _parts(good)
    bad = tmp_path / "bad.hld"
    _write(_crafted(kind)(parts), bad)
    with pytest.raises(IndexFormatError) as e:
        open_dataset(bad).close()
    msg = str(e.value)
    assert str(bad) in msg and word in msg, msg


def test_damaged_bytes_never_crash(good, tmp_path):
    """Every byte of each table's text and references flipped in turn
    (checksums recomputed: only the table's own checks can tell): open,
    reading every row and verify either work or raise IndexFormatError."""
    parts = _parts(good)
    caught = 0
    for k, t in enumerate(_tables(parts)):
        body = bytes(t.data)
        nstr = t.params[0]
        for pos in range(8 * (nstr + 1), len(body)):
            changed = bytearray(body)
            changed[pos] ^= 0xA5
            t.data = bytes(changed)
            bad = tmp_path / f"bad{k}.hld"
            _write(parts, bad)
            try:
                with open_dataset(bad) as ds:
                    for table in ds.code_tables.values():
                        for code in list(table):
                            table.get(code)
                    ds.verify()
            except IndexFormatError as e:
                assert "code table" in str(e)
                caught += 1
        t.data = body
    assert caught > 0
