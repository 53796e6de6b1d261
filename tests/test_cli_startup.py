"""Start-up of the command line: a command imports only its own module (and
what it needs), so `hashlookup --help` and `hashlookup check` stay fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hashlookup.cli import COMMANDS

_PROBE = """
import contextlib, io, json, sys
from hashlookup.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules
                        if m.startswith("hashlookup.cli.") or m == "numpy")))
"""


def _loaded(*argv: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def _commands(loaded: set[str]) -> set[str]:
    modules = {f"hashlookup.cli.{module}" for module, _ in COMMANDS.values()}
    return loaded & modules


def test_help_imports_no_command() -> None:
    loaded = _loaded("--help")
    assert _commands(loaded) == set()
    assert "numpy" not in loaded


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_imports_only_that_command(name: str) -> None:
    module = f"hashlookup.cli.{COMMANDS[name][0]}"
    assert _commands(_loaded(name, "--help")) == {module}
