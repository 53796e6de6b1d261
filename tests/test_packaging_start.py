"""Starting from a tree without the compiled extensions: ``python -m
hashlookup`` exits 2 (error) with a message saying how to build or install,
never a traceback and 1 ("found"); ``import hashlookup`` raises an
ImportError that says the same."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hashlookup


@pytest.fixture(scope="module")
def unbuilt_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the installed package without its compiled modules: what a
    source checkout looks like before a build."""
    root = tmp_path_factory.mktemp("checkout")
    package = Path(hashlookup.__file__).parent
    shutil.copytree(
        package,
        root / "hashlookup",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"),
    )
    return root


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Not -I: the current directory on sys.path is the case under test; the
    # venv's installed package is shadowed by the tree in cwd.
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("argv", [["--help"], ["check", "x.hlds", "0" * 32], []])
def test_python_m_in_unbuilt_tree_exits_2_with_advice(
    unbuilt_tree: Path, argv: list[str]
) -> None:
    out = _run(unbuilt_tree, "-m", "hashlookup", *argv)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    assert "hashlookup._core" in out.stderr
    assert "make install" in out.stderr and "build_ext --inplace" in out.stderr
    assert "python -I -m hashlookup" in out.stderr
    assert out.stdout == ""


def test_import_in_unbuilt_tree_says_how_to_build(unbuilt_tree: Path) -> None:
    probe = "import hashlookup\nprint('imported', hashlookup.__file__)\n"
    out = _run(unbuilt_tree, "-c", probe)
    assert out.returncode == 1
    assert "ImportError: hashlookup: the compiled core" in out.stderr
    assert "make install" in out.stderr
    assert "imported" not in out.stdout


def test_installed_package_imports_and_runs(tmp_path: Path) -> None:
    """The check costs nothing where the extension is present."""
    out = _run(tmp_path, "-I", "-m", "hashlookup", "--version")
    assert out.returncode == 0, out
    assert hashlookup.__version__ in out.stdout
