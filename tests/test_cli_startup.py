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


# -- the start-up paths: what a one-shot command imports ----------------------

#: Never imported by a single check, a match of a few lines, a scan of an
#: empty directory or a library lookup: the lookup service, the builders, the
#: unused commands' option trees (shutil: argparse's terminal width, asked
#: only for help and errors), inspect (which dataclasses imports; see
#: hashlookup._lazy.import_dataclasses) and the PDQ near search (its
#: extension and query code: only for files with PDQ hashes, when asked).
_NEVER = (
    "hashlookup.server",
    "hashlookup.builders",
    "inspect",
    "shutil",
    "hashlookup.near.index",
    "hashlookup.near.query",
    "hashlookup.near._near",
)

_RUN = """
import contextlib, io, json, sys
from hashlookup.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
print(json.dumps([code, out.getvalue(), sorted(sys.modules)]))
"""

_LIBRARY = """
import json, sys
import hashlookup
ds = hashlookup.open_dataset(sys.argv[1])
m = ds.lookup(sys.argv[2])
print(json.dumps([m is not None, sorted(sys.modules)]))
"""

_KNOWN = [f"{i:032x}" for i in range(1, 200, 7)]  # synthetic md5 digests
_MISS = f"{2:032x}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A dataset (md5 digests, one label), a 10-line digest list (half of it
    known) and an empty directory."""
    d = tmp_path_factory.mktemp("startup")
    (d / "known.md5").write_text("".join(f"{h}  file\n" for h in _KNOWN))
    subprocess.run(
        [sys.executable, "-I", "-m", "hashlookup", "build", "-q", "-o",
         str(d / "ds.hlds"), f"known={d / 'known.md5'}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    listed = _KNOWN[:5] + [f"{i:032x}" for i in range(1000, 1005)]
    (d / "list10.md5").write_text("".join(f"{h}  f{i}\n" for i, h in enumerate(listed)))
    (d / "empty").mkdir()
    return str(d / "ds.hlds"), str(d / "list10.md5"), str(d / "empty")


def _run(code: str, *argv: str) -> list[object]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: list[object] = json.loads(out.stdout.splitlines()[-1])
    return result


def _imported(modules: object, *names: str) -> list[str]:
    assert isinstance(modules, list)
    return sorted(m for m in modules for n in names if m == n or m.startswith(n + "."))


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv"])
def test_check_of_a_miss_imports_no_numpy_pyroaring_or_threads(
    dataset: tuple[str, str, str], fmt: str
) -> None:
    code, out, modules = _run(_RUN, "check", "--format", fmt, dataset[0], _MISS)
    assert code == 0 and _MISS in str(out)
    forbidden = ("numpy", "pyroaring", "concurrent.futures", *_NEVER)
    assert _imported(modules, *forbidden) == []
    commands = {f"hashlookup.cli.{m}" for m, _ in COMMANDS.values()}
    assert set(_imported(modules, "hashlookup.cli")) & commands == {
        "hashlookup.cli.check"
    }


def test_check_of_a_hit_imports_no_numpy(dataset: tuple[str, str, str]) -> None:
    # The hit's labels are read from their roaring bitmaps: pyroaring, only.
    code, out, modules = _run(_RUN, "check", dataset[0], _KNOWN[3])
    assert code == 1 and f"{_KNOWN[3]}\tFOUND" in str(out)
    assert "labels=source:known" in str(out)
    assert _imported(modules, "numpy", *_NEVER) == []


def test_match_of_a_short_list_imports_no_numpy_or_pyroaring(
    dataset: tuple[str, str, str],
) -> None:
    code, out, modules = _run(_RUN, "match", dataset[0], dataset[1])
    assert code == 1
    assert str(out).splitlines() == [f"{h}  f{i}" for i, h in enumerate(_KNOWN[:5])]
    forbidden = ("numpy", "pyroaring", "concurrent.futures", *_NEVER)
    assert _imported(modules, *forbidden) == []


def test_scan_of_an_empty_directory_imports_no_service_or_labels(
    dataset: tuple[str, str, str],
) -> None:
    # (numpy: the scan package's set-up decides; hashlookup/scan.)
    code, out, modules = _run(_RUN, "scan", "-q", dataset[0], dataset[2])
    assert (code, out) == (0, "")
    assert (
        _imported(modules, "pyroaring", "hashlookup.server", "hashlookup.builders")
        == []
    )


def test_library_lookup_imports_no_numpy_pyroaring_or_threads(
    dataset: tuple[str, str, str],
) -> None:
    for digest, found in ((_MISS, False), (_KNOWN[0].upper(), True)):
        hit, modules = _run(_LIBRARY, dataset[0], digest)
        assert hit is found
        forbidden = ("numpy", "concurrent.futures", "argparse", *_NEVER)
        assert _imported(modules, *forbidden) == []
        if not found:
            assert _imported(modules, "pyroaring") == []


def test_dataclasses_still_work_with_a_lazy_inspect() -> None:
    # hashlookup imports dataclasses with a stand-in for inspect: a class
    # without a docstring (the one use) and anyone's inspect still work.
    code = (
        "import hashlookup, json, dataclasses, sys\n"
        "before = 'inspect' in sys.modules\n"
        "@dataclasses.dataclass\n"
        "class P:\n"
        "    x: int\n"
        "    y: str = 'a'\n"
        "import inspect\n"
        "print(json.dumps([before, P.__doc__, repr(P(1)), P(1) == P(1, 'a'),\n"
        "    str(inspect.signature(P)), dataclasses.inspect.ismodule(inspect)]))\n"
    )
    assert _run(code) == [
        False,
        "P(x: int, y: str = 'a')",
        "P(x=1, y='a')",
        True,
        "(x: int, y: str = 'a') -> None",
        True,
    ]
