"""The public API's types as a user's type checker sees them (the installed
package, its py.typed and stubs): tests/typing_user/user_ok.py must pass
``mypy --strict`` and pyright with no error; every line of
tests/typing_user/user_bad.py marked ``# E: <code>`` must get that mypy error
(and a pyright error), and no other line an error."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "typing_user"
FILES = ("user_ok.py", "user_bad.py")


def _expected() -> dict[int, str]:
    marks = {}
    for number, line in enumerate((HERE / "user_bad.py").read_text().splitlines(), 1):
        found = re.search(r"# E: ([\w-]+)$", line)
        if found:
            marks[number] = found.group(1)
    assert len(marks) >= 8
    return marks


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user scripts, alone in a folder outside the source tree (so that
    `hashlookup` is the installed package)."""
    work = tmp_path_factory.mktemp("typing")
    for name in FILES:
        shutil.copy(HERE / name, work / name)
    (work / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    return work


def test_mypy_strict(workdir: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(workdir / ".cache"),
            *FILES,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = re.findall(
        r"^(user_\w+)\.py:(\d+): error: .*\[([\w-]+)\]$", out.stdout, re.M
    )
    ok = [e for e in errors if e[0] == "user_ok"]
    assert ok == [], out.stdout
    got = {int(line): code for name, line, code in errors if name == "user_bad"}
    assert got == _expected(), out.stdout


def test_pyright(workdir: Path) -> None:
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    if pyright is None:
        pytest.skip("pyright is not installed")
    out = subprocess.run(
        [pyright, "--pythonpath", sys.executable, "--outputjson", *FILES],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    import json

    report = json.loads(out.stdout)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    ok = [d for d in errors if d["file"].endswith("user_ok.py")]
    assert ok == [], ok
    lines = {
        d["range"]["start"]["line"] + 1
        for d in errors
        if d["file"].endswith("user_bad.py")
    }
    assert lines == set(_expected()), errors
