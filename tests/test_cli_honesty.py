"""What an operator meets on first contact, through real `hashlookup`
subprocesses on real files: outputs that would overwrite an input, messages
in the interface's own words, counted skips of `match --skip-invalid` and its
`-n`, the keys file of `serve`, help texts, exit statuses in --help and the
docs that go with them."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hashlookup import build_dataset, build_index
from hashlookup.cli import COMMANDS, build_parser
from server_utils import Server

SEED = 1515
ROOT = Path(__file__).resolve().parent.parent


def hl(
    *args: object, cwd: Path, stdin: object = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -I -m hashlookup ARGS` (isolated: the installed package)."""
    return subprocess.run(
        [sys.executable, "-I", "-m", "hashlookup", *map(str, args)],
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


def _one_error(r: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hashlookup: error: "), r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _digests(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("honesty")
    (d / "police.md5").write_text("\n".join(_digests(300, SEED)) + "\n")
    (d / "hotline.md5").write_text("\n".join(_digests(200, SEED + 1)) + "\n")
    build_dataset(
        {"police": str(d / "police.md5"), "hotline": str(d / "hotline.md5")},
        str(d / "known.hlds"),
    )
    return d


def _listing(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


# ------------------------------------------------- outputs that are inputs


@pytest.mark.parametrize("how", ["same", "hardlink", "symlink", "devstdin", "dash"])
def test_build_refuses_to_overwrite_an_input(tmp_path: Path, how: str) -> None:
    src = tmp_path / "police.md5"
    src.write_text("\n".join(_digests(50, SEED)) + "\n")
    before = src.read_bytes()
    stdin = None
    inputs = ["police.md5"]
    out = "police.md5"
    if how == "hardlink":
        os.link(src, tmp_path / "again.md5")
        out = "again.md5"
    elif how == "symlink":
        (tmp_path / "alias.md5").symlink_to(src)
        out = "alias.md5"
    elif how == "devstdin":
        # what /dev/stdin is (a link to /proc/self/fd/0), made here: on a
        # build that does not refuse it, only this link gets replaced
        (tmp_path / "stdin").symlink_to("/proc/self/fd/0")
        out = "stdin"
    elif how == "dash":
        inputs = ["-"]
    if how in ("devstdin", "dash"):
        stdin = open(src, "rb")  # noqa: SIM115 (closed below)
    names = _listing(tmp_path)
    try:
        for extra in ([], ["--index"]):
            r = hl("build", *inputs, "-o", out, *extra, cwd=tmp_path, stdin=stdin)
            _one_error(r, f"-o {out}", "refusing to overwrite an input")
    finally:
        if stdin is not None:
            stdin.close()
    assert src.read_bytes() == before
    assert _listing(tmp_path) == names  # no temporary file left either


def test_outputs_that_are_not_regular_files(tmp_path: Path) -> None:
    """A device, a pipe or a standard stream as output is refused (it would
    be replaced by a regular file).  Links made here stand in for /dev/stdin
    and /dev/null, so that a build that does not refuse them replaces only
    the links."""
    src = tmp_path / "police.md5"
    src.write_text("\n".join(_digests(50, SEED)) + "\n")
    (tmp_path / "stdin").symlink_to("/proc/self/fd/0")
    (tmp_path / "null").symlink_to(os.devnull)
    for out in ("stdin", "null"):
        r = hl("build", src, "-o", out, cwd=tmp_path, stdin=subprocess.DEVNULL)
        _one_error(r, f"-o {out}: not a regular file")
        assert (tmp_path / out).is_symlink()
    assert os.path.islink("/dev/stdin") or not os.path.exists("/dev/stdin")


def test_build_allow_list_and_update_outputs(work: Path, tmp_path: Path) -> None:
    add = tmp_path / "add.md5"
    add.write_text("\n".join(_digests(20, SEED + 2)) + "\n")
    rem = tmp_path / "remove.md5"
    rem.write_text(_digests(1, SEED)[0] + "\n")
    os.link(add, tmp_path / "add-link.md5")
    ds = tmp_path / "ds.hlds"
    ds.write_bytes((work / "known.hlds").read_bytes())
    keep = {p: p.read_bytes() for p in (add, rem, ds)}
    cases = [
        ("build", add, "--allow", rem, "-o", rem),
        ("update", ds, "--add", add, "-o", add),
        ("update", ds, "--add", f"x={add}", "-o", tmp_path / "add-link.md5"),
        ("update", ds, "--remove", rem, "-o", rem),
        ("update", ds, "--add", ds),  # the in-place target read as a list
        ("export-bloom", ds, "-o", ds),
        ("sign", ds, "--key", add, "-o", ds),
        ("scan", ds, tmp_path, "--report", ds),
    ]
    for argv in cases:
        r = hl(*argv, cwd=tmp_path)
        _one_error(r, "refusing to overwrite an input")
    assert {p: p.read_bytes() for p in keep} == keep
    # the normal cases still work
    r = hl("update", ds, "--add", add, "-o", tmp_path / "new.hlds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


# ----------------------------------------------- messages in the CLI's words


def test_build_into_a_directory_names_the_directory(work: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    for extra in ([], ["--index"]):
        r = hl("build", work / "police.md5", "-o", "out", *extra, cwd=tmp_path)
        line = _one_error(r, "-o out: is a directory")
        assert ".tmp" not in line and "@" not in line
    assert _listing(tmp_path) == {"out"} and not any((tmp_path / "out").iterdir())


def test_match_names_what_a_binary_input_looks_like(work: Path, tmp_path: Path) -> None:
    text = (work / "police.md5").read_bytes()
    (tmp_path / "list.md5.gz").write_bytes(gzip.compress(text, mtime=0))
    rng = random.Random(SEED)
    (tmp_path / "blob").write_bytes(bytes(rng.getrandbits(8) for _ in range(3000)))
    ds = work / "known.hlds"
    for path, what in (
        ("list.md5.gz", "gzip-compressed data"),
        ("blob", "binary data"),
        (str(ds), "hashlookup dataset"),
    ):
        r = hl("match", ds, path, cwd=tmp_path)
        line = _one_error(r, path, what, "not a text digest list")
        assert "\\x" not in line and len(line) < 200, line
    with open(tmp_path / "list.md5.gz", "rb") as f:
        r = hl("match", ds, "-", cwd=tmp_path, stdin=f)
    _one_error(r, "standard input", "gzip-compressed data")
    # a damaged line further on is a damaged line, reported or skipped
    digest = (work / "police.md5").read_text().split()[0]
    (tmp_path / "damaged.md5").write_bytes(f"{digest}\n\0\0\n{digest}\n".encode())
    _one_error(hl("match", ds, "damaged.md5", cwd=tmp_path), "damaged.md5:2:")
    r = hl("match", ds, "damaged.md5", "--skip-invalid", cwd=tmp_path)
    assert r.returncode == 1 and "skipped 1 invalid line" in r.stderr
    # a pipe given as a path is read once, not sniffed: still matched
    r = subprocess.run(
        f"{sys.executable} -I -m hashlookup match {ds} <(cat {work / 'police.md5'})",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 1 and len(r.stdout.splitlines()) == 300, r.stderr


def test_build_index_messages(work: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.md5").write_text("# nothing yet\n")
    r = hl("build", "--index", "empty.md5", "-o", "e.hlx", cwd=tmp_path)
    line = _one_error(r, "empty.md5", "--algorithm")
    assert "algorithm=" not in line
    r = hl(
        "build",
        "--index",
        "empty.md5",
        "--algorithm",
        "md5",
        "-o",
        "e.hlx",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    # a misspelt second path is blamed, not the first
    good = str(work / "police.md5")
    r = hl("build", "--index", good, "polcie2.md5", "-o", "x.hlx", cwd=tmp_path)
    line = _one_error(r, "polcie2.md5")
    assert "police.md5" not in line
    with pytest.raises(FileNotFoundError) as info:
        build_index([good, str(tmp_path / "typo.md5")], tmp_path / "y.hlx")
    assert info.value.filename == str(tmp_path / "typo.md5")
    assert "item 1" in str(info.value)


# ---------------------------------------------------- match --skip-invalid, -n


def _inventory(path: Path, known: list[str], seed: int) -> tuple[int, list[int]]:
    """A digest list with known and unknown digests, blank and comment
    lines and invalid lines; returns (invalid lines, hit line numbers)."""
    rng = random.Random(seed)
    known_set = set(known)
    others = _digests(400, seed + 100)
    lines: list[str] = []
    invalid = 0
    hits: list[int] = []
    for _ in range(1500):
        kind = rng.random()
        if kind < 0.1:
            d = rng.choice(known + others)
            bad = rng.choice([d[:31], "zz" + d[2:], d + "0", d[:16] + "-" + d[17:]])
            lines.append(bad)
            invalid += 1
        elif kind < 0.15:
            lines.append(rng.choice(["", "# comment", "   "]))
        else:
            d = rng.choice(known + others)
            lines.append(d.upper() if rng.random() < 0.2 else d)
            if d in known_set:
                hits.append(len(lines))
    path.write_text("\n".join(lines) + "\n")
    return invalid, hits


def test_match_skip_invalid_counts_every_skipped_line(
    work: Path, tmp_path: Path
) -> None:
    known = (work / "police.md5").read_text().split()
    expect = {}
    for i in range(2):
        expect[f"inv{i}.txt"] = _inventory(tmp_path / f"inv{i}.txt", known, SEED + i)
    ds = work / "known.hlds"
    pattern = re.compile(r"^hashlookup: (\S+): skipped ([\d,]+) invalid lines? ")
    for extra in (
        [],
        ["-c"],
        ["-v"],
        ["--format", "jsonl"],
        ["--format", "csv"],
        ["-n"],
    ):
        for files in (["inv0.txt"], ["inv0.txt", "inv1.txt"]):
            r = hl(
                "match", ds, *files, "--skip-invalid", "-j", "2", *extra, cwd=tmp_path
            )
            assert r.returncode == 1, r.stderr
            got = {}
            for line in r.stderr.splitlines():
                m = pattern.match(line)
                assert m, line
                got[m.group(1)] = int(m.group(2).replace(",", ""))
            assert got == {f: expect[f][0] for f in files}, (extra, files)
    # the same from standard input, named so
    with open(tmp_path / "inv0.txt", "rb") as f:
        r = hl("match", ds, "-", "--skip-invalid", "-c", cwd=tmp_path, stdin=f)
    assert f"standard input: skipped {expect['inv0.txt'][0]} invalid lines" in r.stderr


def test_match_line_numbers(work: Path, tmp_path: Path) -> None:
    known = (work / "police.md5").read_text().split()
    _, hits0 = _inventory(tmp_path / "a.txt", known, SEED + 5)
    _, hits1 = _inventory(tmp_path / "b.txt", known, SEED + 6)
    lines0 = (tmp_path / "a.txt").read_text().split("\n")
    lines1 = (tmp_path / "b.txt").read_text().split("\n")
    ds = work / "known.hlds"
    r = hl("match", ds, "a.txt", "-n", "--skip-invalid", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [f"{n}:{lines0[n - 1]}" for n in hits0]
    r = hl(
        "match", ds, "a.txt", "b.txt", "--line-number", "--skip-invalid", cwd=tmp_path
    )
    want = [f"a.txt:{n}:{lines0[n - 1]}" for n in hits0]
    want += [f"b.txt:{n}:{lines1[n - 1]}" for n in hits1]
    assert r.stdout.splitlines() == want
    # -n -v: the same lines as -v, numbered
    plain = hl("match", ds, "a.txt", "-v", "--skip-invalid", cwd=tmp_path).stdout
    numbered = hl("match", ds, "a.txt", "-v", "-n", "--skip-invalid", cwd=tmp_path)
    got = numbered.stdout.splitlines()
    assert [x.split(":", 1)[1] for x in got] == plain.splitlines()
    assert all(lines0[int(x.split(":", 1)[0]) - 1] == x.split(":", 1)[1] for x in got)
    for extra in (["-c"], ["--format", "jsonl"], ["--annotate"]):
        _one_error(hl("match", ds, "a.txt", "-n", *extra, cwd=tmp_path), "-n")


# ---------------------------------------------------------------- serve keys


def test_serve_refuses_a_missing_keys_file(work: Path, tmp_path: Path) -> None:
    r = hl(
        "serve",
        work / "known.hlds",
        "--api-keys",
        "keys.json",
        "--port",
        "0",
        cwd=tmp_path,
    )
    _one_error(r, "--api-keys keys.json", "no such file", "apikey add")
    assert not (tmp_path / "keys.json").exists()


def test_keys_files_are_private_and_serve_warns_otherwise(
    work: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.json"
    r = hl("apikey", "add", "--keys", keys, "acme", cwd=tmp_path, umask=0)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    keys.chmod(0o644)
    r = hl("apikey", "add", "--keys", keys, "beta", cwd=tmp_path, umask=0)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600  # rewritten private
    r = hl("keygen", "-o", tmp_path / "sign.key", cwd=tmp_path, umask=0)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "sign.key").stat().st_mode) == 0o600
    # a private keys file: no warning; one open to others: a warning
    with Server(
        work / "known.hlds", "--api-keys", str(keys), workdir=tmp_path, workers=1
    ) as srv:
        assert "chmod 600" not in srv.stderr()
    keys.chmod(0o644)
    with Server(
        work / "known.hlds", "--api-keys", str(keys), workdir=tmp_path, workers=1
    ) as srv:
        err = srv.stderr()
    assert re.search(
        r"warning: --api-keys \S+keys\.json is open to group/others \(mode 0644\)", err
    )
    assert "chmod 600" in err


# ------------------------------------------------------------- help and docs


def _actions(parser: argparse.ArgumentParser, where: str):  # type: ignore[no-untyped-def]
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _actions(sub, f"{where} {name}")
        else:
            yield where, a


def test_every_option_has_help_and_every_command_its_exit_status() -> None:
    missing = []
    for name in COMMANDS:
        parser = build_parser(name)
        sub = next(
            a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        )
        p = sub.choices[name]
        assert p.epilog and p.epilog.startswith("Exit status:"), name
        for where, action in _actions(p, name):
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{where}: {action.option_strings or action.dest}")
    assert missing == []


def test_help_output_shows_the_exit_status(tmp_path: Path) -> None:
    for name in ("scan", "match", "build"):
        r = hl(name, "--help", cwd=tmp_path)
        assert r.returncode == 0 and "Exit status:" in r.stdout, name
    assert "2 when any file or directory could not be read" in " ".join(
        hl("scan", "--help", cwd=tmp_path).stdout.split()
    )


def test_docs_list_every_command_and_one_dataset_extension() -> None:
    cli_md = (ROOT / "docs" / "CLI.md").read_text()
    headings = [line for line in cli_md.splitlines() if line.startswith("## ")]
    table = [
        line
        for line in cli_md.split("## Exit status")[0].splitlines()
        if line.startswith("| `")
    ]
    for name in COMMANDS:
        assert any(f"`{name}`" in h for h in headings), name
        assert any(line.startswith(f"| `{name}` |") for line in table), name
    readme = (ROOT / "README.md").read_text().splitlines()
    first_screen = "\n".join(readme[:40])
    for needle in ("C compiler", "python3-venv", ".venv/bin/hlookup"):
        assert needle in first_screen, needle
    # datasets are .hlds: a dataset build (no --index) never writes .hlx
    for doc in ("docs/CLI.md", "docs/DATASETS.md", "README.md"):
        for line in (ROOT / doc).read_text().splitlines():
            if re.search(r"hashlookup build .*-o \S+\.hlx", line):
                assert "--index" in line, (doc, line)
    demo = (ROOT / "hashlookup" / "cli" / "demo.py").read_text()
    assert "known.hlx" not in demo and "known.hlds" in demo


def test_exclude_spellings(work: Path, tmp_path: Path) -> None:
    """--exclude-label in check/match, --exclude LABEL deprecated there."""
    police = (work / "police.md5").read_text().split()
    inv = tmp_path / "inv.txt"
    inv.write_text("\n".join(police[:5]) + "\n")
    ds = work / "known.hlds"
    r = hl("match", ds, inv, "--exclude-label", "source:police", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = hl("match", ds, inv, "--exclude", "source:police", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, "")
    assert "--exclude LABEL is deprecated" in r.stderr
    r = hl("check", ds, police[0], "--only-label", "source:police", cwd=tmp_path)
    assert r.returncode == 1 and "FOUND" in r.stdout
    digest = hashlib.md5(b"x").hexdigest()
    r = hl("check", ds, digest, "--only-label", "source:nope", cwd=tmp_path)
    _one_error(r, "--only-label 'source:nope'")
