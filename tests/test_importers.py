"""Importers (hashlookup.importers): every format round-trips generated records,
format detection, bad input (messages name file and line or record; counted
with skip_invalid), streaming in small batches and small read chunks, line
endings, encodings and empty files.  All data is synthetic (importer_data)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from hashlookup import InputError
from hashlookup.importers import (
    FORMATS,
    ImportReport,
    RecordBatch,
    _csv,
    _hashdeep,
    _vics,
    detect_format,
    iter_records,
)
from importer_data import (
    ALGOS,
    Record,
    check_batch,
    make_table,
    make_vics,
    records_of,
    write_csv,
    write_hashdeep,
    write_nsrl,
    write_text,
    write_vics,
)

MD5 = "0123456789abcdef0123456789abcdef"
MD5B = "fedcba9876543210fedcba9876543210"
SHA1 = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def read(path, **kw) -> tuple[list[Record], ImportReport]:
    report = ImportReport()
    batches = list(iter_records(path, report=report, **kw))
    bs = kw.get("batch_size", 100_000)
    for b in batches:
        check_batch(b)
        assert len(b) <= bs
    recs = records_of(batches)
    assert report.records == len(recs)
    return recs, report


def raises(path, message: str, **kw) -> InputError:
    """iter_records(path) raises InputError with exactly `message` after the
    file name (the message starts with the path)."""
    with pytest.raises(InputError) as info:
        list(iter_records(path, **kw))
    assert str(info.value) == f"{path}{message}"
    return info.value


def rec(md5=None, sha1=None, sha256=None, size=-1, labels=()) -> Record:
    h = bytes.fromhex
    return Record(
        h(md5) if md5 else None,
        h(sha1) if sha1 else None,
        h(sha256) if sha256 else None,
        size,
        frozenset(labels),
    )


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ---------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("style", ["plain", "sum", "binsum"])
def test_text_roundtrip(tmp_path, algo, style):
    t = make_table(300, 1, algos=[algo])
    p = tmp_path / "list.txt"
    expected = write_text(
        p,
        t,
        algo,
        style=style,
        upper=style == "sum",
        comments=True,
        newline="\r\n" if style == "binsum" else "\n",
    )
    assert detect_format(p) == "text"
    got, rep = read(p)
    assert got == expected
    assert rep.format == "text" and rep.algorithm == algo
    assert rep.digests == {algo: 300} and rep.sized == 0 and rep.invalid == 0


HASHDEEP_LAYOUTS = [
    ("size", "md5", "sha256", "filename"),  # hashdeep's default
    ("size", "md5", "sha1", "sha256", "tiger", "whirlpool", "filename"),
    ("md5", "filename", "size", "sha1"),  # name in the middle
    ("filename", "sha256"),
    ("sha1", "size"),  # no file name
]


@pytest.mark.parametrize("columns", HASHDEEP_LAYOUTS, ids=lambda c: ",".join(c))
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_hashdeep_roundtrip(tmp_path, columns, newline):
    t = make_table(250, 2)
    p = tmp_path / "list.hashdeep"
    expected = write_hashdeep(p, t, columns, newline=newline, upper=newline == "\n")
    assert detect_format(p) == "hashdeep"
    got, rep = read(p)
    assert got == expected
    assert rep.format == "hashdeep"
    assert set(rep.columns) == {c for c in columns if c in (*ALGOS, "size")}


def test_hashdeep_filenames_with_commas(tmp_path):
    p = write(
        tmp_path / "h.txt",
        "%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n## comment\n"
        f"12,{MD5},./a,b,,c.jpg\n"
        f"0,{MD5B},,\n"  # a file name of one comma
        f"7,{MD5},\n",
    )  # an empty file name
    got, _ = read(p)
    assert got == [rec(MD5, size=12), rec(MD5B, size=0), rec(MD5, size=7)]


def test_hashdeep_concatenated_outputs(tmp_path):
    p = write(
        tmp_path / "h.txt",
        "%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n"
        f"1,{MD5},a\n\n"
        "%%%% HASHDEEP-1.0\n%%%% sha1,size,filename\n## again\n"
        f"{SHA1},2,b\n",
    )
    got, _ = read(p)
    assert got == [rec(MD5, size=1), rec(sha1=SHA1, size=2)]


@pytest.mark.parametrize(
    "delimiter", [",", "\t", ";"], ids=["comma", "tab", "semicolon"]
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_csv_roundtrip(tmp_path, delimiter, newline):
    t = make_table(300, 3, missing=0.3, categories=4, unknown_size=0.2)
    p = tmp_path / "list.csv"
    expected = write_csv(
        p,
        t,
        delimiter=delimiter,
        newline=newline,
        category_name="Category",
        upper=delimiter == ",",
    )
    assert detect_format(p) == "csv"
    got, rep = read(p, label_columns={"category": "Category"})
    assert got == expected
    assert rep.columns == {
        "md5": "MD5",
        "sha1": "SHA1",
        "sha256": "SHA256",
        "size": "Size",
        "label:category": "Category",
    }
    assert rep.sized == sum(r.size >= 0 for r in expected)


def test_csv_named_columns(tmp_path):
    t = make_table(100, 4, categories=3)
    p = tmp_path / "list.csv"
    expected = write_csv(
        p,
        t,
        names={"md5": "Hash (MD5)", "sha256": "Digest 2"},
        size_name="Bytes",
        category_name="Cat",
        upper=False,
    )
    cols = {"md5": "Hash (MD5)", "sha256": "digest 2", "size": "Bytes"}
    got, _ = read(p, columns=cols, label_columns={"cls": "Cat"})
    expected = [
        r._replace(labels=frozenset(x.replace("category:", "cls:") for x in r.labels))
        for r in expected
    ]
    assert got == expected


def test_csv_auto_names(tmp_path):
    p = write(
        tmp_path / "a.csv",
        f"Name,SHA-1,sha_256,File Size,md5\n"
        f"x,{SHA1},{SHA256},12,{MD5.upper()}\n"
        f"y,,, ,{MD5B}\n",
    )
    got, rep = read(p)
    assert got == [rec(MD5, SHA1, SHA256, 12), rec(MD5B)]
    assert rep.columns == {
        "sha1": "SHA-1",
        "sha256": "sha_256",
        "size": "File Size",
        "md5": "md5",
    }


def test_csv_quoting(tmp_path):
    # Quoted digests, a quoted field with a newline and a delimiter, escaped
    # quotes: the fast reader hands such batches to the csv module.
    p = write(
        tmp_path / "q.csv",
        "md5,name,category\n"
        f'"{MD5}","a, ""b""",1\n'
        f'{MD5B},"line\none",\n'
        f'"{MD5}",plain,"2"\n',
    )
    got, _ = read(p, label_columns={"category": "category"})
    assert got == [
        rec(MD5, labels=["category:1"]),
        rec(MD5B),
        rec(MD5, labels=["category:2"]),
    ]


def test_csv_bom_and_utf16(tmp_path):
    t = make_table(50, 5, categories=2)
    p = tmp_path / "bom.csv"
    expected = write_csv(p, t, bom=True, category_name="Category")
    assert detect_format(p) == "csv"
    assert read(p, label_columns={"category": "Category"})[0] == expected
    p = tmp_path / "utf16.csv"
    expected = write_csv(
        p,
        t,
        delimiter="\t",
        encoding="utf-16-le",
        bom=True,
        newline="\r\n",
        category_name="Category",
    )
    assert detect_format(p) == "csv"
    assert read(p, label_columns={"category": "Category"})[0] == expected


def test_csv_labels_stripped_and_non_ascii(tmp_path):
    p = write(
        tmp_path / "l.csv",
        f"md5,tag\n{MD5}, vip \n{MD5B},\n{MD5},Ünïcode\n{MD5B},vip\n",
    )
    got, _ = read(p, label_columns={"tag": "tag"})
    assert [r.labels for r in got] == [{"tag:vip"}, set(), {"tag:Ünïcode"}, {"tag:vip"}]


@pytest.mark.parametrize("version", ["1.3", "2.0"])
@pytest.mark.parametrize("bools", ["json", "str", "mixed"])
def test_vics_roundtrip(tmp_path, version, bools):
    media, expected = make_vics(
        150, 6, version=version, bools=bools, sha256=version == "2.0"
    )
    p = tmp_path / "vics.json"
    write_vics(p, media, version=version)
    assert detect_format(p) == "vics"
    got, rep = read(p)
    assert got == expected
    assert rep.version == version and rep.media == 150
    assert rep.no_digest > 0 and rep.duplicates > 0
    labels = set().union(*(r.labels for r in got))
    assert {"vics:distributed", "vics:precategorized", "category:0"} <= labels


def test_vics_pretty_printed_crlf_bom(tmp_path):
    media, expected = make_vics(30, 7)
    p = tmp_path / "vics.json"
    write_vics(
        p,
        media,
        indent=2,
        newline="\r\n",
        extra={"odata.count": 30, "Other": {"a": [1, 2]}},
    )
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert detect_format(p) == "vics"
    assert read(p)[0] == expected


def test_vics_media_files_dedupe(tmp_path):
    media = [
        {
            "MediaID": 7,
            "Category": 2,
            "MD5": MD5.upper(),
            "SHA1": SHA1,
            "MediaSize": "100",
            "IsDistributed": "True",
            "MediaFiles": [
                {"MD5": MD5, "SHA1": SHA1.upper(), "FileSize": 100},  # same: dropped
                {"MD5": f" {MD5} "},  # subset: dropped
                {"MD5": MD5B, "FileSize": 5},  # another file
                {"MD5": MD5B.upper()},  # repeats it
                {"MD5": MD5, "SHA256": SHA256},  # a digest the Media lacks: kept
                {"FileName": "no digests"},  # not a record
            ],
        },
        {
            "MediaID": 8,
            "Category": None,
            "MD5": "",
            "SHA1": None,  # no own digests
            "IsPrecategorized": False,
            "MediaFiles": [{"SHA1": SHA1}, {"SHA1": SHA1}],
        },
    ]
    p = tmp_path / "v.json"
    write_vics(p, media)
    got, rep = read(p)
    labels = ["category:2", "vics:distributed"]
    assert got == [
        rec(MD5, SHA1, size=100, labels=labels),
        rec(MD5B, size=5, labels=labels),
        rec(MD5, sha256=SHA256, labels=labels),
        rec(sha1=SHA1),
    ]
    assert rep.duplicates == 4 and rep.no_digest == 2 and rep.media == 2


@pytest.mark.parametrize(
    "value, labels",
    [
        (True, ["vics:distributed"]),
        (False, []),
        ("true", ["vics:distributed"]),
        ("False", []),
        ("TRUE", ["vics:distributed"]),
        ("", []),
        (1, ["vics:distributed"]),
        (0, []),
        (None, []),
    ],
)
def test_vics_booleans(tmp_path, value, labels):
    p = tmp_path / "v.json"
    write_vics(p, [{"MediaID": 1, "MD5": MD5, "IsDistributed": value}])
    assert read(p)[0] == [rec(MD5, labels=labels)]


@pytest.mark.parametrize(
    "value, label",
    [
        (3, "category:3"),
        ("3", "category:3"),
        (" 03 ", "category:3"),
        ("", None),
        (None, None),
        (-1, "category:-1"),
    ],
)
def test_vics_categories(tmp_path, value, label):
    p = tmp_path / "v.json"
    write_vics(p, [{"MediaID": 1, "MD5": MD5, "Category": value}])
    assert read(p)[0] == [rec(MD5, labels=[label] if label else [])]


def test_nsrl_roundtrip(tmp_path):
    t = make_table(300, 8)
    p = tmp_path / "RDS.db"
    expected = write_nsrl(p, t)
    assert detect_format(p) == "sqlite"
    got, rep = read(p)
    assert got == expected
    assert got[0].labels == frozenset()
    assert rep.columns == {
        "md5": "md5",
        "sha1": "sha1",
        "sha256": "sha256",
        "size": "file_size",
    }


def test_nsrl_irregular_rows(tmp_path):
    # NULLs, lower case, text and real sizes, rowid gaps: the row-by-row path.
    p = tmp_path / "x.sqlite"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE file (SHA256 TEXT, SHA1 TEXT, MD5 TEXT, file_size)")
    con.executemany(
        "INSERT INTO file (rowid, SHA256, SHA1, MD5, file_size) VALUES (?,?,?,?,?)",
        [
            (1, SHA256, SHA1, MD5, 10),
            (2, None, SHA1.upper(), None, "11"),
            (50, SHA256, "", MD5B, None),
            (10**12, None, None, MD5, 12.0),
        ],
    )
    con.commit()
    con.close()
    for bs in (1, 2, 100):
        got, _ = read(p, batch_size=bs)
        assert got == [
            rec(MD5, SHA1, SHA256, 10),
            rec(sha1=SHA1, size=11),
            rec(MD5B, sha256=SHA256),
            rec(MD5, size=12),
        ]


def test_nsrl_view_without_rowid(tmp_path):
    p = tmp_path / "v.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE base (md5 TEXT, file_size INTEGER)")
    con.executemany("INSERT INTO base VALUES (?, ?)", [(MD5, 1), ("zz", 2), (MD5B, 3)])
    con.execute("CREATE VIEW FILE AS SELECT md5, file_size FROM base")
    con.commit()
    con.close()
    raises(p, ": FILE row 2: column md5: expected 32 hex characters (md5), got 'zz'")
    got, rep = read(p, skip_invalid=True, batch_size=2)
    assert got == [rec(MD5, size=1), rec(MD5B, size=3)] and rep.invalid == 1


# ---------------------------------------------------------------------------
# streaming


def _all_formats(tmp_path) -> list[tuple[Path, dict]]:
    t = make_table(200, 9, missing=0.2, categories=3)
    files = []
    write_text(tmp_path / "a.txt", t, "sha1")
    files.append((tmp_path / "a.txt", {}))
    write_hashdeep(tmp_path / "a.hd", make_table(200, 10), HASHDEEP_LAYOUTS[1])
    files.append((tmp_path / "a.hd", {}))
    write_csv(tmp_path / "a.csv", t, category_name="Category")
    files.append((tmp_path / "a.csv", {"label_columns": {"category": "Category"}}))
    media, _ = make_vics(120, 11)
    write_vics(tmp_path / "a.json", media)
    files.append((tmp_path / "a.json", {}))
    write_nsrl(tmp_path / "a.db", make_table(200, 12))
    files.append((tmp_path / "a.db", {}))
    return files


def test_small_batches_same_records(tmp_path):
    for path, kw in _all_formats(tmp_path):
        big, _ = read(path, **kw)
        small, _ = read(path, batch_size=7, **kw)
        assert small == big, path.name
        one, _ = read(path, batch_size=1, **kw)
        assert one == big, path.name


def test_small_read_chunks_same_records(tmp_path, monkeypatch):
    files = _all_formats(tmp_path)
    expected = [read(p, **kw)[0] for p, kw in files]
    monkeypatch.setattr(_hashdeep, "CHUNK_SIZE", 97)
    monkeypatch.setattr(_csv, "CHUNK_SIZE", 61)
    monkeypatch.setattr(_vics, "CHUNK_CHARS", 13)
    for (p, kw), want in zip(files, expected):
        assert read(p, batch_size=5, **kw)[0] == want, p.name


def test_vics_value_longer_than_limit(tmp_path, monkeypatch):
    media = [{"MediaID": 1, "MD5": MD5, "Notes": "x" * 5000}]
    p = tmp_path / "v.json"
    write_vics(p, media)
    monkeypatch.setattr(_vics, "CHUNK_CHARS", 100)
    assert read(p)[0] == [rec(MD5)]
    monkeypatch.setattr(_vics, "MAX_VALUE", 1000)
    with pytest.raises(
        InputError,
        match=r"v\.json: value\[0\]: a JSON value longer "
        r"than",
    ):
        list(iter_records(p))


def test_vics_numbers_cut_by_the_buffer(tmp_path, monkeypatch):
    p = write(
        tmp_path / "v.json",
        '{"odata.metadata": "x/DataModels/1.3.xml", "odata.count": 1234567,'
        f' "value": [{{"MD5": "{MD5}", "MediaSize": 123456789}}]}}',
    )
    monkeypatch.setattr(_vics, "CHUNK_CHARS", 3)
    assert read(p)[0] == [rec(MD5, size=123456789)]


# ---------------------------------------------------------------------------
# detection


def test_detect_each_format(tmp_path):
    for path, _ in _all_formats(tmp_path):
        want = {
            ".txt": "text",
            ".hd": "hashdeep",
            ".csv": "csv",
            ".json": "vics",
            ".db": "sqlite",
        }[path.suffix]
        assert detect_format(path) == want
        assert detect_format(str(path)) == want


@pytest.mark.parametrize(
    "text, fmt",
    [
        (f"{MD5}  md5sums.md5\n", "text"),  # 'md5' in a file name
        (f"# md5, sha1 list\n{MD5}\n", "text"),  # ... or in a comment
        (f"\\{MD5}  a\\nb\n", "text"),
        (f"\n\n  {SHA256}\n", "text"),
        ("", "text"),
        ("MD5\n" + MD5 + "\n", "csv"),  # a one-column CSV
        ("name;SHA-256 hash;x\n", "csv"),
        ("a\tb\tsha1\n", "csv"),
        ("%%%% HASHDEEP-1.0\n", "hashdeep"),
        ('  {"@odata.context": "x", "value": []}', "vics"),
        ("not a digest\n", "text"),  # the text reader says what's wrong
    ],
)
def test_detect_content(tmp_path, text, fmt):
    assert detect_format(write(tmp_path / "f", text)) == fmt


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("x.db", b"hello", "not an SQLite database"),
        ("x.sqlite", b"", "not an SQLite database"),
        ("x.json", b'{"value": []}', "JSON, but not a VICS export"),
        ("x.json", b"[1, 2]", "JSON, but not a VICS export"),
        (
            "x.txt",
            "\ufeff".encode("utf-16-le") + f"{MD5}\n".encode("utf-16-le"),
            "UTF-16-LE text is read only for CSV and VICS JSON",
        ),
    ],
)
def test_detect_refuses(tmp_path, name, data, message):
    p = write(tmp_path / name, data)
    with pytest.raises(InputError, match=re.escape(f"{p}: {message}")):
        detect_format(p)
    with pytest.raises(InputError, match=re.escape(f"{p}: {message}")):
        list(iter_records(p))


def test_detect_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "nope")


# ---------------------------------------------------------------------------
# bad input: text


def test_text_errors(tmp_path):
    p = write(tmp_path / "l.txt", f"{MD5}\n# c\n{MD5[:-1]}x\n{MD5}\n{SHA1}\n")
    raises(p, f":3: expected 32 hex characters (md5), got non-hex text '{MD5[:-1]}x'")
    got, rep = read(p, skip_invalid=True)
    assert got == [rec(MD5), rec(MD5)] and rep.invalid == 2


# ---------------------------------------------------------------------------
# bad input: CSV


def test_csv_bad_values(tmp_path):
    p = write(
        tmp_path / "list.csv",
        f"MD5,SHA1,Size\n"
        f"{MD5},{SHA1},1\n"
        f"xyz,{SHA1},2\n"  # line 3: bad hex length
        f"{MD5},{MD5},3\n"  # line 4: md5 in SHA1
        f"{MD5[:-1]}g,,4\n"  # line 5: non-hex
        f"{MD5},,-5\n"  # line 6: negative size
        f"{MD5},,1.5\n"  # line 7: not an integer
        f",,8\n"  # line 8: no digest
        f"{MD5},{SHA1}\n"  # line 9: too few fields
        f"{MD5},{SHA1},1,2\n"  # line 10: too many
        f"{MD5B},,\n",
    )
    raises(p, ":3: column MD5: expected 32 hex characters (md5), got 'xyz'")
    got, rep = read(p, skip_invalid=True)
    assert got == [rec(MD5, SHA1, size=1), rec(MD5B)]
    assert rep.invalid == 8
    assert rep.examples == [
        f"{p}{m}"
        for m in [
            ":3: column MD5: expected 32 hex characters (md5), got 'xyz'",
            f":4: column SHA1: expected 40 hex characters (sha1), got 32 (an md5 "
            f"digest?) '{MD5}'",
            f":5: column MD5: expected 32 hex characters (md5), got non-hex text "
            f"'{MD5[:-1]}g'",
            ":6: column Size: expected a non-negative integer, got '-5'",
            ":7: column Size: expected a non-negative integer, got '1.5'",
            ":8: no digest (column MD5, column SHA1: all empty)",
            ":9: expected 3 fields as in the header, got 2",
            ":10: expected 3 fields as in the header, got 4",
        ]
    ]


def test_csv_error_line_numbers_after_quoted_newlines(tmp_path):
    p = write(tmp_path / "q.csv", f'name,md5\n"a\nb\nc",{MD5}\n\n"d",{MD5}x\n')
    raises(p, f":6: column md5: expected 32 hex characters (md5), got '{MD5}x'")


def test_csv_first_error_in_file_order(tmp_path):
    # A bad row in a later batch does not hide an earlier one.
    lines = [f"{MD5},1"] * 20
    lines[4] = f"{MD5},x"
    lines[15] = "zz,1"
    p = write(tmp_path / "o.csv", "md5,size\n" + "\n".join(lines) + "\n")
    for bs in (3, 100):
        raises(
            p,
            ":6: column size: expected a non-negative integer, got 'x'",
            batch_size=bs,
        )


def test_csv_missing_columns(tmp_path):
    p = write(tmp_path / "c.csv", f"Name,MD5\nx,{MD5}\n")
    raises(
        p,
        ":1: column 'Nope' (md5) is not in the CSV header ['Name', 'MD5']",
        columns={"md5": "Nope"},
    )
    raises(
        p,
        ":1: column 'Cat' (label 'category') is not in the CSV header ['Name', 'MD5']",
        label_columns={"category": "Cat"},
    )
    p = write(tmp_path / "d.csv", f"Name,Hash\nx,{MD5}\n")
    raises(
        p,
        ":1: no md5, sha1 or sha256 column in the CSV header 'Name,Hash'; "
        "name the columns with columns={'md5': ...}",
        input_format="csv",
    )
    assert read(p, input_format="csv", columns={"md5": "Hash"})[0] == [rec(MD5)]
    p = write(tmp_path / "e.csv", f"md5 hash,MD5\nx,{MD5}\n")
    assert read(p)[0] == [rec(MD5)]  # only 'MD5' is an exact name
    p = write(tmp_path / "f.csv", f"MD5,md-5\n{MD5},{MD5}\n")
    raises(
        p,
        ":1: columns 'MD5' and 'md-5' both look like the md5 column; choose "
        "one with columns={'md5': ...}",
    )


def test_csv_header_and_blank_lines_only(tmp_path):
    assert read(write(tmp_path / "h.csv", "md5,size\n\n\n"))[0] == []
    assert read(write(tmp_path / "b.csv", "\n\n"), input_format="csv")[0] == []


# ---------------------------------------------------------------------------
# bad input: hashdeep


HD = "%%%% HASHDEEP-1.0\n%%%% size,md5,sha1,filename\n## x\n"


def test_hashdeep_bad_lines(tmp_path):
    p = write(
        tmp_path / "h.txt",
        HD + f"1,{MD5},{SHA1},ok\n"  # line 4
        f"2,{MD5}0,{SHA1},a\n"  # 5: md5 too long
        f"x,{MD5},{SHA1},b\n"  # 6: bad size
        f"3,{MD5}\n"  # 7: too few fields
        f"4,,,c\n"  # 8: no digest
        f"5,{MD5},{SHA1[:-1]}Z,d\n"  # 9: non-hex sha1
        f" 6,{MD5B},,e\n",
    )  # 10: blanks are fine
    raises(p, f":5: column md5: expected 32 hex characters (md5), got '{MD5}0'")
    got, rep = read(p, skip_invalid=True)
    assert got == [rec(MD5, SHA1, size=1), rec(MD5B, size=6)]
    assert rep.invalid == 5
    assert [e[len(str(p)) :] for e in rep.examples] == [
        f":5: column md5: expected 32 hex characters (md5), got '{MD5}0'",
        ":6: column size: expected a non-negative integer, got 'x'",
        f":7: expected 4 fields (size,md5,sha1,filename), got 2: '3,{MD5}'",
        ":8: no digest (column md5, column sha1: all empty)",
        f":9: column sha1: expected 40 hex characters (sha1), got non-hex text "
        f"'{SHA1[:-1]}Z'",
    ]


def test_hashdeep_error_lines_in_later_chunks(tmp_path, monkeypatch):
    lines = [f"{i},{MD5},{SHA1},f{i}" for i in range(40)]
    lines[33] = f"33,{MD5},bad,f"
    p = write(tmp_path / "h.txt", HD + "\n".join(lines) + "\n")
    monkeypatch.setattr(_hashdeep, "CHUNK_SIZE", 200)
    raises(p, ":37: column sha1: expected 40 hex characters (sha1), got 'bad'")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "%%%% HASHDEEP-1.0\n",
            ":1: truncated hashdeep header: no '%%%% <columns>' "
            "line after '%%%% HASHDEEP-1.0'",
        ),
        (
            f"%%%% HASHDEEP-1.0\n## c\n1,{MD5},x\n",
            f":1: truncated hashdeep header: no '%%%% <columns>' line after "
            f"'%%%% HASHDEEP-1.0' (line 3 is '1,{MD5},x')",
        ),
        (
            f"%%%% size,md5,filename\n1,{MD5},x\n",
            ":1: expected the hashdeep header '%%%% HASHDEEP-1.0', got "
            "'%%%% size,md5,filename'",
        ),
        (
            "%%%% HASHDEEP-1.0\n%%%% size,tiger,filename\n",
            ":2: hashdeep column line '%%%% size,tiger,filename' declares no md5, sha1 "
            "or sha256 column",
        ),
        (
            "%%%% HASHDEEP-1.0\n%%%% size,md5,md5\n",
            ":2: bad hashdeep column line '%%%% size,md5,md5' (empty or repeated "
            "column names)",
        ),
        (
            HD + f"1,{MD5},{SHA1},a\n%%%% size,md5\n",
            ":5: unexpected hashdeep header line '%%%% size,md5' (expected "
            "'%%%% HASHDEEP-1.0' to start a new header)",
        ),
    ],
)
def test_hashdeep_bad_headers(tmp_path, text, message):
    p = write(tmp_path / "h.txt", text)
    raises(p, message, input_format="hashdeep")
    raises(p, message, input_format="hashdeep", skip_invalid=True)  # fatal


# ---------------------------------------------------------------------------
# bad input: VICS


def _vics_file(tmp_path, media, name="v.json") -> Path:
    p = tmp_path / name
    write_vics(p, media)
    return p


def test_vics_bad_records(tmp_path):
    media = [
        {"MediaID": 1, "MD5": MD5},
        {"MediaID": 2, "MD5": "xyz"},
        {"MediaID": 3, "MD5": MD5, "MediaFiles": [{"SHA1": SHA1}, {"SHA1": MD5}]},
        {"MediaID": 4, "MD5": MD5, "Category": "high"},
        {"MediaID": 5, "MD5": MD5, "IsDistributed": "yes"},
        ["not", "a", "Media"],
        {"MediaID": 7, "MD5": MD5, "MediaFiles": {"MD5": MD5}},
        {"MediaID": 8, "MD5": 12345},
        {"MediaID": 9, "MD5": MD5, "MediaFiles": ["x"]},
        {"MD5": MD5B, "MediaSize": -1},
        {"MediaID": 11, "SHA1": SHA1, "MediaSize": 3},
    ]
    p = _vics_file(tmp_path, media)
    raises(
        p, ": value[1] (MediaID 2): MD5: expected 32 hex characters (md5), got 'xyz'"
    )
    got, rep = read(p, skip_invalid=True)
    assert got == [
        rec(MD5),
        rec(MD5),
        rec(sha1=SHA1),
        rec(MD5),
        rec(MD5),
        rec(sha1=SHA1, size=3),
    ]
    assert rep.invalid == 9
    assert [e[len(str(p)) :] for e in rep.examples] == [
        ": value[1] (MediaID 2): MD5: expected 32 hex characters (md5), got 'xyz'",
        f": value[2] (MediaID 3) MediaFiles[1]: SHA1: expected 40 hex characters "
        f"(sha1), got 32 (an md5 digest?) '{MD5}'",
        ": value[3] (MediaID 4): Category: expected an integer, got str 'high'",
        ": value[4] (MediaID 5): IsDistributed: expected true or false, got str 'yes'",
        ": value[5]: expected a Media object, got list ['not', 'a', 'Media']",
        ": value[6] (MediaID 7): MediaFiles: expected an array, got dict "
        f"{{'MD5': '{MD5}'}}",
        ": value[7] (MediaID 8): MD5: expected a hex string, got int 12345",
        ": value[8] (MediaID 9) MediaFiles[0]: expected a MediaFile object, got "
        "str 'x'",
        ": value[9]: size: expected a non-negative integer, got -1",
    ]


_V = '{"odata.metadata": "x", "value": ['
_M = f'{{"MD5": "{MD5}"}}'


@pytest.mark.parametrize(
    "text, message",
    [
        # malformed JSON (columns are 1-based; the end of the file is one past)
        (
            _V + _M + " " + _M + "]}",
            f": malformed JSON at line 1 column "
            f"{len(_V + _M) + 2}: expected ',' or ']' after value[0], got "
            f'\'{{"MD5": "0123456789a\'',
        ),
        (
            _V + _M + ", " + _M[:-1] + ",}]}",
            f": value[1]: malformed JSON at line 1 "
            f"column {len(_V + _M + _M) + 3}: Expecting property name enclosed in "
            f"double quotes",
        ),
        (
            _V + _M + ', {"MD5": "0123',
            f": value[1]: malformed JSON at line 1 column "
            f"{len(_V + _M) + 11}: Unterminated string starting at",
        ),
        (
            _V + _M + "]",
            f": malformed JSON at line 1 column {len(_V + _M) + 2}: "
            f"expected ',' or '}}', got the end of the file",
        ),
        (
            _V + _M + "\n]}\n[]",
            ": malformed JSON at line 3 column 1: data after the "
            "end of the JSON document",
        ),
        (
            _V + _M + ", tru]}",
            f": value[1]: malformed JSON at line 1 column "
            f"{len(_V + _M) + 3}: expected a value",
        ),
        # wrong shape
        (
            '{"odata.metadata": "x", "value": {"MD5": "x"}}',
            ": malformed JSON at line 1 column 34: expected the \"value\" array ('[')",
        ),
        (
            '{"odata.metadata": "x", "values": []}',
            ': no "value" array of Media in the JSON object (not a VICS export?)',
        ),
        (
            '{"odata.metadata": "x", "value": [], "value": []}',
            ': repeated "value" array',
        ),
        (
            '["odata.metadata"]',
            ": malformed JSON at line 1 column 1: expected a JSON "
            "object (a VICS export) at the top level, got '[\"odata.metadata\"]'",
        ),
        (
            '{"odata.metadata": "x", 12: []}',
            ": malformed JSON at line 1 column 25: "
            "expected a property name in double quotes",
        ),
    ],
)
def test_vics_broken_documents(tmp_path, text, message):
    p = write(tmp_path / "v.json", text)
    for skip in (False, True):  # the document cannot be read on: fatal
        raises(p, message, input_format="vics", skip_invalid=skip)


def test_vics_syntax_error_line_and_column(tmp_path):
    media, _ = make_vics(20, 13)
    p = tmp_path / "v.json"
    write_vics(p, media, indent=1)
    text = p.read_text()
    pos = text.index('"MediaID": 1010')
    text = text[:pos] + text[pos:].replace(",", ";", 1)
    p.write_text(text)
    line = text[:pos].count("\n") + 1
    with pytest.raises(
        InputError,
        match=re.escape(
            f"{p}: value[10]: malformed JSON at line {line} column 17: Expecting "
            f"',' delimiter"
        ),
    ):
        list(iter_records(p))


def test_vics_earlier_bad_record_before_syntax_error(tmp_path):
    p = write(
        tmp_path / "v.json",
        '{"odata.metadata": "x", "value": [{"MediaID": 1, "MD5": "bad"}, '
        '{"MD5": 1 2}]}',
    )
    raises(
        p, ": value[0] (MediaID 1): MD5: expected 32 hex characters (md5), got 'bad'"
    )


# ---------------------------------------------------------------------------
# bad input: SQLite


def test_sqlite_bad_files(tmp_path):
    p = write(tmp_path / "x.db", "MD5\n")
    raises(
        p,
        ": not an SQLite database (no 'SQLite format 3' header), although "
        "named like one",
    )
    raises(
        p,
        ": not an SQLite database (no 'SQLite format 3' header)",
        input_format="sqlite",
    )
    p = write(tmp_path / "y.db", b"SQLite format 3\x00" + b"\x07" * 2000)
    with pytest.raises(InputError, match=re.escape(f"{p}: ")):
        list(iter_records(p))
    p = tmp_path / "z.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE PKG (a)")
    con.execute("CREATE TABLE OS (b)")
    con.commit()
    con.close()
    raises(p, ": no FILE table (not an NSRL RDSv3 database?); tables: OS, PKG")
    raises(
        p,
        ": no FILE table (not an NSRL RDSv3 database?); tables: OS, PKG",
        skip_invalid=True,
    )
    p = tmp_path / "w.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE FILE (crc32 TEXT, file_name TEXT)")
    con.commit()
    con.close()
    raises(
        p, ": table FILE has no sha256, sha1 or md5 column (columns: crc32, file_name)"
    )


def test_sqlite_bad_rows(tmp_path):
    t = make_table(30, 14)
    p = tmp_path / "n.db"
    write_nsrl(p, t, not_null=False)
    con = sqlite3.connect(p)
    con.execute("UPDATE FILE SET md5 = 'XYZ' WHERE rowid = 5")
    con.execute("UPDATE FILE SET file_size = -3 WHERE rowid = 17")
    con.execute(
        "UPDATE FILE SET sha256 = NULL, sha1 = NULL, md5 = NULL WHERE rowid = 20"
    )
    con.commit()
    con.close()
    raises(p, ": FILE rowid 5: column md5: expected 32 hex characters (md5), got 'XYZ'")
    got, rep = read(p, skip_invalid=True, batch_size=8)
    want = [
        r
        for i, r in enumerate(t.records(ALGOS, category_prefix=None), 1)
        if i not in (5, 17, 20)
    ]
    assert got == want
    assert rep.invalid == 3
    assert [e[len(str(p)) :] for e in rep.examples] == [
        ": FILE rowid 5: column md5: expected 32 hex characters (md5), got 'XYZ'",
        ": FILE rowid 17: column file_size: expected a non-negative integer, got -3",
        ": FILE rowid 20: no digest (column md5, column sha1, column sha256: all "
        "empty)",
    ]


# ---------------------------------------------------------------------------
# empty files, arguments, the batch type


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "sqlite"])
@pytest.mark.parametrize("content", ["", "\n\n", "\r\n  \r\n"], ids=["0", "lf", "crlf"])
def test_empty_files(tmp_path, fmt, content):
    p = write(tmp_path / "empty", content)
    got, rep = read(p, input_format=fmt)
    assert got == [] and rep.records == 0 and rep.invalid == 0


def test_empty_containers(tmp_path):
    assert read(write(tmp_path / "a.csv", "md5\n"))[0] == []
    assert read(write(tmp_path / "b.hd", HD))[0] == []
    p = write(tmp_path / "c.json", '{"odata.metadata": "x", "value": []}')
    assert read(p)[0] == []
    p = tmp_path / "d.db"
    write_nsrl(p, make_table(0, 1))
    assert read(p)[0] == []
    p = write(tmp_path / "e.db", b"")
    raises(
        p,
        ": not an SQLite database (no 'SQLite format 3' header), although "
        "named like one",
    )


def test_arguments(tmp_path):
    p = write(tmp_path / "a.txt", MD5 + "\n")
    with pytest.raises(ValueError, match="unknown input_format 'xml'"):
        list(iter_records(p, input_format="xml"))
    with pytest.raises(ValueError, match="apply to CSV input only"):
        list(iter_records(p, columns={"md5": "x"}))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(iter_records(p, batch_size=0))
    with pytest.raises(ValueError, match="unknown key 'crc32'"):
        list(iter_records(p, input_format="csv", columns={"crc32": "x"}))
    with pytest.raises(ValueError, match="label prefix"):
        list(iter_records(p, input_format="csv", label_columns={"a:b": "x"}))
    with pytest.raises(TypeError):
        list(iter_records(p, input_format="csv", columns=["md5"]))


def test_record_batch_type():
    b = RecordBatch.empty(3)
    assert len(b) == 3
    digests, present = b.digests("sha1")
    assert digests.shape == (3, 20) and not present.any()
    assert (b.size == -1).all() and b.labels == {}
    with pytest.raises(ValueError):
        b.digests("crc32")


def test_report_counts(tmp_path):
    t = make_table(100, 15, missing=0.5)
    p = tmp_path / "r.csv"
    expected = write_csv(p, t, size_name=None)
    got, rep = read(p)
    assert got == expected
    for algo in ALGOS:
        assert rep.digests[algo] == sum(getattr(r, algo) is not None for r in got)
    assert rep.sized == 0 and rep.path == str(p) and rep.format == "csv"


def test_digests_any_case_raw_output(tmp_path):
    mixed = MD5[:16].upper() + MD5[16:]
    p = write(tmp_path / "c.csv", f"md5\n{MD5.upper()}\n{MD5}\n{mixed}\n")
    got, _ = read(p)
    assert got == [rec(MD5)] * 3
    assert np.array_equal(
        next(iter_records(p)).md5[0], np.frombuffer(bytes.fromhex(MD5), np.uint8)
    )


def test_vics_json_module_agrees(tmp_path):
    """The streaming reader sees the same Media as json.load."""
    media, expected = make_vics(60, 16)
    p = tmp_path / "v.json"
    write_vics(p, media, indent=3)
    assert json.loads(p.read_text())["value"] == media
    assert read(p)[0] == expected


# ---------------------------------------------------------------------------
# the vectorised readers agree with the line-by-line ones


def _messy_csv(rng: np.random.Generator, n: int) -> str:
    """CSV with every kind of irregularity the fast reader must hand over."""
    out = ["name,MD5,SHA1,Size,Cat\n"]
    for i in range(n):
        md5 = rng.integers(0, 256, 16, dtype=np.uint8).tobytes().hex()
        sha1 = rng.integers(0, 256, 20, dtype=np.uint8).tobytes().hex()
        name, size, cat = f"f{i}", str(int(rng.integers(0, 10**12))), str(i % 3)
        end = "\r\n" if rng.random() < 0.3 else "\n"
        k = int(rng.integers(0, 40))
        if k == 0:
            md5 = f'"{md5.upper()}"'
        elif k == 1:
            sha1 = f" {sha1} "
        elif k == 2:
            md5 = ""
        elif k == 3:
            md5 = sha1 = ""
        elif k == 4:
            md5 = md5[:-1] + "x"
        elif k == 5:
            sha1 = sha1[:-2]
        elif k == 6:
            name += ",extra"
        elif k == 7:
            name = f'"a, ""quoted"" {i}"'
        elif k == 8:
            size = f" {size}"
        elif k == 9:
            size = "-1"
        elif k == 10:
            size = ""
        elif k == 11:
            out.append(end)
        elif k == 12:
            cat = f' " {cat}" '
        elif k == 13:
            name = f'"two\nlines {i}"'
        elif k == 14:
            cat = ""
        elif k == 15:
            out.append(f"{md5},{sha1}{end}")
            continue
        elif k == 16:
            size = "1" * 25
        elif k == 17:
            cat = f'"{cat}"'
        out.append(f"{name},{md5},{sha1},{size},{cat}{end}")
    return "".join(out)


def _messy_hashdeep(rng: np.random.Generator, n: int) -> str:
    out = ["%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## x\n"]
    for i in range(n):
        md5 = rng.integers(0, 256, 16, dtype=np.uint8).tobytes().hex()
        sha = rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()
        size, name = str(int(rng.integers(0, 10**9))), f"./d/f,{i}"
        end = "\r\n" if rng.random() < 0.3 else "\n"
        k = int(rng.integers(0, 30))
        if k == 0:
            md5 = md5.upper()
        elif k == 1:
            md5 = ""
        elif k == 2:
            md5 = sha = ""
        elif k == 3:
            sha = sha[:-1] + "g"
        elif k == 4:
            size = f"  {size}"
        elif k == 5:
            out.append("## comment" + end)
        elif k == 6:
            out.append(end)
        elif k == 7:
            out.append(f"{size},{md5}{end}")
            continue
        elif k == 8:
            size = "x"
        elif k == 9:
            md5 = " " + md5
        out.append(f"{size},{md5},{sha},{name}{end}")
    return "".join(out)


def _outcome(path, **kw):
    """(records, invalid, examples) with skip_invalid, and the first error."""
    try:
        list(iter_records(path, **kw))
        first = None
    except InputError as e:
        first = str(e)
    report = ImportReport()
    recs = records_of(iter_records(path, skip_invalid=True, report=report, **kw))
    return recs, report.invalid, report.examples, first


@pytest.mark.parametrize("seed", range(6))
def test_fast_readers_agree_with_slow(tmp_path, monkeypatch, seed):
    from hashlookup.importers import _fast

    rng = np.random.default_rng(1000 + seed)
    csv_path = write(tmp_path / "m.csv", _messy_csv(rng, 300))
    hd_path = write(tmp_path / "m.hd", _messy_hashdeep(rng, 300))
    cases = [
        (csv_path, {"label_columns": {"cat": "Cat"}, "batch_size": bs})
        for bs in (3, 1000)
    ] + [(hd_path, {"batch_size": bs}) for bs in (3, 1000)]
    fast = [_outcome(p, **kw) for p, kw in cases]
    monkeypatch.setattr(_csv, "CHUNK_SIZE", int(rng.integers(50, 5000)))
    monkeypatch.setattr(_hashdeep, "CHUNK_SIZE", int(rng.integers(50, 5000)))
    small_chunks = [_outcome(p, **kw) for p, kw in cases]
    monkeypatch.setattr(_fast, "split_fields", lambda *a, **k: None)
    slow = [_outcome(p, **kw) for p, kw in cases]
    for f, c, s in zip(fast, small_chunks, slow):
        assert f == s
        assert c == s
        assert s[1] > 0 and s[3] is not None and len(s[0]) > 200


def test_sqlite_fast_reader_agrees_with_slow(tmp_path, monkeypatch):
    from hashlookup.importers import _nsrl

    t = make_table(100, 17)
    p = tmp_path / "n.db"
    write_nsrl(p, t, not_null=False)
    con = sqlite3.connect(p)
    con.execute("UPDATE FILE SET md5 = lower(md5) WHERE rowid % 3 = 0")
    con.execute("UPDATE FILE SET sha1 = NULL WHERE rowid % 7 = 0")
    con.execute("UPDATE FILE SET file_size = 'x' WHERE rowid = 50")
    con.execute("UPDATE FILE SET md5 = md5 || '|' WHERE rowid = 60")
    con.execute("DELETE FROM FILE WHERE rowid BETWEEN 20 AND 45")
    con.commit()
    con.close()
    fast = [_outcome(p, batch_size=bs) for bs in (1, 9, 1000)]
    monkeypatch.setattr(_nsrl, "_fast_batch", lambda *a: None)
    slow = [_outcome(p, batch_size=bs) for bs in (1, 9, 1000)]
    assert fast == slow
    assert fast[0][1] == 2 and len(fast[0][0]) == 72


def test_csv_labels_that_cannot_be_labels(tmp_path):
    long = "x" * 200
    p = write(
        tmp_path / "l.csv",
        f'md5,tag\n{MD5},ok\n{MD5},"two\nlines"\n{MD5},{long}\n{MD5},\x07\n{MD5B},ok\n',
    )
    raises(
        p,
        ":3: column tag: label 'tag:two\\nlines': expected at most 200 "
        "printable characters",
        label_columns={"tag": "tag"},
    )
    got, rep = read(p, label_columns={"tag": "tag"}, skip_invalid=True)
    assert got == [rec(MD5, labels=["tag:ok"]), rec(MD5B, labels=["tag:ok"])]
    assert rep.invalid == 3
    assert rep.examples[1] == (
        f"{p}:5: column tag: label 'tag:{'x' * 76}...': "
        f"expected at most 200 printable characters"
    )


def test_vics_utf16(tmp_path):
    media, expected = make_vics(20, 18)
    p = tmp_path / "v.json"
    write_vics(p, media)
    p.write_bytes(b"\xff\xfe" + p.read_text().encode("utf-16-le"))
    assert detect_format(p) == "vics"
    assert read(p)[0] == expected


def test_hashdeep_overlong_line(tmp_path):
    p = write(
        tmp_path / "h.txt",
        HD
        + f"1,{MD5},{SHA1},a\n"
        + f"2,{MD5},{SHA1},"
        + "n" * (1 << 20)
        + f"\n3,{MD5B},{SHA1},c\n",
    )
    raises(p, ":5: line longer than 1048576 bytes")
    got, rep = read(p, skip_invalid=True)
    assert got == [rec(MD5, SHA1, size=1), rec(MD5B, SHA1, size=3)]
    assert rep.invalid == 1


def test_csv_field_too_large(tmp_path, monkeypatch):
    import csv

    monkeypatch.setattr(_csv, "FIELD_LIMIT", 1000)
    old = csv.field_size_limit(1000)
    try:
        p = write(tmp_path / "c.csv", f"md5,name\n{MD5},a\n{MD5},{'n' * 2000}\n")
        raises(p, ":3: field larger than field limit (1000)")
    finally:
        csv.field_size_limit(old)
