"""benchmarks/compare_ratios.py (``make bench-compare``): the ratios of two
saved pytest-benchmark runs, a regression beyond the tolerance fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "compare_ratios.py"


def _run_file(path: Path, ratios: dict[str, float | dict[str, object] | None]) -> Path:
    """A pytest-benchmark JSON run holding these figures (None: no ratio; a
    dict: the extra_info's other fields too)."""
    benchmarks = []
    for name, ratio in ratios.items():
        info: dict[str, object] = {"baseline": "the set"}
        if isinstance(ratio, dict):
            info.update(ratio)
        elif ratio is not None:
            info["ratio"] = ratio
        benchmarks.append(
            {"fullname": f"bench_ratio_x.py::{name}", "extra_info": info, "stats": {}}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return path


def _compare(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _verdicts(out: str) -> dict[str, str]:
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| test_")]
    return {r[1].strip(): r[-2].strip() for r in rows}


@pytest.mark.parametrize(
    ("new", "verdict", "code"),
    [(0.30, "ok", 0), (0.24, "ok", 0), (0.38, "REGRESSION", 1), (0.2, "faster", 0)],
)
def test_a_ratio_growing_past_the_tolerance_fails(
    tmp_path: Path, new: float, verdict: str, code: int
) -> None:
    old = _run_file(tmp_path / "old.json", {"test_a": 0.3, "test_b": 2.0})
    cur = _run_file(tmp_path / "new.json", {"test_a": new, "test_b": 2.0})
    done = _compare("--tolerance", "0.25", str(old), str(cur))
    assert done.returncode == code, done.stdout + done.stderr
    assert _verdicts(done.stdout) == {"test_a": verdict, "test_b": "ok"}


def test_both_ratios_must_grow_and_ungated_figures_never_fail(tmp_path: Path) -> None:
    old = _run_file(
        tmp_path / "old.json",
        {
            "test_both": {"ratio": 1.0, "ratio_median": 1.0},
            "test_best": {"ratio": 1.0, "ratio_median": 1.0},
            "test_median": {"ratio": 1.0, "ratio_median": 1.0},
            "test_info": {"ratio": 1.0, "ratio_median": 1.0},
        },
    )
    new = _run_file(
        tmp_path / "new.json",
        {
            "test_both": {"ratio": 1.6, "ratio_median": 1.7},
            "test_best": {"ratio": 1.6, "ratio_median": 1.1},
            "test_median": {"ratio": 1.1, "ratio_median": 1.6},
            "test_info": {"ratio": 3.0, "ratio_median": 3.0, "gate": False},
        },
    )
    done = _compare("--tolerance", "0.5", str(old), str(new))
    assert done.returncode == 1
    assert _verdicts(done.stdout) == {
        "test_both": "REGRESSION",
        "test_best": "unsteady",
        "test_median": "unsteady",
        "test_info": "info",
    }
    assert "1 regression(s) beyond 50%" in done.stdout


def test_missing_and_new_figures(tmp_path: Path) -> None:
    old = _run_file(tmp_path / "old.json", {"test_gone": 1.0, "test_plain": None})
    cur = _run_file(tmp_path / "new.json", {"test_new": 1.0, "test_plain": None})
    done = _compare(str(old), str(cur))
    assert done.returncode == 1
    # a benchmark without a ratio is not a figure
    assert _verdicts(done.stdout) == {"test_gone": "REGRESSION", "test_new": "new"}


def test_storage_compares_the_newest_two_runs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = _run_file(store / "m" / "0001_a.json", {"test_a": 1.0})
    done = _compare("--storage", str(store))
    assert done.returncode == 0 and "first run" in done.stdout
    second = _run_file(store / "m" / "0002_b.json", {"test_a": 1.1})
    third = _run_file(store / "m" / "0003_c.json", {"test_a": 2.0})
    for i, p in enumerate((first, second, third)):
        os.utime(p, (1000 + i, 1000 + i))
    done = _compare("--storage", str(store))
    assert done.returncode == 1  # 0002 -> 0003: the ratio grew 82 %
    assert f"{second} -> {third}" in done.stdout
    done = _compare("--storage", str(store), str(first))  # an explicit baseline
    assert done.returncode == 1 and f"{first} -> {third}" in done.stdout


def test_bad_input_is_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    good = _run_file(tmp_path / "good.json", {"test_a": 1.0})
    done = _compare(str(bad), str(good))
    assert done.returncode == 2 and "not a pytest-benchmark run" in done.stderr
    assert _compare("--storage", str(tmp_path / "empty")).returncode == 2
