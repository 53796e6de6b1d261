"""`hashlookup scan` as operators run it, through real subprocesses: exit
status when files could not be read, symbolic links named on the command
line, --files-from lists, label filters and the renamed --exclude-path, a
finished state file, the progress line on a real terminal (a pty) and the
summary of an interrupted scan."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from hashlookup import build_dataset
from hashlookup.scan import scan

SEED = 4242
# The child run through this wrapper sleeps DELAY seconds per file read, so
# that a test sees a scan in progress instead of racing one that takes a
# fraction of a second.
SLOW = """
import sys, time
from hashlookup.scan import tree as s
s._GROUP_FILES = 2
real = s.Hasher.many
def slow(self, files):
    time.sleep(float(sys.argv[1]) * len(files))
    return real(self, files)
s.Hasher.many = slow
from hashlookup.cli import main
sys.exit(main(sys.argv[2:]))
"""


def hl(
    *args: object, cwd: Path, stdin: object = None, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-m", "hashlookup", *map(str, args)],
        cwd=cwd,
        stdin=stdin,
        input=input,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _text(r: subprocess.CompletedProcess[str]) -> tuple[list[str], str]:
    out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
    err = r.stderr.decode() if isinstance(r.stderr, bytes) else r.stderr
    return out.splitlines(), err


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tree of 60 directories of small files; `police` lists a third of the
    files, `hotline` another third and some of police's."""
    base = tmp_path_factory.mktemp("scanops")
    tree = base / "tree"
    police, hotline = [], []
    n = 0
    for i in range(60):
        d = tree / f"d{i:02d}"
        d.mkdir(parents=True)
        for j in range(3):
            data = hashlib.sha256(f"{SEED}:{i}:{j}".encode()).digest() * (j + 1)
            (d / f"f{j}").write_bytes(data)
            md5 = hashlib.md5(data).hexdigest()
            if n % 3 == 0:
                police.append(md5)
            if n % 3 == 1 or n % 9 == 0:
                hotline.append(md5)
            n += 1
    (base / "police.md5").write_text("\n".join(police) + "\n")
    (base / "hotline.md5").write_text("\n".join(hotline) + "\n")
    build_dataset(
        {"police": str(base / "police.md5"), "hotline": str(base / "hotline.md5")},
        str(base / "known.hlds"),
    )
    (base / "slow.py").write_text(SLOW)
    return {"base": base, "tree": tree, "ds": base / "known.hlds"}


def _hit_paths(lines: list[str]) -> list[str]:
    return [line.split("\t")[0] for line in lines]


def _oracle(tree: Path, listed: set[str]) -> set[str]:
    return {
        str(p)
        for p in tree.rglob("*")
        if p.is_file() and hashlib.md5(p.read_bytes()).hexdigest() in listed
    }


def _listed(base: Path, *names: str) -> set[str]:
    out: set[str] = set()
    for name in names:
        out |= set((base / f"{name}.md5").read_text().split())
    return out


# ------------------------------------------------------------ exit status


def test_errors_show_in_the_exit_status(env: dict[str, Path], tmp_path: Path) -> None:
    ds, tree = env["ds"], env["tree"]
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "a").write_bytes(b"nothing known")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a").write_bytes(b"nothing known either")
    (broken / "dangling").symlink_to(tmp_path / "nowhere")
    (broken / "self").symlink_to(broken / "self")
    # no hit, no error: 0
    r = hl("scan", ds, "clean", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # no hit, errors (links that cannot be read when followed): 2, not 0
    r = hl("scan", ds, "broken", "--follow-symlinks", cwd=tmp_path)
    out, err = _text(r)
    assert r.returncode == 2 and out == [], err
    assert "2 errors, 0 hits" in err
    # a hit and errors: 1 (a hit takes priority, as clamscan)
    r = hl("scan", ds, "broken", tree / "d00", "--follow-symlinks", cwd=tmp_path)
    assert r.returncode == 1 and "2 errors" in _text(r)[1]
    # a dangling link named on the command line is an error of the scan
    r = hl("scan", ds, "broken/dangling", cwd=tmp_path)
    assert r.returncode == 2 and "dangling symbolic link" in _text(r)[1]


def test_a_symbolic_link_named_on_the_command_line_is_followed(
    env: dict[str, Path], tmp_path: Path
) -> None:
    ds, tree, base = env["ds"], env["tree"], env["base"]
    (tmp_path / "linkdir").symlink_to(tree)
    want = _oracle(tree, _listed(base, "police", "hotline"))
    r = hl("scan", ds, "linkdir", cwd=tmp_path)
    out, err = _text(r)
    assert r.returncode == 1, err
    got = {str(tree / os.path.relpath(p, "linkdir")) for p in _hit_paths(out)}
    assert got == want and all(p.startswith("linkdir/") for p in _hit_paths(out))
    # a link to a file is read, and reported under the name given
    target = sorted(want)[0]
    (tmp_path / "linkfile").symlink_to(target)
    r = hl("scan", ds, "linkfile", "--format", "jsonl", cwd=tmp_path)
    rows = [json.loads(x) for x in _text(r)[0]]
    assert r.returncode == 1 and {x["path"] for x in rows} == {"linkfile"}
    # links inside a directory still need --follow-symlinks
    inner = tmp_path / "holder"
    inner.mkdir()
    (inner / "link").symlink_to(tree)
    assert hl("scan", ds, "holder", cwd=tmp_path).returncode == 0
    r = hl("scan", ds, "holder", "--follow-symlinks", cwd=tmp_path)
    assert r.returncode == 1 and len(_text(r)[0]) == len(want)


# ------------------------------------------------------------- files-from


@pytest.mark.parametrize("sep", ["\n", "\0", "\r\n"])
def test_files_from(env: dict[str, Path], tmp_path: Path, sep: str) -> None:
    ds, tree, base = env["ds"], env["tree"], env["base"]
    listed = _listed(base, "police", "hotline")
    files = sorted(p for p in tree.rglob("*") if p.is_file())[:40]
    roots = [str(p) for p in files] + [str(tree / "d50")]
    want = _oracle(tree, listed) & (
        set(map(str, files)) | _oracle(tree / "d50", listed)
    )
    (tmp_path / "list").write_bytes((sep.join(roots) + sep).encode())
    r = hl("scan", ds, "--files-from", "list", cwd=tmp_path)
    out, err = _text(r)
    assert r.returncode == 1, err
    assert set(_hit_paths(out)) == want
    # standard input, mixed with PATH arguments and options in any order
    r = hl(
        "scan", ds, "--files-from", "-", "--jobs", "2", str(tree / "d51"),
        cwd=tmp_path, input=(sep.join(roots) + sep).encode(),
    )  # fmt: skip
    assert set(_hit_paths(_text(r)[0])) == want | _oracle(tree / "d51", listed)
    # a listed path that is missing is an error of the scan, not of usage
    (tmp_path / "list2").write_text(f"{tmp_path}/gone\n{files[0]}\n")
    r = hl("scan", ds, "--files-from", "list2", cwd=tmp_path)
    out, err = _text(r)
    assert "gone: vanished or does not exist" in err
    assert r.returncode == (1 if str(files[0]) in want else 2)
    # nothing to scan at all is a usage error
    r = hl("scan", ds, cwd=tmp_path)
    assert r.returncode == 2 and "--files-from" in _text(r)[1]


# --------------------------------------------------- labels, exclude-path


def test_label_filters_and_exclude_path(env: dict[str, Path], tmp_path: Path) -> None:
    ds, tree, base = env["ds"], env["tree"], env["base"]
    police, hotline = _listed(base, "police"), _listed(base, "hotline")
    cases = [
        (["--only-label", "source:police"], _oracle(tree, police)),
        (["--exclude-label", "source:police"], _oracle(tree, hotline - police)),
        (
            ["--only-label", "source:hotline", "--exclude-label", "source:police"],
            _oracle(tree, hotline - police),
        ),
    ]
    for extra, want in cases:
        r = hl("scan", ds, tree, *extra, cwd=tmp_path)
        out, err = _text(r)
        assert set(_hit_paths(out)) == want, extra
        assert r.returncode == (1 if want else 0), err
    r = hl("scan", ds, tree, "--only-label", "source:nope", cwd=tmp_path)
    assert r.returncode == 2 and "--only-label 'source:nope'" in _text(r)[1]
    everything = _oracle(tree, police | hotline)
    kept = {p for p in everything if "/d0" not in p}
    r = hl("scan", ds, tree, "--exclude-path", "d0?", cwd=tmp_path)
    out, err = _text(r)
    assert set(_hit_paths(out)) == kept and "deprecated" not in err
    r = hl("scan", ds, tree, "--exclude", "d0?", cwd=tmp_path)
    out, err = _text(r)
    assert set(_hit_paths(out)) == kept
    assert "--exclude GLOB is deprecated in scan" in err


# ------------------------------------------------------ a finished state


def test_a_finished_state_starts_a_new_scan(
    env: dict[str, Path], tmp_path: Path
) -> None:
    ds, base = env["ds"], env["base"]
    tree = tmp_path / "t"
    tree.mkdir()
    known = sorted(env["tree"].rglob("f0"))
    (tree / "a").write_bytes(known[0].read_bytes())
    state = tmp_path / "s.state"
    first = scan(ds, [tree], resume=state)
    assert not first.restarted
    # the next day: another known file arrived
    (tree / "b").write_bytes(known[3].read_bytes())
    listed = _listed(base, "police", "hotline")
    again = scan(ds, [tree], resume=state)
    assert again.restarted and again.resumed_units == 0
    assert {h.path for h in again.hits} == _oracle(tree, listed)
    assert again.files_read == 2
    # the CLI says which: a new scan, started over
    (tree / "c").write_bytes(known[6].read_bytes())
    r = hl("scan", ds, tree, "--resume", state, cwd=tmp_path)
    out, err = _text(r)
    assert set(_hit_paths(out)) == _oracle(tree, listed)
    assert "recorded a finished scan: this is a new scan, started over" in err
    assert "3 files: 3 read" in err


# ---------------------------------------- progress line and Ctrl-C summary


def _read_all(fd: int, sink: list[bytes]) -> None:
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO once the child closed the pty
            return
        if not data:
            return
        sink.append(data)


def test_progress_line_fits_the_terminal_of_stderr(
    env: dict[str, Path], tmp_path: Path
) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    chunks: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(master, chunks), daemon=True)
    reader.start()
    p = subprocess.run(
        [sys.executable, env["base"] / "slow.py", "0.02", "scan", env["ds"],
         env["tree"], "--progress", "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path, env=environ,
        timeout=120, check=False,
    )  # fmt: skip
    os.close(slave)
    reader.join(10)
    os.close(master)
    assert p.returncode == 1
    drawn = b"".join(chunks).decode(errors="replace")
    frames = [f.replace("\x1b[K", "") for f in drawn.split("\r")]
    progress = [f for f in frames if f.startswith("scanning:")]
    assert len(progress) >= 2, drawn  # about 5 a second for over a second
    assert max(len(f) for f in progress) <= 39, progress
    # stdout (a pipe) got only the hits
    assert all(line.count("\t") == 3 for line in p.stdout.decode().splitlines())


def test_ctrl_c_prints_how_far_it_got_and_resumes(
    env: dict[str, Path], tmp_path: Path
) -> None:
    ds, tree = env["ds"], env["tree"]
    state = tmp_path / "s.state"
    slow = [sys.executable, str(env["base"] / "slow.py")]
    args = [
        str(ds),
        str(tree),
        "--resume",
        str(state),
        "--jobs",
        "1",
        "--format",
        "jsonl",
    ]
    cmd = [*slow, "0.02", "scan", *args]
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if state.exists() and state.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    text = err.decode()
    assert p.returncode == 130, text
    summary = [
        x for x in text.splitlines() if x.startswith("hashlookup: interrupted after")
    ]
    assert len(summary) == 1, text
    read = int(summary[0].split(" read ")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert 3 <= read < 180, summary
    assert f"resume from {state}" in text
    assert text.rstrip().endswith("hashlookup: error: interrupted")
    # resumed to the end: the hits of one uninterrupted scan
    full = hl("scan", ds, tree, "--format", "jsonl", cwd=tmp_path)
    done = subprocess.run(
        [*slow, "0", "scan", *args], capture_output=True, cwd=tmp_path
    )
    assert done.returncode == 1 and b"resumed:" in done.stderr
    assert done.stdout == full.stdout
