"""Which program answers to ``hashlookup``: ours, or the CIRCL client.

The CIRCL client (PyPI ``pyhashlookup``) installs a console script named
``hashlookup`` too, and whichever package was installed last owns that name
(uninstalling the other then removes it).  That program sends the digests it
is given to a public online service.  This package therefore also installs
``hlookup``, a name that is only ours, used in every document; and when the
command line starts on a terminal, it checks that ``hashlookup`` on PATH and
beside this Python's scripts is this program, and says so on stderr when it
is not (README.md, "The command's name").
"""

from __future__ import annotations

import os
import sys

#: the name only this package installs (pyproject.toml [project.scripts])
SCRIPT: str = "hlookup"
#: the name this package shares with the CIRCL client
SHARED: str = "hashlookup"

_HEAD = 4096  # a console script names its module in its first lines


def foreign_scripts() -> list[tuple[str, str]]:
    """``(path, whose)`` of each ``hashlookup`` command that is not this
    program: the one found on PATH and the one in this Python's scripts
    directory (each at most once).

    Returns
    -------
    list of (str, str)
        The script's path and a description of its owner ("the CIRCL
        client (pyhashlookup), which sends digests to a public online
        service" or "another program").
    """
    import shutil
    import sysconfig

    candidates = [shutil.which(SHARED)]
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(os.path.join(scripts, SHARED))
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    for path in candidates:
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        try:
            with open(path, "rb") as f:
                head = f.read(_HEAD)
        except OSError:
            continue  # absent or unreadable: nothing is shadowed
        if b"hashlookup.cli" in head:
            continue  # ours
        if b"pyhashlookup" in head:
            whose = (
                "the CIRCL client (pyhashlookup), which sends the digests it "
                "is given to a public online service"
            )
        else:
            whose = "another program"
        found.append((path, whose))
    return found


def note_foreign_scripts() -> None:
    """On a terminal, tell the user when ``hashlookup`` is not this program.

    Silent when stderr is not a terminal (scripts and pipes read exit codes
    and output, and pay nothing for the check).
    """
    try:
        if not sys.stderr.isatty():
            return
    except (AttributeError, ValueError):
        return
    for path, whose in foreign_scripts():
        sys.stderr.write(
            f"{SHARED}: note: the `{SHARED}` command at {path} is not this "
            f"program but {whose}; run this program as `{SCRIPT}` (both "
            f"packages install `{SHARED}`, and the one installed last owns "
            f"it)\n"
        )
