"""The /v1/check answer body: runs of misses rendered as one repetition
each must give exactly b",".join of the per-item results (no server
needed: CheckResult built directly, random marks at every position)."""

import random

import orjson

from hashlookup.server import _check as checks


def test_results_json_equals_the_plain_join():
    rng = random.Random(5)
    for n in list(range(8)) + [rng.randrange(8, 3000) for _ in range(60)]:
        res = checks.CheckResult(n, [checks.MISS_ITEM] * n)
        k = rng.choice([0, 1, 2, n // 3, n])
        for i in rng.sample(range(n), min(k, n)):
            res.items[i] = orjson.dumps({"status": "hit", "i": i})
            res.marked.append(i)
        expected = b",".join(res.items)
        assert checks._results_json(res) == expected
        body = b"[" + checks._results_json(res) + b"]"
        assert [x.get("i") for x in orjson.loads(body)] == [
            i if res.items[i] != checks.MISS_ITEM else None for i in range(n)
        ]
