"""Corrupt, truncated, foreign and newer-version index files.

Every case runs in a subprocess (many cases per process, see ``_CASE_RUNNER``) so a
crash (SIGSEGV, SIGBUS, abort) fails the test instead of killing pytest, and the last
``start`` line printed names the case that crashed.

What is asserted:

* any damage to the header region ``[0, header_size)``, any truncation, a text file,
  random bytes, an empty file -> ``IndexFormatError`` at open, with a message that names
  the file or the field;
* a newer format version (with a correct header checksum) -> ``IndexVersionError``
  mentioning "version";
* damage to section bodies never crashes open or lookups, find rows stay in range,
  and ``verify()`` raises ``IndexFormatError`` naming the damaged section;
* header fields changed *with* a recomputed checksum (a crafted file) never crash, and
  only ``IndexFormatError`` is raised.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import xxhash

import hashlookup
from utils import random_keys, run_in_subprocess, to_list

VERSION_OFFSET = 8
CHECKSUM_OFFSET = 56

#: words that show an error message names the field at fault
FIELD_WORDS = (
    "checksum",
    "magic",
    "version",
    "header",
    "truncat",
    "size",
    "section",
    "offset",
    "length",
    "width",
    "count",
    "algorithm",
    "empty",
    "endian",
    "flag",
    "kind",
    "locator",
    "bloom",
    "prefilter",
    "keys",
    "metadata",
    "index",
)

# ---------------------------------------------------------------------------
# the subprocess that runs the cases

_CASE_RUNNER = r"""
import json, os, struct, sys
import numpy as np
import xxhash
import hashlookup
from hashlookup import IndexFormatError, IndexVersionError

cfg = json.load(open(sys.argv[1]))
orig = open(cfg["orig"], "rb").read()
work = cfg["work"]
header_size = cfg["header_size"]
members = [bytes.fromhex(h) for h in cfg["members"]]
others = [bytes.fromhex(h) for h in cfg["others"]]
queries = members + others
width = len(queries[0])
qarr = np.frombuffer(b"".join(queries), np.uint8).reshape(len(queries), width).copy()


def fixsum(b):
    b[56:64] = bytes(8)
    b[56:64] = struct.pack("<Q", xxhash.xxh3_64_intdigest(bytes(b[:header_size])))


def make(ops):
    b = bytearray(orig)
    for op in ops:
        k = op[0]
        if k == "xor":
            b[op[1]] ^= op[2]
        elif k == "set":
            v = bytes.fromhex(op[2])
            b[op[1]:op[1] + len(v)] = v
        elif k == "fill":
            off, n, how = op[1], op[2], op[3]
            if how == "random":
                rng = np.random.default_rng(off + n)
                v = rng.integers(0, 256, n, np.uint8).tobytes()
            else:
                v = bytes([how]) * n
            b[off:off + n] = v
        elif k == "truncate":
            del b[op[1]:]
        elif k == "content":
            b = bytearray(bytes.fromhex(op[1]))
        elif k == "fixsum":
            fixsum(b)
        else:
            raise AssertionError(op)
    return bytes(b)


def describe(e):
    return {"type": type(e).__name__, "format": isinstance(e, IndexFormatError),
            "version": isinstance(e, IndexVersionError), "msg": str(e)[:400]}


def run_ops(idx, res):
    errs = {}

    def guard(label, fn):
        try:
            return fn()
        except Exception as e:
            errs[label] = describe(e)
            return None

    n = guard("len", lambda: len(idx))
    res["len"] = n
    single_in = guard("in", lambda: [q in idx for q in queries])
    single_find = guard("find", lambda: [idx.find(q) for q in queries])
    guard("in_hex", lambda: [q.hex() in idx for q in queries[:50]])
    cm = guard("contains_many", lambda: idx.contains_many(qarr))
    fm = guard("find_many", lambda: idx.find_many(qarr))
    fm2 = guard("find_many_threads", lambda: idx.find_many(qarr, threads=2))
    hexq = [q.hex() for q in queries[:50]]
    guard("contains_many_list", lambda: idx.contains_many(hexq))
    guard("iter", lambda: sum(1 for _ in idx))
    guard("keys_sum", lambda: int(np.asarray(idx.keys(), dtype=np.uint64).sum()))
    guard("info", lambda: json.dumps(idx.info(), default=str))
    bad_rows = []
    row_mismatch = 0
    if n is not None:
        for r in (single_find, fm, fm2):
            if r is not None:
                bad_rows += [int(x) for x in r if not -1 <= int(x) < n]
        if single_find is not None and not bad_rows:
            keys = guard("keys", lambda: idx.keys())
            if keys is not None:
                for q, r in zip(queries, single_find):
                    if r >= 0 and keys[r].tobytes() != q:
                        row_mismatch += 1
            del keys
    wrong = None
    if cm is not None:
        wrong = int(sum(bool(c) != (i < len(members)) for i, c in enumerate(cm)))
    res.update(errs=errs, bad_rows=bad_rows[:5], row_mismatch=row_mismatch, wrong=wrong)
    try:
        idx.verify()
        res["verify"] = None
    except Exception as e:
        res["verify"] = describe(e)


for case in cfg["cases"]:
    print(json.dumps({"start": case["label"]}), flush=True)
    data = make(case["ops"])
    tmp = work + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, work)   # a new inode: no mapping of an older case can see it
    res = {"label": case["label"], "size": len(data)}
    try:
        idx = hashlookup.open_index(work)
    except Exception as e:
        res["open"] = describe(e)
    else:
        res["open"] = None
        try:
            if case.get("lookups"):
                run_ops(idx, res)
        finally:
            idx.close()
    print(json.dumps(res), flush=True)
print(json.dumps({"done": True}), flush=True)
"""


def run_cases(tmp_path, base, cases) -> dict[str, dict]:
    """Run ``cases`` ({"label", "ops", "lookups"?}) against the base index in one
    subprocess; return {label: result}."""
    cfg = {
        "orig": str(base["path"]),
        "work": str(tmp_path / "case.hlx"),
        "header_size": base["header_size"],
        "members": base["members"],
        "others": base["others"],
        "cases": cases,
    }
    cfg_path = tmp_path / "cases.json"
    cfg_path.write_text(json.dumps(cfg))
    rc, out, err = run_in_subprocess(_CASE_RUNNER, str(cfg_path), timeout=600)
    assert rc == 0, f"case runner failed:\n{out[-2000:]}\n{err[-4000:]}"
    results = {}
    done = False
    for line in out.splitlines():
        rec = json.loads(line)
        if "label" in rec:
            results[rec["label"]] = rec
        done = done or rec.get("done", False)
    assert done
    assert len(results) == len(cases)
    return results


def message_is_useful(msg: str, path: str) -> bool:
    low = msg.lower()
    return (
        path in msg
        or path.rsplit("/", 1)[-1] in msg
        or any(w in low for w in FIELD_WORDS)
    )


def assert_open_fails(results, path, version_error=False):
    problems = []
    for label, r in results.items():
        o = r["open"]
        if o is None:
            problems.append(f"{label}: opened without error")
        elif not o["format"]:
            problems.append(f"{label}: {o['type']} is not IndexFormatError: {o['msg']}")
        elif version_error and not o["version"]:
            problems.append(
                f"{label}: {o['type']} is not IndexVersionError: {o['msg']}"
            )
        elif not message_is_useful(o["msg"], path):
            problems.append(f"{label}: unhelpful message {o['msg']!r}")
    assert not problems, f"{len(problems)} of {len(results)} cases:\n" + "\n".join(
        problems[:40]
    )


# ---------------------------------------------------------------------------
# the base index


BASES = {
    # name: (algorithm, width, number of keys)
    "md5_3000": ("md5", 16, 3000),
    "sha1_empty": ("sha1", 20, 0),
    "raw7_500": ("raw", 7, 500),
}


@pytest.fixture(scope="module", params=list(BASES))
def base(request, tmp_path_factory):
    algorithm, width, n = BASES[request.param]
    d = tmp_path_factory.mktemp("corrupt_base")
    keys = random_keys(n, width, 500)
    path = d / "base.hlx"
    kw = {"width": width} if algorithm == "raw" else {}
    # An explicit first-level filter (the default builds none beside the
    # Bloom filter), so that its section's damage is covered too.
    hashlookup.build_index(
        keys,
        path,
        algorithm=algorithm,
        metadata={"name": "corrupt"},
        prefilter_bits_per_key=4,
        **kw,
    )
    with hashlookup.open_index(path) as idx:
        info = idx.info()
        idx.verify()
        unique = list(idx)
    data = path.read_bytes()
    return {
        "name": request.param,
        "path": path,
        "data": data,
        "size": len(data),
        "info": info,
        "header_size": int(info["header_size"]),
        "sections": info["sections"],
        "members": [k.hex() for k in unique[::15]],
        "others": [
            k.hex()
            for k in to_list(random_keys(200, width, 501))
            if k not in set(unique)
        ],
    }


def test_base_is_sane(base):
    hs = base["header_size"]
    assert CHECKSUM_OFFSET + 8 <= hs <= base["size"]
    stored = struct.unpack_from("<Q", base["data"], CHECKSUM_OFFSET)[0]
    b = bytearray(base["data"][:hs])
    b[CHECKSUM_OFFSET : CHECKSUM_OFFSET + 8] = bytes(8)
    assert xxhash.xxh3_64_intdigest(bytes(b)) == stored, (
        "header checksum is xxh3_64 over [0, header_size) with the field zeroed"
    )
    version = struct.unpack_from("<I", base["data"], VERSION_OFFSET)[0]
    assert 1 <= version < 1000
    kinds = {s["kind"] for s in base["sections"]}
    assert {"keys", "locator"} <= kinds, kinds


# ---------------------------------------------------------------------------
# header damage, truncation, foreign files: open must fail


def test_header_byte_flips(base, tmp_path):
    hs = base["header_size"]
    cases = [
        {"label": f"xor@{i}", "ops": [["xor", i, 0xFF]], "lookups": True}
        for i in range(hs)
    ]
    results = run_cases(tmp_path, base, cases)
    assert_open_fails(results, str(tmp_path / "case.hlx"))


def test_header_single_bit_flips(base, tmp_path):
    hs = base["header_size"]
    rng = np.random.default_rng(502)
    cases = [
        {"label": f"bit{b}@{i}", "ops": [["xor", i, 1 << b]], "lookups": True}
        for i in range(hs)
        for b in [int(rng.integers(8))]
    ]
    results = run_cases(tmp_path, base, cases)
    assert_open_fails(results, str(tmp_path / "case.hlx"))


def truncation_points(base) -> list[int]:
    hs, size = base["header_size"], base["size"]
    pts = {0, 1, 7, 8, 12, 63, 64, hs - 1, hs, size - 1, size - 4096, size // 2}
    for s in base["sections"]:
        for p in (
            s["offset"],
            s["offset"] + s["length"],
            s["offset"] + 1,
            s["offset"] + s["length"] - 1,
        ):
            pts.add(p)
    return sorted(p for p in pts if 0 <= p < size)


def test_truncation(base, tmp_path):
    cases = [
        {"label": f"truncate@{n}", "ops": [["truncate", n]], "lookups": True}
        for n in truncation_points(base)
    ]
    assert any(c["label"] == "truncate@0" for c in cases)
    results = run_cases(tmp_path, base, cases)
    assert_open_fails(results, str(tmp_path / "case.hlx"))


def test_foreign_files(base, tmp_path):
    rng = np.random.default_rng(503)
    magic = base["data"][:8]
    hexlist = "\n".join(k for k in base["members"][:100]).encode() + b"\n"
    contents = {
        "empty": b"",
        "text": b"this is not an index\n" * 50,
        "hex_list": hexlist,
        "one_byte": b"\x89",
        "magic_only": magic,
        "magic_plus_zeros": magic + bytes(8184),
        "zeros": bytes(base["size"]),
        "ff": b"\xff" * base["size"],
        "json": json.dumps({"keys": base["members"]}).encode(),
        "gzip_magic": b"\x1f\x8b\x08\x00" + bytes(100),
    }
    for n in (1, 63, 64, 100, 4096, 4097, base["size"]):
        contents[f"random{n}"] = rng.integers(0, 256, n, np.uint8).tobytes()
        contents[f"magic_random{n}"] = (
            magic + rng.integers(0, 256, n, np.uint8).tobytes()
        )
    cases = [
        {"label": k, "ops": [["content", v.hex()]], "lookups": True}
        for k, v in contents.items()
    ]
    results = run_cases(tmp_path, base, cases)
    assert_open_fails(results, str(tmp_path / "case.hlx"))


def test_future_version(base, tmp_path):
    version = struct.unpack_from("<I", base["data"], VERSION_OFFSET)[0]
    newer = [version + 1, version + 7, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]

    def u32(v):
        return struct.pack("<I", v).hex()

    cases = [
        {
            "label": f"version={v}",
            "ops": [["set", VERSION_OFFSET, u32(v)], ["fixsum"]],
            "lookups": True,
        }
        for v in newer
    ]
    # sanity: rewriting the same version with a recomputed checksum is still valid,
    # so the failures above are due to the version alone
    cases.append(
        {
            "label": "same_version",
            "ops": [["set", VERSION_OFFSET, u32(version)], ["fixsum"]],
            "lookups": True,
        }
    )
    cases.append(
        {
            "label": "version=0",
            "ops": [["set", VERSION_OFFSET, u32(0)], ["fixsum"]],
            "lookups": True,
        }
    )
    results = run_cases(tmp_path, base, cases)
    same = results.pop("same_version")
    assert same["open"] is None, same
    assert same["verify"] is None, same
    assert same["wrong"] == 0 and not same["errs"], same
    zero = results.pop("version=0")
    assert zero["open"] is not None and zero["open"]["format"], zero
    assert_open_fails(results, str(tmp_path / "case.hlx"), version_error=True)
    for label, r in results.items():
        assert "version" in r["open"]["msg"].lower(), (label, r["open"]["msg"])
        v = int(label.split("=")[1])
        assert str(v) in r["open"]["msg"], (label, r["open"]["msg"])


def test_bad_magic_with_valid_checksum(base, tmp_path):
    cases = [
        {"label": f"magic{i}", "ops": [["xor", i, 0x20], ["fixsum"]], "lookups": True}
        for i in range(8)
    ]
    results = run_cases(tmp_path, base, cases)
    assert_open_fails(results, str(tmp_path / "case.hlx"))
    for r in results.values():
        assert (
            "magic" in r["open"]["msg"].lower() or "not a" in r["open"]["msg"].lower()
        )


# ---------------------------------------------------------------------------
# crafted headers (valid checksum): never crash, only IndexFormatError


def _check_no_crash_results(results, allow_open_ok=True):
    problems = []
    for label, r in results.items():
        o = r["open"]
        if o is not None:
            if not o["format"]:
                problems.append(f"{label}: open raised {o['type']}: {o['msg']}")
            continue
        if not allow_open_ok:
            problems.append(f"{label}: opened")
            continue
        for op, e in (r.get("errs") or {}).items():
            if not e["format"]:
                problems.append(f"{label}: {op} raised {e['type']}: {e['msg']}")
        if r.get("bad_rows"):
            problems.append(
                f"{label}: rows out of range {r['bad_rows']} (len {r['len']})"
            )
        if r.get("row_mismatch"):
            problems.append(
                f"{label}: find returned {r['row_mismatch']} rows whose key "
                "differs from the query"
            )
        v = r.get("verify")
        if v is not None and not v["format"]:
            problems.append(f"{label}: verify raised {v['type']}: {v['msg']}")
    return problems


def test_crafted_header_fields(base, tmp_path):
    hs = base["header_size"]
    cases = []
    for i in range(hs):
        if CHECKSUM_OFFSET <= i < CHECKSUM_OFFSET + 8:
            continue
        for how, op in (("xorff", ["xor", i, 0xFF]), ("xor01", ["xor", i, 0x01])):
            cases.append(
                {"label": f"{how}@{i}", "ops": [op, ["fixsum"]], "lookups": True}
            )
    for i in range(0, hs - 3, 4):
        if CHECKSUM_OFFSET <= i < CHECKSUM_OFFSET + 8:
            continue
        for v in (0, 0xFFFFFFFF, 0x80000000):
            cases.append(
                {
                    "label": f"u32={v:x}@{i}",
                    "ops": [["set", i, struct.pack("<I", v).hex()], ["fixsum"]],
                    "lookups": True,
                }
            )
    for i in range(0, hs - 7, 8):
        if i == CHECKSUM_OFFSET:
            continue
        for v in (2**64 - 4096, 2**63, 2**64 - 1):
            cases.append(
                {
                    "label": f"u64={v:x}@{i}",
                    "ops": [["set", i, struct.pack("<Q", v).hex()], ["fixsum"]],
                    "lookups": True,
                }
            )
    results = run_cases(tmp_path, base, cases)
    problems = _check_no_crash_results(results)
    assert not problems, f"{len(problems)} of {len(results)} cases:\n" + "\n".join(
        problems[:40]
    )


def test_crafted_header_silent_corruption(base, tmp_path):
    """A crafted header that opens *and* passes verify() must answer correctly.

    If verify() accepts the file, lookups must agree with the original keys: a header
    change that verify() cannot see yet changes answers (e.g. a Bloom parameter) is a
    silent false negative."""
    hs = base["header_size"]
    cases = []
    for i in range(hs):
        if CHECKSUM_OFFSET <= i < CHECKSUM_OFFSET + 8:
            continue
        for how, op in (("xor02", ["xor", i, 0x02]), ("xor80", ["xor", i, 0x80])):
            cases.append(
                {"label": f"{how}@{i}", "ops": [op, ["fixsum"]], "lookups": True}
            )
    results = run_cases(tmp_path, base, cases)
    silent = [
        f"{label}: verify() passes but {r['wrong']} answers are wrong"
        for label, r in results.items()
        if r["open"] is None and r.get("verify") is None and r.get("wrong")
    ]
    assert not silent, "\n".join(silent[:40])


# ---------------------------------------------------------------------------
# section bodies: open is O(1) and does not see it, verify() must


def body_cases(base):
    rng = np.random.default_rng(504)
    cases = []
    for s in base["sections"]:
        off, n, kind = int(s["offset"]), int(s["length"]), s["kind"]
        if n == 0:
            continue
        positions = {0, n - 1, n // 2, n // 3} | {int(x) for x in rng.integers(0, n, 6)}
        for p in sorted(positions):
            cases.append(
                {
                    "label": f"{kind}:xor@{p}",
                    "ops": [["xor", off + p, 0xFF]],
                    "lookups": True,
                    "kind": kind,
                }
            )
            cases.append(
                {
                    "label": f"{kind}:bit@{p}",
                    "ops": [["xor", off + p, 0x04]],
                    "lookups": True,
                    "kind": kind,
                }
            )
        for how in (0x00, 0xFF, 0x7F, "random"):
            cases.append(
                {
                    "label": f"{kind}:fill{how}",
                    "ops": [["fill", off, n, how]],
                    "lookups": True,
                    "kind": kind,
                }
            )
        # only the first or second half destroyed
        cases.append(
            {
                "label": f"{kind}:fill_head",
                "ops": [["fill", off, n // 2, 0xFF]],
                "lookups": True,
                "kind": kind,
            }
        )
        cases.append(
            {
                "label": f"{kind}:fill_tail",
                "ops": [["fill", off + n // 2, n - n // 2, 0x00]],
                "lookups": True,
                "kind": kind,
            }
        )
    return cases


def _changes_bytes(base, case) -> bool:
    """False for a fill that writes what is already there (e.g. zeros over an empty
    index's all-zero locator): that is no damage."""
    data = base["data"]
    for op in case["ops"]:
        if op[0] != "fill" or op[3] == "random":
            return True
        off, n, how = op[1], op[2], op[3]
        if data[off : off + n] != bytes([how]) * n:
            return True
    return False


def test_section_body_damage(base, tmp_path):
    cases = [c for c in body_cases(base) if _changes_bytes(base, c)]
    kinds = {c["label"]: c["kind"] for c in cases}
    if base["name"] == "md5_3000":
        assert {"keys", "locator", "bloom", "prefilter"} <= set(kinds.values())
    results = run_cases(tmp_path, base, cases)
    problems = _check_no_crash_results(results)
    for label, r in results.items():
        kind = kinds[label]
        if r["open"] is not None:
            if kind in ("keys", "locator", "bloom", "prefilter"):
                problems.append(
                    f"{label}: open is O(1) and must not read the body, "
                    f"but raised {r['open']['type']}: {r['open']['msg']}"
                )
            continue
        v = r.get("verify")
        if v is None:
            problems.append(f"{label}: verify() did not detect the damage")
        elif not v["format"]:
            pass  # reported by _check_no_crash_results
        elif kind.lower() not in v["msg"].lower():
            problems.append(
                f"{label}: verify() message does not name the {kind} "
                f"section: {v['msg']!r}"
            )
    assert not problems, f"{len(problems)} of {len(results)} cases:\n" + "\n".join(
        problems[:40]
    )


def test_padding_damage_does_not_break_lookups(base, tmp_path):
    """Bytes between sections (alignment padding) are not part of any section: damage
    there must not crash or change answers."""
    spans = sorted(
        (int(s["offset"]), int(s["offset"]) + int(s["length"]))
        for s in base["sections"]
    )
    gaps = []
    prev = base["header_size"]
    for a, b in spans:
        if a > prev:
            gaps.append((prev, a))
        prev = max(prev, b)
    if prev < base["size"]:
        gaps.append((prev, base["size"]))
    if not gaps:
        pytest.skip("no padding in this layout")
    cases = [
        {"label": f"gap{a}-{b}", "ops": [["fill", a, b - a, 0xFF]], "lookups": True}
        for a, b in gaps
    ]
    results = run_cases(tmp_path, base, cases)
    problems = _check_no_crash_results(results)
    for label, r in results.items():
        if r["open"] is None and r.get("wrong"):
            problems.append(f"{label}: {r['wrong']} wrong answers")
    assert not problems, "\n".join(problems)


def test_verify_passes_on_intact_file(base, tmp_path):
    results = run_cases(
        tmp_path, base, [{"label": "intact", "ops": [], "lookups": True}]
    )
    r = results["intact"]
    assert r["open"] is None
    assert r["verify"] is None
    assert r["errs"] == {}
    assert r["wrong"] == 0
    assert r["bad_rows"] == [] and r["row_mismatch"] == 0
