"""CIRCL's own client against `hlookup serve`: the calls and assertions of
PyHashlookup's test suite (tests/testing.py in its repository, read, not
copied), made through the installed `pyhashlookup` against a real server
on loopback over a dataset built from an NSRL RDS 2.x set.

The set is a directory in NIST's layout (NSRLFile.txt, NSRLOS.txt,
NSRLProd.txt, NSRLMfg.txt, version.txt) holding the records that suite
queries, with the values it asserts (CRC32s, the MfgCode of an operating
system, MD5s); every other field is synthetic (fixed seed).  RDS 2.x has no
SHA-256 column, so, as CIRCL does, the SHA-256 the suite looks up comes from
a second source (SHA-1, SHA-256 pairs) that the build merges by the shared
SHA-1.  The suite's DNS lookups go to CIRCL's DNS service: not ours, not
tested.  Also here: the full single-lookup shape (codes expanded into their
table rows, trust), flat bulk records, /bulk/sha256, /stats/top and /info.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pyhashlookup
import pytest
import requests
from pyhashlookup import Hashlookup, PyHashlookupError
from pyhashlookup import api as pyhashlookup_api

from hashlookup import build_dataset, open_dataset
from server_utils import Server

pytestmark = pytest.mark.timeout(300)

# What PyHashlookup's suite queries and asserts: digest -> fields.
MD5_8ED4 = "8ED4B4ED952526D89899E723F3488DE4"
MD5_6E2F = "6E2F8616A01725DCB37BED0A2495AEB2"
MD5_3444 = "344428FA4BA313712E4CA9B16D089AC4"
SHA1_FFFFFD = "FFFFFDAC1B1B4C513896C805C2C698D9688BE69F"
SHA1_FFFFFF = "FFFFFF4DB8282D002893A9BAF00E9E9D4BA45E65"
SHA1_FFFFFE = "FFFFFE4C92E3F7282C7502F1734B243FA52326FB"
SHA256_301C = "301C9EC7A9AADEE4D745E8FD4FA659DAFBBCC6B75B9FF491D14CBBDD840814E9"
MD5_OF_301C = "34D827A288FA51B93297EF2A8A43B769"
OS_MFG = "1006"  # the MfgCode of the OS of MD5_6E2F's record

# (sha1, md5, crc32, OpSystemCode) of the records; None: made up here
KNOWN = [
    ("00000903319A8CE18A03DFA22C07C6CA43602061", MD5_6E2F, "E774FD92", "358"),
    (None, MD5_8ED4, "7A5407CA", "362"),
    (None, MD5_3444, "7516A25F", "362"),
    (SHA1_FFFFFD, "131312A96CAD4ACAA7E2631A34A0D47C", "CBD64CD9", "362"),
    (SHA1_FFFFFF, "559D049F44942683093A91BA19D0AF54", "8654F11A", "362"),
    (SHA1_FFFFFE, None, "8E51A269", "362"),
    (None, MD5_OF_301C, "0BADF00D", "362"),
]
FILE_HEADER = (
    '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode",'
    '"OpSystemCode","SpecialCode"'
)
OS_ROWS = {
    "358": ["358", "Synthetic OS", "1.0", OS_MFG],
    "362": ["362", "Other OS", "2", "1010"],
}
PROD_ROWS = {
    "190": ["190", "Synthetic Suite", "1.0", "358", "1006", "English", "Utility"],
    "4477": ["4477", 'Other "Suite", Pro', "9", "362", "1010", "French", "Game"],
}


def _hex(rnd: random.Random, n: int) -> str:
    return rnd.randbytes(n).hex().upper()


def _csv_line(values: list[str]) -> str:
    return ",".join('"' + v.replace('"', '""') + '"' for v in values)


def make_set(root: Path) -> dict[str, dict]:
    """The RDS 2.x set and the SHA-256 supplement; per SHA-1 the fields its
    record must answer with."""
    rnd = random.Random(2024)
    root.mkdir()
    lines = [FILE_HEADER]
    records: dict[str, dict] = {}
    rows = list(KNOWN) + [(None, None, None, "362")] * 40  # and some others
    for i, (sha1, md5, crc, os_code) in enumerate(rows):
        sha1 = sha1 or _hex(rnd, 20)
        md5 = md5 or _hex(rnd, 16)
        crc = crc or _hex(rnd, 4)
        product = "190" if os_code == "358" else "4477"
        special = "S" if i % 4 == 1 else ""
        name, size = f"file {i}, (v2).dll", str(rnd.randrange(1, 1 << 30))
        lines.append(
            f'"{sha1}","{md5}","{crc}","{name}",{size},{product},"{os_code}",'
            f'"{special}"'
        )
        rec = {
            "SHA-1": sha1,
            "MD5": md5,
            "CRC32": crc,
            "FileName": name,
            "FileSize": size,
            "ProductCode": product,
            "OpSystemCode": os_code,
        }
        if special:
            rec["SpecialCode"] = special
        records[sha1] = rec
    (root / "NSRLFile.txt").write_text("\r\n".join(lines) + "\r\n", newline="")
    (root / "NSRLOS.txt").write_text(
        "\r\n".join(
            [_csv_line(["OpSystemCode", "OpSystemName", "OpSystemVersion", "MfgCode"])]
            + [_csv_line(r) for r in OS_ROWS.values()]
        )
        + "\r\n",
        newline="",
    )
    prod_header = [
        "ProductCode",
        "ProductName",
        "ProductVersion",
        "OpSystemCode",
        "MfgCode",
        "Language",
        "ApplicationType",
    ]
    (root / "NSRLProd.txt").write_text(
        "\r\n".join(
            [_csv_line(prod_header)] + [_csv_line(r) for r in PROD_ROWS.values()]
        )
        + "\r\n",
        newline="",
    )
    (root / "NSRLMfg.txt").write_text(
        '"MfgCode","MfgName"\r\n"1006","Synthetic Software"\r\n"1010","Other"\r\n',
        newline="",
    )
    (root / "version.txt").write_text("RDS Version 2.99 - synthetic\r\n", newline="")
    return records


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("circl-client")
    records = make_set(d / "rds")
    sha1_of_301c = next(s for s, r in records.items() if r["MD5"] == MD5_OF_301C)
    records[sha1_of_301c]["SHA-256"] = SHA256_301C
    supplement = d / "sha256.tsv"
    supplement.write_text(f"SHA-1\tSHA-256\n{sha1_of_301c}\t{SHA256_301C.lower()}\n")
    path = d / "nsrl.hld"
    build_dataset({"nsrl": d / "rds", "sha256": supplement}, path)
    with (
        Server(path, "--no-auth", "--rate-limit", "0", workdir=d, workers=1) as srv,
        open_dataset(path) as ds,
    ):
        yield {"url": srv.url, "records": records, "ds": ds}


@pytest.fixture
def client(env):
    return Hashlookup(env["url"])


def test_suite_lookups(client):
    """PyHashlookup's test_lookup: the same calls, the same assertions."""
    assert client.lookup(MD5_8ED4)["CRC32"] == "7A5407CA"
    assert client.lookup(SHA1_FFFFFD)["CRC32"] == "CBD64CD9"
    assert client.lookup(SHA256_301C)["MD5"] == MD5_OF_301C
    bulk_md5 = client.lookup([MD5_6E2F, MD5_8ED4, MD5_3444])
    assert [r["CRC32"] for r in bulk_md5] == ["E774FD92", "7A5407CA", "7516A25F"]
    bulk_sha1 = client.lookup([SHA1_FFFFFD, SHA1_FFFFFF, SHA1_FFFFFE])
    assert [r["CRC32"] for r in bulk_sha1] == ["CBD64CD9", "8654F11A", "8E51A269"]
    with pytest.raises(PyHashlookupError):
        client.lookup("foo")
    with pytest.raises(PyHashlookupError):
        client.lookup(["bar", "baz"])
    with pytest.raises(PyHashlookupError):
        client.lookup(1)  # type: ignore[call-overload]


def test_suite_info_top_and_url(client, env):
    """test_info, test_top, test_fix_url (a URL without a scheme)."""
    info = client.info()
    assert info["nsrl-version"] == "RDS Version 2.99 - synthetic"
    assert client.top() == {"nx": [], "exist": []}
    bare = Hashlookup(env["url"].removeprefix("http://"))
    assert bare.lookup(MD5_8ED4)["CRC32"] == "7A5407CA"


@pytest.mark.parametrize(
    ("argv", "check"),
    [
        (
            ["--query", MD5_6E2F, MD5_8ED4],
            lambda r: [x["CRC32"] for x in r] == ["E774FD92", "7A5407CA"],
        ),
        (["--query", MD5_6E2F], lambda r: r["OpSystemCode"]["MfgCode"] == OS_MFG),
        (["--info"], lambda r: "nsrl-version" in r),
        (["--top"], lambda r: "nx" in r),
    ],
)
def test_suite_cli(env, monkeypatch, capsys, argv, check):
    """test_cli_*: pyhashlookup's command line, its default URL pointed at
    our server (the suite mocks argparse; real arguments here)."""
    monkeypatch.setattr(
        pyhashlookup_api.Hashlookup.__init__, "__defaults__", (env["url"], None)
    )
    monkeypatch.setattr(sys, "argv", ["pyhashlookup", *argv])
    pyhashlookup.main()
    assert check(json.loads(capsys.readouterr().out))


def test_single_shape_is_circls(client, env):
    """Every field of each record; codes expanded into their rows (every
    column of the NSRL table), trust 50, our hashlookup: facts."""
    ds = env["ds"]
    os_cols = ["OpSystemCode", "OpSystemName", "OpSystemVersion", "MfgCode"]
    prod_cols = [
        "ProductCode",
        "ProductName",
        "ProductVersion",
        "OpSystemCode",
        "MfgCode",
        "Language",
        "ApplicationType",
    ]
    for sha1, rec in env["records"].items():
        for digest in (sha1, rec["MD5"], rec.get("SHA-256")):
            if digest is None:
                continue
            got = client.lookup(digest.lower())
            want = dict(rec)
            want["OpSystemCode"] = dict(zip(os_cols, OS_ROWS[rec["OpSystemCode"]]))
            want["ProductCode"] = dict(zip(prod_cols, PROD_ROWS[rec["ProductCode"]]))
            want["hashlookup:trust"] = 50
            labels = ["source:nsrl"] + (["source:sha256"] if "SHA-256" in rec else [])
            want["hashlookup:labels"] = labels
            want["hashlookup:dataset"] = ds.name
            want["hashlookup:generation"] = ds.generation
            want["hashlookup:built"] = ds.built
            assert got == want, digest


def test_bulk_is_flat_and_sha256(env):
    """Bulk records keep the codes as strings and have no trust (as CIRCL's);
    /bulk/sha256 answers like the others; misses and bad items are left
    out."""
    url = env["url"]
    by_sha1 = env["records"]
    sha1s = list(by_sha1)[::3]
    r = requests.post(
        f"{url}/bulk/sha1", json={"hashes": [*sha1s, "0" * 40, "zz"]}, timeout=30
    )
    assert r.status_code == 200
    got = r.json()
    assert [g["SHA-1"] for g in got] == sha1s
    for g in got:
        rec = by_sha1[g["SHA-1"]]
        assert g["OpSystemCode"] == rec["OpSystemCode"]
        assert g["ProductCode"] == rec["ProductCode"]
        assert g["FileName"] == rec["FileName"]
        assert "hashlookup:trust" not in g
    r = requests.post(
        f"{url}/bulk/sha256", json={"hashes": [SHA256_301C.lower(), "1" * 64]}
    )
    assert r.status_code == 200
    [hit] = r.json()
    assert hit["MD5"] == MD5_OF_301C and hit["SHA-256"] == SHA256_301C


def test_info_fields(env):
    r = requests.get(env["url"] + "/info", timeout=30).json()
    assert r["nsrl-version"] == "RDS Version 2.99 - synthetic"
    assert r["records"] == len(env["records"])
    ds = env["ds"]
    assert ds.nsrl_version == r["nsrl-version"]
    assert set(ds.code_tables) == {"ProductCode", "OpSystemCode", "MfgCode"}
    assert dict(ds.code_tables["MfgCode"]["1006"]) == {
        "MfgCode": "1006",
        "MfgName": "Synthetic Software",
    }


def test_answerer_paths(env, tmp_path):
    """A dataset without attributes keeps the C renderer as its answerer
    (the same object SingleHits makes); one with attributes answers hits in
    the full shape (audit line included) and the rest as the C path does."""
    from hashlookup.server._check import SingleHits
    from hashlookup.server._circl import CirclSingleHits
    from hashlookup.server._render import ANSWER_INVALID, ANSWER_MISS

    src = tmp_path / "plain.txt"
    src.write_text(MD5_8ED4 + "\n")
    build_dataset([src], tmp_path / "plain.hld")
    with open_dataset(tmp_path / "plain.hld") as ds:
        ours, theirs = CirclSingleHits(ds), SingleHits(ds)
        ours.prepare()
        theirs.prepare()
        assert type(ours.answer) is type(theirs.answer)
        assert type(ours.answer.__self__).__name__ == "HitRenderer"
        assert ours.answer("md5", MD5_8ED4) == theirs.answer("md5", MD5_8ED4)
    # closed: the renderer's open check still runs before the table's kernel
    for digest in (MD5_8ED4, "0" * 32):
        with pytest.raises(ValueError, match="closed"):
            ours.answer("md5", digest)
    ds = env["ds"]
    hits = CirclSingleHits(ds)
    hits.prepare()
    audit = bytearray()
    got = hits.answer("md5", MD5_8ED4.lower(), audit, b'"who":null,"digest":"')
    assert json.loads(got)["OpSystemCode"]["OpSystemName"] == "Other OS"
    line = json.loads(audit)
    assert line["digest"] == MD5_8ED4.lower() and line["record"]["status"] == "hit"
    assert hits.answer("md5", "0" * 32, audit, b"x") == ANSWER_MISS
    assert hits.answer("md5", "z" * 32) == ANSWER_INVALID
    assert audit.count(b"\n") == 1  # misses are never logged
    # the answer is single_record's, for every record
    from hashlookup.server._circl import single_record

    st = ds.current()
    for sha1 in env["records"]:
        want = single_record(ds.lookup(sha1), ds.name, st.code_tables)
        assert json.loads(hits.answer("sha1", sha1)) == want


def test_trust_and_reserved_names(tmp_path):
    """KnownMalicious lowers the trust by 20 (CIRCL's rule); attributes named
    as our own keys are not shown, in single and bulk answers alike."""
    from hashlookup.server._circl import CirclSingleHits, bulk_json, single_record

    src = tmp_path / "l.csv"
    src.write_text(
        "md5,KnownMalicious,hashlookup:trust,Note\n"
        f"{MD5_8ED4},yes,99,a\n{MD5_6E2F},,7,\n"
    )
    out = tmp_path / "l.hld"
    build_dataset([src], out, attributes=["KnownMalicious", "hashlookup:trust", "Note"])
    with open_dataset(out) as ds:
        hits = CirclSingleHits(ds)
        hits.prepare()
        bad = json.loads(hits.answer("md5", MD5_8ED4))
        assert bad["hashlookup:trust"] == 30 and bad["Note"] == "a"
        assert bad["KnownMalicious"] == "yes"
        good = json.loads(hits.answer("md5", MD5_6E2F))
        assert good["hashlookup:trust"] == 50 and "Note" not in good
        m = ds.lookup(MD5_6E2F)
        assert single_record(m, ds.name, ds.code_tables) == good
        assert "hashlookup:trust" not in json.loads(bulk_json(m, ds.name))
