"""Load test of the service's PDQ near matches with wrk (a second process on
loopback): POST /v1/pdq and HMA's GET /m/raw_lookup.

    python benchmarks/load_pdq.py [--rows N] [--duration S] [--rounds R]

Builds a synthetic dataset of N random PDQ hashes (fixed seed; an md5, a
quality and a category per record), starts `hashlookup serve` with 2
workers, API keys, the audit log on (to a file) and the rate limit off,
and measures with wrk, interleaved over R rounds (medians reported):

- GET /v1/ping (a constant answer behind the same auth and metrics: the
  baseline of one request);
- GET /m/raw_lookup?signal_type=pdq&signal=HEX (one hash per request, as
  HMA's clients send them);
- POST /v1/pdq with 1, 100 and 1,000 hashes per request.

Queries cycle through 4,000 hashes: half are stored hashes with 0..31 bits
flipped (a match each, at least), half random (no match).  Before timing,
every batch body's answer is checked against Dataset.near in this process,
and after the runs the service's own counter must have seen every query
wrk's completed requests sent.  Reported: requests/s and p50/p99 latency
(wrk's), PDQ queries/s (the service's counter over the run, so that the
requests still in flight when wrk stops count), and the workers' CPU time
per query (read from /proc; per request for ping), which does not depend on
how much CPU other processes take.

wrk must be installed (`make bench` installs it with apt-get if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

import hashlookup

sys.path.insert(0, str(Path(__file__).parent))
from load_server import cpu_seconds, start_server, worker_pids, wrk

SEED = 20261206
QUERIES = 4000
BATCHES = {"pdq_1": 1, "pdq_100": 100, "pdq_1000": 1000}


def make_dataset(d: Path, n: int) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(SEED)
    pdq = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    md5 = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    quality = rng.integers(50, 101, n).astype(str)
    cat = rng.integers(0, 5, n).astype(str)
    hp = np.frombuffer(pdq.tobytes().hex().encode(), "S64")
    hm = np.frombuffer(md5.tobytes().hex().encode(), "S32")
    csv = d / "src.csv"
    with open(csv, "wb") as f:
        f.write(b"md5,pdq,quality,category\n")
        for s in range(0, n, 100_000):
            e = min(n, s + 100_000)
            f.write(
                b"".join(
                    b"%s,%s,%s,%s\n" % (a, b, q.encode(), c.encode())
                    for a, b, q, c in zip(
                        hm[s:e], hp[s:e], quality[s:e], cat[s:e], strict=True
                    )
                )
            )
    out = d / "pdq.hlds"
    hashlookup.build_dataset(
        {"bench": str(csv)}, str(out), label_columns={"category": "category"}
    )
    csv.unlink()
    return out, pdq


def make_queries(pdq: np.ndarray) -> list[str]:
    rng = np.random.default_rng(SEED + 1)
    out = []
    for i in range(QUERIES):
        if i % 2:
            out.append(rng.integers(0, 256, 32, dtype=np.uint8))
            continue
        h = pdq[rng.integers(0, len(pdq))].copy()
        for b in rng.choice(256, size=int(rng.integers(0, 32)), replace=False):
            h[b // 8] ^= np.uint8(0x80 >> (b % 8))
        out.append(h)
    return [q.tobytes().hex() for q in out]


def lua_bodies(path: Path, url: str, bodies: list[Path]) -> None:
    """A wrk script POSTing the bodies in turn (JSON)."""
    files = ",".join(f'"{b}"' for b in bodies)
    path.write_text(
        f"local files = {{{files}}}\n"
        "local reqs = nil\nlocal i = 0\n"
        "request = function()\n"
        "  if reqs == nil then\n"
        "    reqs = {}\n"
        "    local h = {}\n"
        "    for k, v in pairs(wrk.headers) do h[k] = v end\n"
        '    h["Content-Type"] = "application/json"\n'
        "    for j, name in ipairs(files) do\n"
        '      local f = io.open(name, "rb")\n'
        '      local body = f:read("*a")\n      f:close()\n'
        f'      reqs[j] = wrk.format("POST", "{url}", h, body)\n'
        "    end\n"
        "  end\n"
        "  i = i + 1\n  if i > #reqs then i = 1 end\n"
        "  return reqs[i]\n"
        "end\n"
    )


def lua_urls(path: Path, urls: list[str]) -> None:
    path.write_text(
        "local u = {" + ",".join(f'"{x}"' for x in urls) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n  if i > #u then i = 1 end\n"
        '  return wrk.format("GET", u[i])\nend\n'
    )


def expected(ds: hashlookup.Dataset, q: str) -> list[tuple[int, int]]:
    return [(m.record_id, m.distance) for m in ds.near(q)]


def pdq_queries_seen(url: str, token: str) -> float:
    text = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    m = re.search(r"^hashlookup_pdq_queries_total (\S+)$", text.text, re.M)
    assert m, "no pdq_queries_total metric"
    return float(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_400_000)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        path, pdq = make_dataset(d, args.rows)
        print(f"dataset: {args.rows} PDQ hashes in {time.perf_counter() - t0:.1f} s")
        qs = make_queries(pdq)
        proc, url, token = start_server(path, d, 2)
        try:
            ds = hashlookup.open_dataset(path)
            scripts = {"ping": d / "ping.lua", "hma": d / "hma.lua"}
            lua_urls(scripts["ping"], ["/v1/ping"])
            lua_urls(
                scripts["hma"],
                [f"/m/raw_lookup?signal_type=pdq&signal={q}" for q in qs[:1000]],
            )
            auth = {"Authorization": f"Bearer {token}"}
            for name, size in BATCHES.items():
                bodies = []
                for k, s in enumerate(range(0, QUERIES, size)):
                    if k == 8:
                        break  # 8 distinct bodies per size are plenty
                    batch = qs[s : s + size]
                    body = d / f"{name}-{k}.json"
                    body.write_text(json.dumps({"hashes": batch}))
                    bodies.append(body)
                    got = requests.post(
                        url + "/v1/pdq", data=body.read_bytes(), headers=auth
                    ).json()
                    for q, item in zip(batch, got["results"], strict=True):
                        pairs = [(m["record"], m["distance"]) for m in item["matches"]]
                        assert pairs == expected(ds, q), "answer differs from near()"
                scripts[name] = d / f"{name}.lua"
                lua_bodies(scripts[name], "/v1/pdq", bodies)
            pids = worker_pids(proc.pid)
            for s in scripts.values():  # warm-up
                wrk(url, s, token, 1, 4)
            time.sleep(1)
            seen0 = pdq_queries_seen(url, token)
            sent = 0.0
            rounds: list[dict[str, dict[str, float]]] = []
            for _ in range(args.rounds):
                res = {}
                for name, s in scripts.items():
                    # batches: few connections (each holds a search thread)
                    conns = 4 if name in ("pdq_100", "pdq_1000") else args.connections
                    c0, cpu0 = pdq_queries_seen(url, token), cpu_seconds(pids)
                    res[name] = wrk(url, s, token, args.duration, conns)
                    if name != "ping":
                        # the service's own count, after the requests in
                        # flight when wrk stopped are done (wrk counts only
                        # the completed ones: a large part of a run of
                        # 1,000-hash requests)
                        time.sleep(0.5)
                        searched = pdq_queries_seen(url, token) - c0
                        res[name]["qps"] = searched / args.duration
                        res[name]["cpu_us_per_query"] = (
                            (cpu_seconds(pids) - cpu0) / searched * 1e6
                        )
                    else:
                        res[name]["qps"] = 0.0
                        res[name]["cpu_us_per_query"] = (
                            (cpu_seconds(pids) - cpu0) / res[name]["requests"] * 1e6
                        )
                    per = 1 if name == "hma" else BATCHES.get(name, 0)
                    sent += res[name]["requests"] * per
                    assert not res[name]["non2xx"], f"{name}: non-2xx answers"
                rounds.append(res)
            time.sleep(1)
            seen = pdq_queries_seen(url, token) - seen0
            # wrk counts completed requests; those in flight when it stopped
            # were searched too
            assert seen >= sent, f"the service searched {seen} of {sent} queries"
            ds.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    out = summarize(rounds)
    print(report(out, args))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def summarize(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in rounds[0]:
        per = 1 if name in ("hma", "ping") else BATCHES[name]
        med = {
            k: statistics.median(r[name][k] for r in rounds)
            for k in ("rps", "p50_ms", "p99_ms", "qps", "cpu_us_per_query")
        }
        med["batch"] = per
        out[name] = med
    return out


def report(r: dict[str, dict], args: argparse.Namespace) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"load average at the end {load}; "
        f"{args.rows:,} PDQ hashes, 2 workers, wrk -t1 -c{args.connections} "
        "(batches of 100 and 1,000: -c4), "
        f"{args.rounds} rounds of {args.duration:g} s (medians)",
        "",
        "| request | requests/s | PDQ queries/s | p50 | p99 | server CPU per query |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {
        "ping": "GET /v1/ping (constant)",
        "hma": "GET /m/raw_lookup (1 hash)",
        "pdq_1": "POST /v1/pdq, 1 hash",
        "pdq_100": "POST /v1/pdq, 100 hashes",
        "pdq_1000": "POST /v1/pdq, 1,000 hashes",
    }
    for k, label in names.items():
        m = r[k]
        qps = "" if k == "ping" else f"{m['qps']:,.0f}"
        lines.append(
            f"| {label} | {m['rps']:,.0f} | {qps} | {m['p50_ms']:.2f} ms | "
            f"{m['p99_ms']:.2f} ms | {m['cpu_us_per_query']:.1f} us |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
