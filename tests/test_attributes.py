"""Record attributes: named strings a record carries (docs/DATASETS.md).

Oracle: the generated CSV rows (a Python dict of what each digest's record
must carry: the first row in input order with a value wins for a merged
record).  Also: datasets without attributes have no attribute section and
answer as before; update carries attributes over; an NSRL RDS 2.x set keeps
its natural set; `hashlookup build --attribute`; crafted and damaged
attribute sections are refused with messages naming what is wrong.
Synthetic data with fixed seeds only.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hashlookup import IndexFormatError, Match, build_dataset, open_dataset
from hashlookup.builders.dataset import update_dataset
from hashlookup.store import format as _format
from hashlookup.store.index import map_file

KINDS = (_format.KIND_ATTR_STRINGS, _format.KIND_ATTR_REFS)


def write_csv(path: Path, n: int, seed: int, distinct: int) -> dict[str, dict]:
    """n rows of md5, sha1, FileName, Note (some empty, some repeated
    digests) and the attributes each md5's record must carry."""
    rnd = random.Random(seed)
    md5s = [rnd.randbytes(16).hex() for _ in range(max(1, n * 4 // 5))]
    expect: dict[str, dict] = {}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["md5", "sha1", "FileName", "Note"])
        for _ in range(n):
            md5 = rnd.choice(md5s)  # repeats: one record, several rows
            name = "" if rnd.random() < 0.2 else f"f\u00e9 {rnd.randrange(distinct)}, x"
            note = "" if rnd.random() < 0.5 else rnd.choice(["a", 'b"q', "c\nd"])
            w.writerow([md5, "", name, note])
            got = expect.setdefault(md5, {})
            for k, v in (("FileName", name), ("Note", note)):
                if v and k not in got:
                    got[k] = v
    return expect


@pytest.mark.parametrize(("n", "distinct"), [(1, 1), (500, 40), (3000, 2000)])
def test_lookup_attributes_match_the_oracle(tmp_path, n, distinct):
    """Widths 1 and 2 of the references (string tables under and over 256)."""
    src = tmp_path / "list.csv"
    expect = write_csv(src, n, seed=n, distinct=distinct)
    out = tmp_path / "ds.hld"
    build_dataset([src], out, attributes=["FileName", "Note"])
    with open_dataset(out) as ds:
        gen = ds.current()
        gen.verify()
        assert gen.attributes is not None
        assert gen.attributes.names == ("FileName", "Note")
        for md5, want in expect.items():
            m = ds.lookup(md5)
            assert m is not None
            assert dict(m.attributes) == want
            assert list(m.attributes) == [k for k in ("FileName", "Note") if k in want]
            assert m == ds.record(m.record_id)
            hash(m)  # a Match stays a hashable value
        with pytest.raises(TypeError):
            m.attributes["FileName"] = "x"  # type: ignore[index]


def test_wide_string_table(tmp_path):
    """Over 65,535 strings: 4-byte references."""
    src = tmp_path / "wide.csv"
    with src.open("w") as f:
        f.write("md5,FileName\n")
        for i in range(70_000):
            f.write(f"{i:032x},n{i}\n")
    out = tmp_path / "wide.hld"
    build_dataset([src], out, attributes=["FileName"])
    with open_dataset(out) as ds:
        ds.current().verify()
        refs = _format.find_sections(ds.current().header, _format.KIND_ATTR_REFS)[0]
        assert refs.params[2] == 4
        for i in (0, 255, 65_535, 69_999):
            assert dict(ds.lookup(f"{i:032x}").attributes) == {"FileName": f"n{i}"}


def test_no_attributes_costs_nothing(tmp_path):
    """Without attributes: no attribute section, the shared empty mapping,
    and the file is what it was without the feature (same section list)."""
    src = tmp_path / "list.csv"
    write_csv(src, 200, seed=3, distinct=10)
    out = tmp_path / "plain.hld"
    build_dataset([src], out)
    with open_dataset(out) as ds:
        gen = ds.current()
        assert gen.attributes is None
        assert not [s for s in gen.header.sections if s.kind in KINDS]
        m = ds.lookup(next(iter(write_csv(tmp_path / "x.csv", 200, 3, 10))))
        assert m is not None and dict(m.attributes) == {} and len(m.attributes) == 0
        assert m.attributes is ds.lookup(m.md5).attributes
        gen.verify()
    # a Match made by hand (nine fields) has no attributes either
    m2 = Match(0, "md5", "00" * 16, None, None, None, (), 1, "t")
    assert dict(m2.attributes) == {}


def test_update_carries_attributes_over(tmp_path):
    a = tmp_path / "a.csv"
    expect = write_csv(a, 400, seed=11, distinct=30)
    out = tmp_path / "ds.hld"
    build_dataset([a], out, attributes=["FileName", "Note"])
    b = tmp_path / "b.txt"
    new = [random.Random(12).randbytes(16).hex() for _ in range(50)]
    b.write_text("".join(h + "\n" for h in new))
    gone = sorted(expect)[:20]
    rm = tmp_path / "rm.txt"
    rm.write_text("".join(h + "\n" for h in gone))
    update_dataset(out, add=[b], remove=[rm])
    with open_dataset(out) as ds:
        ds.current().verify()
        for md5, want in expect.items():
            m = ds.lookup(md5)
            if md5 in gone:
                assert m is None
            else:
                assert m is not None and dict(m.attributes) == want
        for h in new:
            assert dict(ds.lookup(h).attributes) == {}


def nsrl_set(root: Path, n: int) -> list[tuple[str, dict]]:
    """An RDS 2.x set (directory) of n synthetic rows; per row its md5 and
    the attributes its record must carry."""
    rnd = random.Random(77)
    root.mkdir()
    lines = [
        '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode",'
        '"OpSystemCode","SpecialCode"'
    ]
    out = []
    for i in range(n):
        sha1, md5 = rnd.randbytes(20).hex().upper(), rnd.randbytes(16).hex().upper()
        special = "M" if i % 3 == 0 else ""
        lines.append(
            f'"{sha1}","{md5}","{i:08X}","file {i}.dll",{i},{190 + i % 4},'
            f'"358","{special}"'
        )
        want = {
            "FileName": f"file {i}.dll",
            "CRC32": f"{i:08X}",
            "ProductCode": str(190 + i % 4),
            "OpSystemCode": "358",
        }
        if special:
            want["SpecialCode"] = special
        out.append((md5.lower(), want))
    (root / "NSRLFile.txt").write_text("\r\n".join(lines) + "\r\n", newline="")
    for name, key in (
        ("NSRLOS.txt", "OpSystemCode"),
        ("NSRLProd.txt", "ProductCode"),
        ("NSRLMfg.txt", "MfgCode"),
    ):
        (root / name).write_text(f'"{key}","Name"\r\n', newline="")
    (root / "version.txt").write_text("RDS Version 2.99 - synthetic\r\n")
    return out


def test_nsrl_rds2_set_keeps_its_attributes(tmp_path):
    expect = nsrl_set(tmp_path / "rds", 300)
    out = tmp_path / "nsrl.hld"
    build_dataset([tmp_path / "rds"], out)
    with open_dataset(out) as ds:
        ds.current().verify()
        for md5, want in expect:
            m = ds.lookup(md5)
            assert m is not None and dict(m.attributes) == want


def test_cli_build_attribute(tmp_path):
    src = tmp_path / "list.csv"
    expect = write_csv(src, 100, seed=5, distinct=20)
    out = tmp_path / "cli.hld"
    cmd = [sys.executable, "-m", "hashlookup", "build", "-q", "-o", str(out)]
    r = subprocess.run(
        [*cmd, "--attribute", "FileName", str(src)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    with open_dataset(out) as ds:
        for md5, want in expect.items():
            got = dict(ds.lookup(md5).attributes)
            assert got == {k: v for k, v in want.items() if k == "FileName"}
        assert ds.info()["attributes"] == ["FileName"]
    r = subprocess.run(
        [sys.executable, "-m", "hashlookup", "info", "--json", str(out)],
        capture_output=True,
        text=True,
    )
    assert json.loads(r.stdout)["attributes"] == ["FileName"]
    r = subprocess.run(
        [*cmd, "--attribute", "NoSuchColumn", str(src)], capture_output=True, text=True
    )
    assert r.returncode != 0
    assert "NoSuchColumn" in r.stderr and "Traceback" not in r.stderr


# -- damaged and crafted files ------------------------------------------------


def _rewrite(path: Path, out: Path, change) -> None:
    """Write `out`: `path` with its sections passed through change(parts)
    (checksums recomputed: a crafted file, not a damaged one)."""
    mm, header, _ = map_file(str(path))
    try:
        parts = [
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
    parts = change(parts)
    with out.open("wb") as f:
        _format.write_file(f, parts, time.time_ns())


def _attr(parts, kind):
    return next(p for p in parts if p.kind == kind)


def _set(parts, kind, **kw):
    p = _attr(parts, kind)
    for k, v in kw.items():
        setattr(p, k, v)
    return parts


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("attr_good")
    src = d / "list.csv"
    expect = write_csv(src, 300, seed=9, distinct=50)
    path = d / "good.hld"
    build_dataset([src], path, attributes=["FileName", "Note"])
    return path, expect


def _strings(parts):
    return bytes(_attr(parts, _format.KIND_ATTR_STRINGS).data)


def _refs(parts):
    return bytearray(_attr(parts, _format.KIND_ATTR_REFS).data)


CRAFTED = {
    "only strings": (
        lambda ps: [p for p in ps if p.kind != _format.KIND_ATTR_REFS],
        "attribute sections",
    ),
    "two refs": (
        lambda ps: ps + [_attr(ps, _format.KIND_ATTR_REFS)],
        "attribute sections",
    ),
    "record count": (
        lambda ps: _set(
            ps,
            _format.KIND_ATTR_REFS,
            params=(_attr(ps, _format.KIND_ATTR_REFS).params[0] + 1,)
            + _attr(ps, _format.KIND_ATTR_REFS).params[1:],
        ),
        "records",
    ),
    "no names": (
        lambda ps: _set(
            ps,
            _format.KIND_ATTR_REFS,
            params=(_attr(ps, _format.KIND_ATTR_REFS).params[0], 0, 1),
        ),
        "names",
    ),
    "width": (
        lambda ps: _set(
            ps,
            _format.KIND_ATTR_REFS,
            params=_attr(ps, _format.KIND_ATTR_REFS).params[:2] + (4,),
        ),
        "width",
    ),
    "refs length": (
        lambda ps: _set(ps, _format.KIND_ATTR_REFS, data=bytes(_refs(ps)[:-1])),
        "length",
    ),
    "string count": (
        lambda ps: _set(ps, _format.KIND_ATTR_STRINGS, params=(10**9, 0, 0)),
        "attribute",
    ),
    "offsets span": (
        lambda ps: _set(ps, _format.KIND_ATTR_STRINGS, data=_strings(ps) + b"x"),
        "offsets",
    ),
    "name not utf-8": (
        lambda ps: _set(
            ps,
            _format.KIND_ATTR_STRINGS,
            data=_strings(ps).replace(b"FileName", b"File\xffame"),
        ),
        "UTF-8",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_sections_refused_at_open(good, tmp_path, case):
    change, word = CRAFTED[case]
    bad = tmp_path / "bad.hld"
    _rewrite(good[0], bad, change)
    with pytest.raises(IndexFormatError) as e:
        open_dataset(bad).close()
    msg = str(e.value)
    assert str(bad) in msg and word in msg, msg


def _value_ref(good_path):
    """Offset in the refs section of a reference to a value, and the count
    of strings."""
    mm, header, _ = map_file(str(good_path))
    try:
        refs = _format.find_sections(header, _format.KIND_ATTR_REFS)[0]
        nstr = _format.find_sections(header, _format.KIND_ATTR_STRINGS)[0].params[0]
        body = mm[refs.offset : refs.offset + refs.length]
    finally:
        mm.close()
    return next(i for i, b in enumerate(body) if b), nstr, refs.params[2]


@pytest.mark.parametrize("value", ["past the table", "a name"])
def test_crafted_reference_refused_by_lookup_and_verify(good, tmp_path, value):
    at, nstr, width = _value_ref(good[0])
    assert width == 1
    ref = 0xFF if value == "past the table" else 1
    assert ref >= nstr or ref < 2

    def change(ps):
        refs = _refs(ps)
        refs[at] = ref
        return _set(ps, _format.KIND_ATTR_REFS, data=bytes(refs))

    bad = tmp_path / "bad.hld"
    _rewrite(good[0], bad, change)
    with open_dataset(bad) as ds:
        with pytest.raises(IndexFormatError, match="attribute refs"):
            ds.current().verify()
        with pytest.raises(IndexFormatError, match=f"refers to string {ref}"):
            for rid in range(ds.current().count):
                ds.record(rid)


def test_damaged_bytes_refused_by_verify(good, tmp_path):
    """A flipped byte in either section: verify names the section (its
    checksum); lookups never crash."""
    data = good[0].read_bytes()
    mm, header, _ = map_file(str(good[0]))
    mm.close()
    for kind in KINDS:
        s = _format.find_sections(header, kind)[0]
        for pos in (s.offset, s.offset + s.length // 2, s.offset + s.length - 1):
            b = bytearray(data)
            b[pos] ^= 0x5A
            bad = tmp_path / f"bad{kind}_{pos}.hld"
            bad.write_bytes(bytes(b))
            try:
                ds = open_dataset(bad)
            except IndexFormatError as e:
                assert str(bad) in str(e)
                continue
            with ds:
                with pytest.raises(IndexFormatError, match="attribute"):
                    ds.current().verify()
                for md5 in good[1]:
                    try:
                        ds.lookup(md5)
                    except IndexFormatError as e:
                        assert "attribute" in str(e)


def rds3(path: Path, n: int, view: bool) -> list[tuple[str, dict]]:
    """An RDSv3 database (FILE as a table, or as a view: no rowids) of n
    synthetic rows, every 37th without md5 (the row-by-row path) and one
    with a bad sha1 (skipped); per good row its sha1 and attributes."""
    rnd = random.Random(31)
    rows, out = [], []
    for i in range(n):
        sha1 = rnd.randbytes(20).hex().upper()
        md5 = "" if i % 37 == 5 else rnd.randbytes(16).hex().upper()
        name = "" if i % 11 == 0 else f"f {i}\u00e9.exe"
        if i == n // 2:
            sha1 = "XYZ"
        rows.append((rnd.randbytes(32).hex().upper(), sha1, md5, f"{i:08X}", name, i))
        want = {"CRC32": f"{i:08X}", "ProductCode": str(190 + i % 3)}
        if name:
            want["FileName"] = name
        if sha1 != "XYZ":
            out.append((sha1.lower(), want))
    con = sqlite3.connect(path)
    table = "OBJECT" if view else "FILE"
    con.execute(
        f"CREATE TABLE {table} (sha256 TEXT, sha1 TEXT, md5 TEXT, crc32 TEXT, "
        f"file_name TEXT, file_size INTEGER, package_id INTEGER)"
    )
    con.executemany(
        f"INSERT INTO {table} VALUES (?,?,?,?,?,?,?)",
        [(*r, 190 + i % 3) for i, r in enumerate(rows)],
    )
    if view:
        con.execute("CREATE VIEW FILE AS SELECT * FROM OBJECT WHERE 1")
    con.commit()
    con.close()
    return out


@pytest.mark.parametrize("view", [False, True])
def test_nsrl_rds3_keeps_its_attributes(tmp_path, view):
    db = tmp_path / "rds3.db"
    expect = rds3(db, 400, view)
    out = tmp_path / "rds3.hld"
    build_dataset([db], out, skip_invalid=True)
    with open_dataset(out) as ds:
        ds.current().verify()
        assert ds.current().count == len(expect)
        for sha1, want in expect:
            m = ds.lookup(sha1)
            assert m is not None and dict(m.attributes) == want


def test_check_attributes_output(tmp_path):
    """check --attributes in text (escaped), jsonl and csv; nothing without
    the option."""
    src = tmp_path / "l.csv"
    src.write_text(
        'md5,FileName,Note\n"'
        + "ab" * 16
        + '","a\tb\\\\c\nd",n1\n'
        + "cd" * 16
        + ",,\n"
    )
    out = tmp_path / "l.hld"
    build_dataset([src], out, attributes=["FileName", "Note"])
    cmd = [sys.executable, "-m", "hashlookup", "check", str(out), "ab" * 16, "cd" * 16]

    def run(*extra):
        r = subprocess.run([*cmd, *extra], capture_output=True, text=True)
        assert r.returncode == 1, r.stderr
        return r.stdout

    text = run("--attributes").splitlines()
    assert text[0].endswith("\tFileName=a\\tb\\\\\\\\c\\nd\tNote=n1"), text[0]
    assert text[1].endswith("labels=source:l")
    assert "FileName" not in run()
    lines = [
        json.loads(x) for x in run("--attributes", "--format", "jsonl").splitlines()
    ]
    assert lines[0]["attributes"] == {"FileName": "a\tb\\\\c\nd", "Note": "n1"}
    assert lines[1]["attributes"] == {}
    assert "attributes" not in json.loads(run("--format", "jsonl").splitlines()[0])
    rows = list(csv.reader(io.StringIO(run("--attributes", "--format", "csv"))))
    assert rows[0][-1] == "attributes"
    assert json.loads(rows[1][-1]) == lines[0]["attributes"]
    assert json.loads(rows[2][-1]) == {}


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ("FileName", TypeError),
        ([1], TypeError),
        ([""], ValueError),
        (["a", "a"], ValueError),
    ],
)
def test_bad_attribute_names_refused(tmp_path, attributes, error):
    src = tmp_path / "l.csv"
    write_csv(src, 10, seed=1, distinct=3)
    with pytest.raises(error, match="attribute"):
        build_dataset([src], tmp_path / "x.hld", attributes=attributes)
    assert not (tmp_path / "x.hld").exists()


# -- VICS: fields as attributes only when asked ------------------------------------


def vics_export(path: Path, n: int, seed: int) -> dict[str, dict]:
    """A VICS 2.0 export of n Media (each with 0-2 MediaFiles); per md5 the
    attributes its record must carry when MediaID, Category, Series,
    FileName and Tags are asked for."""
    rnd = random.Random(seed)
    value, expect = [], {}
    for i in range(n):
        md5 = rnd.randbytes(16).hex()
        media = {"MediaID": 1000 + i, "Category": rnd.choice([1, 2, None]), "MD5": md5}
        if i % 3:
            media["Series"] = rnd.choice(["s\u00e9rie A", "B", ""])
        if i % 5 == 0:
            media["Tags"] = ["x", {"k": i}]
        base = {"MediaID": str(1000 + i)}
        if media["Category"] is not None:
            base["Category"] = str(media["Category"])
        if media.get("Series"):
            base["Series"] = media["Series"]
        if "Tags" in media:
            base["Tags"] = json.dumps(media["Tags"], separators=(",", ":"))
        expect[md5] = dict(base)
        files = []
        for j in range(i % 3):
            fmd5 = rnd.randbytes(16).hex()
            f = {"MD5": fmd5, "FileName": f"img {i}-{j}.jpg"}
            if j == 1:
                f["Series"] = "own"
            files.append(f)
            want = {**base, "FileName": f["FileName"]}
            if j == 1:
                want["Series"] = "own"
            expect[fmd5] = want
        if files:
            media["MediaFiles"] = files
        value.append(media)
    doc = {"@odata.context": "http://x/DataModels/2.0.xml/$metadata#Media"}
    path.write_text(json.dumps({**doc, "value": value}))
    return expect


def test_vics_attributes_only_when_asked(tmp_path):
    src = tmp_path / "export.json"
    expect = vics_export(src, 60, seed=5)
    plain = tmp_path / "plain.hld"
    build_dataset([src], plain)
    with open_dataset(plain) as ds:
        assert ds.current().attributes is None  # none by default
    names = ["MediaID", "Category", "Series", "FileName", "Tags"]
    out = tmp_path / "vics.hld"
    build_dataset([src], out, attributes=names)
    with open_dataset(out) as ds:
        ds.current().verify()
        for md5, want in expect.items():
            m = ds.lookup(md5)
            assert m is not None and dict(m.attributes) == want, md5
    # batches split inside a Media keep their rows' values
    from hashlookup.importers import iter_records

    got = []
    for b in iter_records(src, attributes=names, batch_size=2):
        assert all(len(v) == len(b) for v in b.attributes.values())
        got += b.attributes["MediaID"]
    assert got == [w["MediaID"] for w in expect.values()]


def _attr_tree(tmp_path: Path) -> tuple[Path, Path, dict[str, dict]]:
    """Files under a tree, a dataset of their md5s with FileName / Note
    attributes (one file without), and per md5 what it must show."""
    import hashlib

    tree = tmp_path / "tree"
    tree.mkdir()
    rows, want = ["md5,FileName,Note"], {}
    for i in range(6):
        data = f"content {i}\n".encode()
        (tree / f"f{i}.bin").write_bytes(data)
        md5 = hashlib.md5(data).hexdigest()
        name, note = (f"n\t{i},x", "") if i % 2 else ("", "")
        if i == 4:
            note = "only note"
        rows.append(f'{md5},"{name}",{note}')
        want[md5] = {k: v for k, v in (("FileName", name), ("Note", note)) if v}
    src = tmp_path / "l.csv"
    src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "l.hld"
    build_dataset([src], out, attributes=["FileName", "Note"])
    return tree, out, want


def _hl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hashlookup", *args], capture_output=True, text=True
    )


def test_match_attributes_output(tmp_path):
    """match --attributes in jsonl and csv (digest lists and a CSV
    inventory); refused with text output; nothing without the option."""
    _, ds, want = _attr_tree(tmp_path)
    listing = tmp_path / "q.txt"
    digests = [*want, "0" * 32]
    listing.write_text("\n".join(digests) + "\n")
    r = _hl("match", str(ds), str(listing), "--format", "jsonl", "--attributes")
    assert r.returncode == 1, r.stderr
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert {g["digest"]: g["attributes"] for g in got} == want
    r = _hl("match", str(ds), str(listing), "--format", "csv", "--attributes")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["digest"]: json.loads(row["attributes"]) for row in rows} == want
    inv = tmp_path / "inv.csv"
    inv.write_text("path,md5\n" + "".join(f"p{i},{d}\n" for i, d in enumerate(digests)))
    r = _hl(
        "match",
        str(ds),
        str(inv),
        "--column",
        "md5",
        "--format",
        "jsonl",
        "--attributes",
    )
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert {g["digest"]: g["attributes"] for g in got} == want, r.stderr
    r = _hl("match", str(ds), str(listing), "--format", "jsonl")
    assert not any("attributes" in json.loads(x) for x in r.stdout.splitlines())
    r = _hl("match", str(ds), str(listing), "--attributes")
    assert r.returncode == 2 and "--attributes" in r.stderr
    r = _hl("match", str(ds), str(listing), "--attributes", "--workers", "1")
    assert r.returncode == 2 and "--attributes" in r.stderr


def test_scan_attributes_output(tmp_path):
    tree, ds, want = _attr_tree(tmp_path)
    by_name = {}
    for f in tree.iterdir():
        import hashlib

        by_name[str(f)] = want[hashlib.md5(f.read_bytes()).hexdigest()]
    r = _hl("scan", str(ds), str(tree), "--format", "jsonl", "--attributes", "-q")
    assert r.returncode == 1, r.stderr
    got = {g["path"]: g["attributes"] for g in map(json.loads, r.stdout.splitlines())}
    assert got == by_name
    r = _hl("scan", str(ds), str(tree), "--format", "csv", "--attributes", "-q")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["path"]: json.loads(row["attributes"]) for row in rows} == by_name
    r = _hl("scan", str(ds), str(tree), "--attributes", "-q")
    for line in r.stdout.splitlines():
        path, _, _, _, *fields = line.split("\t")
        shown = dict(f.split("=", 1) for f in fields)
        expect = {k: v.replace("\t", "\\t") for k, v in by_name[path].items()}
        assert shown == expect, line
    r = _hl("scan", str(ds), str(tree), "--format", "jsonl", "-q")
    assert not any("attributes" in json.loads(x) for x in r.stdout.splitlines())


@pytest.mark.parametrize("seed", range(4))
def test_csv_fast_path_attributes_equal_the_csv_module(tmp_path, monkeypatch, seed):
    """Attribute columns read by the vectorised path equal the csv module's
    (quotes, doubled quotes, delimiters and newlines inside quotes, blanks,
    non-ASCII and undecodable bytes, CRLF), and the fast path is taken."""
    from hashlookup.importers import _fast, iter_records

    rnd = random.Random(seed)
    pieces = ["a", "é", " b ", "x,y", 'q"q', "l\nm", "", "\u4e2d", "z" * 40]
    lines = [b"md5,Name,Other"]
    for _ in range(400):
        cells = []
        for _ in range(2):
            v = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(3)))
            raw = v.encode()
            if rnd.random() < 0.05:
                raw += b"\xff"
            if any(c in v for c in ',"\n') or rnd.random() < 0.3:
                raw = b'"' + raw.replace(b'"', b'""') + b'"'
            cells.append(raw)
        lines.append(rnd.randbytes(16).hex().encode() + b"," + b",".join(cells))
    src = tmp_path / "a.csv"
    src.write_bytes((b"\r\n" if seed % 2 else b"\n").join(lines) + b"\n")

    def read(batch_size):
        cols: dict[str, list] = {"Name": [], "Other": []}
        for b in iter_records(src, attributes=["Name", "Other"], batch_size=batch_size):
            for k in cols:
                cols[k] += b.attributes[k]
        return cols

    calls = []
    real = _fast.text_column
    monkeypatch.setattr(_fast, "text_column", lambda *a: calls.append(1) or real(*a))
    fast = [read(bs) for bs in (7, 1000)]
    assert calls  # some batches went the vectorised way
    monkeypatch.setattr(_fast, "split_fields", lambda *a, **k: None)
    slow = read(1000)
    assert fast[0] == slow and fast[1] == slow
    assert len(slow["Name"]) == 400
