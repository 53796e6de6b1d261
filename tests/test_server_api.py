"""The lookup service end to end: a real `hashlookup serve` (2 workers) on
loopback, driven by the real PyPI client `pyhashlookup` and by plain HTTP.

Every answer is checked against an oracle made from the generated rows
(server_utils.make_dataset) and against the library (Dataset.lookup).
Everything is synthetic (fixed seeds).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests
from pyhashlookup import Hashlookup

import hashlookup
from hashlookup.builders.bloom import read_bloom
from server_utils import (
    ALGS,
    Server,
    add_key,
    algorithm_of,
    bearer,
    circl_expected,
    make_dataset,
    random_misses,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("server-api")
    path, oracle = make_dataset(d)
    keys = d / "keys.json"
    token = add_key(keys, "acme")
    audit = d / "audit.jsonl"
    with Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--audit-log",
        str(audit),
        "--reload-interval",
        "0.2",
        workdir=d,
    ) as srv:
        ds = hashlookup.open_dataset(path)
        yield {
            "srv": srv,
            "url": srv.url,
            "token": token,
            "oracle": oracle,
            "ds": ds,
            "audit": audit,
            "path": path,
            "dir": d,
        }
        ds.close()


@pytest.fixture(scope="module")
def client(env):
    """pyhashlookup, unchanged; the key goes in the URL (Basic credentials)."""
    url = env["url"].replace("http://", f"http://key:{env['token']}@")
    return Hashlookup(root_url=url)


def _by_alg(oracle: dict, alg: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    pool = sorted(h for h in oracle if algorithm_of(h) == alg)
    return [pool[i] for i in rng.choice(len(pool), n, replace=False)]


def _expect(env, digest: str) -> dict:
    ds = env["ds"]
    out = circl_expected(env["oracle"][digest], ds.name, ds.generation)
    out["hashlookup:built"] = ds.built
    return out


# ---------------------------------------------------------------- pyhashlookup


@pytest.mark.parametrize("alg", ALGS)
def test_pyhashlookup_single_lookups(env, client, alg):
    lookup = getattr(client, f"{alg}_lookup")
    for digest in _by_alg(env["oracle"], alg, 40, seed=1):
        for spelled in (digest, digest.upper()):
            got = lookup(spelled)
            assert got == _expect(env, digest)
            m = env["ds"].lookup(digest)  # the library agrees
            assert got["hashlookup:labels"] == list(m.labels)
            assert got.get("FileSize") == (None if m.size is None else str(m.size))
        assert client.lookup(digest) == _expect(env, digest)
    for miss in random_misses(alg, 20, seed=2):
        assert miss not in env["oracle"]
        name = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}[alg]
        assert lookup(miss) == {"message": f"Non existing {name}", "query": miss}


@pytest.mark.parametrize("alg", ["md5", "sha1"])
def test_pyhashlookup_bulk(env, client, alg):
    hits = _by_alg(env["oracle"], alg, 60, seed=3)
    misses = random_misses(alg, 60, seed=4)
    rng = np.random.default_rng(5)
    mixed = hits + misses
    order = rng.permutation(len(mixed))
    query = [mixed[i] for i in order]
    expected = [_expect(env, h) for h in query if h in env["oracle"]]
    assert getattr(client, f"{alg}_bulk_lookup")(query) == expected
    assert client.lookup(query) == expected  # lookup(list) picks bulk
    # invalid items are skipped like misses (as CIRCL's server does)
    assert getattr(client, f"{alg}_bulk_lookup")(["xyz", query[0].upper()]) == [
        _expect(env, query[0])
    ] * (query[0] in env["oracle"])


def test_pyhashlookup_info(env, client):
    info = client.info()
    ds = env["ds"]
    assert info["dataset"] == ds.name
    assert info["generation"] == ds.generation
    assert info["built"] == ds.built
    assert info["records"] == len(ds)
    assert info["items"] == {
        a: len({h for h in env["oracle"] if algorithm_of(h) == a}) for a in ALGS
    }
    assert info["labels"] == ds.labels()


def test_invalid_digests_get_400(env):
    msgs = {
        "md5": "MD5 value incorrect, expecting a MD5 value in hex format",
        "sha1": "SHA1 value incorrect, expecting a SHA1 value in hex format",
        "sha256": "SHA256 value incorrect, expecting a SHA256 value in hex format",
    }
    h = bearer(env["token"])
    for alg, n in (("md5", 32), ("sha1", 40), ("sha256", 64)):
        for bad in (
            "",
            "a",
            "g" * n,
            "0" * (n - 1),
            "0" * (n + 1),
            "0" * (n - 2) + "%20",
            "0" * 40 if n != 40 else "0" * 32,
        ):
            r = requests.get(f"{env['url']}/lookup/{alg}/{bad}", headers=h)
            assert r.status_code == 400, (alg, bad)
            assert r.json() == {"message": msgs[alg]}
    r = requests.get(f"{env['url']}/lookup/crc32/abcd", headers=h)
    assert r.status_code == 404 and "message" in r.json()


def test_unsupported_and_unknown_endpoints(env):
    h = bearer(env["token"])
    for path in (
        "/children/" + "0" * 40 + "/100/0",
        "/parents/" + "0" * 40 + "/10/0",
        "/session/create/x",
        "/session/get/x",
        "/stats/other",
    ):
        r = requests.get(env["url"] + path, headers=h)
        assert r.status_code == 501, path
        assert "not supported" in r.json()["message"]
    # CIRCL's top list: we record no queries, so both lists are empty
    r = requests.get(env["url"] + "/stats/top", headers=h)
    assert r.status_code == 200 and r.json() == {"nx": [], "exist": []}
    r = requests.get(env["url"] + "/nope", headers=h)
    assert r.status_code == 404 and r.json()["message"]
    r = requests.post(env["url"] + "/info", headers=h)
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = requests.get(env["url"] + "/v1/check", headers=h)
    assert r.status_code == 405 and r.headers["allow"] == "POST"


# ---------------------------------------------------------------- /v1/check


def _mixed_items(env, seed: int) -> list:
    rng = np.random.default_rng(seed)
    items: list = []
    for alg in ALGS:
        items += _by_alg(env["oracle"], alg, 50, seed=seed + len(items))
        items += random_misses(alg, 50, seed=seed + 100 + len(items))
    items = [items[i] for i in rng.permutation(len(items))]
    items[3] = items[3].upper()
    bad = [
        "",
        "abc",
        "0" * 31,
        "z" * 32,
        "0" * 39 + "g",
        17,
        None,
        ["x"],
        {"a": 1},
        True,
        " " + "0" * 32,
    ]
    for b in bad:
        items.insert(int(rng.integers(0, len(items) + 1)), b)
    return items


def _check_results(env, items: list, body: dict) -> None:
    oracle, ds = env["oracle"], env["ds"]
    lib = ds.lookup_many([x if isinstance(x, str) else b"" for x in items])
    results = body["results"]
    assert len(results) == body["count"] == len(items)
    hits = misses = invalid = 0
    for x, r, m in zip(items, results, lib):
        key = x.lower() if isinstance(x, str) else None
        if key in oracle:
            hits += 1
            rec = oracle[key]
            assert r["status"] == "hit", x
            assert {a: r[a] for a in ALGS} == {a: rec[a] for a in ALGS}
            assert r["size"] == rec["size"] and r["labels"] == rec["labels"]
            assert r["algorithm"] == algorithm_of(key)
            assert r["record"] == m.record_id
        elif (
            isinstance(x, str)
            and len(x) in (32, 40, 64)
            and all(c in "0123456789abcdefABCDEF" for c in x)
        ):
            misses += 1
            assert r == {"status": "miss"}, x
            assert m is None
        else:
            invalid += 1
            assert r["status"] == "invalid" and r["reason"], x
    assert (body["hits"], body["misses"], body["invalid"]) == (hits, misses, invalid)
    assert body["generation"] == ds.generation and body["dataset"] == ds.name


def test_check_json(env):
    items = _mixed_items(env, 10)
    r = requests.post(
        env["url"] + "/v1/check", json={"hashes": items}, headers=bearer(env["token"])
    )
    assert r.status_code == 200
    assert r.headers["x-dataset-version"] == str(env["ds"].generation)
    _check_results(env, items, r.json())


def test_check_text(env):
    items = [x for x in _mixed_items(env, 20) if isinstance(x, str) and x.strip()]
    body = "\r\n".join(items) + "\n\n  \n"
    r = requests.post(
        env["url"] + "/v1/check",
        data=body.encode(),
        headers={**bearer(env["token"]), "Content-Type": "text/plain"},
    )
    assert r.status_code == 200
    _check_results(env, [x.strip() for x in items], r.json())


@pytest.mark.parametrize("alg", ALGS)
def test_check_binary(env, alg):
    digests = _by_alg(env["oracle"], alg, 30, 30) + random_misses(alg, 30, 31)
    r = requests.post(
        env["url"] + f"/v1/check?algorithm={alg}",
        data=b"".join(bytes.fromhex(x) for x in digests),
        headers={**bearer(env["token"]), "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200
    _check_results(env, digests, r.json())


def test_check_algorithm_filter_and_big_batch(env):
    md5s = _by_alg(env["oracle"], "md5", 20, 40)
    sha1 = _by_alg(env["oracle"], "sha1", 1, 41)
    r = requests.post(
        env["url"] + "/v1/check?algorithm=md5",
        json={"hashes": md5s + sha1},
        headers=bearer(env["token"]),
    )
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["hit"] * 20 + ["invalid"]
    # a 10,000-digest batch: the vectorised path agrees with the oracle
    items = _by_alg(env["oracle"], "md5", 500, 42) + random_misses("md5", 9500, 43)
    r = requests.post(
        env["url"] + "/v1/check", json={"hashes": items}, headers=bearer(env["token"])
    )
    _check_results(env, items, r.json())


# ---------------------------------------------------------------- bloom


@pytest.mark.parametrize("alg", ALGS)
def test_bloom_export_and_etag(env, alg, tmp_path):
    url = f"{env['url']}/v1/bloom/{alg}"
    h = bearer(env["token"])
    r = requests.get(url, headers=h)
    assert r.status_code == 200
    etag = r.headers["etag"]
    assert etag.startswith(f'"{env["ds"].generation}-')
    f = tmp_path / "f.bloom"
    f.write_bytes(r.content)
    bf = read_bloom(f)
    keys = env["ds"].table(alg).keys()
    assert bf.contains_many(keys).all()
    assert json.loads(bf.data)["algorithm"] == alg
    misses = np.frombuffer(
        b"".join(bytes.fromhex(x) for x in random_misses(alg, 2000, 50)), dtype=np.uint8
    ).reshape(2000, -1)
    assert bf.contains_many(misses).mean() < 0.01
    again = requests.get(url, headers={**h, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert requests.get(url, headers={**h, "If-None-Match": '"0-x"'}).status_code == 200
    assert requests.get(f"{env['url']}/v1/bloom/crc32", headers=h).status_code == 404


# ---------------------------------------------------------------- operations


def test_health_ready_metrics(env):
    assert requests.get(env["url"] + "/healthz").json() == {"status": "ok"}
    r = requests.get(env["url"] + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    h = bearer(env["token"])

    def counters() -> dict[str, float]:
        text = requests.get(env["url"] + "/metrics", headers=h).text
        return {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    before = counters()
    hits = _by_alg(env["oracle"], "sha256", 7, 60)
    items = hits + random_misses("sha1", 5, 61) + ["nope"]
    assert (
        requests.post(
            env["url"] + "/v1/check", json={"hashes": items}, headers=h
        ).status_code
        == 200
    )
    after = counters()
    for name, delta in (
        ("hits", 7),
        ("misses", 5),
        ("invalid", 1),
        ("digests_checked", 13),
    ):
        assert (
            after[f"hashlookup_{name}_total"] - before[f"hashlookup_{name}_total"]
            == delta
        )
    key = 'hashlookup_requests_total{endpoint="check",code="200"}'
    assert after[key] - before.get(key, 0) == 1
    assert after["hashlookup_dataset_records"] == len(env["ds"])
    gens = [v for k, v in after.items() if k.startswith("hashlookup_dataset_gen")]
    assert gens and all(g == env["ds"].generation for g in gens)
    assert any(k.startswith("hashlookup_dataset_age_seconds") for k in after)
    assert any(
        k.startswith("hashlookup_request_duration_seconds_bucket") for k in after
    )


def test_every_response_names_the_generation(env):
    gen = str(env["ds"].generation)
    h = bearer(env["token"])
    for method, path in (
        ("GET", "/info"),
        ("GET", "/nope"),
        ("GET", "/lookup/md5/x"),
        ("GET", "/healthz"),
        ("POST", "/v1/check"),
    ):
        r = requests.request(method, env["url"] + path, headers=h, data=b"{}")
        assert r.headers["x-dataset-version"] == gen, path
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}


def test_audit_log_has_hits_and_no_misses(env):
    h = bearer(env["token"])
    hit = _by_alg(env["oracle"], "sha1", 1, 70)[0]
    miss = random_misses("md5", 1, 71)[0]
    requests.get(f"{env['url']}/lookup/sha1/{hit}", headers=h)
    requests.get(f"{env['url']}/lookup/md5/{miss}", headers=h)
    requests.post(
        env["url"] + "/v1/check", json={"hashes": [miss, hit.upper()]}, headers=h
    )
    deadline = time.monotonic() + 10
    lines: list[dict] = []
    while time.monotonic() < deadline:
        text = env["audit"].read_text() if env["audit"].exists() else ""
        lines = [json.loads(x) for x in text.splitlines()]
        if sum(x["digest"] == hit for x in lines) >= 2:
            break
        time.sleep(0.1)
    mine = [x for x in lines if x["digest"] == hit]
    assert len(mine) >= 2
    key_id = env["token"].split("_")[1]
    for x in mine:
        assert x["key"] == key_id and x["name"] == "acme"
        assert x["record"]["sha1"] == hit and x["generation"] == env["ds"].generation
        assert x["time"]
    text = env["audit"].read_text()
    assert miss not in text
    # nothing the clients asked is in the server's own log
    assert miss not in env["srv"].stderr() and hit not in env["srv"].stderr()


def _answer_all(single, digests: list[str]) -> list:
    """(answer, audit line or None) of each digest, spelled as given."""
    from hashlookup.server._audit import AuditLog

    log = AuditLog("-")  # its key part of a line; nothing is written
    buf = bytearray()
    out = []
    for digest in digests:
        before = len(buf)
        got = single.answer(algorithm_of(digest), digest, buf, log.who(None))
        line = bytes(buf[before:]) or None
        plain = single.answer(algorithm_of(digest), digest)  # no audit buffer
        assert plain == got
        out.append((got, line))
    return out


def _assert_answers_like_match(ds, single, digests: list[str]) -> None:
    from hashlookup.server import _check

    for digest, (got, line) in zip(digests, _answer_all(single, digests)):
        m = ds.lookup(digest)
        if m is None:
            assert got == _check.MISS and line is None
            continue
        assert got == _check.circl_json(m, ds.name)
        x = json.loads(line)
        assert line.endswith(b"}\n") and line.count(b"\n") == 1
        assert line.endswith(b',"record":' + _check.native_json(m) + b"}\n")
        assert x["digest"] == digest.lower() and x["generation"] == m.generation
        assert x["key"] is None and x["name"] is None
        assert time.time() - 5 < _iso_seconds(x["time"]) < time.time() + 5


def _iso_seconds(stamp: str) -> float:
    from datetime import datetime

    assert stamp.endswith("Z") and len(stamp) == 24, stamp
    return datetime.fromisoformat(stamp[:-1] + "+00:00").timestamp()


def test_single_answers_equal_the_match_path(env, tmp_path, monkeypatch):
    """GET /lookup's renderer (server._render.HitRenderer: lookup, CIRCL record and
    audit line in one C call) gives byte for byte circl_json / native_json
    of the Match, for every digest of the oracle (records without some
    digests or a size, several labels, every algorithm, either case), with
    the label table and with one bitmap test per label; misses, bad digests
    and unknown algorithms are told apart; a plain index file, suppressed
    labels and a dataset name that needs JSON escaping are answered alike."""
    from hashlookup.server import _check

    ds = env["ds"]
    digests = sorted(env["oracle"])
    digests += [d.upper() for d in digests[::7]]
    digests += random_misses("sha256", 5, 99) + random_misses("md5", 5, 98)
    single = _check.SingleHits(ds)
    single.prepare()
    assert single.generation == ds.generation
    _assert_answers_like_match(ds, single, digests)
    monkeypatch.setattr(_check, "_MASKS_MAX_BYTES", 0)  # bitmap tests instead
    assert _check.label_masks(ds._state.labels.pairs(), len(ds)) is None
    single.prepare()
    _assert_answers_like_match(ds, single, digests[::3])
    monkeypatch.undo()
    md5 = digests[0] if len(digests[0]) == 32 else "0" * 32
    for alg, digest, want in (
        ("md5", "xyz", _check.INVALID),
        ("md5", md5[:-1], _check.INVALID),
        ("md5", md5[:-1] + "g", _check.INVALID),
        ("md5", md5[:-1] + "\u00e9", _check.INVALID),
        ("sha1", md5, _check.INVALID),
        ("md5", "", _check.INVALID),
        ("md4", md5, _check.UNKNOWN),
        ("", md5, _check.UNKNOWN),
        ("MD5", md5, _check.UNKNOWN),
    ):
        assert single.answer(alg, digest) == want, (alg, digest)

    # suppressed labels drop their records: MISS, as lookup gives None
    with hashlookup.open_dataset(env["path"], suppress=["category:1"]) as sup:
        s2 = _check.SingleHits(sup)
        s2.prepare()
        _assert_answers_like_match(sup, s2, digests[::2])
        assert any(
            sup.lookup(d) is None and env["ds"].lookup(d) is not None for d in digests
        )

    # a plain index file (no records): through the Match
    plain = tmp_path / "plain.hli"
    src = tmp_path / "plain.txt"
    md5s = [h for h in env["oracle"] if len(h) == 32][:20]
    src.write_text("".join(h + "\n" for h in md5s))
    hashlookup.build_index(str(src), str(plain))
    with hashlookup.open_dataset(str(plain)) as idx:
        s3 = _check.SingleHits(idx)
        s3.prepare()
        _assert_answers_like_match(idx, s3, md5s + random_misses("md5", 3, 7))
        assert s3.answer("sha1", "ab" * 20) == _check.MISS  # no such table
        assert s3.answer("md5", "zz" * 16) == _check.INVALID

    # a name that needs escaping in the CIRCL tail
    odd, _ = make_dataset(tmp_path / "odd", n=200, name='na"me\\.hlds')
    with hashlookup.open_dataset(odd) as ods:
        assert ods.name == 'na"me\\'
        s4 = _check.SingleHits(ods)
        s4.prepare()
        some = [bytes(k).hex() for k in ods.table("md5").keys()[:10]]
        _assert_answers_like_match(ods, s4, some)
        assert json.loads(s4.answer("md5", some[0]))["hashlookup:dataset"] == ods.name


def test_fast_renderers_match_the_reference(env):
    """circl_json / native_json (text-built, for speed) give exactly the JSON
    of circl_record / native_record, also for labels and names that need
    escaping and for records without some digests or a size."""
    import orjson

    from hashlookup import Match
    from hashlookup.server import _check

    ds = env["ds"]
    matches = [ds.lookup(h) for h in list(env["oracle"])[:300]]
    matches += [
        Match(
            7,
            "sha1",
            None,
            "ab" * 20,
            None,
            None,
            ('quote"d', "back\\slash", "uni\u00e9\u4e2d", "tab\there"),
            3,
            "2026-01-01T00:00:00+00:00",
        ),
        Match(0, "md5", "cd" * 16, None, "ef" * 32, 0, (), 1, "2026-01-01T00:00:00Z"),
    ]
    for m in matches:
        for name in (ds.name, 'na"me\\', "n\u00e4me"):
            assert orjson.loads(_check.circl_json(m, name)) == orjson.loads(
                orjson.dumps(_check.circl_record(m, name))
            )
        assert orjson.loads(_check.native_json(m)) == _check.native_record(m)


def test_plain_index_file_served(tmp_path):
    """A plain index file (one table, no records) is served too: a hit is
    its digest alone (no size, no other digests), through the Match path."""
    md5s = random_misses("md5", 30, seed=77)
    src = tmp_path / "list.txt"
    src.write_text("".join(h + "\n" for h in md5s))
    plain = tmp_path / "plain.hli"
    hashlookup.build_index(str(src), str(plain))
    audit = tmp_path / "audit.jsonl"
    with Server(
        plain,
        "--no-auth",
        "--rate-limit",
        "0",
        "--audit-log",
        str(audit),
        workdir=tmp_path,
    ) as srv:
        r = requests.get(f"{srv.url}/lookup/md5/{md5s[3].upper()}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["MD5"] == md5s[3].upper() and "SHA-1" not in body
        assert "FileSize" not in body and body["hashlookup:labels"] == []
        miss = random_misses("md5", 1, seed=78)[0]
        assert requests.get(f"{srv.url}/lookup/md5/{miss}").status_code == 404
        assert requests.get(f"{srv.url}/lookup/sha1/{'a' * 40}").status_code == 404


def test_unreadable_label_bitmap_does_not_stop_the_server(env, tmp_path):
    """Section bodies are checksummed only by verify(), so a file with a
    corrupt label bitmap opens.  The worker still starts (the lookup path
    falls back to the Match, which reports the bitmap per hit, as
    Dataset.lookup does), misses are answered, and the log says why."""
    from hashlookup.server import _check

    bad = tmp_path / "bad.hlds"
    bad.write_bytes(env["path"].read_bytes())
    with hashlookup.open_dataset(bad) as ds:
        store = ds._state.labels
        label = "source:vendor"
        off, length, _ = store.entries[label]
        start = ds.current().layout.label_bitmaps.offset + off
        hit = next(h for h in env["oracle"] if label in env["oracle"][h]["labels"])
    with open(bad, "r+b") as f:
        f.seek(start)
        f.write(b"\xff" * length)
    miss = random_misses("md5", 1, 4)[0]
    with hashlookup.open_dataset(bad) as ds:
        single = _check.SingleHits(ds)
        single.prepare()
        assert single.problem and label in single.problem
        assert single.answer("md5", miss) == _check.MISS
        with pytest.raises(hashlookup.IndexFormatError):
            ds.lookup(hit)
        with pytest.raises(hashlookup.IndexFormatError):
            single.answer(algorithm_of(hit), hit)
    with Server(bad, "--no-auth", "--rate-limit", "0", workdir=tmp_path) as srv:
        assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
        assert (
            requests.get(f"{srv.url}/lookup/md5/{miss}", timeout=10).status_code == 404
        )
        r = requests.get(f"{srv.url}/lookup/{algorithm_of(hit)}/{hit}", timeout=10)
        assert r.status_code == 500 and hit not in r.text
    err = srv.stderr()
    assert "its hits are answered with an error" in err and hit not in err
