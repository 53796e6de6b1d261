"""Run the fuzz targets of targets.py with atheris (libFuzzer).

    python tests/fuzz/run.py [--seconds S] [--corpus DIR] [TARGET ...]

runs each target (default: all) in its own process for S seconds (default:
env FUZZ_SECONDS, else 180) and prints executions and findings per target.
Exit status 1 if any target found something.  An input that crashed, hung
(-timeout) or raised an undocumented exception is written by libFuzzer to
tests/fuzz/regressions/<target>/ (crash-*, timeout-*, oom-*), where
tests/test_fuzz.py replays it in every `make test`: fix the bug, keep the
file.

    python tests/fuzz/run.py --one TARGET --seconds S --corpus DIR

is the worker: it writes the target's seeds into DIR and fuzzes from there.
The library's Python code is instrumented for coverage; the C core is
exercised but not instrumented (libFuzzer coverage of C needs a clang
-fsanitize=fuzzer build of the extension).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions"
HANG_SECONDS = 10  # one input running longer than this is a hang
RSS_LIMIT_MB = 2048


def _worker(name: str, seconds: float, corpus: str, seed: int | None) -> None:
    import atheris

    sys.path.insert(0, str(HERE.parent))
    with atheris.instrument_imports(include=["hashlookup"]):
        import hashlookup
        import hashlookup.importers  # noqa: F401
    from fuzz import targets

    target = targets.TARGETS[name]
    os.makedirs(corpus, exist_ok=True)
    for data in target.seeds():
        digest = hashlib.sha1(data).hexdigest()
        with open(os.path.join(corpus, f"seed-{digest}"), "wb") as f:
            f.write(data)
    artifacts = REGRESSIONS / name
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        corpus,
        f"-max_total_time={max(1, int(seconds))}",
        f"-timeout={HANG_SECONDS}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={target.max_len}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
    ]
    if seed is not None:
        argv.append(f"-seed={seed}")

    def one_input(data: bytes) -> None:
        targets.run_one(name, data)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def run_target(
    name: str, seconds: float, corpus: str | None = None, seed: int | None = None
) -> dict:
    """Fuzz one target in a subprocess; returns its summary."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(HERE / "run.py"),
            "--one",
            name,
            "--seconds",
            str(seconds),
            "--corpus",
            corpus or tmp,
        ]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        t0 = time.monotonic()
        # Generous outer limit: seeds, start-up and libFuzzer's own timeout.
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=seconds + 120 + HANG_SECONDS,
        )
    out = proc.stdout + proc.stderr
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
    artifacts = re.findall(r"(?:Test unit|artifact) written to (\S+)", out)
    return {
        "target": name,
        "returncode": proc.returncode,
        "executions": int(execs[-1]) if execs else 0,
        "seconds": round(time.monotonic() - t0, 1),
        "artifacts": artifacts,
        "output": out,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*")
    p.add_argument(
        "--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 180))
    )
    p.add_argument("--corpus", help="corpus directory (kept between runs)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        _worker(args.one, args.seconds, args.corpus, args.seed)
        return 0
    sys.path.insert(0, str(HERE.parent))
    from fuzz.targets import TARGETS

    names = args.targets or list(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        p.error(f"unknown target(s) {', '.join(unknown)}; have {', '.join(TARGETS)}")
    failed = 0
    total = 0
    print(f"{'target':10} {'executions':>12} {'seconds':>8}  result", flush=True)
    for name in names:
        corpus = os.path.join(args.corpus, name) if args.corpus else None
        r = run_target(name, args.seconds, corpus, args.seed)
        ok = r["returncode"] == 0 and not r["artifacts"]
        total += r["executions"]
        print(
            f"{name:10} {r['executions']:>12} {r['seconds']:>8}  "
            f"{'ok' if ok else 'FINDING ' + ' '.join(r['artifacts'])}",
            flush=True,
        )
        if not ok:
            failed += 1
            sys.stderr.write(r["output"][-6000:] + "\n")
    print(f"{'total':10} {total:>12}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
