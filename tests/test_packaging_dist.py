"""What the package ships: the license (Apache-2.0, as pyproject.toml says)
in the repository and in the installed metadata, and a source distribution
that holds what builds the package and no tests (the tests need the
repository's helpers and make targets; README.md, "Building").

The wheel itself (manylinux tag, stripped modules, installed without a
compiler) is checked by `make wheel-test` (tools/check_wheel.py), which CI
runs after the suite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _is_apache_2(text: str) -> bool:
    return (
        "Apache License" in text
        and "Version 2.0, January 2004" in text
        and "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
        and "END OF TERMS AND CONDITIONS" in text
    )


def test_license_file_matches_pyproject() -> None:
    assert _is_apache_2((ROOT / "LICENSE").read_text())
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()


def test_installed_metadata_carries_the_license() -> None:
    dist = distribution("hashlookup")
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    files = [f for f in dist.files or () if f.name == "LICENSE"]
    assert files, "no LICENSE in the installed .dist-info"
    assert _is_apache_2(files[0].read_text())


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Member names (without the top folder) of an sdist built from a copy
    of the tracked tree."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git repository")
    tmp = tmp_path_factory.mktemp("sdist")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    src = tmp / "src"
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if path.is_file():
            (src / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name.decode())
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))",
            str(tmp / "dist"),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    archive = tmp / "dist" / out.stdout.split()[-1]
    with tarfile.open(archive) as tar:
        return [m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name]


def test_sdist_builds_the_package_and_holds_no_tests(sdist: list[str]) -> None:
    names = set(sdist)
    for needed in (
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "setup.py",
        "hashlookup/_core.pyx",
        "hashlookup/_core.pyi",
        "hashlookup/server/_render.pyx",
        "csrc/hl_search.c",
        "csrc/hl_search_kernels.inc",
        "csrc/server/hl_render.c",
    ):
        assert needed in names, needed
    leaked = [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "tools")]
    assert leaked == []
    assert not [n for n in names if n.startswith("csrc/tests/")]
    # generated C is rebuilt from the .pyx, never shipped stale
    assert "hashlookup/_core.c" not in names
