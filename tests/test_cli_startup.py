"""Start-up of the command line: a command imports only its own module (and
what it needs), so `hashlookup --help` and `hashlookup check` stay fast."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashlookup.cli import COMMANDS, build_parser
from hashlookup.cli._fast import quick_args

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

#: Not imported by a single check (hit or miss), a match of a short list, a
#: scan of an empty directory or a library lookup: typing
#: (the package's named tuples come from hashlookup._lazy.NamedTuple, its
#: annotations' names from ``if TYPE_CHECKING:``) and datetime (a
#: generation's build time is formatted with time.gmtime).
_NOT_FOR_A_LOOKUP = ("typing", "datetime")

#: Nor, for a check or a library lookup, threading (the dataset's and the
#: thread pool's locks are _thread's, which threading.Lock is).
_NOT_FOR_A_CHECK = (*_NOT_FOR_A_LOOKUP, "threading")

#: Nor, for a library lookup (hit or miss): dataclasses (no module on the
#: path defines one: hashlookup._lazy.defer_dataclasses), json and re (the
#: JSON sections are read by json's C scanner, hashlookup.store.format.
#: loads_json), copy and enum (which those import), pyroaring (every
#: record carries the dataset's one label: answered from the label
#: directory), the modules of sections the file does not have
#: (attributes, code tables), contextlib with functools, and importlib
#: with warnings (hashlookup's lazy names are imported with __import__).
_NOT_FOR_A_LIBRARY_LOOKUP = (
    *_NOT_FOR_A_CHECK,
    "dataclasses",
    "json",
    "re",
    "enum",
    "copy",
    "pyroaring",
    "contextlib",
    "functools",
    "importlib",
    "warnings",
    "hashlookup.store.attributes",
    "hashlookup.store.code_tables",
)

_RUN = """
import contextlib, io, sys
from hashlookup.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
modules = sorted(sys.modules)
import json
print(json.dumps([code, out.getvalue(), modules]))
"""

_LIBRARY = """
import sys
import hashlookup
ds = hashlookup.open_dataset(sys.argv[1])
m = ds.lookup(sys.argv[2])
modules = sorted(sys.modules)
labels = m.labels if m is not None else None
import json
print(json.dumps([m is not None, modules, labels]))
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


#: argparse and what it imports (gettext, locale): a command line of
#: positionals only is read without them (hashlookup.cli._fast).
_ARGPARSE = ("argparse", "gettext", "hashlookup.cli._parser")


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv"])
def test_check_of_a_miss_imports_no_numpy_pyroaring_or_threads(
    dataset: tuple[str, str, str], fmt: str
) -> None:
    code, out, modules = _run(_RUN, "check", "--format", fmt, dataset[0], _MISS)
    assert code == 0 and _MISS in str(out)
    forbidden = ("numpy", "pyroaring", "concurrent.futures", *_NEVER)
    assert _imported(modules, *forbidden, *_NOT_FOR_A_CHECK) == []
    # An option: argparse reads the command line.
    assert _imported(modules, "argparse") == ["argparse"]
    commands = {f"hashlookup.cli.{m}" for m, _ in COMMANDS.values()}
    assert set(_imported(modules, "hashlookup.cli")) & commands == {
        "hashlookup.cli.check"
    }


def test_check_of_a_hit_imports_no_numpy_or_pyroaring(
    dataset: tuple[str, str, str],
) -> None:
    # The hit's labels are read without pyroaring (hashlookup._lookup).
    code, out, modules = _run(_RUN, "check", dataset[0], _KNOWN[3])
    assert code == 1 and f"{_KNOWN[3]}\tFOUND" in str(out)
    assert "labels=source:known" in str(out)
    forbidden = ("numpy", "pyroaring", "dataclasses", "json", *_ARGPARSE, *_NEVER)
    # (the command's module imported with __import__: no importlib, warnings)
    forbidden += ("importlib", "warnings")
    assert _imported(modules, *forbidden, *_NOT_FOR_A_CHECK) == []


def test_match_of_a_short_list_imports_no_numpy_or_pyroaring(
    dataset: tuple[str, str, str],
) -> None:
    code, out, modules = _run(_RUN, "match", dataset[0], dataset[1])
    assert code == 1
    assert str(out).splitlines() == [f"{h}  f{i}" for i, h in enumerate(_KNOWN[:5])]
    forbidden = ("numpy", "pyroaring", "concurrent.futures", *_ARGPARSE, *_NEVER)
    assert _imported(modules, *forbidden, *_NOT_FOR_A_LOOKUP) == []


@pytest.mark.parametrize("quiet", [False, True])
def test_scan_of_an_empty_directory_imports_no_numpy_service_or_labels(
    dataset: tuple[str, str, str], quiet: bool
) -> None:
    # The records' sizes (numpy) are read at the first directory entry; the
    # temporary files' modules (tempfile, socket) when a file is written.
    argv = ("scan", "-q") if quiet else ("scan",)
    code, out, modules = _run(_RUN, *argv, dataset[0], dataset[2])
    assert (code, out) == (0, "")
    forbidden = ("numpy", "pyroaring", "tempfile", "socket", *_NEVER)
    assert _imported(modules, *forbidden, *_NOT_FOR_A_LOOKUP) == []
    if not quiet:  # positionals only: no parser built
        assert _imported(modules, "hashlookup.cli._parser") == []


def test_scan_of_a_file_reads_the_sizes_at_the_first_entry(
    dataset: tuple[str, str, str], tmp_path: Path
) -> None:
    # A directory with a file: the records' sizes (numpy) are read then, and
    # the scan answers as before (the size filter itself: test_scan*.py).
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "b").write_text("".join(f"{h}  f\n" for h in _KNOWN))
    code, out, modules = _run(_RUN, "scan", "-q", dataset[0], str(tmp_path))
    assert (code, out) == (0, "")
    assert "numpy" in modules


def test_library_lookup_imports_no_numpy_pyroaring_json_or_dataclasses(
    dataset: tuple[str, str, str],
) -> None:
    for digest, found in ((_MISS, False), (_KNOWN[0].upper(), True)):
        hit, modules, labels = _run(_LIBRARY, dataset[0], digest)
        assert hit is found and labels == (["source:known"] if found else None)
        forbidden = ("numpy", "concurrent.futures", "argparse", *_NEVER)
        assert _imported(modules, *forbidden, *_NOT_FOR_A_LIBRARY_LOOKUP) == []


def test_library_lookup_of_partial_labels_needs_no_pyroaring(
    tmp_path: Path,
) -> None:
    # Two sources, neither on every record: a hit's labels come from the
    # bitmaps, read in place (hashlookup._lookup), without pyroaring.
    a, b = tmp_path / "a.md5", tmp_path / "b.md5"
    a.write_text("".join(f"{h}  f\n" for h in _KNOWN[:10]))
    b.write_text("".join(f"{h}  f\n" for h in _KNOWN[5:]))
    out = tmp_path / "two.hlds"
    subprocess.run(
        [sys.executable, "-I", "-m", "hashlookup", "build", "-q", "-o", str(out),
         f"a={a}", f"b={b}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    for digest, expected in (
        (_KNOWN[0], ["source:a"]),
        (_KNOWN[7], ["source:a", "source:b"]),
        (_KNOWN[-1], ["source:b"]),
    ):
        hit, modules, labels = _run(_LIBRARY, str(out), digest)
        assert hit is True and labels == expected
        assert _imported(modules, "pyroaring", "json", "dataclasses", "re") == []


def test_dataclasses_are_imported_as_before_once_asked_for() -> None:
    # `import hashlookup` leaves dataclasses to the first import that asks
    # (with its inspect on first use); the finder that waits for it steps
    # aside, and a process that imported inspect first gets the plain import.
    code = (
        "import json, sys\n"
        "import hashlookup\n"
        "from hashlookup import _lazy\n"
        "before = ['dataclasses' in sys.modules, 'inspect' in sys.modules,\n"
        "          _lazy._DataclassesFinder in sys.meta_path]\n"
        "import dataclasses\n"
        "after = ['inspect' in sys.modules,\n"
        "         _lazy._DataclassesFinder in sys.meta_path,\n"
        "         type(dataclasses.__loader__).__name__,\n"
        "         type(dataclasses.__spec__.loader).__name__]\n"
        "print(json.dumps([before, after]))\n"
    )
    assert _run(code) == [
        [False, False, True],
        [False, False, "SourceFileLoader", "SourceFileLoader"],
    ]
    first = "import inspect, hashlookup, dataclasses, sys, json\n"
    assert _run(
        first + "print(json.dumps(dataclasses.inspect is sys.modules['inspect']))"
    )


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


def test_named_tuples_without_typing_are_typing_s() -> None:
    # hashlookup._lazy.NamedTuple makes the class typing.NamedTuple makes:
    # fields, defaults, methods, docstring, module, pickling, errors.
    import pickle
    import types
    import typing

    from hashlookup import Match, _lazy
    from hashlookup.algorithms import MD5, Algorithm

    made = []
    for base in (typing.NamedTuple, _lazy.NamedTuple):

        class Point(base):  # type: ignore[valid-type,misc]
            """A point."""

            x: int
            y: str = "a"

            @property
            def twice(self) -> int:
                return 2 * self.x

        made.append(Point)
    for cls in made:
        p = cls(3)
        assert (p, repr(p), p.twice, p._asdict()) == (
            (3, "a"), "Point(x=3, y='a')", 6, {"x": 3, "y": "a"}
        )  # fmt: skip
        assert (cls.__doc__, cls.__module__, cls.__qualname__.split(".")[-1]) == (
            "A point.", __name__, "Point"
        )  # fmt: skip
        assert (cls._fields, cls._field_defaults, cls.__bases__) == (
            ("x", "y"), {"y": "a"}, (tuple,)
        )  # fmt: skip
        assert list(typing.get_type_hints(cls)) == ["x", "y"]
    for base in (typing.NamedTuple, _lazy.NamedTuple):
        # a field without a default after one with; a namedtuple method
        for body, error in (
            (
                {
                    "__annotations__": {"x": "int", "y": "int"},
                    "x": 1,
                    "__module__": "m",
                },
                TypeError,
            ),
            (
                {"__annotations__": {"x": "int"}, "_make": 1, "__module__": "m"},
                AttributeError,
            ),
        ):
            with pytest.raises(error, match=r"default|overwrite"):
                types.new_class(
                    "Bad", (base,), exec_body=lambda ns, b=body: ns.update(b)
                )
    assert pickle.loads(pickle.dumps(MD5)) == MD5 and MD5.hex_length == 32
    assert (
        isinstance(MD5, Algorithm) and Algorithm.__module__ == "hashlookup.algorithms"
    )
    m = Match(1, "md5", "0" * 32, None, None, 4, (), 1, "t")
    assert pickle.loads(pickle.dumps(m)) == m and len(m.attributes) == 0
    assert Match.__module__ == "hashlookup.store.generation"
    assert Match.__doc__ is not None and Match.__doc__.startswith("A digest found")


@settings(max_examples=2000, deadline=None)
@given(st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**40).map(lambda us: us * 1000 + 500),  # ties
))  # fmt: skip
def test_build_time_reads_as_datetime_s(created_ns: int) -> None:
    # A generation's build time, formatted without datetime, is the string
    # datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat() gives.
    from datetime import datetime, timezone

    from hashlookup.store.format import iso_utc

    expected = datetime.fromtimestamp(created_ns / 1e9, timezone.utc).isoformat()
    assert iso_utc(created_ns) == expected


# -- positionals only, read without argparse ---------------------------------

#: Words of command lines (an empty one, standard input, a number, a choice
#: of some command, NAME=PATH...); none starts with "-" but "-" itself.
_WORDS = ("x", "-", "7", "text", "md5", "a=b", "")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_quick_args_are_argparse_s_or_none(name: str) -> None:
    # Every command line of up to three such words: the quick reading gives
    # argparse's result exactly (same attributes, same values), or leaves the
    # command line to argparse (None); for an error, always to argparse.
    import importlib

    module = importlib.import_module(f"hashlookup.cli.{COMMANDS[name][0]}")
    parser = build_parser(name)
    read = 0
    for n in range(4):
        for words in itertools.product(_WORDS, repeat=n):
            quick = quick_args(name, module, list(words))
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    expected = vars(parser.parse_args([name, *words]))
            except SystemExit:
                assert quick is None, (name, words)
                continue
            if quick is not None:
                read += 1
                assert vars(quick) == expected, (name, words)
    if name in ("check", "match", "scan"):
        assert read > 0  # the hot commands do use the quick reading


@pytest.mark.parametrize(
    "words",
    [["--format", "csv", "d", "x"], ["-q", "d"], ["d", "--", "x"], ["d", "-5"]],
)
def test_quick_args_leave_options_to_argparse(words: list[str]) -> None:
    import hashlookup.cli.check as check

    assert quick_args("check", check, words) is None


def test_quick_args_namespace_behaves_as_argparse_s() -> None:
    import hashlookup.cli.check as check

    args = quick_args("check", check, ["d.hlds", "ab"])
    assert args is not None
    assert "digests" in args and "nothing" not in args
    assert (args.path, args.digests, args.format) == ("d.hlds", ["ab"], "text")
    assert args.run is check.run and args.command == "check"
