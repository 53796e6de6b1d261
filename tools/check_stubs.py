"""Check that the stubs of every compiled extension match it, run by
`make lint`.

Every ``hashlookup/**/NAME.pyx`` that has a ``NAME.pyi`` beside it is an
extension module with stubs; mypy's stubtest imports the *installed*
module (the source tree holds no compiled code) and compares each name,
signature and class with the stub.  Known, accepted differences are listed
in tools/stubtest-allowlist.txt.

Usage: python tools/check_stubs.py  (with the package installed, e.g. by
`make install`).  Exits with stubtest's status.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWLIST = ROOT / "tools" / "stubtest-allowlist.txt"


def stubbed_extensions() -> list[str]:
    """Module names of the extensions that have a .pyi, sorted."""
    return sorted(
        ".".join(pyx.relative_to(ROOT).with_suffix("").parts)
        for pyx in (ROOT / "hashlookup").rglob("*.pyx")
        if pyx.with_suffix(".pyi").is_file()
    )


def main() -> int:
    modules = stubbed_extensions()
    if not modules:
        print("check_stubs: no extension with a .pyi found", file=sys.stderr)
        return 1
    cmd = [
        sys.executable,
        "-m",
        "mypy.stubtest",
        "--concise",
        # PEP 800 @disjoint_base markers: not needed by the package's users
        "--ignore-disjoint-bases",
        "--allowlist",
        str(ALLOWLIST),
        *modules,
    ]
    # Run outside the source tree, so that `hashlookup` is the installed
    # package (with its compiled modules and the .pyi files next to them).
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(cmd, cwd=cwd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
