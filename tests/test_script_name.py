"""The command's name: ``hlookup`` is always this program; ``hashlookup`` is
shared with the CIRCL client (pyhashlookup), so the command line says so on a
terminal when the ``hashlookup`` found is not this program."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _console_scripts(dist: str) -> dict[str, str]:
    return {
        ep.name: ep.value
        for ep in distribution(dist).entry_points
        if ep.group == "console_scripts"
    }


def test_hlookup_is_ours_and_only_ours() -> None:
    ours = _console_scripts("hashlookup")
    assert ours["hlookup"] == "hashlookup.cli:main"
    # The clash this name avoids: the CIRCL client claims `hashlookup`.
    theirs = _console_scripts("pyhashlookup")
    assert "hashlookup" in theirs and "hlookup" not in theirs
    script = BIN / "hlookup"
    assert b"hashlookup.cli" in script.read_bytes()


def test_hlookup_runs_the_command_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(BIN / "hlookup"), "check", str(tmp_path / "none.hlds"), "0" * 32],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("hashlookup: error:"), out.stderr


def _run_on_terminal(argv: list[str], path: str) -> tuple[int, str]:
    """Run argv with stderr on a pseudo-terminal; (status, stderr text)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env={**os.environ, "PATH": path},
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        status = proc.wait(timeout=60)
    finally:
        os.close(leader)
    return status, b"".join(chunks).decode("utf-8", "replace")


def _fake_bin(tmp_path: Path, text: str) -> Path:
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "hashlookup"
    script.write_text(text)
    script.chmod(0o755)
    return fake


CIRCL = "#!/usr/bin/python3\nimport sys\nfrom pyhashlookup import main\n"


@pytest.mark.parametrize(
    ("text", "whose"),
    [(CIRCL, "CIRCL client (pyhashlookup)"), ("#!/bin/sh\necho\n", "another program")],
)
def test_note_when_hashlookup_on_path_is_not_ours(
    tmp_path: Path, text: str, whose: str
) -> None:
    fake = _fake_bin(tmp_path, text)
    status, err = _run_on_terminal(
        [str(BIN / "hlookup"), "--version"], f"{fake}:/usr/bin:/bin"
    )
    assert status == 0
    note = [line for line in err.splitlines() if "note:" in line]
    assert any(str(fake / "hashlookup") in line and whose in line for line in note)
    assert all("`hlookup`" in line for line in note)


def test_no_note_when_hashlookup_is_ours(tmp_path: Path) -> None:
    ours = (BIN / "hlookup").read_text()
    fake = _fake_bin(tmp_path, ours)
    status, err = _run_on_terminal(
        [sys.executable, "-I", "-m", "hashlookup", "--version"],
        f"{fake}:/usr/bin:/bin",
    )
    assert status == 0
    # The venv's own `hashlookup` may be either package's (both install
    # one); only the PATH entry is under this test's control.
    assert str(fake) not in err


def test_no_note_off_a_terminal(tmp_path: Path) -> None:
    fake = _fake_bin(tmp_path, CIRCL)
    out = subprocess.run(
        [str(BIN / "hlookup"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": f"{fake}:/usr/bin:/bin"},
    )
    assert out.returncode == 0
    assert out.stderr == ""
