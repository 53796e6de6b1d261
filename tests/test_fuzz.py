"""The fuzz targets of tests/fuzz/ inside the normal suite (docs/FUZZING.md):

* every input that ever crashed, hung or raised an undocumented exception
  (tests/fuzz/regressions/<target>/) is replayed and must now pass;
* every seed input (valid files) passes without even a documented error,
  so the targets really reach the code past the input checks;
* each target is fuzzed for a few seconds (FUZZ_TEST_SECONDS, default 3)
  in a subprocess with a fixed libFuzzer seed: about a minute in total.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fuzz import run, targets

REGRESSIONS = Path(run.REGRESSIONS)
CASES = sorted(
    (p.parent.name, p.name)
    for p in REGRESSIONS.glob("*/*")
    if p.is_file() and not p.name.startswith(".")
)
SECONDS = float(os.environ.get("FUZZ_TEST_SECONDS", 3))


@pytest.mark.parametrize("target,name", CASES, ids=[f"{t}/{n[:20]}" for t, n in CASES])
@pytest.mark.timeout(60)
def test_regression(target, name):
    targets.run_one(target, (REGRESSIONS / target / name).read_bytes())


def test_regression_corpus_is_not_empty():
    # The corpus holds the findings of the fuzzing so far (docs/FUZZING.md);
    # losing it would silently drop their tests.
    assert {t for t, _ in CASES} >= {"dataset", "csv", "batch"}


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_seeds_are_valid_inputs(target):
    t = targets.TARGETS[target]
    seeds = t.seeds()
    assert seeds
    for data in seeds:
        t.run(data)  # no exception at all, documented or not


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
@pytest.mark.timeout(180)
def test_short_fuzz_run(target):
    result = run.run_target(target, SECONDS, seed=1)
    assert result["returncode"] == 0 and not result["artifacts"], result["output"][
        -4000:
    ]
    assert result["executions"] > 10, result["output"][-2000:]
