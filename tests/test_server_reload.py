"""Hot reload under load: the dataset file is replaced (atomically, as
build and update do) while client threads keep querying a 2-worker server.
No request may fail, every answer must be the exact answer of the
generation named by its X-Dataset-Version header, and the answers must
switch to the new generation.  Real server, synthetic data.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests

from server_utils import Server, add_key, bearer, make_dataset

pytestmark = pytest.mark.timeout(300)


def test_replace_dataset_during_load(tmp_path):
    path, old = make_dataset(tmp_path, n=1500, seed=101, generation=1)
    _, new = make_dataset(tmp_path, n=1500, seed=202, name="next.hlds", generation=2)
    oracles = {1: old, 2: new}
    only_old = [h for h in old if h not in new]
    only_new = [h for h in new if h not in old]
    probe = only_old[:40] + only_new[:40]  # each hits in exactly one generation
    keys = tmp_path / "keys.json"
    token = add_key(keys, "load")
    failures: list[str] = []
    seen: dict[int, int] = {1: 0, 2: 0}
    lock = threading.Lock()
    stop = threading.Event()

    def check_lookup(r: requests.Response, digest: str) -> None:
        gen = int(r.headers["x-dataset-version"])
        want = digest in oracles[gen]
        if r.status_code != (200 if want else 404):
            failures.append(
                f"lookup gen {gen}: {r.status_code} for a {'hit' if want else 'miss'}"
            )
        elif want and r.json()["hashlookup:generation"] != gen:
            failures.append("record generation differs from the header")
        with lock:
            seen[gen] += 1

    def check_batch(r: requests.Response, batch: list[str]) -> None:
        if r.status_code != 200:
            failures.append(f"check: status {r.status_code}")
            return
        body = r.json()
        gen = body["generation"]
        if int(r.headers["x-dataset-version"]) != gen:
            failures.append("check: header and body disagree")
        got = [x["status"] for x in body["results"]]
        want = ["hit" if h in oracles[gen] else "miss" for h in batch]
        if got != want:
            failures.append(f"check: answers are not generation {gen}'s")
        with lock:
            seen[gen] += 1

    def client(worker: int) -> None:
        i = worker
        with requests.Session() as s:
            s.headers.update(bearer(token))
            while not stop.is_set():
                try:
                    if i % 5 == 0:
                        batch = probe[i % 7 :] + probe[: i % 7]
                        r = s.post(
                            srv.url + "/v1/check", json={"hashes": batch}, timeout=30
                        )
                        check_batch(r, batch)
                    else:
                        digest = probe[i % len(probe)]
                        alg = {32: "md5", 40: "sha1", 64: "sha256"}[len(digest)]
                        r = s.get(f"{srv.url}/lookup/{alg}/{digest}", timeout=30)
                        check_lookup(r, digest)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                i += 1

    with Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--reload-interval",
        "0.1",
        "--no-audit-log",
        workdir=tmp_path,
    ) as srv:
        threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            with lock:
                before = dict(seen)
            os.replace(tmp_path / "next.hlds", path)
            deadline = time.monotonic() + 20
            switched = False
            while time.monotonic() < deadline and not switched:
                time.sleep(0.3)
                with lock:
                    mark = seen[2]
                time.sleep(0.5)
                # every worker answers from generation 2 now
                gens = {
                    int(
                        requests.get(
                            srv.url + "/v1/ping", headers=bearer(token)
                        ).headers["x-dataset-version"]
                    )
                    for _ in range(12)
                }
                switched = gens == {2} and seen[2] > mark
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        info = requests.get(srv.url + "/info", headers=bearer(token)).json()
        metrics = requests.get(srv.url + "/metrics", headers=bearer(token)).text
    assert not failures, failures[:5]
    assert before[1] > 20 and before[2] == 0
    assert switched and seen[2] > 20
    assert info["generation"] == 2 and info["records"] > 0
    gens = [
        line
        for line in metrics.splitlines()
        if line.startswith("hashlookup_dataset_generation{")
    ]
    assert gens and all(line.endswith(" 2") for line in gens)
