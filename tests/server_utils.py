"""Helpers of the lookup service tests: synthetic datasets (fixed seeds) and
a real `hashlookup serve` process on a free loopback port."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

import hashlookup
from importer_data import make_table, write_csv, write_text

ALGS = ("md5", "sha1", "sha256")
HEX_LEN = {"md5": 32, "sha1": 40, "sha256": 64}


def make_dataset(
    directory: Path,
    n: int = 3000,
    seed: int = 5150,
    name: str = "known.hlds",
    generation: int | None = None,
) -> tuple[Path, dict[str, dict]]:
    """A dataset of two sources: a CSV with md5/sha1/sha256 (some absent),
    size and category, and a plain md5 list; built into directory/name
    (atomically replacing an existing file).

    Returns (path, oracle): the oracle maps every digest (lowercase hex) to
    the record a lookup must give, from the generated rows themselves:
    {"md5", "sha1", "sha256" (hex or None), "size" (int or None), "labels"
    (sorted list)}."""
    directory.mkdir(parents=True, exist_ok=True)
    table = make_table(n, seed, missing=0.15, categories=4, unknown_size=0.1)
    extra = make_table(n // 5, seed + 1, algos=("md5",))
    csv_path = directory / f"vendor-{seed}.csv"
    txt_path = directory / f"police-{seed}.txt"
    write_csv(csv_path, table, category_name="Category")
    write_text(txt_path, extra, "md5")
    hashlookup.build_dataset(
        {"vendor": str(csv_path), "police": str(txt_path)},
        str(directory / name),
        label_columns={"category": "Category"},
        generation=generation,
    )
    oracle: dict[str, dict] = {}
    hexes = {a: table.hex(a) for a in ALGS}
    for i in range(n):
        rec = {a: hexes[a][i] or None for a in ALGS}
        size = int(table.size[i])
        cat = int(table.category[i])
        rec["size"] = size if size >= 0 else None
        rec["labels"] = sorted(
            ["source:vendor"] + ([f"category:{cat}"] if cat >= 0 else [])
        )
        for a in ALGS:
            if rec[a]:
                oracle[rec[a]] = rec
    for h in extra.hex("md5"):
        oracle[h] = {
            "md5": h,
            "sha1": None,
            "sha256": None,
            "size": None,
            "labels": ["source:police"],
        }
    return directory / name, oracle


def algorithm_of(digest: str) -> str:
    return {32: "md5", 40: "sha1", 64: "sha256"}[len(digest)]


def circl_expected(rec: dict, dataset: str, generation: int) -> dict:
    """What the CIRCL endpoints must answer for an oracle record (without
    hashlookup:built, which the test takes from /info)."""
    out: dict = {}
    for a, key in (("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256")):
        if rec[a]:
            out[key] = rec[a].upper()
    if rec["size"] is not None:
        out["FileSize"] = str(rec["size"])
    out["hashlookup:labels"] = rec["labels"]
    out["hashlookup:dataset"] = dataset
    out["hashlookup:generation"] = generation
    return out


def random_misses(alg: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    w = HEX_LEN[alg] // 2
    return [rng.integers(0, 256, w, dtype=np.uint8).tobytes().hex() for _ in range(n)]


class Server:
    """`hashlookup serve DATASET --port 0 ...` in a subprocess; stderr goes to
    a file (read for the port and checked for leaks)."""

    def __init__(
        self, dataset: Path, *args: str, workdir: Path, workers: int = 2
    ) -> None:
        self.stderr_path = workdir / f"serve-{time.monotonic_ns()}.err"
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115 (closed by stop())
        cmd = [
            sys.executable,
            "-m",
            "hashlookup",
            "serve",
            str(dataset),
            "--port",
            "0",
            "--workers",
            str(workers),
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=self._err, cwd=workdir
        )
        self.url = self._wait_for_port()
        self._wait_healthy()

    def _wait_for_port(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"listening on (http://\S+:\d+)", self.stderr())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited {self.proc.returncode}:\n{self.stderr()}"
                )
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.stderr()}")

    def _wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not healthy:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # the workers die with it (PDEATHSIG)
                self.proc.wait(5)
        self._err.close()
        return self.proc.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_key(keys: Path, name: str, *extra: str) -> str:
    """`hashlookup apikey add`; returns the printed token."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hashlookup",
            "apikey",
            "add",
            "--keys",
            str(keys),
            name,
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
