"""Load test of the lookup service with wrk (a second process on loopback).

    python benchmarks/load_server.py [--records N] [--duration S] [--rounds R]

Builds a synthetic dataset (fixed seed; md5, sha1, sha256 and size per
record, a category label), starts `hashlookup serve` with API keys, the
audit log on and the rate limit off, and measures, with wrk:

1. single GET lookups against GET /v1/ping, an endpoint of the same server
   behind the same auth and metrics that returns a constant JSON body
   without touching the dataset.  The three runs (ping, hits, misses) are
   interleaved over several rounds (every other round in reverse order) so
   that load from other processes hits them alike; the ratio is taken per
   round and its median (and lowest) reported, with p50/p99 latency and the
   load average of the machine.
2. POST /v1/check with 10,000 digests per request: JSON (md5, sha1 and
   sha256 mixed, 1% hits), newline-separated text, and raw 16-byte md5
   digests (application/octet-stream), in digests per second.

With --pin, one worker runs on CPU 0 and wrk on CPU 1: the server is the
bottleneck, and requests/s ratios follow the server's CPU per request.

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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

import hashlookup

WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}


def make_dataset(d: Path, n: int, seed: int = 2026) -> Path:
    rng = np.random.default_rng(seed)
    cols = {a: rng.integers(0, 256, (n, w), dtype=np.uint8) for a, w in WIDTH.items()}
    hexes = {
        a: np.frombuffer(c.tobytes().hex().encode(), f"S{2 * WIDTH[a]}")
        for a, c in cols.items()
    }
    size = rng.integers(0, 1 << 32, n).astype(str)
    cat = rng.integers(0, 5, n).astype(str)
    csv = d / "src.csv"
    with open(csv, "wb") as f:
        f.write(b"MD5,SHA1,SHA256,Size,Category\n")
        step = 100_000
        for s in range(0, n, step):
            e = min(n, s + step)
            rows = zip(
                hexes["md5"][s:e],
                hexes["sha1"][s:e],
                hexes["sha256"][s:e],
                size[s:e],
                cat[s:e],
            )
            f.write(
                b"".join(
                    b"%s,%s,%s,%s,%s\n" % (a, b, c, x.encode(), y.encode())
                    for a, b, c, x, y in rows
                )
            )
    out = d / "bench.hlds"
    hashlookup.build_dataset(
        {"bench": str(csv)}, str(out), label_columns={"category": "Category"}
    )
    csv.unlink()
    return out


def start_server(
    path: Path, d: Path, workers: int, audit: bool = True, pin: list[str] | None = None
) -> tuple[subprocess.Popen, str, str]:
    keys = d / "keys.json"
    token = subprocess.run(
        [
            sys.executable,
            "-I",
            "-m",
            "hashlookup",
            "apikey",
            "add",
            "--keys",
            str(keys),
            "bench",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    err = open(d / "serve.err", "wb")  # noqa: SIM115 (the server's, while it runs)
    proc = subprocess.Popen(
        [
            *(pin or []),
            sys.executable,
            "-I",
            "-m",
            "hashlookup",
            "serve",
            str(path),
            "--port",
            "0",
            "--workers",
            str(workers),
            "--api-keys",
            str(keys),
            "--rate-limit",
            "0",
            *(["--audit-log", str(d / "audit.jsonl")] if audit else ["--no-audit-log"]),
        ],
        stderr=err,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"listening on (http://\S+)", (d / "serve.err").read_text())
        if m:
            url = m.group(1)
            try:
                if requests.get(url + "/healthz", timeout=2).ok:
                    return proc, url, token
            except requests.ConnectionError:
                pass
        time.sleep(0.1)
    raise SystemExit("server did not start: " + (d / "serve.err").read_text())


def checked(url: str, token: str) -> float:
    text = requests.get(
        url + "/metrics", headers={"Authorization": f"Bearer {token}"}
    ).text
    m = re.search(r"^hashlookup_digests_checked_total (\S+)$", text, re.M)
    assert m, "no digests_checked_total metric"
    return float(m.group(1))


def lua_get(path: Path, urls: list[str]) -> None:
    path.write_text(
        "local u = {" + ",".join(f'"{x}"' for x in urls) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n  if i > #u then i = 1 end\n"
        '  return wrk.format("GET", u[i])\nend\n'
    )


def lua_post(path: Path, url: str, body_file: Path, ctype: str) -> None:
    # wrk.format replaces wrk.headers (the -H Authorization) when given a
    # table: copy them, once, at the first request
    path.write_text(
        f'local f = io.open("{body_file}", "rb")\n'
        'local body = f:read("*a")\nf:close()\n'
        "local req = nil\n"
        "request = function()\n"
        "  if req == nil then\n"
        "    local h = {}\n"
        "    for k, v in pairs(wrk.headers) do h[k] = v end\n"
        f'    h["Content-Type"] = "{ctype}"\n'
        f'    req = wrk.format("POST", "{url}", h, body)\n'
        "  end\n"
        "  return req\n"
        "end\n"
    )


def worker_pids(supervisor: int) -> list[int]:
    text = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text()
    return [int(x) for x in text.split()]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


# --pin: command prefixes that put the server on CPU 0 and wrk on CPU 1
SERVER_CPU = ["taskset", "-c", "0"]
CLIENT_CPU = ["taskset", "-c", "1"]
_wrk_prefix: list[str] = []


def wrk(
    url: str,
    script: Path,
    token: str,
    duration: float,
    conns: int,
    pids: list[int] | None = None,
) -> dict[str, float]:
    cpu0 = cpu_seconds(pids) if pids else 0.0
    load = os.getloadavg()[0]  # other processes' share of the machine
    out = subprocess.run(
        [
            *_wrk_prefix,
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{duration:g}s",
            "--latency",
            "-s",
            str(script),
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res: dict[str, float] = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),
    }
    for p in ("50", "99"):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        if m:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            res[f"p{p}_ms"] = float(m.group(1)) * scale
    res["load"] = load
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = float(bad.group(1)) if bad else 0.0
    if pids:  # server CPU per completed request: immune to other load
        res["cpu_us"] = (cpu_seconds(pids) - cpu0) / max(1.0, res["requests"]) * 1e6
    errs = re.search(r"Socket errors:.*", out)
    res["socket_errors"] = errs.group(0) if errs else ""  # type: ignore[assignment]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--duration", type=float, default=5.0)
    # single-GET requests/s swing a lot between rounds on a shared machine
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--json", metavar="FILE", help="also write the results here")
    ap.add_argument(
        "--no-audit-log",
        action="store_true",
        help="serve without the audit log of hits (default: on, to a "
        "file), to see what the audit line costs a hit",
    )
    ap.add_argument(
        "--pin",
        action="store_true",
        help="one worker pinned to CPU 0 and wrk to CPU 1 (taskset): "
        "the server is the bottleneck, so requests/s follow its CPU "
        "per request and the ratios are steadier than when server, "
        "wrk and other load share both cores",
    )
    args = ap.parse_args()
    if args.pin:
        if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
            raise SystemExit("--pin needs taskset and 2 CPUs")
        args.workers = 1
        _wrk_prefix[:] = CLIENT_CPU
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    d = Path(tempfile.mkdtemp(prefix="hashlookup-bench-server-"))
    proc = None
    try:
        t0 = time.perf_counter()
        path = make_dataset(d, args.records)
        print(
            f"dataset: {args.records:,} records, "
            f"{path.stat().st_size / 1e6:.0f} MB, built in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        rng = np.random.default_rng(7)
        with hashlookup.open_dataset(path) as ds:
            tables = {a: ds.table(a).keys() for a in WIDTH}
            n_md5 = len(tables["md5"])
            hits = [
                bytes(tables["md5"][i]).hex() for i in rng.integers(0, n_md5, 20_000)
            ]
            mixed_hits = {
                a: [
                    bytes(tables[a][i]).hex()
                    for i in rng.integers(0, len(tables[a]), 34)
                ]
                for a in WIDTH
            }
            misses = [
                rng.integers(0, 256, 16, dtype=np.uint8).tobytes().hex()
                for _ in range(20_000)
            ]
            assert not any(ds.lookup(m) for m in misses[:1000])
        lua_get(d / "ping.lua", ["/v1/ping"])
        lua_get(d / "hits.lua", ["/lookup/md5/" + h for h in hits])
        lua_get(d / "misses.lua", ["/lookup/md5/" + h for h in misses])
        # 10,000 digests: a third of each algorithm, 1% (100) hits
        batch: list[str] = []
        for (a, w), total, n_hits in zip(
            WIDTH.items(), (3334, 3333, 3333), (34, 33, 33)
        ):
            batch += mixed_hits[a][:n_hits]
            batch += [
                rng.integers(0, 256, w, dtype=np.uint8).tobytes().hex()
                for _ in range(total - n_hits)
            ]
        batch = [batch[i] for i in rng.permutation(len(batch))]
        assert len(batch) == 10_000
        (d / "batch.json").write_text(json.dumps({"hashes": batch}))
        (d / "batch.txt").write_text("\n".join(batch) + "\n")
        raw_md5 = [bytes(tables["md5"][i]) for i in rng.integers(0, n_md5, 100)]
        raw_md5 += [
            rng.integers(0, 256, 16, dtype=np.uint8).tobytes() for _ in range(9900)
        ]
        (d / "batch.bin").write_bytes(
            b"".join(raw_md5[i] for i in rng.permutation(10_000))
        )
        lua_post(d / "json.lua", "/v1/check", d / "batch.json", "application/json")
        lua_post(d / "text.lua", "/v1/check", d / "batch.txt", "text/plain")
        lua_post(
            d / "bin.lua",
            "/v1/check?algorithm=md5",
            d / "batch.bin",
            "application/octet-stream",
        )

        proc, url, token = start_server(
            path,
            d,
            args.workers,
            not args.no_audit_log,
            SERVER_CPU if args.pin else None,
        )
        check = requests.post(
            url + "/v1/check",
            data=(d / "batch.json").read_bytes(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
        ).json()
        assert check["count"] == 10_000 and check["hits"] == 100, check["hits"]
        for s in ("ping", "hits", "misses", "json"):  # warm up
            wrk(url, d / f"{s}.lua", token, 1, args.connections)
        # the server really checks every digest wrk sends: its own counter
        time.sleep(1)  # requests still in flight when wrk stopped
        before = checked(url, token)
        sent = wrk(url, d / "json.lua", token, 2, 4)["requests"] * 10_000
        time.sleep(1)
        counted = checked(url, token) - before
        assert sent <= counted <= sent + 4 * 10_000, (sent, counted)
        print(
            f"verified: the server counted {counted:,.0f} digests for "
            f"{sent:,.0f} sent in completed requests",
            flush=True,
        )
        rounds: list[dict[str, dict[str, float]]] = []
        pids = worker_pids(proc.pid)
        for r in range(args.rounds):
            # every other round in reverse order, so that a drift in the
            # machine's load during a round hits no endpoint more than another
            order = ("ping", "hits", "misses")
            one = {
                s: wrk(
                    url, d / f"{s}.lua", token, args.duration, args.connections, pids
                )
                for s in (order if r % 2 == 0 else order[::-1])
            }
            one.update(
                {
                    s: wrk(url, d / f"{s}.lua", token, args.duration, 4, pids)
                    for s in ("json", "text", "bin")
                }
            )
            rounds.append(one)
            print(
                f"round {r + 1} (load {one['ping']['load']:.1f}): "
                + ", ".join(f"{s} {v['rps']:,.0f}/s" for s, v in one.items())
                + "; hits/ping "
                + f"{one['hits']['rps'] / one['ping']['rps']:.2f} req/s, "
                + f"{one['ping']['cpu_us'] / one['hits']['cpu_us']:.2f} CPU",
                flush=True,
            )
        results = summarize(rounds)
        results["records"] = args.records
        results["audit"] = not args.no_audit_log
        results["workers"] = args.workers
        results["pinned"] = args.pin
        print(report(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        failed = [
            s for one in rounds for s, v in one.items() if v["non2xx"] and s != "misses"
        ]
        return 1 if failed else 0
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        shutil.rmtree(d, ignore_errors=True)


def summarize(rounds: list[dict[str, dict[str, float]]]) -> dict:
    med = statistics.median
    out: dict = {"rounds": rounds}
    for s in ("ping", "hits", "misses"):
        out[s] = {
            k: med(r[s][k] for r in rounds)
            for k in ("rps", "p50_ms", "p99_ms", "cpu_us")
        }
    out["load"] = {
        "median": med(v["load"] for r in rounds for v in r.values()),
        "min": min(v["load"] for r in rounds for v in r.values()),
        "max": max(v["load"] for r in rounds for v in r.values()),
    }
    for s in ("hits", "misses"):
        out[f"{s}_ratio"] = med(r[s]["rps"] / r["ping"]["rps"] for r in rounds)
        out[f"{s}_ratio_min"] = min(r[s]["rps"] / r["ping"]["rps"] for r in rounds)
        out[f"{s}_cpu_ratio"] = med(
            r["ping"]["cpu_us"] / r[s]["cpu_us"] for r in rounds
        )
    for s in ("json", "text", "bin"):
        out[s] = {
            "requests_per_s": med(r[s]["rps"] for r in rounds),
            "digests_per_s": med(r[s]["rps"] for r in rounds) * 10_000,
            "p50_ms": med(r[s]["p50_ms"] for r in rounds),
            "cpu_us": med(r[s]["cpu_us"] for r in rounds),
        }
    return out


def report(r: dict) -> str:
    lines = [
        f"\n{r['records']:,} records, {r['workers']} workers, audit log "
        f"{'on' if r.get('audit', True) else 'off'}, wrk on the same "
        "machine (loopback)"
        + ("; server pinned to CPU 0, wrk to CPU 1" if r.get("pinned") else "")
        + "; medians over rounds; load average "
        + "{median:.1f} (from {min:.1f} to {max:.1f})".format(**r["load"]),
        "",
        "| endpoint | requests/s | p50 | p99 | vs constant (req/s) | server CPU "
        "per request | vs constant (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s, name in (
        ("ping", "GET /v1/ping (constant JSON)"),
        ("hits", "GET /lookup/md5 (hits)"),
        ("misses", "GET /lookup/md5 (misses)"),
    ):
        v = r[s]
        ratio = (
            "1"
            if s == "ping"
            else f"{r[f'{s}_ratio']:.2f} (min {r[f'{s}_ratio_min']:.2f})"
        )
        cpu_ratio = "1" if s == "ping" else f"{r[f'{s}_cpu_ratio']:.2f}"
        lines.append(
            f"| {name} | {v['rps']:,.0f} | {v['p50_ms']:.2f} ms | "
            f"{v['p99_ms']:.2f} ms | {ratio} | {v['cpu_us']:.0f} us | "
            f"{cpu_ratio} |"
        )
    lines += [
        "",
        "| POST /v1/check, 10,000 digests | requests/s | digests/s | p50 | "
        "server CPU per request | digests/s per server core |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s, name in (
        ("json", "JSON (md5/sha1/sha256 mixed, 1% hits)"),
        ("text", "text/plain (same digests)"),
        ("bin", "octet-stream (raw md5, 1% hits)"),
    ):
        v = r[s]
        lines.append(
            f"| {name} | {v['requests_per_s']:,.0f} | "
            f"{v['digests_per_s'] / 1e6:.2f} M | {v['p50_ms']:.1f} ms | "
            f"{v['cpu_us'] / 1e3:.2f} ms | "
            f"{10_000 / (v['cpu_us'] / 1e6) / 1e6:.2f} M |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
